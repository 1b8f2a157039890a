"""HTTP batch tasks: a folder in, cut-outs in another folder and a ZIP link back.

Tasks live in ``<paths.state>/tasks/<id>.json`` (rewritten atomically after every file), so a
restart neither loses a task nor repeats a file it finished. One thread works through the tasks
in order; outputs are written like the watcher's (whole sets, atomically). Directories must lie
under ``http.batch_roots`` once every symlink is resolved, and apart from each other: an output
folder equal to its input folder, or inside it (or around it), would write over the originals or
cut out its own cut-outs. Inputs sharing an output (``im_01.jpg``, ``im_01.png``) follow the
watcher's rule: the later one (by modification time) wins, with a ``same_stem_replaced`` warning.

A task's ``status`` is ``submitted``, ``running``, ``done`` (every file made) or ``failed`` (some
file, or the task itself, failed); ``done`` is what the guide's clients poll for.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from unet_matting.engine.errors import ImageError, JobError
from unet_matting.watcher.durable import atomic_write
from unet_matting.watcher.errors import Deferred
from unet_matting.watcher.events import Events
from unet_matting.watcher.intake.completion import IgnoreRules
from unet_matting.watcher.intake.scanning import walk_files
from unet_matting.watcher.processing.output import MANIFEST_SUFFIX, earlier_set, output_path, write_outputs
from unet_matting.watcher.processing.pipeline import read_source
from unet_matting.watcher.processing.runner import JobContext
from unet_matting.watcher.prometheus import Metrics
from unet_matting.watcher.threads import StoppableThread

log = structlog.get_logger(__name__)
DONE = "done"
FINISHED = (DONE, "failed")
LEGACY_SUFFIXES = (".png", ".jpg", ".mask.png")  # a set written before manifests existed


class BatchRefused(Exception):
    """A batch request the service will not run; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def allowed_dir(raw: Any, roots: tuple[Path, ...], name: str, must_exist: bool) -> Path:
    """``raw`` as a real directory path under one of ``roots``; ``..``, symlinks out and others: 403."""
    if not isinstance(raw, str) or not raw:
        raise BatchRefused(400, f"{name} must be a directory path")
    if "\0" in raw:
        raise BatchRefused(400, f"{name} may not contain a NUL character")
    if ".." in Path(raw).parts:
        raise BatchRefused(403, f"{name} may not contain '..'")
    real = Path(os.path.realpath(raw))
    if not any(real == root or root in real.parents for root in (Path(os.path.realpath(r)) for r in roots)):
        raise BatchRefused(403, f"{name} {raw} is not under an allowed root (http.batch_roots)")
    if must_exist and not real.is_dir():
        raise BatchRefused(400, f"{name} {raw} is not a directory")
    return real


def overlap(input_dir: Path, output_dir: Path) -> str | None:
    """Why two real folders may not be a task's input and output (equal, or one inside the
    other), or None when they are apart."""
    if input_dir == output_dir:
        return f"output_dir is the same folder as input_dir ({input_dir}); the cut-outs would replace the originals"
    if input_dir in output_dir.parents:
        return (
            f"output_dir ({output_dir}) lies inside input_dir ({input_dir}); "
            "a later batch would cut out its own cut-outs"
        )
    if output_dir in input_dir.parents:
        return f"input_dir ({input_dir}) lies inside output_dir ({output_dir}); keep the two folders apart"
    return None


