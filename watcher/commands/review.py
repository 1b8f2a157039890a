"""``unet-matting review list|show|approve|reject|retry``: decisions on held cut-outs from a shell.

The same queue, locks and journal as the daemon and its review page (watcher/review/queue.py), so
a decision here and one on the page at the same moment publish an item once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from unet_matting.watcher import logs
from unet_matting.watcher.config import load_config
from unet_matting.watcher.events import Events
from unet_matting.watcher.review.queue import ReviewError, ReviewQueue, rerendering

BY = "cli"


def run_review(
    config_path: Path,
    action: str,
    items: list[str],
    reason: str = "",
    profile: str | None = None,
    model: Path | None = None,
) -> int:
    cfg = load_config(config_path)
    logs.configure("info", cfg.logging.file, console=False)  # decisions are log lines, as the daemon's
    queue = ReviewQueue.of(cfg.paths, events=Events.of(cfg))  # the daemon's senders deliver them
    queue.recover()
    if action == "list":
        held = queue.items()
        for item in held:
            r = item.record
            reasons = "; ".join(r.get("reasons") or []) or "-"
            print(f"{item.id}\tscore {_score(r.get('score'))}\t{r.get('profile')}\t{r.get('time')}\t{reasons}")
        print(f"{len(held)} held in {cfg.paths.review}", file=sys.stderr)
        return 0
    failed = 0
    if action == "retry":
        chosen = cfg.get_profile(profile)  # an unknown name fails before the model loads
        ctx = _context(cfg, model)
    for item in items:
        try:
            if action == "show":
                print(json.dumps(queue.get(item).record, indent=2, ensure_ascii=False))
            elif action == "approve":
                published = queue.approve(item, BY)
                print(f"approved {item}: published {', '.join(str(p) for p in published)}")
            elif action == "reject":
                target = queue.reject(item, BY, reason)
                print(f"rejected {item}: moved to {target}")
            else:
                again = queue.retry(item, BY, rerendering(ctx, chosen))
                print(f"retried {item} with profile {chosen.name}: held again, score {_score(again.record['score'])}")
        except ReviewError as e:
            failed += 1
            print(f"unet-matting: {e}", file=sys.stderr)
    return 1 if failed else 0


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _context(cfg, model: Path | None):
    """The active model (or ``model``) and the config, as the daemon's jobs run with them."""
    from unet_matting.watcher.models.active import load_session
    from unet_matting.watcher.processing.matting import LocalMatting
    from unet_matting.watcher.processing.runner import JobContext

    return JobContext(LocalMatting(load_session(cfg.engine, model)), cfg)
