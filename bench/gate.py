"""The quality gate: how well the confidence score (engine/confidence.py) separates bad cut-outs
from good ones, per set, and the logistic fit that sets its weights.

    PYTHONPATH=. .venv/bin/python -m bench.gate [--cache /tmp/gate.json] [--fit]

Per photo: the default model's matte as the daemon makes it (network at the model's size,
completed by the backdrop step), the same network at ``CHECK_SIZE`` (the second opinion), the
signals, and the IoU against the reference mask. Bad: IoU < 0.8; good: IoU >= 0.9 (those in
between are neither). Printed per set and for the shared sets together: AUROC (bad vs good),
and for each threshold the share of bad held (caught) and of good held, and the extra time of
the second opinion and the signals against the forward pass.

``--fit``: refit the logistic model on every set together (classes weighted equally, a small
ridge) and print the constants for engine/confidence.py. ``--cache``: the per-photo rows in a
JSON file, reused when present (delete it after a model or signal change).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from bench.model_quality import EVAL, default_models, photo_set
from bench.packshots import packshots
from unet_matting.engine import confidence as conf
from unet_matting.engine.backdrop import complete_matte
from unet_matting.engine.metrics import score
from unet_matting.engine.session import EngineSettings, Session

BAD, GOOD = 0.8, 0.9
THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.7)
CV_THRESHOLDS = (0.5, 0.55, 0.6)
SHARED = ("coco-ccby", "u2net-reference", "fashion-ccp")


def rows_for(session: Session, name: str, pairs) -> list[dict]:
    rows = []
    for rgb, mask in pairs:
        started = time.perf_counter()
        alpha = session.predict_alpha(rgb)
        network = time.perf_counter() - started
        alpha = complete_matte(rgb, alpha)
        started = time.perf_counter()
        small = conf.working(alpha)
        check = session.predict_alpha(rgb, conf.CHECK_SIZE, small.shape)
        found = conf.signals(small, check)
        extra = time.perf_counter() - started
        rows.append(
            {"set": name, "iou": score(alpha, mask).iou, "signals": found, "network_s": network, "extra_s": extra}
        )
    return rows


def collect(cache: Path | None) -> list[dict]:
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    session = Session.load(EngineSettings(default_models()[0], "cpu"))
    rows: list[dict] = []
    for root in sorted(p for p in EVAL.iterdir() if (p / "images").is_dir()):
        rows += rows_for(session, root.name, photo_set(root))
        print(f"{root.name}: {sum(r['set'] == root.name for r in rows)} photos", flush=True)
    rows += rows_for(session, "packshots", packshots())
    if cache is not None:
        cache.write_text(json.dumps(rows))
    return rows


def auroc(bad: list[float], good: list[float]) -> float:
    """The chance a bad cut-out scores lower than a good one (ties count half)."""
    if not bad or not good:
        return float("nan")
    b, g = np.asarray(bad)[:, None], np.asarray(good)[None, :]
    return float(np.mean(b < g) + 0.5 * np.mean(b == g))


def table(rows: list[dict]) -> None:
    groups = {"shared together": [r for r in rows if r["set"] in SHARED]}
    groups |= {name: [r for r in rows if r["set"] == name] for name in dict.fromkeys(r["set"] for r in rows)}
    print("| set | photos | bad | good | AUROC | " + " | ".join(f"held at {t}: bad / good" for t in THRESHOLDS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(THRESHOLDS))
    for name, rs in groups.items():
        bad = [r["score"] for r in rs if r["iou"] < BAD]
        good = [r["score"] for r in rs if r["iou"] >= GOOD]
        cells = []
        for t in THRESHOLDS:
            caught = f"{np.mean([s < t for s in bad]):.0%}" if bad else "-"
            held = f"{np.mean([s < t for s in good]):.0%}" if good else "-"
            cells.append(f"{caught} / {held}")
        print(f"| {name} | {len(rs)} | {len(bad)} | {len(good)} | {auroc(bad, good):.3f} | " + " | ".join(cells) + " |")


def fit(rows: list[dict], ridge: float = 1.0) -> tuple[float, dict[str, tuple[float, float, float]]]:
    """Logistic regression of 'bad' on the standardised features (Newton's method, ridge):
    the constants of engine/confidence.py (``INTERCEPT``, ``WEIGHTS``)."""
    names = list(conf.WEIGHTS)
    used = [r for r in rows if (r["iou"] < BAD or r["iou"] >= GOOD) and "disagreement" in r["signals"]]
    x = np.array([[conf.features(r["signals"])[n] for n in names] for r in used])
    y = np.array([r["iou"] < BAD for r in used], float)
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    mean, spread = x.mean(0), x.std(0) + 1e-9
    z = np.c_[np.ones(len(x)), np.clip((x - mean) / spread, -conf.REACH, conf.REACH)]
    beta = np.zeros(z.shape[1])
    penalty = ridge * np.diag(np.r_[0.0, np.ones(len(names))])
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ beta))
        gradient = z.T @ (w * (p - y)) + penalty @ beta
        hessian = (z * (w * p * (1 - p))[:, None]).T @ z + penalty
        beta -= np.linalg.solve(hessian, gradient)
    assert all(math.isfinite(b) for b in beta)
    weights = {n: (float(m), float(s), float(b)) for n, m, s, b in zip(names, mean, spread, beta[1:], strict=True)}
    return float(beta[0]), weights


def print_constants(intercept: float, weights: dict[str, tuple[float, float, float]]) -> None:
    print(f"INTERCEPT = {intercept:.2f}")
    print("WEIGHTS = {")
    for n, (m, s, b) in weights.items():
        print(f'    "{n}": ({m:.4f}, {s:.4f}, {b:.2f}),')
    print("}")


def held_out_scores(rows: list[dict], folds: int, seed: int) -> list[float]:
    """Each photo's score from a model fitted without it (``folds`` random folds, each set and
    class spread over them)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(rows), int)
    for key in sorted({(r["set"], r["iou"] < BAD) for r in rows}):  # sorted: the same folds every run
        members = [i for i, r in enumerate(rows) if (r["set"], r["iou"] < BAD) == key]
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    scores = [0.0] * len(rows)
    shipped = conf.INTERCEPT, conf.WEIGHTS
    try:
        for k in range(folds):
            conf.INTERCEPT, conf.WEIGHTS = fit([r for r, f in zip(rows, fold, strict=True) if f != k])
            for i, f in enumerate(fold):
                if f == k:
                    scores[i] = conf.score(rows[i]["signals"]).score
    finally:
        conf.INTERCEPT, conf.WEIGHTS = shipped
    return scores


