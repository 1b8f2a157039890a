"""The HTTP side of watch, on a real uvicorn on 127.0.0.1 with real clients (curl, urllib)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DaemonProcess, free_port, wait_for
from tests.images import jpeg_bytes, png_bomb_bytes, product_rgb, write
from unet_matting.watcher.api.app import Access, Gate, Health, HttpError, build_app
from unet_matting.watcher.api.server import HttpServer
from unet_matting.watcher.prometheus import Metrics


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture
def api(daemon):
    """A daemon with the HTTP side on a free loopback port; returns (daemon, base URL)."""
    port = free_port()
    d: DaemonProcess = daemon(http={"listen": f"127.0.0.1:{port}", "max_body_bytes": 2_000_000})
    return d, f"http://127.0.0.1:{port}"


def test_the_guides_curl_command_returns_a_png(api, tmp_path: Path) -> None:
    """curl -X POST .../api/matting/single -F image=@input.jpg -o result.png works as written."""
    _, url = api
    photo = write(tmp_path / "input.jpg", jpeg_bytes(product_rgb(160, 120)))
    subprocess.run(
        [
            "curl",
            "-sS",
            "-f",
            "-X",
            "POST",
            f"{url}/api/matting/single",
            "-F",
            f"image=@{photo}",
            "-o",
            str(tmp_path / "result.png"),
        ],
        check=True,
        timeout=60,
    )
    with Image.open(tmp_path / "result.png") as im:
        assert im.format == "PNG" and im.mode == "RGBA" and im.size == (160, 120)


def test_base64_json_raw_body_and_the_white_jpeg(api) -> None:
    """The webhook form answers JSON with the PNG in base64; a raw body works; output=jpg gives the JPEG."""
    _, url = api
    photo = jpeg_bytes(product_rgb(100, 80))
    status, body, _ = request(
        f"{url}/api/matting/single",
        json.dumps({"image_base64": base64.b64encode(photo).decode()}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    reply = json.loads(body)
    assert Image.open(io.BytesIO(base64.b64decode(reply["png_base64"]))).size == (100, 80)
    assert reply["profile"] == "default" and reply["model"].startswith("tiny-u2netp.pth@")
    status, body, headers = request(
        f"{url}/api/matting/single?scenario=ecom_product&output=jpg", photo, {"Content-Type": "image/jpeg"}
    )
    assert status == 200 and headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(body)).format == "JPEG"


@pytest.mark.parametrize(
    ("body", "headers", "query", "status", "message"),
    [
        (b"", {"Content-Type": "image/jpeg"}, "", 400, "no image"),
        (b"hello, not a photo", {"Content-Type": "image/jpeg"}, "", 415, "not a JPEG, PNG, WebP, TIFF, HEIC or AVIF"),
        (png_bomb_bytes(), {"Content-Type": "image/png"}, "", 413, "exceeds engine.max_input_pixels"),
        (b"x" * 2_000_001, {"Content-Type": "image/jpeg"}, "", 413, "http.max_body_bytes"),
        (jpeg_bytes(), {"Content-Type": "image/jpeg"}, "?profile=fancy", 400, "unknown profile 'fancy'"),
        (b'{"image": 1}', {"Content-Type": "application/json"}, "", 400, "image_base64"),
    ],
)
def test_errors_are_json_with_the_right_status(
    api, body: bytes, headers: dict, query: str, status: int, message: str
) -> None:
    """Each bad request gets its status and a JSON error sentence."""
    _, url = api
    got, reply, _ = request(f"{url}/api/matting/single{query}", body, headers)
    assert got == status
    assert message in json.loads(reply)["error"]


def test_health_and_metrics_follow_uploads_and_requests(api) -> None:
    """/health is 200 with the model; /metrics parses and counts HTTP and upload jobs apart."""
    d, url = api
    status, body, _ = request(f"{url}/health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["model"].startswith("tiny-u2netp.pth@")
    request(f"{url}/api/matting/single", jpeg_bytes(), {"Content-Type": "image/jpeg"})
    write(d.path("incoming") / "up.jpg", jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    _, text, _ = request(f"{url}/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    assert samples[("unet_matting_jobs_total", (("outcome", "done"), ("source", "http")))] == 1
    assert samples[("unet_matting_jobs_total", (("outcome", "done"), ("source", "upload")))] == 1
    assert samples[("unet_matting_last_success_timestamp_seconds", ())] > 0
    assert any(name == "unet_matting_model_info" for name, _ in samples)
    assert d.stop() == 0


def test_bearer_token(daemon, tmp_path: Path) -> None:
    """With http.token_file, /api and /metrics need the bearer token (401 with WWW-Authenticate: Bearer
    without it); the scheme is case-insensitive (RFC 9110); /health stays open."""
    port = free_port()
    token = write(tmp_path / "token", b"s3cret\n")
    token.chmod(0o600)
    daemon(http={"listen": f"127.0.0.1:{port}", "token_file": str(token)})
    url = f"http://127.0.0.1:{port}"
    status, body, headers = request(f"{url}/metrics")
    assert status == 401 and headers["www-authenticate"] == "Bearer" and "bearer token" in json.loads(body)["error"]
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Authorization": "Bearer nope"})[0] == 401
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Authorization": "Basic s3cret"})[0] == 401
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Authorization": "Bearer s3cret"})[0] == 200
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Authorization": "bearer s3cret"})[0] == 200
    assert request(f"{url}/health")[0] == 200


def test_watch_refuses_a_token_file_others_can_read(make_config, tmp_path: Path) -> None:
    """watch with a token file of mode 0644 exits 2 with check's sentence, before opening its port."""
    from tests.test_cli import run

    port = free_port()
    token = write(tmp_path / "token", b"s3cret\n")
    token.chmod(0o644)
    config = make_config(http={"listen": f"127.0.0.1:{port}", "token_file": str(token)})
    result = run("watch", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"unet-matting: configuration error: http.token_file: {token} "
        "(mode -rw-r--r--) is readable by others; chmod 600 it"
    )


