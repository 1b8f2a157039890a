"""Train the default U²-Net-P product-cutout model on synthetic composites (CPU or CUDA).

    python -m training.train --fg DIR... --bg DIR... --out runs/ckpt.pt --minutes 60
    python -m training.train ... --resume runs/ckpt.pt        # continue a run
    python -m training.train ... --init W.pth --start-step N  # continue from exported weights
    python -m training.train --export runs/ckpt.pt engine/weights/u2netp-products.pth

Deep supervision as in the U²-Net paper: BCE on the fused map and the six side outputs, plus a
soft IoU term on the fused map. The checkpoint holds model, optimiser and step, so a run can be
split over several time-boxed calls; ``--export`` writes a plain fp16 state dict that the
engine (and any U²-Net loader) reads with strict keys.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from training.data import (
    CUTOUTS,
    PEOPLE,
    PHOTOS,
    PROPS,
    TEXTURES,
    SampleMaker,
    load_cutouts,
    load_photos,
    load_textures,
)
from unet_matting.engine.catalogue import IMAGENET_MEAN, IMAGENET_STD
from unet_matting.engine.u2net import build

# Holdout samples use seeds HOLDOUT_SEED..+127. Run --seed k trains on seeds from 2k x HOLDOUT_SEED,
# fewer than HOLDOUT_SEED of them, so no --seed ever trains on the holdout.
HOLDOUT_SEED = 10_000_000


class Synthetic(Dataset):
    def __init__(self, maker: SampleMaker, length: int, seed0: int) -> None:
        self.maker, self.length, self.seed0 = maker, length, seed0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, alpha = self.maker.make(self.seed0 + i)
        x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
        mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
        return (x - mean) / std, torch.from_numpy(alpha)[None]


def loss_fn(outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
    bce = sum(F.binary_cross_entropy_with_logits(o.float(), target) for o in outputs)
    prob = torch.sigmoid(outputs[0].float())
    inter = (prob * target).sum((1, 2, 3))
    union = (prob + target - prob * target).sum((1, 2, 3))
    return bce + (1 - (inter + 1) / (union + 1)).mean()


@torch.no_grad()
def evaluate(net: torch.nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    net.eval()
    mae, iou = [], []
    for x, y in loader:
        p = torch.sigmoid(net(x.to(device, memory_format=torch.channels_last))[0].float()).cpu()
        mae.append((p - y).abs().mean((1, 2, 3)))
        pb, yb = p > 0.5, y > 0.5
        iou.append((pb & yb).sum((1, 2, 3)) / (pb | yb).sum((1, 2, 3)).clamp(min=1))
    net.train()
    return {"mae": float(torch.cat(mae).mean()), "iou": float(torch.cat(iou).mean())}


def export(checkpoint: Path, target: Path) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}, target)
    print(f"exported {target} ({target.stat().st_size / 1e6:.2f} MB, fp16)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fg", type=Path, nargs="*", default=CUTOUTS, help="dirs of RGBA cut-outs")
    ap.add_argument("--bg", type=Path, nargs="*", default=PHOTOS, help="dirs of background photos")
    ap.add_argument("--scenes", type=float, default=0.0, help="share of samples drawn as scenes")
    ap.add_argument(
        "--props",
        type=Path,
        nargs="*",
        default=PROPS,
        help="dirs of rendered products (RGBA): scene products and distractors",
    )
    ap.add_argument(
        "--textures",
        type=Path,
        nargs="*",
        default=TEXTURES,
        help="dirs of surface textures (JPEGs, and inside *.sh3f catalogues)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/ckpt.pt"))
    ap.add_argument("--resume", type=Path)
    ap.add_argument("--init", type=Path, help="start from these weights (an exported .pth), new optimiser")
    ap.add_argument("--start-step", type=int, default=0, help="with --init: where in the schedule to start")
    ap.add_argument("--export", type=Path, nargs=2, metavar=("CKPT", "PTH"))
    ap.add_argument("--arch", default="u2netp")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--total-steps", type=int, default=20_000, help="length of the LR schedule")
    ap.add_argument("--minutes", type=float, default=60.0, help="stop (and save) after this long")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.export:
        export(*args.export)
        return
    train(args)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    maker = SampleMaker(load_cutouts(args.fg), load_photos(args.bg), args.size, args.scenes)
    if args.scenes:  # only scenes draw on renders, people and surfaces
        maker.props = load_cutouts(args.props, crop=True)
        maker.people = load_cutouts(args.props, crop=True, pattern=PEOPLE)
        maker.textures = load_textures(args.textures)
    print(
        f"data: {len(maker.cutouts)} cut-outs, {len(maker.photos)} photos, {len(maker.props)} props "
        f"({len(maker.people)} people), {len(maker.textures)} textures, scenes {args.scenes:.0%}, "
        f"device {device}",
        flush=True,
    )
    net = build(args.arch).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step = 0
    if args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        step = args.start_step
    if args.resume and args.resume.exists():
        ckpt = torch.load(args.resume, map_location="cpu", weights_only=True)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optim"])
        step = int(ckpt["step"])
    seen = step * args.batch
    train_ds = Synthetic(maker, HOLDOUT_SEED - seen, 2 * args.seed * HOLDOUT_SEED + seen)
    hold = DataLoader(Synthetic(maker, 128, HOLDOUT_SEED), batch_size=32, num_workers=0)
    loader = DataLoader(
        train_ds, batch_size=args.batch, num_workers=args.workers, shuffle=False, persistent_workers=args.workers > 0
    )
    deadline = time.monotonic() + args.minutes * 60
    started, losses = time.monotonic(), []
    for x, y in loader:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.total_steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        outputs = net(x.to(device, memory_format=torch.channels_last))
        loss = loss_fn(outputs, y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            rate = len(losses) * args.batch / (time.monotonic() - started)
            print(f"step {step} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} {rate:.1f} img/s", flush=True)
        if step % 500 == 0 or time.monotonic() > deadline or step >= args.total_steps:
            save(net, opt, step, args.out)
            print(f"step {step} holdout {evaluate(net, hold, device)}", flush=True)
        if time.monotonic() > deadline or step >= args.total_steps:
            break


def save(net: torch.nn.Module, opt: torch.optim.Optimizer, step: int, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "step": step}, tmp)
    tmp.replace(out)


if __name__ == "__main__":
    main()
