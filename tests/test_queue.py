"""Scale-out on RabbitMQ: the watcher sends jobs, `unet-matting worker` processes answer.

The behaviours run against a real ``rabbitmq-server`` the tests start on 127.0.0.1 (free
ports, private data directory); worker and watcher are real subprocesses killed for real.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import yaml

from tests.conftest import DaemonProcess, config_dict, free_port, matching, read_log, save_tiny_model, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from tests.rabbitmq import RabbitNode
from unet_matting.engine.errors import ImageError, ImageIncomplete, ImageTooLarge, JobError
from unet_matting.engine.profile import Profile
from unet_matting.watcher.config import load_config_data
from unet_matting.watcher.errors import ConfigError, DeadJob

# ---- without a broker ------------------------------------------------------------------------


def test_queue_settings_are_validated_without_echoing_the_url(tmp_path: Path, tiny_model: Path) -> None:
    """A broker URL that is not amqp(s) is refused without printing it (it may hold a password)."""
    raw = config_dict(tmp_path, tiny_model, queue={"broker_url": "redis://:secret@host:6379/0"})
    with pytest.raises(ConfigError) as refused:
        load_config_data(raw, tmp_path / "c.yaml")
    assert "secret" not in str(refused.value) and "queue.broker_url" in str(refused.value)
    raw = config_dict(tmp_path, tiny_model, queue={"broker_url": "amqp://u:p@broker:5672/shop", "max_deliveries": 0})
    with pytest.raises(ConfigError, match=r"queue\.max_deliveries"):
        load_config_data(raw, tmp_path / "c.yaml")
    cfg = load_config_data(
        config_dict(tmp_path, tiny_model, queue={"broker_url": "amqp://u:p@broker:5672/shop"}), tmp_path / "c.yaml"
    )
    assert cfg.queue.jobs == "unet-matting.jobs" and cfg.queue.max_deliveries == 3


def test_a_profile_travels_by_value_through_msgpack() -> None:
    """The job carries the watcher's profile, so workers need no profiles.yaml of their own."""
    from unet_matting.watcher.remote.broker import job_message, profile_from

    profile = Profile("ecom", levels=(0.05, 0.9), aspect=(4, 5), flat_background=(255, 255, 255), trim=True)
    job = msgpack.unpackb(msgpack.packb(job_message("j1", "a/b.jpg", profile, b"\xff\xd8", 10, 1)))
    assert profile_from(job["profile"]) == profile and job["data"] == b"\xff\xd8"


def test_answers_become_the_pipelines_results_and_errors() -> None:
    """A worker's answer is what render() would have returned or raised, here, in the watcher."""
    from unet_matting.watcher.remote.broker import answer_error, answer_ok
    from unet_matting.watcher.remote.client import _rendered, dead_answer

    ok = _rendered(answer_ok("j", {".png": b"png"}, 3, 2, 10, {"inference": 1.0}, "m@1", "w1@h"))
    assert ok.files == {".png": b"png"} and (ok.width, ok.height, ok.model, ok.worker) == (3, 2, "m@1", "w1@h")
    for kind, error in (
        ("incomplete", ImageIncomplete),
        ("too_large", ImageTooLarge),
        ("image", ImageError),
        ("job", JobError),
    ):
        with pytest.raises(error, match="why"):
            _rendered(answer_error("j", kind, "why", "m@1", "w1@h"))
    dead = dead_answer({"id": "j", "x-death": [{"reason": "delivery_limit"}], "x-first-death-reason": "delivery_limit"})
    with pytest.raises(DeadJob, match="dead-lettered the job: delivery_limit"):
        _rendered(dead)