def cross_validated(rows: list[dict], folds: int = 5, seeds: int = 10) -> None:
    """What the shipped threshold would do on photos the fit never saw: per set, the share of
    bad and good held at each threshold, averaged over ``seeds`` random fold splits (and their
    range), the shared sets together first."""
    runs = [held_out_scores(rows, folds, seed) for seed in range(seeds)]
    groups = {"shared together": [i for i, r in enumerate(rows) if r["set"] in SHARED]}
    groups |= {n: [i for i, r in enumerate(rows) if r["set"] == n] for n in dict.fromkeys(r["set"] for r in rows)}
    print(f"\n{folds}-fold cross-validated, {seeds} splits: held bad / held good, mean (range)")
    print("| set | " + " | ".join(f"at {t}" for t in CV_THRESHOLDS) + " |")
    print("|---|" + "---|" * len(CV_THRESHOLDS))
    for name, members in groups.items():
        bad = [i for i in members if rows[i]["iou"] < BAD]
        good = [i for i in members if rows[i]["iou"] >= GOOD]
        cells = []
        for t in CV_THRESHOLDS:
            parts = []
            for chosen in (bad, good):
                if not chosen:
                    parts.append("-")
                    continue
                shares = [np.mean([scores[i] < t for i in chosen]) for scores in runs]
                parts.append(f"{np.mean(shares):.0%} ({min(shares):.0%}-{max(shares):.0%})")
            cells.append(" / ".join(parts))
        print(f"| {name} | " + " | ".join(cells) + " |")


def report(rows: list[dict]) -> None:
    for row in rows:
        row["score"] = conf.score(row["signals"]).score
    table(rows)
    network = statistics.median(r["network_s"] for r in rows)
    extra = statistics.median(r["extra_s"] for r in rows)
    print(
        f"\nforward pass median {network * 1000:.0f} ms; second opinion + signals median {extra * 1000:.0f} ms "
        f"({extra / network:.0%} of the forward pass)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, help="per-photo rows as JSON, reused when present")
    ap.add_argument("--fit", action="store_true", help="print refitted constants for engine/confidence.py")
    args = ap.parse_args()
    rows = collect(args.cache)
    if args.fit:
        print_constants(*fit(rows))
    report(rows)
    cross_validated(rows)


if __name__ == "__main__":
    main()