def test_health_is_503_with_the_reason_while_not_ready() -> None:
    """A daemon whose model is still loading (or whose threads died) answers 503 and says why."""
    port = free_port()
    app = build_app(
        lambda: None,
        lambda: Health(False, "starting: the model is loading", {}),
        Metrics(lambda: 0, lambda: 0),
        lambda: Access(None, 1000),
        1,
    )
    server = HttpServer(app, "127.0.0.1", port)
    server.start()
    try:
        assert server.wait_started()
        status, body, _ = request(f"http://127.0.0.1:{port}/health")
        assert status == 503 and json.loads(body) == {
            "status": "unavailable",
            "reason": "starting: the model is loading",
        }
        status, body, _ = request(f"http://127.0.0.1:{port}/api/matting/single", jpeg_bytes())
        assert status == 503
    finally:
        server.stop()
        server.join()


def test_a_full_gate_answers_429() -> None:
    """Requests beyond http.max_pending are refused at once instead of queueing without bound."""
    gate = Gate(1)
    with gate, pytest.raises(HttpError) as info, gate:
        pass
    assert info.value.status == 429
    with gate:
        assert gate.busy == 1


def test_check_refuses_a_token_file_others_can_read(make_config, tmp_path: Path) -> None:
    """check reports a token file with group/other permissions, and passes it at mode 0600."""
    from tests.test_cli import run

    token = write(tmp_path / "token", b"s3cret\n")
    token.chmod(0o644)
    config = make_config(http={"listen": "127.0.0.1:8081", "token_file": str(token)})
    result = run("check", "--config", str(config))
    assert result.returncode == 1
    assert f"http.token_file: {token} (mode -rw-r--r--) is readable by others" in result.stdout
    token.chmod(0o600)
    assert run("check", "--config", str(config)).returncode == 0


def post_json(url: str, payload: dict) -> tuple[int, dict]:
    status, body, _ = request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def task_state(url: str, task: str) -> str | None:
    try:
        return json.loads(request(f"{url}/api/matting/task/{task}")[1]).get("status")
    except OSError:  # the daemon is restarting
        return None


