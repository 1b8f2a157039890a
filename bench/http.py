"""HTTP side: latency of one 2 MP request against `process` on the same image (the HTTP overhead),
and throughput with concurrent clients against `rembg s` on the same model file, in one run.

    .venv/bin/python -m bench.http [--model var/models/isnet-general-use.onnx] [--clients 8] [--count 24]
                                   [--rembg /tmp/rembg/bin/rembg]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.common import REPO, SIZES, product_photos, start_daemon, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, data: bytes, content_type: str) -> float:
    started = time.perf_counter()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()
    return time.perf_counter() - started


def multipart(field: str, data: bytes, extra: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body: the photo in ``field`` and plain ``extra`` fields."""
    boundary = "bench-boundary-7d1c"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (extra or {}).items()
    ]
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="p.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def throughput(url: str, photos: list[bytes], clients: int, field: str, extra: dict[str, str] | None = None) -> float:
    queue = list(photos)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                data = queue.pop()
            post(url, *multipart(field, data, extra))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(photos) / (time.perf_counter() - started)


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start-up")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("server did not start listening")


def bench_ours(root: Path, model: Path, photos: list[bytes], clients: int, src: Path) -> dict:
    port = free_port()
    config = write_config(root / "daemon", model, "default", {}, http={"listen": f"127.0.0.1:{port}"})
    daemon = start_daemon(config)
    url = f"http://127.0.0.1:{port}/api/matting/single"
    try:
        post(url, *multipart("image", photos[0]))  # warm-up
        latency = statistics.median(post(url, *multipart("image", photos[0])) for _ in range(5))
        rate = throughput(url, photos, clients, "image")
    finally:
        daemon.terminate()
        daemon.wait(60)
    # process on the same image: the same pipeline without HTTP (start-up excluded by difference)
    one, none = root / "one", root / "none"
    one.mkdir()
    none.mkdir()
    (one / "p.jpg").write_bytes(photos[0])
    cmd = [sys.executable, "-m", "unet_matting.watcher", "process", "--config", str(config), "--out"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, str(root / "o0"), str(none)], cwd=REPO, capture_output=True)
    t1 = time.perf_counter()
    subprocess.run([*cmd, str(root / "o1"), str(one)], cwd=REPO, capture_output=True, check=True)
    t2 = time.perf_counter()
    return {"latency_s": latency, "process_s": (t2 - t1) - (t1 - t0), "rate": rate}


def bench_rembg(root: Path, model: Path, photos: list[bytes], clients: int, rembg: str) -> float:
    home = root / "rembg-home"
    home.mkdir()
    os.symlink(model.resolve(), home / "isnet-general-use.onnx")
    port = free_port()
    env = {**os.environ, "U2NET_HOME": str(home), "MODEL_CHECKSUM_DISABLED": "1"}
    proc = subprocess.Popen(
        [rembg, "s", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/remove"
    try:
        wait_listening(port, proc)
        model_field = {"model": "isnet-general-use"}
        post(url, *multipart("file", photos[0], model_field))  # warm-up: loads the session
        return throughput(url, photos, clients, "file", model_field)
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "var/models/isnet-general-use.onnx")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--rembg", help="a rembg executable (its own venv); omit to skip")
    args = ap.parse_args()
    width, height = SIZES["2mp"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = product_photos(root / "src", width, height, args.count)
        photos = [p.read_bytes() for p in sorted(src.iterdir())]
        ours = bench_ours(root, args.model, photos, args.clients, src)
        print(
            f"{args.count} JPEGs at {width}x{height}, model {args.model.name}, {args.clients} clients, "
            f"{os.cpu_count()} CPUs"
        )
        overhead_ms = (ours["latency_s"] - ours["process_s"]) * 1000
        print(
            f"one request: {ours['latency_s'] * 1000:.0f} ms (median of 5); `process` on the same image "
            f"{ours['process_s'] * 1000:.0f} ms; HTTP overhead {overhead_ms:.0f} ms"
        )
        print(f"ours: {ours['rate']:.2f} img/s with {args.clients} clients")
        if args.rembg:
            theirs = bench_rembg(root, args.model, photos, args.clients, args.rembg)
            print(f"rembg s: {theirs:.2f} img/s with {args.clients} clients; ratio {ours['rate'] / theirs:.2f}x")


if __name__ == "__main__":
    main()