def test_the_answer_time_out_counts_only_while_a_worker_is_connected(monkeypatch) -> None:
    """No re-sends pile up in the broker while no worker runs: result_timeout_s is counted only
    while the broker reports a worker; a stop gives up waiting at once, leaving the upload."""
    from unet_matting.watcher.config import QueueConfig
    from unet_matting.watcher.errors import Deferred
    from unet_matting.watcher.remote.client import RemoteMatting

    remote = RemoteMatting(QueueConfig(broker_url="amqp://guest:guest@127.0.0.1:9//", result_timeout_s=0.4))
    sent = []
    monkeypatch.setattr(remote.app, "send_task", lambda *a, **kw: sent.append(kw["task_id"]))
    remote.stats.connected, remote.stats.workers = True, 0
    threading.Timer(1.0, remote.abandon_waits, args=(0.0,)).start()
    started = time.monotonic()
    with pytest.raises(Deferred) as stopped:
        remote.render(b"data", Profile("p"), "j1", "a.jpg", 10, 1)
    assert stopped.value.retry_s is None and time.monotonic() - started >= 0.9  # not timed out at 0.4 s
    remote._abandon_at = float("inf")
    remote.stats.workers = 2
    with pytest.raises(Deferred, match="no answer from the workers within 0.4 s") as timed_out:
        remote.render(b"data", Profile("p"), "j2", "b.jpg", 10, 1)
    assert timed_out.value.retry_s == 0.0 and sent == ["j1", "j2"] and remote.waiting() == 0


# ---- with a real broker ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    node = RabbitNode().start()
    yield node
    node.close()


class WorkerProcess:
    """``unet-matting worker`` as a subprocess with its own log file."""

    def __init__(self, config: Path, name: str | None) -> None:
        self.config, self.name = config, name  # name None: no --name (the default, per process)
        self.log = Path(yaml.safe_load(config.read_text())["logging"]["file"])
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> WorkerProcess:
        starts = len(self.events("worker_ready"))
        named = ["--name", self.name] if self.name is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unet_matting.watcher", "worker", "--config", str(self.config), *named],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if wait_ready:
            wait_for(lambda: len(self.events("worker_ready")) > starts or self.proc.poll() is not None, 90)
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
        return self

    def events(self, name: str, **match: object) -> list[dict]:
        return matching(read_log(self.log), name, **match)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


class Fleet:
    """A watcher in queue mode and its workers, on queues of their own on the shared node."""

    def __init__(self, root: Path, model: Path, rabbit: RabbitNode, name: str, **queue: object) -> None:
        self.root, self.rabbit = root, rabbit
        self.queue = {
            "broker_url": rabbit.url,
            "jobs": f"{name}.jobs",
            "dead": f"{name}.dead",
            "results": f"{name}.results",
            "result_timeout_s": 60,
            "retry_s": 1,
            "worker_threads": 2,
            **queue,
        }
        self.cfg = config_dict(root, model, queue=self.queue, watcher={"workers": 16})
        self.config = root / "watcher.yaml"
        self.config.write_text(yaml.safe_dump(self.cfg))
        self.watcher = DaemonProcess(self.config)
        self.workers: list[WorkerProcess] = []

    def worker(self, name: str, node: str | None = "", **engine: object) -> WorkerProcess:
        """A worker with config and log file ``name``; ``node`` its --name ("": ``name``, None: none)."""
        cfg = {
            **self.cfg,
            "logging": {**self.cfg["logging"], "file": str(self.root / "log" / f"{name}.log")},
            "engine": {**self.cfg["engine"], **engine},
        }
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        worker = WorkerProcess(path, name if node == "" else node)
        self.workers.append(worker)
        return worker

    def drop(self, name: str, data: bytes) -> None:
        """A complete upload: written beside, renamed in."""
        incoming = self.watcher.path("incoming")
        write(incoming / f".{name}.tmp", data)
        os.rename(incoming / f".{name}.tmp", incoming / name)

    def archived(self) -> list[str]:
        return sorted(p.name for p in self.watcher.path("archive").rglob("*") if p.is_file())

    def outputs(self) -> list[str]:
        return sorted(p.name for p in self.watcher.path("output").rglob("*.png"))

    def archived_and_logged(self) -> list[str]:
        """Archived uploads whose job_finished line is written too (the line follows the move)."""
        done = set(self.done_once())
        return [name for name in self.archived() if name in done]

    def done_once(self) -> Counter:
        return Counter(e["file"] for e in self.watcher.finished("done"))

    def close(self) -> None:
        for worker in self.workers:
            worker.kill9()
        if self.watcher.proc is not None and self.watcher.proc.poll() is None:
            self.watcher.kill9()