def test_batch_through_a_restart_ends_with_every_output_once(make_config, tmp_path: Path) -> None:
    """A batch of 30 survives kill -9 mid-task: after the restart it finishes with 30 outputs, none redone
    but the one in hand, and its ZIP holds them all."""
    import zipfile

    root = tmp_path / "shop"
    for i in range(30):
        write(root / "in" / f"p{i:02d}.jpg", jpeg_bytes(product_rgb(900, 700, seed=i)))
    port = free_port()
    config = make_config(http={"listen": f"127.0.0.1:{port}", "batch_roots": [str(root)]})
    url = f"http://127.0.0.1:{port}"
    d = DaemonProcess(config).start()
    status, reply = post_json(
        f"{url}/api/matting/batch", {"input_dir": str(root / "in"), "output_dir": str(root / "out")}
    )
    assert status == 202 and reply["status"] == "submitted"
    task = reply["task_id"]
    wait_for(lambda: len(d.events("batch_file_done")) >= 5, timeout=60, interval=0.02)
    d.kill9()
    assert len(d.events("batch_file_done")) < 30, "the batch finished before the kill: nothing to resume"
    d.start()
    wait_for(lambda: task_state(url, task) == "done", timeout=120)
    final = json.loads(request(f"{url}/api/matting/task/{task}")[1])
    assert final["done"] == 30 and final["total"] == 30 and final["failed"] == 0
    assert final["result_url"] == f"/download/{task}.zip"
    done = [e["file"] for e in d.events("batch_file_done")]
    assert sorted(set(done)) == [f"p{i:02d}.jpg" for i in range(30)] and len(done) <= 31
    made = sorted(f"p{i:02d}{suffix}" for i in range(30) for suffix in (".png", ".json"))  # each with its manifest
    assert sorted(p.name for p in (root / "out").iterdir()) == made
    status, body, headers = request(f"{url}{final['result_url']}")
    assert status == 200 and headers["content-type"] == "application/zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == made
    assert d.stop() == 0


def test_batch_refuses_folders_outside_the_roots(daemon, tmp_path: Path) -> None:
    """Outside http.batch_roots, '..' and a symlink leading out are 403; an unknown task is 404."""
    root = tmp_path / "shop"
    (root / "in").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "escape").symlink_to(tmp_path / "elsewhere")
    port = free_port()
    daemon(http={"listen": f"127.0.0.1:{port}", "batch_roots": [str(root)]})
    url = f"http://127.0.0.1:{port}/api/matting/batch"
    for src in (str(tmp_path / "elsewhere"), f"{root}/in/../../elsewhere", str(root / "escape")):
        status, reply = post_json(url, {"input_dir": src, "output_dir": str(root / "out")})
        assert status == 403, (src, reply)
    status, reply = post_json(url, {"input_dir": str(root / "in"), "output_dir": "/etc/unet-out"})
    assert status == 403 and "http.batch_roots" in reply["error"]
    assert request(f"http://127.0.0.1:{port}/api/matting/task/0123abcd")[0] == 404


def test_100_concurrent_requests_and_uploads_at_the_same_time(daemon) -> None:
    """100 clients at once (those over max_pending get 429 and retry) all get their PNG while uploads
    are processed too; the daemon's peak RSS stays bounded."""
    import threading
    import time

    port = free_port()
    d: DaemonProcess = daemon(http={"listen": f"127.0.0.1:{port}", "max_pending": 8})
    url = f"http://127.0.0.1:{port}/api/matting/single"
    photo = jpeg_bytes(product_rgb(300, 200))
    results: list[tuple[int, int]] = []

    def client() -> None:
        for refused in range(400):
            status, _, _ = request(url, photo, {"Content-Type": "image/jpeg"})
            if status != 429:
                results.append((status, refused))
                return
            time.sleep(0.05)

    clients = [threading.Thread(target=client) for _ in range(100)]
    for t in clients:
        t.start()
    for i in range(5):
        write(d.path("incoming") / f"u{i}.jpg", jpeg_bytes(product_rgb(200, 150, seed=i)))
    for t in clients:
        t.join(120)
    wait_for(lambda: len(d.finished("done")) == 5)
    assert sorted(s for s, _ in results) == [200] * 100
    assert sum(r for _, r in results) > 0, "max_pending 8 never refused anyone: the gate was not exercised"
    peak_kb = int(
        next(
            line for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines() if line.startswith("VmHWM")
        ).split()[1]
    )
    assert peak_kb < 1_500_000, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert d.stop() == 0


