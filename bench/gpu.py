"""The GPU run (issue 15): CUDA parity, throughput at 12 MP and 2 MP (one daemon in its threads,
and with render processes: ``engine.processes``, issue 23), a 3 GB memory cap, and a live model
swap under load, as one script for a short lease of a GPU machine.

    # here: IS-Net's 88 MB weights do not fit a device call (64 MiB), so they travel as int8
    .venv/bin/python -m bench.gpu pack var/models/isnet-general-use.onnx .gpu/isnet-q8.npz
    # there (python3 of the machine's image; the project importable as unet_matting without
    # installing it: a folder of two links, then PYTHONPATH):
    mkdir -p /tmp/ns/unet_matting && ln -sfn "$PWD/watcher" "$PWD/engine" /tmp/ns/unet_matting/
    PYTHONPATH=/tmp/ns:$PWD python3 -m bench.gpu run --weights .gpu/isnet-q8.npz --photos .gpu/photos --out $OUT
    # rehearsal on a CPU (small counts, no nvidia-smi):
    .venv/bin/python -m bench.gpu run --weights .gpu/isnet-q8.npz --photos .gpu/photos --out /tmp/g --quick

``pack`` quantises each convolution of the (batch-norm-folded) network to int8 per output
channel; ``run`` rebuilds an IS-Net checkpoint from it, so the network has the production
model's architecture and cost and mattes close to its own (the run scores it on the photos'
reference masks, against the full model's numbers in the model card), and post-processing sees
realistic mattes. Every step writes its figures to ``<out>/gpu.json`` as it ends; a step that
fails records its error and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import REPO, SIZES, log_events, product_jpeg, product_photos
from bench.throughput import bench_daemon

SHIPPED = REPO / "engine/weights/u2netp-products.pth"
GiB = 1 << 30


# ---- weights in transit ----------------------------------------------------------------------


def pack(onnx_path: Path, out: Path) -> None:
    """Folded IS-Net convolutions -> int8 per output channel (+ float scales, float biases)."""
    import torch

    from unet_matting.engine.networks import import_onnx

    net, info = import_onnx(onnx_path)
    arrays: dict[str, np.ndarray] = {}
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            w = module.weight.detach().float().numpy()
            scale = np.abs(w).reshape(len(w), -1).max(axis=1) / 127
            scale[scale == 0] = 1
            arrays[f"{name}.q"] = np.round(w / scale[:, None, None, None]).astype(np.int8)
            arrays[f"{name}.scale"] = scale.astype(np.float32)
            arrays[f"{name}.bias"] = module.bias.detach().float().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, arch=np.array(info.arch), source=np.array(info.label), **arrays)
    print(f"{out}: {len(arrays) // 3} convolutions of {info.label}, {out.stat().st_size / 1e6:.1f} MB")


def unpack(packed: Path, out: Path) -> Path:
    """An IS-Net checkpoint (batch norms as identities) from ``pack``'s file."""
    import torch

    from unet_matting.engine.networks import build

    data = np.load(packed)
    net = build(str(data["arch"]))
    state = net.state_dict()
    for key in state:
        module, _, field = key.rpartition(".")
        if f"{module}.q" in data:
            if field == "weight":
                q, scale = data[f"{module}.q"], data[f"{module}.scale"]
                state[key] = torch.from_numpy(q.astype(np.float32) * scale[:, None, None, None])
            else:
                state[key] = torch.from_numpy(data[f"{module}.bias"])
        elif field == "running_var":  # (x - 0) / sqrt(1 - eps + eps) * 1 + 0: an identity
            state[key] = torch.full_like(state[key], 1 - 1e-5)
        elif field in ("running_mean", "bias"):
            state[key] = torch.zeros_like(state[key])
        elif field == "weight":
            state[key] = torch.ones_like(state[key])
    torch.save(state, out)
    return out


# ---- helpers ---------------------------------------------------------------------------------


