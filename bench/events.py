"""Events never slow the jobs: backlog throughput with events off, with a receiver that
answers 200, and with one that never answers (every delivery times out).

    .venv/bin/python -m bench.events [--count 30] [--size 2mp] [--model PATH]

Each mode: a fresh daemon (shipped config, ``default`` profile) on the same JPEGs, all renamed
into incoming at once; images/s from the first drop to the last ``job_finished``. The issue's
target: with a hanging receiver, within 5 % of events off.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from bench.common import REPO, SIZES, log_events, product_photos, start_daemon, write_config


def receiver(hang: bool) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            if hang:
                time.sleep(3600)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(root: Path, src: Path, model: Path, mode: str) -> float:
    config = write_config(root, model, profile="default")
    if mode != "off":
        server = receiver(hang=mode == "hang")
        secret = root / "secret"
        secret.write_text("bench-secret\n")
        secret.chmod(0o600)
        cfg = yaml.safe_load(config.read_text())
        cfg["events"] = {
            "endpoints": [
                {"name": "bench", "url": f"http://127.0.0.1:{server.server_port}/hook", "secret_file": str(secret)}
            ],
            "timeout_s": 2.0,
            "retry_first_s": 1.0,
        }
        config.write_text(yaml.safe_dump(cfg))
    proc = start_daemon(config)
    try:
        staging = root / ".staging"
        shutil.copytree(src, staging)
        names = sorted(p.name for p in staging.iterdir())
        started = time.perf_counter()
        for name in names:
            os.rename(staging / name, root / "incoming" / name)
        log = root / "daemon.log"
        while len(log_events(log, "job_finished")) < len(names):
            time.sleep(0.05)
        return len(names) / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--size", choices=sorted(SIZES), default="2mp")
    ap.add_argument("--model", type=Path, default=REPO / "engine/weights/u2netp-products.pth")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = product_photos(Path(tmp) / "src", *SIZES[args.size], args.count)
        print(f"{args.count} JPEGs at {args.size}, model {args.model.name}, {os.cpu_count()} CPUs")
        rates = {mode: run(Path(tmp) / mode, src, args.model, mode) for mode in ("off", "ok", "hang")}
    for mode, rate in rates.items():
        print(f"events {mode:4}: {rate:.2f} img/s ({rate / rates['off']:.1%} of events off)")


if __name__ == "__main__":
    main()