def test_a_batch_file_that_breaks_the_pipeline_is_recorded_not_retried(tmp_path: Path) -> None:
    """An unexpected error on one file (here the model raising) marks that file failed; the task ends."""
    from types import SimpleNamespace

    from unet_matting.engine.profile import Profile
    from unet_matting.watcher.api.batches import BatchTasks
    from unet_matting.watcher.config.events import EventsConfig
    from unet_matting.watcher.intake.completion import IgnoreRules
    from unet_matting.watcher.processing.matting import LocalMatting
    from unet_matting.watcher.processing.runner import JobContext

    class Broken:  # the pipeline's first call on the session fails as a lost GPU does
        def prepare(self, rgb):
            raise RuntimeError("CUDA error: device lost")

    config = SimpleNamespace(
        get_profile=Profile,
        events=EventsConfig(),
        engine=SimpleNamespace(max_input_pixels=10**8),
        output=SimpleNamespace(png_compress_level=1),
    )
    tasks = BatchTasks(tmp_path / "state", lambda: JobContext(LocalMatting(Broken()), config), IgnoreRules([]))
    write(tmp_path / "in" / "a.jpg", jpeg_bytes())
    task = tasks.submit(tmp_path / "in", tmp_path / "out", "default")
    tasks.run_once()
    done = tasks.get(task["id"])
    assert done["status"] == "failed" and done["errors"] == {"a.jpg": "RuntimeError: CUDA error: device lost"}


def test_a_batch_file_whose_render_process_died_is_that_files_sentence(tmp_path: Path) -> None:
    """A JobError (a render process that died, out of GPU memory) is the file's error as its own
    sentence (not an unexpected failure's class name and traceback); the task ends."""
    from types import SimpleNamespace

    from unet_matting.engine.profile import Profile
    from unet_matting.watcher.api.batches import BatchTasks
    from unet_matting.watcher.config.events import EventsConfig
    from unet_matting.watcher.errors import RenderStopped
    from unet_matting.watcher.intake.completion import IgnoreRules
    from unet_matting.watcher.processing.processes import STOPPED
    from unet_matting.watcher.processing.runner import JobContext

    class Dying:  # a Matting whose render process was killed under this file
        def render(self, *args):
            raise RenderStopped(STOPPED)

    config = SimpleNamespace(
        get_profile=Profile,
        events=EventsConfig(),
        engine=SimpleNamespace(max_input_pixels=10**8),
        output=SimpleNamespace(png_compress_level=1),
    )
    tasks = BatchTasks(tmp_path / "state", lambda: JobContext(Dying(), config), IgnoreRules([]))
    write(tmp_path / "in" / "a.jpg", jpeg_bytes())
    task = tasks.submit(tmp_path / "in", tmp_path / "out", "default")
    tasks.run_once()
    done = tasks.get(task["id"])
    assert done["status"] == "failed" and done["errors"] == {"a.jpg": STOPPED}


