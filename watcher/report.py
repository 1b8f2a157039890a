"""What the daemon says about itself: ``/health`` (unauthenticated: no paths), ``status.json``
(for ``unet-matting status`` and ``models list``: with paths) and the systemd status line.

A read-only view over the running daemon's parts; it changes nothing.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unet_matting.watcher.api.app import Health
    from unet_matting.watcher.daemon import Daemon


def without_paths(text: str) -> str:
    """``text`` with absolute file-system paths cut to their last part (for unauthenticated readers)."""
    return re.sub(r"(?<![\w.])/[^\s:;,'\"()]+", lambda m: Path(m.group()).name, text)


class Report:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def health(self) -> Health:
        """``/health``: ok once the model is loaded and every thread of the watcher is alive."""
        from unet_matting.watcher.api.app import Health

        d, ctx = self.d, self.d.context()
        if ctx is None or d.ready_at is None:
            return Health(False, "starting: the model is loading", {})
        details = {
            "model": ctx.model_label,
            "queue_depth": d.jobs.depth(),
            "uptime_s": round(time.monotonic() - d.ready_at, 1),
            **ctx.matting.health(),
        }
        if d.models is not None and d.models.error:  # a switch failed; the old model serves: no outage
            details["last_model_error"] = without_paths(d.models.error)  # paths: log and status only
        problems = [f"threads not running: {', '.join(dead)}"] if (dead := d.dead_threads()) else []
        if d.watch.missing:
            problems.append("the incoming directory is missing; uploads cannot arrive")
        problems += ctx.matting.problems()
        return Health(not problems, "; ".join(problems), details)

    def status(self) -> dict:
        """``status.json``."""
        d, ctx = self.d, self.d.context()
        counts = d.stats.snapshot()
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "queued": d.jobs.depth(),
            "in_hand": d.jobs.in_hand(),
            "tracked": len(d.tracker),
            "outcomes": dict(counts.outcomes),
            "last": {"file": counts.last_file, "outcome": counts.last_outcome},
            "model": ctx.model_label,
            "profile": ctx.config.profile,
            "problems": self.problems(),
            **ctx.matting.status(),
            **({"events": d.event_status()} if d.config.events.endpoints else {}),
        }

    def problems(self) -> list[str]:
        """What an operator must fix, with paths (status.json is not served over HTTP)."""
        d, problems = self.d, []
        if d.watch.missing:
            problems.append(f"paths.incoming {d.config.paths.incoming} is missing; uploads cannot arrive")
        if d.models is not None and d.models.error:
            problems.append(f"the last model switch failed: {d.models.error}")
        return problems

    def line(self) -> str:
        """The systemd ``STATUS=`` line."""
        d = self.d
        s = d.stats.snapshot().outcomes
        text = (
            f"queued={d.jobs.depth()} in_hand={d.jobs.in_hand()} tracked={len(d.tracker)} "
            f"done={s['done']} quarantined={s['quarantined']} waiting={s['waiting']} errors={s['error']}"
        )
        if (broker := d.context().matting.queue_stats()) is not None:
            text += (
                f" broker={'up' if broker.connected else 'DOWN'} jobs_ready={broker.jobs_ready} "
                f"workers={broker.workers} dead={broker.dead}"
            )
        return text