class Results:
    """Figures by step, rewritten to ``gpu.json`` after every step."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.data: dict[str, object] = {}
        out.mkdir(parents=True, exist_ok=True)

    def step(self, name: str, fn: Callable[[], object]) -> None:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 - recorded, the next step runs
            traceback.print_exc()
            value = {"error": f"{e.__class__.__name__}: {e}"}
        self.data[name] = value
        print(json.dumps(value, indent=1, default=str)[:3000], f"({time.perf_counter() - started:.0f} s)", flush=True)
        (self.out / "gpu.json").write_text(json.dumps(self.data, indent=1, default=str))


class GpuSampler:
    """nvidia-smi every 100 ms: utilisation (busy fraction) and memory used, while running."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "100",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                util, mem = (float(x) for x in line.split(","))
            except ValueError:
                continue
            self.samples.append((util, mem))

    def __exit__(self, *_: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_busy": None, "gpu_memory_used_max_mib": None}
        return {
            "gpu_busy": round(statistics.mean(u for u, _ in self.samples) / 100, 3),
            "gpu_memory_used_max_mib": max(m for _, m in self.samples),
        }


def make_photos(folder: Path, size: str, count: int, distinct: int = 16) -> Path:
    return product_photos(folder, *SIZES[size], count, distinct)


def _photo_pairs(photos: Path) -> list[tuple[Path, Path]]:
    return [(p, photos / "masks" / f"{p.stem}.png") for p in sorted((photos / "images").iterdir())]


# ---- steps -----------------------------------------------------------------------------------


def environment() -> dict:
    import torch

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / GiB, 1),
            multiprocessors=props.multi_processor_count,
        )
    return info


def pytest_gpu(out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_session.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (out / "pytest-gpu.txt").write_text(proc.stdout + proc.stderr)
    return {"returncode": proc.returncode, "summary": proc.stdout.strip().splitlines()[-1:]}


def parity(model: Path, photos: Path, device: str, input_size: int | None, limit: int) -> dict:
    """The same model on the CPU (float32) and on ``device`` (float16): alpha differences in
    1/255 steps, and each one's scores against the reference masks."""
    from unet_matting.engine.metrics import score
    from unet_matting.engine.session import EngineSettings, Session
    from unet_matting.watcher.processing.imageio import decode

    gpu = Session.load(EngineSettings(model, device=device, input_size=input_size))
    cpu = Session.load(EngineSettings(model, device="cpu", input_size=gpu.input_size))
    rows, diffs, scores = [], [], {"cpu": [], device: []}
    for image_path, mask_path in _photo_pairs(photos)[:limit]:
        rgb = decode(image_path.read_bytes(), 100_000_000).rgb
        a, b = cpu.predict_alpha(rgb), gpu.predict_alpha(rgb)
        d = np.abs(a - b) * 255
        diffs.append(d.ravel())
        mask = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(mask_path).convert("L"))
        sa, sb = score(a, mask), score(b, mask)
        scores["cpu"].append((sa.mae, sa.iou))
        scores[device].append((sb.mae, sb.iou))
        rows.append(
            {
                "photo": image_path.name,
                "max_255": round(float(d.max()), 3),
                "mean_255": round(float(d.mean()), 4),
                "over_1_255": round(float((d > 1).mean()), 6),
            }
        )
    every = np.concatenate(diffs)
    return {
        "model": model.name,
        "input_size": gpu.input_size,
        "photos": len(rows),
        "max_255": round(float(every.max()), 3),
        "p999_255": round(float(np.quantile(every, 0.999)), 3),
        "mean_255": round(float(every.mean()), 4),
        "pixels_over_1_255": round(float((every > 1).mean()), 6),
        "mae_iou": {
            k: [round(float(np.mean([m for m, _ in v])), 4), round(float(np.mean([i for _, i in v])), 4)]
            for k, v in scores.items()
        },
        "per_photo": rows,
    }


def throughput(
    root: Path,
    model: Path,
    size: str,
    count: int,
    sweep: list[tuple[int, int, int]],
    device: str,
    input_size: int,
) -> dict:
    """One daemon per (workers, batch, processes): ``engine.processes`` 0 renders in its threads,
    N in N render processes of one thread each (one daemon, every core)."""
    src = root / f"src-{size}-{count}"
    src = src if src.is_dir() else make_photos(src, size, count)  # the same photos for every sweep
    results = {}
    for workers, batch, processes in sweep:
        work = root / f"run-{size}-{workers}-{batch}-{processes}"
        engine = {"device": device, "input_size": input_size, "max_batch": batch}
        if processes:
            engine.update(processes=processes, threads=1)
        with GpuSampler() as sampler:
            r = bench_daemon(work, src, model, "ecom_product", workers, engine)
        results[f"workers={workers} batch={batch} processes={processes}"] = {
            "images_per_s": round(r["images_per_s"], 2),
            "p50_s": round(r["p50_s"], 2),
            "p95_s": round(r["p95_s"], 2),
            "cpu_util": round(r["cpu_util"], 2),
            "stages_ms": r["stages_ms"],
            "outcomes": r["outcomes"],
            "gpu_memory_mb": r["status"].get("gpu_memory_mb"),
            "peak_rss_mb": round(r["peak_rss_mb"]),
            "sampled_rss_mb": round(r["sampled_rss_mb"]),
            "batches": r["status"].get("batches"),
            **sampler.summary(),
        }
        shutil.rmtree(work)
    return {"size": size, "count": count, "profile": "ecom_product", "input_size": input_size, "runs": results}