def test_the_watcher_without_http_does_not_import_the_http_stack() -> None:
    """FastAPI and uvicorn load only when http.listen is set: a plain watcher starts without them."""
    code = "import sys, unet_matting.watcher.daemon; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_gpu_memory_is_a_metric_only_while_a_cuda_model_runs() -> None:
    """unet_matting_gpu_memory_bytes has a sample per kind on CUDA and none on the CPU."""
    figures: dict = {}
    metrics = Metrics(queue_depth=lambda: 0, in_flight=lambda: 0, gpu_memory=lambda: figures or None)
    names = {s.name for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    assert "unet_matting_gpu_memory_bytes" not in names
    figures.update(allocated=90 << 20, reserved=2 << 30, peak=1 << 30)
    samples = {
        s.labels["kind"]: s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
        if s.name == "unet_matting_gpu_memory_bytes"
    }
    assert samples == {"allocated": 90 << 20, "reserved": 2 << 30, "peak": 1 << 30}


def test_a_batch_waits_out_a_broker_outage_instead_of_failing_files(tmp_path: Path) -> None:
    """In queue mode a file the broker cannot take now is neither done nor failed: the task
    stays running and resumes with that file once the broker answers."""
    from types import SimpleNamespace

    from unet_matting.engine.profile import Profile
    from unet_matting.watcher.api.batches import BatchTasks
    from unet_matting.watcher.config.events import EventsConfig
    from unet_matting.watcher.errors import Deferred
    from unet_matting.watcher.intake.completion import IgnoreRules
    from unet_matting.watcher.processing.pipeline import Rendered

    outage = [True]

    def render(data: bytes, profile: Profile, job: str, file: str) -> Rendered:
        if outage[0]:
            raise Deferred("the broker is unreachable (ConnectionRefusedError); sent again in 0.1 s", 0.1)
        return Rendered({".png": b"png"}, 1, 1, len(data))

    ctx = SimpleNamespace(config=SimpleNamespace(get_profile=Profile, events=EventsConfig()), render=render)
    tasks = BatchTasks(tmp_path / "state", lambda: ctx, IgnoreRules([]))
    write(tmp_path / "in" / "a.jpg", jpeg_bytes())
    task = tasks.submit(tmp_path / "in", tmp_path / "out", "default")
    tasks.run_once()
    waiting = tasks.get(task["id"])
    assert waiting["status"] == "running" and not waiting["errors"] and not waiting["done"]
    outage[0] = False
    tasks.run_once()
    done = tasks.get(task["id"])
    assert done["status"] == "done" and done["done"] == ["a.jpg"]
    assert (tmp_path / "out" / "a.png").read_bytes() == b"png"


# ---- the third operator trial (issue 19) --------------------------------------------------------


def raw_http(port: int, data: bytes, read: bool = True, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and return what the server answers until it closes."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while read and (chunk := s.recv(65536)):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("body", "headers", "query", "status", "message"),
    [
        (b'{"image_base64": ', {"Content-Type": "application/json"}, "", 400, "the JSON could not be parsed"),
        (b"--x\r\nbroken", {"Content-Type": "multipart/form-data"}, "", 400, "multipart body could not be parsed"),
        (jpeg_bytes(), {"Content-Type": "image/jpeg"}, "?output=gif", 400, "choose one of: png, jpg, webp"),
        (jpeg_bytes(), {"Content-Type": "image/jpeg"}, "?output=webp", 400, "writes no WEBP file"),
        (jpeg_bytes(), {"Content-Type": "image/jpeg"}, "?scenario=id_photo&profile=default", 400, "disagree"),
    ],
)
def test_bad_requests_of_the_trial_are_400_json(
    api, body: bytes, headers: dict, query: str, status: int, message: str
) -> None:
    """Malformed JSON, a broken multipart body, an output format not offered and two different profile
    names are 400 with a JSON sentence, never a 500 or a silent choice."""
    _, url = api
    got, reply, _ = request(f"{url}/api/matting/single{query}", body, headers)
    assert got == status, reply
    assert message in json.loads(reply)["error"]


def test_unknown_paths_and_methods_answer_the_documented_error_shape(api) -> None:
    """404 and 405 from the framework are {"error": ...} like every other error; the guide's
    /api/matting/figma is served like /single, with its JSON answer."""
    d, url = api
    status, body, _ = request(f"{url}/nowhere")
    assert status == 404 and json.loads(body) == {"error": "no such endpoint"}
    status, body, _ = request(f"{url}/api/matting/single")  # GET
    assert status == 405 and json.loads(body) == {"error": "method not allowed on this endpoint"}
    status, reply = post_json(
        f"{url}/api/matting/figma", {"image_base64": base64.b64encode(jpeg_bytes(product_rgb(90, 60))).decode()}
    )
    assert status == 200 and reply["profile"] == "default"
    assert Image.open(io.BytesIO(base64.b64decode(reply["png_base64"]))).size == (90, 60)
    assert d.stop() == 0


def test_the_guides_figma_webhook_takes_its_body_with_the_same_auth_and_limits(daemon, tmp_path: Path) -> None:
    """/api/matting/figma needs the token like /single, honours max_body_bytes and the profile choice."""
    port = free_port()
    token = write(tmp_path / "token", b"figma-token\n")
    token.chmod(0o600)
    daemon(http={"listen": f"127.0.0.1:{port}", "token_file": str(token), "max_body_bytes": 100_000})
    url = f"http://127.0.0.1:{port}/api/matting/figma"
    body = json.dumps({"image_base64": base64.b64encode(jpeg_bytes(product_rgb(120, 90))).decode()}).encode()
    assert request(url, body, {"Content-Type": "application/json"})[0] == 401
    auth = {"Content-Type": "application/json", "Authorization": "Bearer figma-token"}
    status, reply, _ = request(f"{url}?profile=ecom_product", body, auth)
    assert status == 200 and json.loads(reply)["profile"] == "ecom_product" and "jpg_base64" in json.loads(reply)
    assert request(url, b"x" * 100_001, auth)[0] == 413


def test_a_batch_into_its_own_folder_is_refused_and_the_originals_stay(daemon, tmp_path: Path) -> None:
    """output_dir equal to input_dir (also through a symlink), inside it, or around it is 400 with the
    reason, and no original changes; a NUL in a path is 400 too."""
    root = tmp_path / "shop"
    photos = {f"im_0{i}.jpg": jpeg_bytes(product_rgb(120, 90, seed=i)) for i in range(3)}
    for name, data in photos.items():
        write(root / "in" / name, data)
    (root / "alias").symlink_to(root / "in")
    port = free_port()
    d = daemon(http={"listen": f"127.0.0.1:{port}", "batch_roots": [str(root)]})
    url = f"http://127.0.0.1:{port}/api/matting/batch"
    for src, out, reason in [
        (root / "in", root / "in", "same folder"),
        (root / "in", root / "alias", "same folder"),
        (root / "in", root / "in" / "out", "lies inside input_dir"),
        (root / "in", root, "lies inside output_dir"),
    ]:
        status, reply = post_json(url, {"input_dir": str(src), "output_dir": str(out)})
        assert status == 400 and reason in reply["error"], reply
    status, reply = post_json(url, {"input_dir": f"{root}/in\0x", "output_dir": str(root / "out")})
    assert status == 400 and "NUL" in reply["error"]
    time.sleep(1.0)
    assert {p.name: p.read_bytes() for p in (root / "in").iterdir()} == photos
    assert not d.events("batch_submitted")


def test_a_batch_follows_the_same_stem_rule_says_done_and_is_counted(daemon, tmp_path: Path) -> None:
    """im_01.jpg then a newer im_01.png: the newer one's cut-out stays, a same_stem_replaced warning and
    the task's 'replaced' say so; the finished task says "done" with its total; batch jobs are counted."""
    import zipfile

    root = tmp_path / "shop"
    older = write(root / "in" / "im_01.jpg", jpeg_bytes(product_rgb(100, 80)))
    os.utime(older, (time.time() - 60, time.time() - 60))
    buffer = io.BytesIO()
    Image.fromarray(product_rgb(140, 100, seed=3)).save(buffer, "PNG")
    write(root / "in" / "im_01.png", buffer.getvalue())
    write(root / "in" / "im_02.jpg", jpeg_bytes(product_rgb(90, 70, seed=2)))
    port = free_port()
    d = daemon(http={"listen": f"127.0.0.1:{port}", "batch_roots": [str(root)]})
    url = f"http://127.0.0.1:{port}"
    status, reply = post_json(
        f"{url}/api/matting/batch", {"input_dir": str(root / "in"), "output_dir": str(root / "out")}
    )
    task = reply["task_id"]
    wait_for(lambda: task_state(url, task) in ("done", "failed"), timeout=60)
    final = json.loads(request(f"{url}/api/matting/task/{task}")[1])
    assert final["status"] == "done" and final["total"] == 3 and final["done"] == 3
    assert final["replaced"] == {"im_01.png": "im_01.jpg"}
    assert Image.open(root / "out" / "im_01.png").size == (140, 100)  # the newer upload's cut-out
    assert d.events("same_stem_replaced", file="im_01.png", earlier_source="im_01.jpg")
    names = zipfile.ZipFile(io.BytesIO(request(f"{url}/download/{task}.zip")[1])).namelist()
    assert sorted(names) == ["im_01.json", "im_01.png", "im_02.json", "im_02.png"]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(request(f"{url}/metrics")[1].decode())
        for s in family.samples
    }
    assert samples[("unet_matting_jobs_total", (("outcome", "done"), ("source", "batch")))] == 3
    assert samples[("unet_matting_last_success_timestamp_seconds", ())] > 0


