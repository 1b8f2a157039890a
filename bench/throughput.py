"""Backlog throughput: the daemon, ``unet-matting process`` and ``rembg p`` on the same images.

    .venv/bin/python -m bench.throughput [--size 2mp|6mp|12mp] [--count 100] [--model PATH]
                                         [--profile default] [--rembg PATH/TO/rembg]

Generates N product-like JPEGs, then
1. drops them all at once into a running daemon's incoming directory (renamed in, so each is
   complete at that instant) and measures images/s, p50/p95 drop-to-PNG latency, peak RSS (each
   process's own peak, summed over the daemon and its render processes; and "sampled", the
   family's summed RSS every 0.1 s, at its highest) and CPU utilisation of the daemon, and the
   median per-stage times from its log;
2. runs ``unet-matting process`` over the same folder;
3. runs ``rembg p`` (folder mode) with the same weights exported to ONNX and loaded through
   rembg's ``u2net_custom`` session from a local path (nothing is downloaded).
rembg is a separate install (a venv with ``rembg[cli]``); pass its executable with --rembg.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.common import REPO, SIZES, log_events, product_photos, start_daemon, write_config
from unet_matting.watcher.state import STATUS_INTERVAL_S


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} failed with {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024


def proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds used so far and peak RSS (MB) of a running process and its live children
    (the render processes of ``engine.processes``): the peaks summed, an upper bound of the
    family's peak at any one time."""
    cpu = hwm = 0.0
    for member in (pid, *children(pid)):
        fields = _stat(member)
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm += _status_mb(member, "VmHWM")
    return cpu, hwm


def family_rss(pid: int) -> float:
    """RSS (MB) of a process and its children now, summed."""
    total = 0.0
    for member in (pid, *children(pid)):
        try:
            total += _status_mb(member, "VmRSS")
        except OSError:  # gone meanwhile
            continue
    return total


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the daemon's render processes among them)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(_stat(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return found


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first, then the parent's pid)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (``VmRSS``, ``VmHWM``) in MB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith(field)).split()[1]) / 1024


