"""Issue 25: signed webhooks from a durable outbox, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.conftest import DaemonProcess, config_dict, free_port, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from unet_matting.watcher.config import load_config
from unet_matting.watcher.config.events import Endpoint, EventsConfig
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.events import Events
from unet_matting.watcher.events.outbox import Outbox
from unet_matting.watcher.events.sender import Sender
from unet_matting.watcher.events.signature import HEADER, sign, verify

SECRET = "whsec_test_0123456789"
SIGNATURE = re.compile(r"t=(\d+),v1=([0-9a-f]{64})")


class Receiver:
    """A webhook receiver: records every request; ``fail_first`` answers 500 that many times,
    ``hang`` holds requests without answering until released."""

    def __init__(self, port: int | None = None, fail_first: int = 0, hang: bool = False) -> None:
        self.port = port or free_port()
        self.requests: list[dict] = []
        self.fail_first, self.hang = fail_first, hang
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body, "at": time.time()})
                    failing = len(receiver.requests) <= receiver.fail_first
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/unet-matting"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def events(self) -> list[dict]:
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests]

    def ok(self) -> list[dict]:
        """Requests answered 200 (after the failing ones)."""
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests[self.fail_first :]]


def secret_file(tmp_path: Path, secret: str = SECRET, mode: int = 0o600) -> Path:
    path = tmp_path / "cms.secret"
    path.write_text(secret + "\n")
    path.chmod(mode)
    return path


def events_section(tmp_path: Path, url: str, **more) -> dict:
    return {
        "endpoints": [
            {"name": "cms", "url": url, "secret_file": str(secret_file(tmp_path)), **more.pop("endpoint", {})}
        ],
        "public_base_url": "https://shop.example/static/products",
        "retry_first_s": 0.2,
        "retry_max_s": 1.0,
        "timeout_s": 2.0,
        **more,
    }


def start(tmp_path: Path, tiny_model: Path, url: str, **more) -> DaemonProcess:
    config = tmp_path / "unet-matting.yaml"
    sections = {"events": events_section(tmp_path, url, **more.pop("events", {})), **more}
    config.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_model, **sections)))
    return DaemonProcess(config).start()


def small(i: int) -> bytes:
    return jpeg_bytes(product_rgb(64, 48, seed=i))


def valid(request: dict, secret: str = SECRET) -> bool:
    return verify(request["headers"][HEADER], request["body"], secret, time.time())


# ---- the tests ----------------------------------------------------------------------------


def test_fifty_uploads_make_fifty_signed_events_each_once(tmp_path: Path, tiny_model: Path) -> None:
    with Receiver() as receiver:
        d = start(tmp_path, tiny_model, receiver.url)
        for i in range(50):
            write(d.path("incoming") / "shop-a" / f"p{i:02d}.jpg", small(i))
        wait_for(lambda: len(receiver.requests) >= 50, 120)
        time.sleep(1.0)  # nothing more arrives
        events = receiver.events()
        assert len(events) == 50 and Counter(e["id"] for e in events).most_common(1)[0][1] == 1
        assert {e["kind"] for e in events} == {"output.published"}
        assert all(valid(r) for r in receiver.requests)
        assert all(r["headers"]["Unet-Matting-Event-Id"] == json.loads(r["body"])["id"] for r in receiver.requests)
        one = next(e for e in events if e["data"]["upload"]["path"] == "shop-a/p07.jpg")
        assert set(one) == {"id", "kind", "time", "data"}
        files = one["data"]["files"]
        assert sorted(files) == ["shop-a/p07.png"]
        assert files["shop-a/p07.png"]["url"] == "https://shop.example/static/products/shop-a/p07.png"
        published = (d.path("output") / "shop-a" / "p07.png").read_bytes()
        import hashlib

        assert files["shop-a/p07.png"]["sha256"] == hashlib.sha256(published).hexdigest()
        assert one["data"]["manifest"]["path"] == "shop-a/p07.json" and "png_base64" not in json.dumps(one)
        wait_for(lambda: not list((d.path("state") / "outbox" / "cms").glob("*.json")), 10)
        assert d.stop() == 0
    log = d.log_lines()
    assert SECRET not in json.dumps(log) and len([e for e in log if e["event"] == "event_delivered"]) == 50


def test_a_receiver_failing_three_times_gets_the_event_once_after_backoff(tmp_path: Path, tiny_model: Path) -> None:
    with Receiver(fail_first=3) as receiver:
        d = start(tmp_path, tiny_model, receiver.url)
        write(d.path("incoming") / "mug.jpg", small(1))
        wait_for(lambda: len(receiver.requests) >= 4, 60)
        time.sleep(1.5)
        assert len(receiver.requests) == 4  # three 500s, one 200, no more
        ids = {e["id"] for e in receiver.events()}
        assert len(ids) == 1  # the same event each time: a receiver drops duplicates by id
        gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
        # backing off: 0.2 s x 2^n times a jitter of 0.5-1.5, so at least 0.1, 0.2, 0.4 s
        assert all(gap >= 0.2 * 2**n * 0.5 - 0.02 for n, gap in enumerate(gaps)), gaps
        assert gaps[2] > gaps[0], gaps
        assert [e["attempts"] for e in d.events("event_delivery_failed")] == [1, 2, 3]
        assert d.events("event_delivered")[0]["attempts"] == 4
        assert d.stop() == 0


def test_events_pending_when_killed_are_all_delivered_after_a_restart(tmp_path: Path, tiny_model: Path) -> None:
    port = free_port()
    d = start(tmp_path, tiny_model, f"http://127.0.0.1:{port}/hooks/unet-matting")  # nobody listens yet
    for i in range(20):
        write(d.path("incoming") / f"p{i:02d}.jpg", small(i))
    wait_for(lambda: len(d.finished("done")) == 20, 120)
    wait_for(lambda: d.events("event_delivery_failed"), 30)
    assert len(list((d.path("state") / "outbox" / "cms").glob("*.json"))) == 20
    d.kill9()
    with Receiver(port=port) as receiver:
        d.start()
        wait_for(lambda: len({e["id"] for e in receiver.events()}) == 20, 60)
        paths = sorted({e["data"]["upload"]["path"] for e in receiver.events()})
        assert paths == [f"p{i:02d}.jpg" for i in range(20)]
        assert all(valid(r) for r in receiver.requests)  # duplicates, if any, carry the same id (set above)
        assert d.stop() == 0


def test_a_hanging_receiver_times_out_and_never_holds_the_jobs(tmp_path: Path, tiny_model: Path) -> None:
    with Receiver(hang=True) as receiver:
        d = start(tmp_path, tiny_model, receiver.url, events={"timeout_s": 1.0})
        for i in range(10):
            write(d.path("incoming") / f"p{i}.jpg", small(i))
        wait_for(lambda: len(d.finished("done")) == 10, 60)  # while the receiver holds the first request
        wait_for(lambda: len(receiver.requests) >= 2, 30)  # timed out, then tried again
        failed = d.events("event_delivery_failed")
        assert failed and "did not answer within 1 s" in failed[0]["error"]
        assert d.stop() == 0


def test_a_wrong_secret_fails_verification_and_the_header_has_the_documented_form(
    tmp_path: Path, tiny_model: Path
) -> None:
    with Receiver() as receiver:
        d = start(tmp_path, tiny_model, receiver.url)
        write(d.path("incoming") / "mug.jpg", small(2))
        wait_for(lambda: receiver.requests, 60)
        request = receiver.requests[0]
        match = SIGNATURE.fullmatch(request["headers"][HEADER])
        assert match and abs(int(match.group(1)) - time.time()) < 60
        assert valid(request) and not valid(request, "another secret")
        assert not verify(request["headers"][HEADER], request["body"] + b" ", SECRET, time.time())  # body changed
        assert not verify(request["headers"][HEADER], request["body"], SECRET, time.time() + 301)  # a replay
        assert d.stop() == 0


def test_an_event_never_delivered_is_dead_lettered_after_the_configured_time(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cfg = EventsConfig((Endpoint("cms", "http://127.0.0.1:9/hooks", tmp_path / "s"),), retry_first_s=60, dead_after_h=2)
    outbox = Outbox(tmp_path / "state")
    events = Events(cfg, tmp_path / "state", clock=lambda: now[0])
    event_id = events.emit("upload.failed", "x", {"upload": {"path": "x.jpg"}}, "")
    counted: list[tuple[str, str]] = []
    count = lambda e, o: counted.append((e, o))  # noqa: E731
    sender = Sender(cfg.endpoints[0], SECRET, outbox, cfg, count, lambda: now[0], lambda: 0.5)
    sender.deliver_due()  # port 9 (discard) refuses: one failure, retry in 60 s
    (waiting,) = outbox.waiting("cms")
    assert waiting.record["attempts"] == 1 and waiting.record["next_at"] == now[0] + 60
    assert "could not deliver to 127.0.0.1" in waiting.record["last_error"]
    now[0] += 30
    sender.deliver_due()  # not due yet: not tried
    assert outbox.waiting("cms")[0].record["attempts"] == 1
    now[0] = 1_000_000.0 + 2 * 3600  # two hours after it was written
    sender.deliver_due()
    assert outbox.waiting("cms") == [] and outbox.counts("cms") == (0, 1)
    dead = json.loads((tmp_path / "state/outbox/dead/cms" / f"{event_id}.json").read_text())
    assert dead["attempts"] == 2 and "could not deliver" in dead["last_error"]
    assert counted == [("cms", "failed"), ("cms", "failed"), ("cms", "dead")]


# ---- what else an integrator relies on ------------------------------------------------------------


def test_kinds_and_folders_choose_what_an_endpoint_gets(tmp_path: Path, tiny_model: Path) -> None:
    with Receiver() as receiver:
        endpoint = {"kinds": ["upload.failed"], "folders": ["shop-a"]}
        d = start(tmp_path, tiny_model, receiver.url, events={"endpoint": endpoint})
        write(d.path("incoming") / "shop-a" / "good.jpg", small(3))
        write(d.path("incoming") / "shop-a" / "notes.jpg", b"not an image at all")
        write(d.path("incoming") / "shop-b" / "notes.jpg", b"not an image either")
        wait_for(lambda: len(d.finished("quarantined")) == 2 and d.finished("done"), 60)
        wait_for(lambda: receiver.requests, 30)
        time.sleep(1.0)
        (event,) = receiver.events()
        assert event["kind"] == "upload.failed"
        assert event["data"]["upload"] == {"path": "shop-a/notes.jpg", "folder": "shop-a"}
        assert "not a JPEG" in event["data"]["reason"] and event["data"]["quarantined_as"] == "shop-a/notes.jpg"
        assert d.stop() == 0


def test_a_held_cut_out_and_its_approval_are_told(tmp_path: Path, tiny_model: Path) -> None:
    """A random model's grey matte is held by ecom_product (review_below 0.55); approving it from
    the command line (another process) publishes it, and the daemon delivers that event too."""
    import subprocess
    import sys

    with Receiver() as receiver:
        d = start(tmp_path, tiny_model, receiver.url, profile="ecom_product")
        write(d.path("incoming") / "shop-a" / "mug.jpg", jpeg_bytes(product_rgb(160, 120)))
        wait_for(lambda: receiver.requests, 60)
        (held,) = receiver.events()
        assert held["kind"] == "output.held" and held["data"]["review"] == "shop-a/mug"
        assert 0 <= held["data"]["confidence"]["score"] < 0.55
        command = [sys.executable, "-m", "unet_matting.watcher", "review", "approve", "shop-a/mug"]
        subprocess.run([*command, "--config", str(d.config)], check=True, capture_output=True)
        wait_for(lambda: len(receiver.requests) == 2, 30)
        published = receiver.events()[1]
        assert published["kind"] == "output.published" and published["data"]["by"] == "cli"
        assert sorted(published["data"]["files"]) == ["shop-a/mug.jpg", "shop-a/mug.png"]
        assert d.stop() == 0


def test_a_batch_names_its_callback_from_the_configured_endpoints(tmp_path: Path, tiny_model: Path) -> None:
    from tests.test_http import post_json

    root = tmp_path / "shop"
    for i in range(3):
        write(root / "in" / f"b{i}.jpg", small(i))
    port = free_port()
    with Receiver() as receiver:
        http = {"listen": f"127.0.0.1:{port}", "batch_roots": [str(root)]}
        d = start(tmp_path, tiny_model, receiver.url, http=http, events={"endpoint": {"kinds": ["upload.failed"]}})
        url = f"http://127.0.0.1:{port}/api/matting/batch"
        body = {"input_dir": str(root / "in"), "output_dir": str(root / "out")}
        status, reply = post_json(url, {**body, "callback": "https://evil.example/steal"})
        assert status == 400 and "callback must name an endpoint of events.endpoints (cms)" in reply["error"]
        status, reply = post_json(url, {**body, "callback": "cms"})
        assert status == 202
        wait_for(lambda: receiver.requests, 60)
        (event,) = receiver.events()  # cms takes only upload.failed, but this batch named it
        assert event["kind"] == "batch.finished" and event["data"]["task_id"] == reply["task_id"]
        assert event["data"]["done"] == 3 and event["data"]["status"] == "done"
        assert d.stop() == 0


def test_secret_files_others_can_read_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    config = tmp_path / "unet-matting.yaml"
    section = events_section(tmp_path, "http://127.0.0.1:1/x")
    secret_file(tmp_path, mode=0o644)
    config.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_model, events=section)))
    d = DaemonProcess(config).start(wait_ready=False)
    assert d.proc.wait(60) != 0
    stderr = d.proc.stderr.read().decode()
    assert "events.endpoints[0].secret_file" in stderr and "chmod 600" in stderr and "Traceback" not in stderr
    d.proc.stderr.close()


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({"url": "ftp://cms.example/x"}, "must be an http:// or https:// URL with a host"),
        ({"url": "https://user:pw@cms.example/x"}, "must not carry credentials"),
        ({"kinds": ["output.deleted"]}, "must list some of output.published"),
        ({"name": "../x"}, "must be a name of letters, digits"),
        ({"folders": ["a/b"]}, "top-level folder names"),
    ],
)
def test_bad_endpoints_are_config_errors(tmp_path: Path, tiny_model: Path, endpoint: dict, message: str) -> None:
    section = events_section(tmp_path, "https://cms.example/hooks")
    section["endpoints"][0].update(endpoint)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_model, events=section)))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(config)


def test_the_signature_is_hmac_sha256_of_time_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, body) == f"t=1700000000,v1={expected}"