def test_an_empty_matte_is_held_back_not_published(make_config, tmp_path: Path) -> None:
    """A model that finds nothing (a blank photo): the upload is quarantined with "no product found in
    the photo" and no cut-out is published; over HTTP the answer is 422 with that sentence."""
    from tests.conftest import save_tiny_model

    empty = save_tiny_model(tmp_path / "finds-nothing.pth", matte_bias=-40.0)
    port = free_port()
    d = DaemonProcess(make_config(engine={"model": str(empty)}, http={"listen": f"127.0.0.1:{port}"})).start()
    try:
        status, body, _ = request(
            f"http://127.0.0.1:{port}/api/matting/single",
            jpeg_bytes(np.full((64, 64, 3), 128, np.uint8)),
            {"Content-Type": "image/jpeg"},
        )
        assert status == 422 and json.loads(body)["error"].startswith("no product found in the photo")
        write(d.path("incoming") / "blank.png", _png(np.full((1, 1, 3), 255, np.uint8)))
        wait_for(lambda: d.finished("quarantined"))
        report = json.loads((d.path("failed") / "blank.png.error.json").read_text())
        assert report["error"] == "NoProduct" and report["reason"].startswith("no product found in the photo")
        assert not list(d.path("output").rglob("*.png"))
    finally:
        assert d.stop() == 0


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_reload_applies_the_token_and_batch_roots_and_names_what_needs_a_restart(daemon, tmp_path: Path) -> None:
    """SIGHUP adding http.token_file closes the API at once; new batch_roots apply; a changed listen is
    reload_needs_restart; a token file others can read fails the reload and changes nothing."""
    port = free_port()
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    for root in (root_a, root_b):
        write(root / "in" / "p.jpg", jpeg_bytes())
    d = daemon(http={"listen": f"127.0.0.1:{port}", "batch_roots": [str(root_a)]})
    url = f"http://127.0.0.1:{port}"
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Content-Type": "image/jpeg"})[0] == 200
    token = write(tmp_path / "token", b"t0ken\n")
    token.chmod(0o600)
    cfg = yaml.safe_load(d.config.read_text())
    cfg["http"].update(token_file=str(token), batch_roots=[str(root_b)], listen=f"127.0.0.1:{free_port()}")
    d.config.write_text(yaml.safe_dump(cfg))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reload_done"))
    assert d.events("reload_needs_restart", keys="http.listen")
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Content-Type": "image/jpeg"})[0] == 401
    auth = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}
    batch = {"input_dir": str(root_b / "in"), "output_dir": str(root_b / "out")}
    assert request(f"{url}/api/matting/batch", json.dumps(batch).encode(), auth)[0] == 202
    batch = {"input_dir": str(root_a / "in"), "output_dir": str(root_a / "out")}
    assert request(f"{url}/api/matting/batch", json.dumps(batch).encode(), auth)[0] == 403
    token.chmod(0o644)
    cfg["http"]["batch_roots"] = [str(root_a)]
    d.config.write_text(yaml.safe_dump(cfg))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.events("reload_failed"))
    assert "readable by others" in d.events("reload_failed")[-1]["error"] and len(d.events("reload_done")) == 1
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Content-Type": "image/jpeg"})[0] == 401
    assert request(f"{url}/api/matting/batch", json.dumps(batch).encode(), auth)[0] == 403
    assert d.stop() == 0