@pytest.fixture
def fleet(tmp_path: Path, tiny_model: Path, rabbit: RabbitNode, request: pytest.FixtureRequest) -> Iterator:
    made: list[Fleet] = []

    def make(**queue: object) -> Fleet:
        f = Fleet(tmp_path, tiny_model, rabbit, request.node.name[:40], **queue)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def small(i: int) -> bytes:
    return jpeg_bytes(product_rgb(96, 72, seed=i))


def large(seed: int = 0) -> bytes:
    """Long enough to kill a worker in the middle of it (12 MP: seconds of decode and PNG encode)."""
    return jpeg_bytes(product_rgb(4000, 3000, seed=seed), quality=95)


@pytest.mark.slow
def test_a_200_file_burst_across_2_workers_ends_with_200_outputs_each_once(fleet) -> None:
    f = fleet()
    f.watcher.start()
    workers = [f.worker("w1").start(), f.worker("w2").start()]
    for i in range(200):
        f.drop(f"p{i:03d}.jpg", small(i))
    wait_for(lambda: len(f.archived_and_logged()) == 200, 240, 0.5)
    assert f.outputs() == sorted(f"p{i:03d}.png" for i in range(200))
    assert f.done_once() == Counter({f"p{i:03d}.jpg": 1 for i in range(200)})
    assert not list(f.watcher.path("failed").iterdir())
    by_worker = [{e["job_id"] for e in w.events("job_finished", outcome="done")} for w in workers]
    assert all(by_worker), "both workers took jobs"
    watcher_ids = {e["job_id"] for e in f.watcher.finished("done")}
    assert by_worker[0] | by_worker[1] == watcher_ids and len(watcher_ids) == 200  # one id on both hosts
    assert f.watcher.stop() == 0 and all(w.stop() == 0 for w in workers)


@pytest.mark.slow
def test_a_worker_killed_mid_job_has_its_job_redelivered_and_one_output(fleet) -> None:
    f = fleet()
    f.watcher.start()
    first = f.worker("w1").start()
    f.drop("big.jpg", large())
    started = wait_for(lambda: first.events("job_started", file="big.jpg"), 60)
    first.kill9()  # mid-job: its answer was never sent, its ack never given
    second = f.worker("w2").start()
    wait_for(lambda: f.archived_and_logged() == ["big.jpg"], 120, 0.2)
    again = second.events("job_started", file="big.jpg")
    assert again and again[0]["job_id"] == started[0]["job_id"] and again[0]["delivery"] == 2
    assert f.outputs() == ["big.png"] and f.done_once() == Counter({"big.jpg": 1})
    assert not first.events("job_finished")


@pytest.mark.slow
def test_a_broker_restart_mid_burst_loses_nothing(fleet, rabbit: RabbitNode) -> None:
    f = fleet()
    f.watcher.start()
    workers = [f.worker("w1").start(), f.worker("w2").start()]
    for i in range(60):
        f.drop(f"p{i:02d}.jpg", small(i))
    wait_for(lambda: len(f.archived_and_logged()) >= 10, 120, 0.1)
    rabbit.stop()
    for i in range(60, 80):  # uploads that complete while the broker is down
        f.drop(f"p{i:02d}.jpg", small(i))
    time.sleep(3)
    rabbit.start()
    wait_for(lambda: len(f.archived_and_logged()) == 80, 240, 0.5)
    assert f.outputs() == sorted(f"p{i:02d}.png" for i in range(80))
    assert f.done_once() == Counter({f"p{i:02d}.jpg": 1 for i in range(80)})
    assert f.watcher.events("queue_unreachable") and len(f.watcher.events("queue_connected")) >= 2
    assert all(w.proc.poll() is None for w in workers), "workers reconnect by themselves"


