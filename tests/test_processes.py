"""Rendering in processes (``engine.processes``): the same files as in the daemon's threads, a
killed process costs only a retry, and the processes stop with the daemon."""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from bench.throughput import children
from tests.conftest import DaemonProcess, config_dict, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from unet_matting.engine.errors import ImageError
from unet_matting.engine.settings import EngineSettings
from unet_matting.watcher.config import ConfigError, load_config, load_config_data
from unet_matting.watcher.errors import RenderStopped
from unet_matting.watcher.processing.matting import LocalMatting
from unet_matting.watcher.processing.processes import STOPPED, ProcessMatting, process_settings

REPO = Path(__file__).resolve().parent.parent
MAX_PIXELS = 100_000_000


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def busy_ticks(pid: int) -> int:
    """CPU time ``pid`` has used (user + system, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def render_children(parent: int, marker: bytes = b"spawn_main") -> list[int]:
    """The render processes of ``parent``: its children started by multiprocessing's spawn (or
    whose command line holds another ``marker``)."""
    found = []
    for pid in children(parent):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:  # gone meanwhile
            continue
    return found


@pytest.fixture
def session_and_settings(tiny_model: Path):
    from unet_matting.engine.session import Session

    settings = EngineSettings(model=tiny_model, device="cpu", threads=1, input_size=64, precision="fp32")
    return Session.load(settings), settings


@pytest.fixture
def profile():
    return load_config(REPO / "etc/unet-matting.yaml").get_profile("ecom_product")


@pytest.fixture
def pooled(session_and_settings):
    session, settings = session_and_settings
    matting = ProcessMatting(session, settings, 2)
    matting.start()
    yield matting
    matting.stop()


def test_processes_make_the_files_the_daemons_threads_make(pooled, session_and_settings, profile) -> None:
    data = jpeg_bytes(product_rgb(900, 600))
    assert len(set(pooled.pids)) == 2 and os.getpid() not in pooled.pids
    there = pooled.render(data, profile, "job", "a.jpg", MAX_PIXELS, 1)
    here = LocalMatting(session_and_settings[0]).render(data, profile, "job", "a.jpg", MAX_PIXELS, 1)
    assert list(there.files) == list(here.files)
    for suffix in there.files:
        if suffix != ".json":  # the manifest holds each run's timings
            assert there.files[suffix] == here.files[suffix], suffix
    assert there.confidence == here.confidence and there.model == here.model
    assert pooled.status()["processes"] == 2 and "batches" not in pooled.status()


def test_a_bad_upload_gets_the_same_error_from_a_process(pooled, profile) -> None:
    with pytest.raises(ImageError, match="^not a JPEG, PNG, WebP, TIFF, HEIC or AVIF file"):
        pooled.render(b"plain text, not a photo", profile, "job", "a.jpg", MAX_PIXELS, 1)
    assert pooled.render(jpeg_bytes(), profile, "job", "b.jpg", MAX_PIXELS, 1).files  # the pool is unharmed


def test_a_process_killed_mid_render_fails_its_job_in_one_sentence_and_the_next_render_works(pooled, profile) -> None:
    data = jpeg_bytes(product_rgb(4000, 3000))
    before = {pid: busy_ticks(pid) for pid in pooled.pids}
    failed: list[BaseException] = []

    def run() -> None:
        try:
            pooled.render(data, profile, "job", "big.jpg", MAX_PIXELS, 1)
        except BaseException as e:
            failed.append(e)

    job = threading.Thread(target=run)
    job.start()
    wait_for(lambda: any(busy_ticks(pid) > ticks + 5 for pid, ticks in before.items()), interval=0.005)
    assert job.is_alive()  # still rendering: the kill lands mid-job
    for pid in pooled.pids:
        os.kill(pid, signal.SIGKILL)
    job.join(30)
    assert len(failed) == 1 and isinstance(failed[0], RenderStopped) and str(failed[0]) == STOPPED
    again = pooled.render(jpeg_bytes(), profile, "job", "small.jpg", MAX_PIXELS, 1)  # fresh processes
    assert again.files[".png"].startswith(b"\x89PNG")


def test_a_process_that_died_idle_costs_no_job(pooled, profile) -> None:
    """A render process killed between jobs (the kernel's OOM killer picks the biggest): the next
    job goes to fresh processes instead of failing."""
    for pid in pooled.pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in pooled.pids))
    time.sleep(1.0)  # the pool's own thread sees the deaths and marks it broken
    assert pooled.render(jpeg_bytes(), profile, "job", "a.jpg", MAX_PIXELS, 1).files[".png"].startswith(b"\x89PNG")


def test_stopping_or_dropping_a_matting_ends_its_processes(session_and_settings) -> None:
    session, settings = session_and_settings
    stopped = ProcessMatting(session, settings, 1)
    stopped.start()
    stopped.stop()
    assert not any(alive(pid) for pid in stopped.pids)
    dropped = ProcessMatting(session, settings, 1)  # a model switch lets go of the old matting
    dropped.start()
    pids = dropped.pids
    assert all(alive(pid) for pid in pids)
    del dropped
    gc.collect()
    wait_for(lambda: not any(alive(pid) for pid in pids), 30)


def test_every_process_runs_the_format_the_daemons_load_settled_on(tiny_model: Path) -> None:
    """engine.precision auto resolves once, in the daemon (its check's fall-back included): the
    processes get the result, not ``auto`` to resolve again each on its own."""
    from unet_matting.engine.session import Session

    session = Session.load(EngineSettings(model=tiny_model, device="cpu", threads=1, input_size=64))
    matting = ProcessMatting(session, EngineSettings(model=None, precision="auto"), 2)
    assert matting.settings.precision == session.precision != "auto"
    assert matting.settings.model == session.path


def test_threads_0_shares_the_cores_out(tiny_model: Path) -> None:
    cores = os.cpu_count() or 1
    assert process_settings(EngineSettings(model=tiny_model, threads=0), 2).threads == max(1, cores // 2)
    assert process_settings(EngineSettings(model=tiny_model, threads=3), 2).threads == 3


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"engine": {"processes": -1}}, "engine.processes: must be >= 0, got -1"),
        (
            {"engine": {"processes": 3}, "watcher": {"workers": 2}},
            "engine.processes: 3 render processes need at least as many watcher.workers to keep them busy, "
            "and there are 2",
        ),
        (
            {"engine": {"processes": 1}, "queue": {"broker_url": "amqp://127.0.0.1:5672//"}},
            "engine.processes: with queue.broker_url set the queue workers render, not this daemon; "
            "set engine.processes to 0 or remove queue.broker_url",
        ),
    ],
)
def test_processes_are_checked_against_the_rest_of_the_config(
    tmp_path: Path, tiny_model: Path, sections: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_data(config_dict(tmp_path, tiny_model, **sections), tmp_path / "unet-matting.yaml")
    assert str(caught.value).startswith(message)


def test_the_default_config_renders_in_the_daemons_threads() -> None:
    assert load_config(REPO / "etc/unet-matting.yaml").engine.processes == 0


def test_daemon_with_processes_survives_their_deaths_and_stops_them(make_config) -> None:
    """Real uploads through ``watch`` with two render processes: published; SIGKILL of the
    processes mid-job is one error line (no traceback), then the retry publishes; SIGTERM to the
    daemon and its processes alike (Ctrl-C, or a stop that signals the whole group) finishes the
    job in hand and leaves no process behind."""
    config = make_config(engine={"processes": 2}, logging={"level": "debug"})
    d = DaemonProcess(config).start()
    try:
        status = json.loads((d.path("state") / "status.json").read_text())
        assert status["processes"] == 2
        from tests.test_cli import run

        shown = run("status", "--config", str(config)).stdout
        assert ", 2 render processes, profile: default" in shown
        children = render_children(d.proc.pid)
        assert len(children) == 2
        write(d.path("incoming") / "first.jpg", jpeg_bytes())
        wait_for(lambda: d.finished("done"))

        before = {pid: busy_ticks(pid) for pid in children}
        write(d.path("incoming") / "big.jpg", jpeg_bytes(product_rgb(4000, 3000)))
        wait_for(lambda: any(busy_ticks(pid) > ticks + 5 for pid, ticks in before.items()), interval=0.005)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: d.finished("error"))
        (failed,) = d.finished("error")
        assert failed["file"] == "big.jpg" and failed["error"] == STOPPED
        assert not d.events("job_error")  # one sentence, no traceback
        assert (d.path("incoming") / "big.jpg").exists()
        wait_for(lambda: len(d.finished("done")) == 2, 60)  # the rescan's retry, in fresh processes
        assert (d.path("output") / "big.png").exists() and (d.path("archive") / "big.jpg").exists()

        children = render_children(d.proc.pid)
        write(d.path("incoming") / "last.jpg", jpeg_bytes(product_rgb(3000, 2000)))
        wait_for(lambda: d.events("job_started", file="last.jpg"), interval=0.01)
        for pid in [d.proc.pid, *children]:
            os.kill(pid, signal.SIGTERM)
        assert d.stop() == 0
        assert d.finished("done")[-1]["file"] == "last.jpg"
        wait_for(lambda: not any(alive(pid) for pid in children), 10)
    finally:
        if d.proc.poll() is None:
            d.kill9()


def test_a_daemon_killed_outright_takes_its_processes_with_it(make_config) -> None:
    """kill -9 of the daemon: no render process (nor multiprocessing's helper) is left holding a
    model's memory."""
    d = DaemonProcess(make_config(engine={"processes": 2})).start()
    renderers = render_children(d.proc.pid)
    assert len(renderers) == 2
    children = renderers + render_children(d.proc.pid, b"resource_tracker")
    d.kill9()
    wait_for(lambda: not any(alive(pid) for pid in children), 15)


def test_a_reload_changes_the_number_of_processes(make_config) -> None:
    """SIGHUP with another ``engine.processes``: the new count renders the next upload, and the
    old model's process exits once no job holds it."""
    config = make_config(engine={"processes": 1}, watcher={"workers": 2})
    d = DaemonProcess(config).start()
    try:
        (old,) = render_children(d.proc.pid)
        raw = yaml.safe_load(config.read_text())
        raw["engine"]["processes"] = 2
        config.write_text(yaml.safe_dump(raw))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: json.loads((d.path("state") / "status.json").read_text()).get("processes") == 2, 60)
        wait_for(lambda: not alive(old), 30)
        write(d.path("incoming") / "a.jpg", jpeg_bytes())
        wait_for(lambda: d.finished("done"))
        assert 1 <= len(render_children(d.proc.pid)) <= 2 and old not in render_children(d.proc.pid)
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.kill9()


def test_a_request_whose_render_process_dies_is_503_retry(make_config) -> None:
    """The HTTP side renders in the same processes: a process killed mid-request answers 503
    with the sentence (the caller retries), and the next request is served by a fresh one."""
    from tests.conftest import free_port
    from tests.test_http import request

    port = free_port()
    config = make_config(engine={"processes": 1}, http={"listen": f"127.0.0.1:{port}", "max_body_bytes": 20_000_000})
    d = DaemonProcess(config).start()
    url = f"http://127.0.0.1:{port}/api/matting/single"
    try:
        (child,) = render_children(d.proc.pid)
        ticks = busy_ticks(child)
        answers: list[tuple[int, bytes, dict]] = []
        big = jpeg_bytes(product_rgb(4000, 3000))
        caller = threading.Thread(target=lambda: answers.append(request(url, big, {"Content-Type": "image/jpeg"})))
        caller.start()
        wait_for(lambda: busy_ticks(child) > ticks + 5, interval=0.005)
        os.kill(child, signal.SIGKILL)
        caller.join(60)
        ((status, body, _),) = answers
        assert status == 503 and json.loads(body) == {"error": f"{STOPPED}; retry shortly"}
        status, body, _ = request(url, jpeg_bytes(), {"Content-Type": "image/jpeg"})
        assert status == 200 and body.startswith(b"\x89PNG")
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.kill9()


def test_check_names_the_render_processes(make_config) -> None:
    from tests.test_cli import run

    result = run("check", "--config", str(make_config(engine={"processes": 2, "threads": 1})))
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert "note: 2 render processes with a copy of the model each, 1 thread each (engine.processes)" in lines
    assert "note: engine.processes = 2 (default 0)" in lines