def test_trickling_clients_are_cut_off_while_normal_requests_go_on(daemon) -> None:
    """Ten clients trickling their headers (and one its body) are closed after http.request_timeout_s;
    a normal request made meanwhile is answered; the daemon logs each cut-off at info."""
    import socket
    import threading

    port = free_port()
    d = daemon(http={"listen": f"127.0.0.1:{port}", "request_timeout_s": 2})
    closed_after: list[float] = []

    def trickle(start: bytes) -> None:
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(start)
            try:
                for _ in range(30):
                    s.sendall(b"X")
                    time.sleep(0.5)
            except OSError:  # reset or broken pipe: cut off
                closed_after.append(time.monotonic() - began)
                return
            closed_after.append(float("inf"))

    heads = [b"POST /api/matting/single HTTP/1.1\r\nHost: x\r\nX-Slow: "] * 10
    heads.append(
        b"POST /api/matting/single HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
    )
    threads = [threading.Thread(target=trickle, args=(h,)) for h in heads]
    for t in threads:
        t.start()
    time.sleep(0.5)
    status, _, _ = request(f"http://127.0.0.1:{port}/api/matting/single", jpeg_bytes(), {"Content-Type": "image/jpeg"})
    for t in threads:
        t.join(30)
    assert status == 200
    assert len(closed_after) == 11 and max(closed_after) < 8, closed_after
    assert len(d.events("http_request_timeout")) >= 11
    assert d.stop() == 0