@pytest.mark.slow
def test_a_file_that_kills_every_worker_goes_to_the_dead_letter_queue_and_quarantine(fleet, rabbit) -> None:
    """A poison upload (here: whichever worker takes it is killed, as the kernel's OOM killer
    would) is delivered max_deliveries times, then dead-lettered; the watcher quarantines it
    with the reason; other uploads go on; systemd restarts the worker each time (here: the test)."""
    f = fleet(max_deliveries=2)
    f.watcher.start()
    worker = f.worker("w1").start()
    kills = 0
    stop = threading.Event()

    def oom_killer() -> None:
        nonlocal kills, worker
        while not stop.is_set():
            if len(worker.events("job_started", file="poison.jpg")) > kills:
                worker.kill9()
                kills += 1
                worker.start(wait_ready=False)
            time.sleep(0.05)

    killer = threading.Thread(target=oom_killer)
    killer.start()
    try:
        f.drop("poison.jpg", large(1))
        wait_for(lambda: (f.watcher.path("failed") / "poison.jpg").exists(), 180, 0.2)
        f.drop("fine.jpg", small(1))
        wait_for(lambda: "fine.jpg" in f.archived_and_logged(), 120, 0.2)
    finally:
        stop.set()
        killer.join()
    reason = json.loads((f.watcher.path("failed") / "poison.jpg.error.json").read_text())
    assert "dead-lettered" in reason["reason"] and kills == 2
    assert rabbit.queue(f.queue["dead"])[0] == 1  # kept for the operator
    assert f.outputs() == ["fine.png"]
    quarantined = wait_for(lambda: f.watcher.finished("quarantined"))  # the line follows the move
    assert [e["file"] for e in quarantined] == ["poison.jpg"]


@pytest.mark.slow
def test_a_worker_whose_model_fails_to_load_takes_no_job(fleet, rabbit: RabbitNode, tmp_path: Path) -> None:
    f = fleet()
    f.watcher.start()
    for i in range(5):
        f.drop(f"p{i}.jpg", small(i))
    wait_for(lambda: rabbit.queue(f.queue["jobs"])[0] == 5, 60, 0.2)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    bad = f.worker("bad", model=str(broken)).start(wait_ready=False)
    assert bad.proc.wait(60) == 1
    assert "not a loadable PyTorch checkpoint" in bad.proc.stderr.read().decode()
    assert rabbit.queue(f.queue["jobs"])[0] == 5 and not bad.events("job_started")
    f.worker("good").start()
    wait_for(lambda: len(f.archived_and_logged()) == 5, 120, 0.2)
    assert f.done_once() == Counter({f"p{i}.jpg": 1 for i in range(5)})


@pytest.mark.slow
def test_the_watcher_stopped_with_jobs_in_flight_then_restarted_does_every_upload_once(fleet) -> None:
    f = fleet(worker_threads=1)
    f.watcher.start()
    f.worker("w1").start()
    # 0.5-1 s each on one worker thread, so more than the stop's 10 s grace can finish: most are
    # in flight or queued at the stop (16 all finished within it on a VM with AMX, 17 of 40 did)
    names, data = [f"big{i:02d}.jpg" for i in range(48)], large()
    for name in names:
        f.drop(name, data)
    wait_for(lambda: len(f.archived_and_logged()) >= 1, 120, 0.1)
    assert f.watcher.stop() == 0  # answers arriving within the stop grace are used; the rest wait
    left = sorted(p.name for p in f.watcher.path("incoming").iterdir())
    assert left and set(left) | set(f.archived()) == set(names)
    assert not set(left) & set(f.archived())
    f.watcher.start()
    wait_for(lambda: len(f.archived_and_logged()) == len(names), 240, 0.2)
    assert f.archived() == sorted(names) and f.outputs() == sorted(n.replace(".jpg", ".png") for n in names)
    assert f.done_once() == Counter({name: 1 for name in names})


@pytest.mark.slow
def test_status_health_and_metrics_show_the_queue(fleet, rabbit: RabbitNode) -> None:
    """status.json, the systemd status line and /metrics show jobs waiting, workers and dead jobs."""
    import urllib.error
    import urllib.request

    f = fleet()
    port = free_port()
    f.cfg["http"] = {"listen": f"127.0.0.1:{port}"}
    f.config.write_text(yaml.safe_dump(f.cfg))
    f.watcher = DaemonProcess(f.config).start()
    status = f.watcher.path("state") / "status.json"
    wait_for(lambda: json.loads(status.read_text()).get("queue", {}).get("workers") == 0, 30, 0.2)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        raise AssertionError("health should be 503 without workers")
    except urllib.error.HTTPError as e:
        assert e.code == 503 and "no queue worker" in json.loads(e.read())["reason"]
    f.worker("w1").start()
    wait_for(lambda: json.loads(status.read_text())["queue"]["workers"] == 1, 30, 0.2)
    shown = subprocess.run(
        [sys.executable, "-m", "unet_matting.watcher", "status", "--config", str(f.config)],
        capture_output=True,
        text=True,
    ).stdout
    assert "broker: connected, 0 jobs waiting for a worker, 1 workers connected" in shown
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "unet_matting_broker_workers 1.0" in text and "unet_matting_broker_connected 1.0" in text
    assert json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())["status"] == "ok"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/matting/single", data=small(5), headers={"Content-Type": "image/jpeg"}
    )
    with urllib.request.urlopen(request, timeout=60) as reply:  # HTTP requests go through the workers too
        assert reply.read().startswith(b"\x89PNG") and reply.headers["X-Model"].startswith("tiny-u2netp.pth@")
    wait_for(lambda: f.workers[0].events("job_finished", outcome="done", file="http request"), 10)  # logged
    # after the answer was sent, so possibly after the reply reached us


