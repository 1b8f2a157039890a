"""The queue hop: per-job overhead of matting on a RabbitMQ worker against the in-process
daemon, and burst throughput with 1 and 2 workers.

    .venv/bin/python -m bench.queue [--model var/models/isnet-general-use.onnx] [--runs 8] [--burst 24]
                                    [--broker-url amqp://...]   # default: a private node (needs root)

1. Latency: one 2 MP upload at a time (renamed in: complete at that instant) until its PNG is
   visible, ``--runs`` times, through (a) ``watch`` matting in-process and (b) ``watch`` in queue
   mode with one ``unet-matting worker``; the overhead is the difference of the medians (message
   out with the image, answer back with the PNG and JPEG, two broker hops).
2. Throughput: ``--burst`` uploads at once through (a), through the queue with one worker, and
   with two workers (each ``queue.worker_threads`` threads, default 1 here so the processes, not
   threads, scale). On a CPU-only machine the workers compete for the same cores: this shows the
   overhead, not scaling; the README turns the per-image GPU time into workers per upload rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO, log_events, product_photos, start_daemon, write_config

SIZE = (1224, 1632)  # 2 MP


def start_worker(config: Path, name: str) -> subprocess.Popen:
    cfg = yaml.safe_load(config.read_text())
    log = Path(cfg["logging"]["file"]).with_name(f"{name}.log")
    cfg["logging"]["file"] = str(log)
    path = config.with_name(f"{name}.yaml")
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "unet_matting.watcher", "worker", "--config", str(path), "--name", name],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    while "worker_ready" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited during start-up")
        time.sleep(0.05)
    return proc


def setup(root: Path, model: Path, queue: dict | None, workers: int, threads: int, in_flight: int):
    config = write_config(root, model, "ecom_product", quiet_period_s=0.2, workers=in_flight)
    if queue is not None:
        cfg = yaml.safe_load(config.read_text())
        cfg["queue"].update(queue, worker_threads=threads)
        config.write_text(yaml.safe_dump(cfg))
    daemon = start_daemon(config)
    procs = [start_worker(config, f"w{i}") for i in range(workers if queue is not None else 0)]
    return daemon, procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(60)


def latency(root: Path, src: list[Path], runs: int) -> list[float]:
    walls = []
    for i in range(runs + 1):  # the first warms caches and is not counted
        os.link(src[i % len(src)], root / "incoming" / f".l{i}.jpg")
        started = time.perf_counter()
        os.rename(root / "incoming" / f".l{i}.jpg", root / "incoming" / f"l{i}.jpg")
        while not (root / "output" / f"l{i}.png").exists():
            time.sleep(0.002)
        if i:
            walls.append(time.perf_counter() - started)
    return walls


def burst(root: Path, src: list[Path], count: int) -> float:
    for i in range(count):
        os.link(src[i % len(src)], root / "incoming" / f".b{i}.jpg")
    started = time.perf_counter()
    for i in range(count):
        os.rename(root / "incoming" / f".b{i}.jpg", root / "incoming" / f"b{i}.jpg")
    while len(list((root / "output").glob("b*.png"))) < count:
        time.sleep(0.01)
    return count / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_model = REPO / "var/models/isnet-general-use.onnx"
    ap.add_argument(
        "--model",
        type=Path,
        default=default_model if default_model.exists() else REPO / "engine/weights/u2netp-products.pth",
    )
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--burst", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1, help="queue.worker_threads per worker process")
    ap.add_argument("--broker-url", help="an existing RabbitMQ (default: start a private node)")
    args = ap.parse_args()
    node = None
    if args.broker_url is None:
        sys.path.insert(0, str(REPO))
        from tests.rabbitmq import RabbitNode

        node = RabbitNode().start()
    url = args.broker_url or node.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            src = sorted(product_photos(base / "src", *SIZE, 6).iterdir())
            results = {}
            shapes = [("in-process", None, 0), ("queue, 1 worker", 1, 1), ("queue, 2 workers", 2, 2)]
            for label, workers, n in shapes:
                root = base / label.replace(" ", "").replace(",", "")
                queue = (
                    None
                    if workers is None
                    else {
                        "broker_url": url,
                        "jobs": f"{root.name}.jobs",
                        "dead": f"{root.name}.dead",
                        "results": f"{root.name}.results",
                    }
                )
                daemon, procs = setup(root, args.model, queue, n, args.threads, in_flight=max(2, 2 * n))
                try:
                    walls = latency(root, src, args.runs) if n <= 1 else []
                    rate = burst(root, src, args.burst)
                finally:
                    stop([daemon, *procs])
                jobs = log_events(root / "daemon.log", "job_finished")
                results[label] = (walls, rate, jobs)
                lat = f"latency median {statistics.median(walls) * 1000:.0f} ms, " if walls else ""
                print(f"{label:18s}: {lat}burst of {args.burst}: {rate:.2f} img/s", flush=True)
            base_lat = statistics.median(results["in-process"][0])
            hop = statistics.median(results["queue, 1 worker"][0]) - base_lat
            print(f"model {results['in-process'][2][0]['model']}, 2 MP JPEGs, ecom_product, {os.cpu_count()} CPUs")
            print(f"queue hop overhead per job: {hop * 1000:.0f} ms ({hop / base_lat:.0%} of {base_lat * 1000:.0f} ms)")
    finally:
        if node is not None:
            node.close()


if __name__ == "__main__":
    main()