def test_a_client_that_disconnects_mid_body_is_an_abort_not_an_error(api) -> None:
    """Five clients that hang up mid-upload: counted as outcome="aborted", logged at info, no traceback,
    no error counted; the next request is answered."""
    d, url = api
    port = int(url.rsplit(":", 1)[1])
    head = b"POST /api/matting/single HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
    for _ in range(5):
        raw_http(port, head + b"x" * 1000, read=False)
    wait_for(lambda: len(d.events("http_client_aborted")) == 5)
    assert request(f"{url}/api/matting/single", jpeg_bytes(), {"Content-Type": "image/jpeg"})[0] == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(request(f"{url}/metrics")[1].decode())
        for s in family.samples
    }
    assert samples[("unet_matting_jobs_total", (("outcome", "aborted"), ("source", "http")))] == 5
    assert ("unet_matting_jobs_total", (("outcome", "error"), ("source", "http"))) not in samples
    assert not [e for e in d.log_lines() if e.get("level") in ("error", "critical") or "exception" in e]
    assert d.stop() == 0


def test_health_shows_no_file_system_paths(daemon, tmp_path: Path) -> None:
    """A failed model switch shows on /health without any path (the log and status.json keep it)."""
    from tests.conftest import save_tiny_model

    models = tmp_path / "models"
    save_tiny_model(models / "first.pth")
    (models / "broken.pth").write_bytes(b"not a checkpoint")
    (models / "active_model").write_text("first.pth\n")
    port = free_port()
    d = daemon(engine={"model": "auto", "models_dir": str(models)}, http={"listen": f"127.0.0.1:{port}"})
    (models / "active_model").write_text("broken.pth\n")
    wait_for(lambda: d.events("model_load_failed"))
    body = wait_for(lambda: (b := request(f"http://127.0.0.1:{port}/health")[1]) and b"last_model_error" in b and b)
    assert json.loads(body)["status"] == "ok" and "/" not in json.loads(body)["last_model_error"]
    assert str(tmp_path) not in body.decode()
    wait_for(
        lambda: any(
            str(models / "broken.pth") in p
            for p in json.loads((d.path("state") / "status.json").read_text())["problems"]
        )
    )
    assert d.stop() == 0


def test_a_zip_asked_for_before_its_task_ended_is_409_with_a_plain_sentence(tmp_path: Path) -> None:
    """GET /download/<id>.zip of a task still waiting to run is 409: '... is submitted; its ZIP is
    ready once the task has ended'; the task's status says submitted with no total yet."""
    from types import SimpleNamespace

    from unet_matting.engine.profile import Profile
    from unet_matting.watcher.api.batches import BatchTasks
    from unet_matting.watcher.intake.completion import IgnoreRules

    ctx = SimpleNamespace(config=SimpleNamespace(get_profile=Profile))
    tasks = BatchTasks(tmp_path / "state", lambda: ctx, IgnoreRules([]))  # never started: the task waits
    write(tmp_path / "in" / "a.jpg", jpeg_bytes())
    task = tasks.submit(tmp_path / "in", tmp_path / "out", "default")
    port = free_port()
    app = build_app(
        lambda: ctx, lambda: Health(True, "", {}), Metrics(lambda: 0, lambda: 0), lambda: Access(None, 1000), 1, tasks
    )
    server = HttpServer(app, "127.0.0.1", port)
    server.start()
    try:
        assert server.wait_started()
        status, body, _ = request(f"http://127.0.0.1:{port}/download/{task['id']}.zip")
        assert status == 409
        assert json.loads(body) == {
            "error": f"task {task['id']} is submitted; its ZIP is ready once the task has ended"
        }
        status, body, _ = request(f"http://127.0.0.1:{port}/api/matting/task/{task['id']}")
        assert status == 200 and json.loads(body)["status"] == "submitted" and json.loads(body)["total"] is None
    finally:
        server.stop()
        server.join()