@pytest.mark.slow
def test_a_worker_switches_models_live_like_the_daemon(fleet, tmp_path: Path, tiny_model: Path) -> None:
    """`models use` on a worker host (the control file in its models_dir) switches that worker
    without a restart; the watcher's job_finished names the model that made each cut-out."""
    import shutil

    models = tmp_path / "worker-models"
    models.mkdir()
    shutil.copyfile(tiny_model, models / "tiny-a.pth")
    save_tiny_model(models / "tiny-b.pth", seed=1)
    (models / "active_model").write_text("tiny-a.pth\n")
    f = fleet()
    f.watcher.start()
    worker = f.worker("w1", model="auto", models_dir=str(models)).start()
    f.drop("first.jpg", small(1))
    wait_for(lambda: f.done_once()["first.jpg"], 60, 0.1)
    (models / "active_model").write_text("tiny-b.pth\n")
    wait_for(lambda: worker.events("model_switched"), 60, 0.2)
    f.drop("second.jpg", small(2))
    wait_for(lambda: f.done_once()["second.jpg"], 60, 0.1)
    made_by = {e["file"]: e["model"].split("@")[0] for e in f.watcher.finished("done")}
    assert made_by == {"first.jpg": "tiny-a.pth", "second.jpg": "tiny-b.pth"}


@pytest.mark.slow
def test_check_reports_the_broker_without_its_password(fleet, rabbit: RabbitNode, tmp_path: Path) -> None:
    """`check` says whether the broker answers and how many workers it has; the password never
    shows; a config readable by all while the URL holds a password is a warning."""
    f = fleet()
    f.worker("w1").start()
    f.config.chmod(0o644)
    out = subprocess.run(
        [sys.executable, "-m", "unet_matting.watcher", "check", "--config", str(f.config)],
        capture_output=True,
        text=True,
    ).stdout
    assert f"note: queue: broker amqp://guest:**@127.0.0.1:{rabbit.port}//, 1 workers connected, 0 jobs" in out
    assert "readable by every user and queue.broker_url holds a password; chmod 640 it" in out
    f.cfg["queue"]["broker_url"] = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    f.config.write_text(yaml.safe_dump(f.cfg))
    f.config.chmod(0o640)
    out = subprocess.run(
        [sys.executable, "-m", "unet_matting.watcher", "check", "--config", str(f.config)],
        capture_output=True,
        text=True,
    ).stdout
    assert "not reachable" in out and "uploads will wait in incoming until it answers" in out
    assert ":guest@" not in out and "chmod 640" not in out


def test_a_cut_out_too_large_for_a_message_is_refused_with_that_reason(monkeypatch, tiny_model: Path) -> None:
    """An answer the broker would refuse (over its message size) is sent as a 'too large' error,
    so the watcher quarantines the upload with the real reason instead of it dying N times."""
    import unet_matting.watcher.remote.worker as worker_module
    from unet_matting.engine.session import EngineSettings, Session

    holder = type("Holder", (), {})()
    holder.session = Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64))
    monkeypatch.setattr(worker_module, "MAX_MESSAGE_BYTES", 1000)
    job = {
        "job": "j",
        "file": "a.jpg",
        "data": small(3),
        "profile": {"name": "default"},
        "max_pixels": 10**8,
        "png_level": 1,
    }
    answer, outcome = worker_module.answer_for(job, holder, "w1@h")
    assert outcome == "refused" and answer["kind"] == "too_large"
    assert answer["reason"].startswith("the cut-out is 0 MB, more than the 0 MB a queue message may carry")