def bench_daemon(
    root: Path,
    src: Path,
    model: Path,
    profile: str,
    workers: int | None,
    engine: dict | None = None,
    during: Callable[[subprocess.Popen], None] | None = None,
) -> dict:
    """Drop every file of ``src`` into a fresh daemon at once; images/s, latencies, stages.

    ``engine`` overrides ``engine.*``; ``during(daemon)`` runs right after the drop (a model
    switch under load); the result's ``status`` is the daemon's status.json at the end.
    """
    watcher = {"workers": workers} if workers else {}
    config = write_config(root / "daemon", model, profile, engine, quiet_period_s=0.5, **watcher)
    daemon = start_daemon(config)
    try:
        incoming, output = root / "daemon/incoming", root / "daemon/output"
        cpu0, _ = proc_stats(daemon.pid)
        started = time.perf_counter()
        names = sorted(p.name for p in src.iterdir())
        for name in names:
            shutil.copy2(src / name, incoming / f".{name}.tmp")
        dropped = time.perf_counter()
        for name in names:
            os.rename(incoming / f".{name}.tmp", incoming / name)
        if during is not None:
            during(daemon)
        seen: dict[str, float] = {}
        sampled, next_sample = 0.0, 0.0
        while len(seen) < len(names):
            for p in output.glob("*.png"):
                seen.setdefault(p.stem, time.perf_counter())
            if time.perf_counter() >= next_sample:  # the family's RSS at one instant, every 0.1 s
                sampled, next_sample = max(sampled, family_rss(daemon.pid)), time.perf_counter() + 0.1
            time.sleep(0.01)
        wall = max(seen.values()) - dropped
        cpu1, peak = proc_stats(daemon.pid)
        latencies = sorted(t - dropped for t in seen.values())
        time.sleep(STATUS_INTERVAL_S + 0.3)  # one status tick after the last output
        status = json.loads((root / "daemon/state/status.json").read_text())
    finally:
        daemon.terminate()
        daemon.wait(60)
    jobs = log_events(root / "daemon/daemon.log", "job_finished")
    done = [j for j in jobs if j["outcome"] == "done"]
    stages = {k: statistics.median(j["stages_ms"][k] for j in done) for k in done[0]["stages_ms"]}
    stages["write+archive"] = statistics.median(j["duration_ms"] - sum(j["stages_ms"].values()) for j in done)
    return {
        "images_per_s": len(names) / wall,
        "wall_s": wall,
        "p50_s": latencies[len(latencies) // 2],
        "p95_s": latencies[int(len(latencies) * 0.95) - 1],
        "peak_rss_mb": peak,
        "sampled_rss_mb": sampled,
        "cpu_util": (cpu1 - cpu0) / wall / os.cpu_count(),
        "stages_ms": stages,
        "copy_s": dropped - started,
        "status": status,
        "outcomes": dict(Counter(j["outcome"] for j in jobs)),
        "config": config,
    }


def rembg_argv(home: Path, model: Path, rembg: str) -> list[str]:
    """rembg on the same weights: an IS-Net ONNX as its own isnet-general-use session (the file
    put where rembg looks, checksum check off), anything else exported and run as u2net_custom."""
    if model.suffix == ".onnx":
        os.symlink(model.resolve(), home / "isnet-general-use.onnx")
        return [rembg, "p", "-m", "isnet-general-use"]
    onnx = home / "unet-matting.onnx"
    subprocess.run(
        [sys.executable, "-m", "unet_matting.engine.onnx_export", str(model), str(onnx)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    return [rembg, "p", "-m", "u2net_custom", "-x", json.dumps({"model_path": str(onnx)})]


def bench_rembg(root: Path, src: Path, model: Path, rembg: str) -> dict:
    home = root / "rembg-home"
    home.mkdir()
    env = {
        **os.environ,
        "U2NET_HOME": str(home),
        "MODEL_CHECKSUM_DISABLED": "1",
        "OMP_NUM_THREADS": str(os.cpu_count()),
    }
    argv = rembg_argv(home, model, rembg)
    # First run on an empty folder: pays one-off costs (numba compiles pymatting on a fresh
    # install) and measures rembg's start-up, which the ratio then leaves out (the daemon's
    # numbers start at the drop, long after its start-up).
    (root / "rembg-empty").mkdir()
    run_measured([*argv, str(root / "rembg-empty"), str(root / "rembg-empty-out")], env)
    startup, _ = run_measured([*argv, str(root / "rembg-empty"), str(root / "rembg-empty-out")], env)
    wall, rss = run_measured([*argv, str(src), str(root / "rembg-out")], env)
    count = len(list(src.iterdir()))
    return {"images_per_s": count / (wall - startup), "wall_s": wall, "startup_s": startup, "peak_rss_mb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="2mp")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--model", type=Path, default=REPO / "engine/weights/u2netp-products.pth")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--workers", type=int, help="watcher.workers (default: the shipped config's)")
    ap.add_argument("--input-size", type=int, help="engine.input_size (default: the shipped config's)")
    ap.add_argument("--precision", help="engine.precision (default: the shipped config's, auto)")
    ap.add_argument("--processes", type=int, help="engine.processes (default: the shipped config's, 0)")
    ap.add_argument("--rembg", help="path to a rembg executable (omit to skip rembg)")
    args = ap.parse_args()
    width, height = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = product_photos(root / "src", width, height, args.count)
        print(
            f"{args.count} JPEGs at {width}x{height}, model {args.model.name}, profile {args.profile}, "
            f"precision {args.precision or 'auto'}, processes {args.processes or 0}, "
            f"{os.cpu_count()} CPUs"
        )
        ours = bench_daemon(
            root,
            src,
            args.model,
            args.profile,
            args.workers,
            {
                **({"input_size": args.input_size} if args.input_size else {}),
                **({"precision": args.precision} if args.precision else {}),
                **({"processes": args.processes} if args.processes is not None else {}),
            }
            or None,
        )
        print(
            f"daemon : {ours['images_per_s']:.2f} img/s ({ours['wall_s']:.1f} s), latency p50 {ours['p50_s']:.1f} s "
            f"p95 {ours['p95_s']:.1f} s, peak RSS {ours['peak_rss_mb']:.0f} MB (sampled {ours['sampled_rss_mb']:.0f}), "
            f"CPU {ours['cpu_util']:.0%}"
        )
        print("         stages (median ms): " + ", ".join(f"{k} {v:.0f}" for k, v in ours["stages_ms"].items()))
        wall, rss = run_measured(
            [
                sys.executable,
                "-m",
                "unet_matting.watcher",
                "process",
                "--config",
                str(root / "daemon/cfg.yaml"),
                "--profile",
                args.profile,
                "--out",
                str(root / "process-out"),
                str(src),
            ]
        )
        print(
            f"process: {args.count / wall:.2f} img/s ({wall:.1f} s incl. start-up, {wall / args.count:.2f} s/img), "
            f"peak RSS {rss:.0f} MB"
        )
        if args.rembg:
            theirs = bench_rembg(root, src, args.model, args.rembg)
            print(
                f"rembg p: {theirs['images_per_s']:.2f} img/s excl. its {theirs['startup_s']:.1f} s start-up "
                f"({theirs['wall_s']:.1f} s in all), peak RSS {theirs['peak_rss_mb']:.0f} MB"
            )
            print(
                f"ratio daemon/rembg: {ours['images_per_s'] / theirs['images_per_s']:.2f}x, "
                f"process/rembg: {theirs['wall_s'] / wall:.2f}x"
            )


if __name__ == "__main__":
    main()