def same_stem_order(files: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """(path, relative) in walk order, except that inputs sharing an output run oldest first,
    so that the newest one's cut-out is the one that stays (the watcher's rule)."""
    groups: dict[Path, list[tuple[Path, Path]]] = {}
    for item in files:
        groups.setdefault(output_path(Path(), item[1]), []).append(item)
    for group in groups.values():
        group.sort(key=lambda item: (_mtime(item[0]), str(item[1])))
    return [item for group in groups.values() for item in group]


def _mtime(path: Path) -> int:
    try:
        return path.lstat().st_mtime_ns
    except OSError:
        return 0


class BatchTasks(StoppableThread):
    """Submits, records, runs and reports batch tasks."""

    def __init__(
        self,
        state_dir: Path,
        context: Callable[[], JobContext | None],
        ignore: IgnoreRules,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__("batch")
        self.dir = state_dir / "tasks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._context, self._ignore, self._metrics = context, ignore, metrics
        self._lock = threading.Lock()
        self._queue: deque[str] = deque(
            t["id"] for t in sorted(self._all(), key=lambda t: t["created"]) if t["status"] not in FINISHED
        )  # unfinished tasks resume
        self._wake = threading.Event()

    def _all(self) -> list[dict]:
        return [_read(p) for p in self.dir.glob("*.json")]

    def _save(self, task: dict) -> None:
        atomic_write(self.dir / f"{task['id']}.json", json.dumps(task, indent=1).encode())

    def get(self, task_id: str) -> dict | None:
        path = self.dir / f"{task_id}.json"
        if not task_id.isalnum() or not path.is_file():
            return None
        return _read(path)

    def submit(self, input_dir: Path, output_dir: Path, profile: str, callback: str | None = None) -> dict:
        task = {
            "id": uuid.uuid4().hex,
            "status": "submitted",
            "input_dir": str(input_dir),
            "output_dir": str(output_dir),
            "profile": profile,
            "created": time.time(),
            "finished_at": None,
            "total": None,
            "done": [],
            "errors": {},
            "replaced": {},
            "callback": callback,  # an endpoint of events.endpoints told batch.finished in any case
        }
        self._save(task)
        with self._lock:
            self._queue.append(task["id"])
        self._wake.set()
        log.info("batch_submitted", task=task["id"], input_dir=str(input_dir), output_dir=str(output_dir))
        return task

    def run_once(self) -> None:
        with self._lock:
            task_id = self._queue[0] if self._queue else None
        if task_id is None:
            self._wake.wait(0.5)
            self._wake.clear()
            return
        try:
            self._run(self.get(task_id))
        except Deferred as e:  # queue mode, broker unreachable: the task resumes where it stopped
            log.warning("batch_deferred", task=task_id, error=str(e))
            self.stopped.wait(e.retry_s if e.retry_s is not None else 1.0)
            return
        with self._lock:
            self._queue.popleft()

    def _run(self, task: dict) -> None:
        src, out = Path(task["input_dir"]), Path(task["output_dir"])
        if (problem := overlap(src, out)) is not None:  # a task recorded before overlaps were refused
            self._end(task, "failed", error=problem)
            return
        task["status"] = "running"
        inputs = ((path, path.relative_to(src)) for path in walk_files(src))
        files = same_stem_order([(path, rel) for path, rel in inputs if not self._ignore.ignored(rel)])
        task["total"] = len(files)
        self._save(task)
        ended = {*task["done"], *task["errors"]}  # by an earlier run of this task (a restart)
        made: dict[Path, str] = {output_path(Path(), Path(rel)): rel for rel in task["done"]}  # output -> input
        for path, rel in files:
            if self.stopped.is_set():
                return  # stays 'running'; the next start resumes it
            if str(rel) in ended:
                continue
            output = output_path(Path(), rel)
            if self._one(task, path, rel, out, made.get(output)):
                made[output] = str(rel)
            self._save(task)
        self._end(task, DONE if not task["errors"] else "failed")

    def _end(self, task: dict, status: str, error: str | None = None) -> None:
        """Finished: its event first (a crash before the save resumes the task and writes the
        same event again), then the task's record."""
        task["status"], task["finished_at"] = status, time.time()
        if error is not None:
            task["error"] = error
        ctx = self._context()
        if ctx is not None and (events := Events.of(ctx.config)) is not None:
            events.batch_finished(self.status(task), task.get("callback"))
        self._save(task)
        log.info(
            "batch_finished",
            task=task["id"],
            status=status,
            done=len(task["done"]),
            failed=len(task["errors"]),
            **({"error": error} if error else {}),
        )

    def _one(self, task: dict, path: Path, rel: Path, out: Path, earlier: str | None) -> bool:
        """Make one file's outputs; True when they were written."""
        ctx = self._context()
        started, outcome, rendered = time.perf_counter(), "error", None
        try:
            profile = ctx.config.get_profile(task["profile"])
            rendered = ctx.render(read_source(path).data, profile, f"{task['id']}-{len(task['done'])}", str(rel))
            write_outputs(out, rel, rendered.files)
            task["done"].append(str(rel))
            if (judged := rendered.confidence) is not None:  # the caller decides what to hold
                task.setdefault("confidence", {})[str(rel)] = {"score": judged.score, "reasons": list(judged.reasons)}
            outcome = "done"
            if earlier is not None:  # dup.jpg then dup.png: the later one's cut-out stays
                task.setdefault("replaced", {})[str(rel)] = earlier
                log.warning(
                    "same_stem_replaced",
                    task=task["id"],
                    file=str(rel),
                    earlier_source=earlier,
                    output=str(output_path(Path(), rel)),
                )
            log.info("batch_file_done", task=task["id"], file=str(rel))
            return True
        except Deferred:
            outcome = "deferred"
            raise
        except (ImageError, OSError, JobError) as e:  # JobError: out of GPU memory, a render process died
            outcome = "refused" if isinstance(e, ImageError) else "error"
            task["errors"][str(rel)] = str(e)
            log.warning("batch_file_failed", task=task["id"], file=str(rel), error=str(e))
        except Exception as e:  # a model or pipeline failure: recorded for this file, never retried forever
            log.exception("batch_file_error", task=task["id"], file=str(rel))
            task["errors"][str(rel)] = f"{e.__class__.__name__}: {e}"
        finally:
            if self._metrics is not None:
                self._metrics.finished(
                    outcome,
                    "batch",
                    time.perf_counter() - started,
                    rendered.timings_ms if rendered else None,
                    time.time(),
                )
        return False

    def status(self, task: dict) -> dict:
        end = task["finished_at"] or time.time()
        body = {
            "task_id": task["id"],
            "status": task["status"],
            "total": task.get("total"),
            "done": len(task["done"]),
            "failed": len(task["errors"]),
            "errors": task["errors"],
            "replaced": task.get("replaced", {}),
            "confidence": task.get("confidence", {}),
            "elapsed_s": round(end - task["created"], 1),
        }
        if "error" in task:
            body["error"] = task["error"]
        if task["status"] in FINISHED:
            body["result_url"] = f"/download/{task['id']}.zip"
        return body

    def zip_path(self, task: dict) -> Path:
        """The task's outputs as one ZIP in the state directory (made once, then served as a file)."""
        target = self.dir / f"{task['id']}.zip"
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            out = Path(task["output_dir"])
            produced = dict.fromkeys(path for rel in task["done"] for path in set_files(out, Path(rel)))
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # PNG and JPEG: no recompressing
                for path in produced:
                    if path.is_file():
                        archive.write(path, path.relative_to(out))
            os.replace(tmp, target)
        return target

    def stop(self) -> None:
        super().stop()
        self._wake.set()


def set_files(out: Path, rel: Path) -> list[Path]:
    """The files of ``rel``'s set under ``out``: those its manifest names, then the manifest."""
    manifest = output_path(out, rel, MANIFEST_SUFFIX)
    names = earlier_set(manifest)
    if not names:
        return [output_path(out, rel, suffix) for suffix in LEGACY_SUFFIXES]
    return [manifest.with_name(name) for name in sorted(names)] + [manifest]


def _read(path: Path) -> dict:
    """A recorded task; one recorded as ``finished`` (before 0.2) reads as ``done``."""
    task = json.loads(path.read_text(encoding="utf-8"))
    if task.get("status") == "finished":
        task["status"] = DONE
    return task