@pytest.mark.slow
def test_a_worker_tells_systemd_it_is_ready_once_its_model_loaded_and_when_it_consumes(fleet, rabbit, tmp_path) -> None:
    """READY=1 after the model loads (a worker waiting for its broker is up, pinging the
    watchdog, not restarted by the start time-out), STATUS= once it consumes, STOPPING=1 on SIGTERM."""
    from tests.test_daemon_systemd import NotifyListener

    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        f = fleet()
        worker = f.worker("w1")
        env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000", "PYTHONUNBUFFERED": "1"}
        rabbit.stop()  # the broker is down while the worker starts
        worker.proc = subprocess.Popen(
            [sys.executable, "-m", "unet_matting.watcher", "worker", "--config", str(worker.config), "--name", "w1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: any(m.startswith("READY=1") for m in listener.poll()), 90)
        wait_for(lambda: listener.poll().count("WATCHDOG=1") >= 2, 30)
        ready = next(m for m in listener.messages if m.startswith("READY=1"))
        assert "loaded; connecting to the broker" in ready and not worker.events("worker_ready")
        rabbit.start()
        wait_for(lambda: any("STATUS=consuming" in m for m in listener.poll()), 120, 0.2)
        assert worker.stop() == 0
        states = listener.states()
        assert states[0] == "READY" and "STOPPING" in states and "READY" not in states[states.index("STOPPING") :]
    finally:
        if rabbit.proc is None or rabbit.proc.poll() is not None:
            rabbit.start()
        listener.sock.close()


@pytest.mark.slow
def test_watcher_crashes_with_a_job_in_flight_do_not_quarantine_the_upload(fleet) -> None:
    """In queue mode the watcher does not run the model: being killed while a job waits for a
    worker is not the file's fault (max_attempts is 2 here), and the upload is done once a worker runs."""
    f = fleet()
    f.watcher.start()
    f.drop("patient.jpg", small(7))
    for _ in range(3):
        wait_for(lambda: (f.watcher.path("state") / "status.json").exists(), 30)
        time.sleep(1.5)  # the job is sent and waits: no worker runs
        f.watcher.kill9()
        f.watcher.start()
    f.worker("w1").start()
    wait_for(lambda: f.archived_and_logged() == ["patient.jpg"], 60, 0.2)
    assert not list(f.watcher.path("failed").iterdir()) and f.done_once() == Counter({"patient.jpg": 1})


def test_two_workers_started_alike_on_one_host_both_take_jobs(fleet) -> None:
    """Two workers without --name on one host get node names of their own (worker-<pid>@host) and
    share a 20-upload burst; every upload is done once (issue 26)."""
    f = fleet()
    f.watcher.start()
    workers = [f.worker("alike-1", node=None).start(), f.worker("alike-2", node=None).start()]
    names = {w.events("worker_ready")[0]["worker"] for w in workers}
    assert len(names) == 2 and all(re.fullmatch(r"worker-\d+@.+", n) for n in names), names
    for i in range(20):
        f.drop(f"b{i:02d}.jpg", small(i))
    wait_for(lambda: len(f.archived_and_logged()) == 20, 180, 0.2)
    assert all(w.events("job_finished", outcome="done") for w in workers)
    assert f.done_once() == Counter({f"b{i:02d}.jpg": 1 for i in range(20)})
    assert all(w.proc.poll() is None for w in workers)


def test_a_worker_name_already_taken_exits_2_with_the_fix(fleet) -> None:
    """A second worker given the same --name as a running one exits 2 with one sentence naming the
    clash and the fix, before it loads its model; the first keeps working."""
    f = fleet()
    first = f.worker("same-1", node="0").start()
    second = f.worker("same-2", node="0").start(wait_ready=False)
    assert second.proc.wait(120) == 2
    err = second.proc.stderr.read().decode().strip()
    assert err.startswith("unet-matting: configuration error: the worker name 0@") and err.count("\n") == 0
    assert "is already taken by a running worker on the broker; give this one another --name" in err
    assert not second.events("model_loaded") and first.proc.poll() is None