def render_part(args: argparse.Namespace) -> None:
    """One of ``processes``' children: load, say ready, wait for go, render its files, report."""
    from concurrent.futures import ThreadPoolExecutor

    from unet_matting.engine.session import EngineSettings, Session
    from unet_matting.watcher.config import load_config
    from unet_matting.watcher.processing.pipeline import render

    cfg = load_config(REPO / "etc/unet-matting.yaml")
    profile = cfg.get_profile("ecom_product")
    session = Session.load(
        EngineSettings(args.model, device=args.device, input_size=args.input_size, max_batch=args.threads)
    )
    files = [Path(line) for line in args.files.read_text().splitlines()]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        list(
            pool.map(
                lambda f: render(
                    f.read_bytes(), session, profile, cfg.engine.max_input_pixels, cfg.output.png_compress_level
                ),
                files,
            )
        )
    print(json.dumps({"seconds": time.perf_counter() - started, "files": len(files)}), flush=True)


def processes(
    root: Path, model: Path, device: str, input_size: int, size: str, count: int, shapes: list[tuple[int, int]]
) -> dict:
    """What worker processes would give (issue 14's workers, several per GPU): P processes, each
    with its own session and T threads, share the GPU and the files; images/s from "go" to the
    last file, model loading excluded."""
    src = make_photos(root / f"proc-src-{size}", size, count)
    files = sorted(src.iterdir())
    results = {}
    for procs, threads in shapes:
        children = []
        for i in range(procs):
            listing = root / f"part-{i}.txt"
            listing.write_text("\n".join(str(f) for f in files[i::procs]))
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.gpu",
                        "render-part",
                        "--model",
                        str(model),
                        "--files",
                        str(listing),
                        "--device",
                        device,
                        "--input-size",
                        str(input_size),
                        "--threads",
                        str(threads),
                    ],
                    cwd=REPO,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for child in children:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a render process failed to start")
        with GpuSampler() as sampler:
            started = time.perf_counter()
            for child in children:
                child.stdin.write("go\n")
                child.stdin.flush()
            reports = [json.loads(child.stdout.readline()) for child in children]
            wall = time.perf_counter() - started
        for child in children:
            child.wait(60)
        results[f"processes={procs} threads={threads}"] = {
            "images_per_s": round(sum(r["files"] for r in reports) / wall, 2),
            "wall_s": round(wall, 1),
            **sampler.summary(),
        }
    return {"size": size, "count": count, "profile": "ecom_product", "input_size": input_size, "runs": results}


def memory_cap(root: Path, model: Path, device: str, input_size: int, cap_bytes: int) -> dict:
    """engine.gpu_memory_fraction at ``cap_bytes`` of the card: a 2000x3000 and a 12 MP upload
    alone, then 8 at 12 MP at once (batches that may not fit): outcomes, errors, peak memory."""
    import torch

    total = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else 64 * GiB
    fraction = cap_bytes / total
    src = root / "cap-src"
    src.mkdir()
    product_jpeg(src / "a-6mp.jpg", *SIZES["6mp"], 1)
    product_jpeg(src / "b-12mp.jpg", *SIZES["12mp"], 2)
    burst = make_photos(root / "cap-burst", "12mp", 8, distinct=4)
    engine = {"device": device, "input_size": input_size, "max_batch": 8, "gpu_memory_fraction": round(fraction, 6)}
    results = {"cap_gib": round(cap_bytes / GiB, 2), "fraction": round(fraction, 5)}
    for name, folder in (("single", src), ("burst_of_8", burst)):
        work = root / f"cap-{name}"
        try:
            r = bench_daemon(work, folder, model, "ecom_product", 8, engine)
        except RuntimeError as e:  # the daemon exited: its last log lines say why
            log = work / "daemon/daemon.log"
            results[name] = {
                "daemon_exited": str(e),
                "log_tail": log.read_text().splitlines()[-3:] if log.exists() else [],
            }
            continue
        errors = [j.get("error") for j in log_events(work / "daemon/daemon.log", "job_finished") if j.get("error")]
        results[name] = {
            "outcomes": r["outcomes"],
            "errors": errors[:3],
            "images_per_s": round(r["images_per_s"], 2),
            "gpu_memory_mb": r["status"].get("gpu_memory_mb"),
        }
    return results


def live_swap(root: Path, model: Path, device: str, input_size: int, count: int) -> dict:
    """A model switch (SIGHUP with a new engine.model) while a burst is processed: every job
    done, and GPU memory back at its level once the old model's last job ends."""
    import yaml

    other = root / "swap-b.pth"
    shutil.copyfile(model, other)
    with open(other, "ab") as f:  # another file (another hash, another label), the same network
        f.write(b"\0")
    src = make_photos(root / "swap-src", "2mp", count)
    memory: list[tuple[float, dict]] = []
    stop = threading.Event()

    def switch(daemon: subprocess.Popen) -> None:
        config = root / "swap/daemon/cfg.yaml"
        status = root / "swap/daemon/state/status.json"

        def watch() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError, ValueError):  # not written yet, or mid-rename
                    memory.append((time.monotonic(), json.loads(status.read_text()).get("gpu_memory_mb") or {}))
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(1)
        cfg = yaml.safe_load(config.read_text())
        cfg["engine"]["model"] = str(other)
        config.write_text(yaml.safe_dump(cfg))
        daemon.send_signal(signal.SIGHUP)

    try:
        r = bench_daemon(
            root / "swap",
            src,
            model,
            "ecom_product",
            8,
            {"device": device, "input_size": input_size, "max_batch": 8},
            during=switch,
        )
    finally:
        stop.set()
    log = root / "swap/daemon/daemon.log"
    jobs = log_events(log, "job_finished")
    models = {j["model"].split("@")[0] for j in jobs}
    allocated = [m.get("allocated") for _, m in memory if m]
    return {
        "outcomes": r["outcomes"],
        "models_used": sorted(models),
        "jobs": len(jobs),
        "switched": bool(log_events(log, "model_switched")),
        "memory_released": [e.get("gpu_memory_mb") for e in log_events(log, "model_memory_released")],
        "allocated_mb_first_last_max": [allocated[0], allocated[-1], max(allocated)] if allocated else None,
        "final_status_gpu_memory_mb": r["status"].get("gpu_memory_mb"),
        "images_per_s": round(r["images_per_s"], 2),
    }


def run(args: argparse.Namespace) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    quick = args.quick or device == "cpu"
    results = Results(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        isnet = unpack(args.weights, root / "isnet-general-use-q8.pth")
        limit, size, count = (3, 256, 6) if quick else (18, 1024, 100)
        sweep = [(2, 2, 0)] if quick else [(4, 4, 0), (8, 8, 0), (16, 8, 0)]
        # one daemon with render processes (engine.processes), twice as many workers to keep them fed
        spread = [(2, 1, 2)] if quick else [(16, 1, 8), (32, 1, 16)]
        steps = {
            "environment": environment,
            "pytest_gpu": lambda: pytest_gpu(args.out),
            "parity_u2netp": lambda: parity(SHIPPED, args.photos, device, None, limit),
            "parity_isnet_q8": lambda: parity(isnet, args.photos, device, size, limit),
            "throughput_12mp": lambda: throughput(root, isnet, "12mp", count, sweep, device, size),
            "throughput_2mp": lambda: throughput(root, isnet, "2mp", count, sweep, device, size),
            "daemon_processes_12mp": lambda: throughput(root, isnet, "12mp", count, spread, device, size),
            "memory_cap_3gb": lambda: memory_cap(root, isnet, device, size, 3 * GiB),
            "live_swap": lambda: live_swap(root, isnet, device, size, 6 if quick else 300),
            "processes_12mp": lambda: processes(
                root, isnet, device, size, "12mp", count, [(2, 1)] if quick else [(1, 16), (4, 4), (8, 2), (16, 1)]
            ),
        }
        for name in args.steps or steps:
            if name == "pytest_gpu" and device != "cuda":
                continue
            results.step(name, steps[name])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="IS-Net ONNX -> int8 file for the trip to the GPU machine")
    p.add_argument("onnx", type=Path)
    p.add_argument("out", type=Path)
    r = sub.add_parser("run", help="every GPU step, figures to OUT/gpu.json")
    r.add_argument("--weights", type=Path, required=True)
    r.add_argument("--photos", type=Path, required=True, help="a folder with images/ and masks/")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--quick", action="store_true", help="small counts (a rehearsal on a CPU)")
    r.add_argument("--steps", nargs="*", help="only these steps (default: all)")
    c = sub.add_parser("render-part", help="(internal) one process of the processes step")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--files", type=Path, required=True)
    c.add_argument("--device", default="cuda")
    c.add_argument("--input-size", type=int, required=True)
    c.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.command == "pack":
        pack(args.onnx, args.out)
    elif args.command == "render-part":
        render_part(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
