"""HTTP batch tasks: a folder in, cut-outs in another folder and a ZIP link back.

Tasks live in ``<paths.state>/tasks/<id>.json`` (rewritten atomically after every file), so a
restart neither loses a task nor repeats a file it finished. One thread works through the tasks
in order; outputs are written like the watcher's (whole sets, atomically). Directories must lie
under ``http.batch_roots`` once every symlink is resolved.
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

from engine.errors import ImageError
from watcher.completion import IgnoreRules
from watcher.errors import Deferred
from watcher.observer import walk_files
from watcher.output import atomic_write, output_path, write_outputs
from watcher.pipeline import read_source
from watcher.threads import StoppableThread
from watcher.worker import JobContext

log = structlog.get_logger(__name__)
FINISHED = ("finished", "failed")
OUTPUT_SUFFIXES = (".png", ".jpg", ".mask.png")


class BatchRefused(Exception):
    """A batch request the service will not run; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def allowed_dir(raw: Any, roots: tuple[Path, ...], name: str, must_exist: bool) -> Path:
    """``raw`` as a real directory path under one of ``roots``; ``..``, symlinks out and others: 403."""
    if not isinstance(raw, str) or not raw:
        raise BatchRefused(400, f"{name} must be a directory path")
    if ".." in Path(raw).parts:
        raise BatchRefused(403, f"{name} may not contain '..'")
    real = Path(os.path.realpath(raw))
    if not any(real == root or root in real.parents for root in (Path(os.path.realpath(r)) for r in roots)):
        raise BatchRefused(403, f"{name} {raw} is not under an allowed root (http.batch_roots)")
    if must_exist and not real.is_dir():
        raise BatchRefused(400, f"{name} {raw} is not a directory")
    return real


class BatchTasks(StoppableThread):
    """Submits, records, runs and reports batch tasks."""

    def __init__(self, state_dir: Path, context: Callable[[], JobContext | None], ignore: IgnoreRules) -> None:
        super().__init__("batch")
        self.dir = state_dir / "tasks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._context, self._ignore = context, ignore
        self._lock = threading.Lock()
        self._queue: deque[str] = deque(t["id"] for t in sorted(self._all(), key=lambda t: t["created"])
                                        if t["status"] not in FINISHED)  # unfinished tasks resume
        self._wake = threading.Event()

    def _all(self) -> list[dict]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in self.dir.glob("*.json")]

    def _save(self, task: dict) -> None:
        atomic_write(self.dir / f"{task['id']}.json", json.dumps(task, indent=1).encode())

    def get(self, task_id: str) -> dict | None:
        path = self.dir / f"{task_id}.json"
        if not task_id.isalnum() or not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def submit(self, input_dir: Path, output_dir: Path, profile: str) -> dict:
        task = {"id": uuid.uuid4().hex, "status": "submitted", "input_dir": str(input_dir),
                "output_dir": str(output_dir), "profile": profile, "created": time.time(),
                "finished_at": None, "done": [], "errors": {}}
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
        task["status"] = "running"
        self._save(task)
        src, out = Path(task["input_dir"]), Path(task["output_dir"])
        for path in walk_files(src):
            rel = path.relative_to(src)
            if self.stopped.is_set():
                return  # stays 'running'; the next start resumes it
            if self._ignore.ignored(rel) or str(rel) in task["done"] or str(rel) in task["errors"]:
                continue
            self._one(task, path, rel, out)
            self._save(task)
        task["status"] = "finished" if not task["errors"] else "failed"
        task["finished_at"] = time.time()
        self._save(task)
        log.info("batch_finished", task=task["id"], done=len(task["done"]), failed=len(task["errors"]))

    def _one(self, task: dict, path: Path, rel: Path, out: Path) -> None:
        ctx = self._context()
        try:
            profile = ctx.config.get_profile(task["profile"])
            rendered = ctx.render(read_source(path).data, profile, f"{task['id']}-{len(task['done'])}", str(rel))
            write_outputs(out, rel, rendered.files)
            task["done"].append(str(rel))
            log.info("batch_file_done", task=task["id"], file=str(rel))
        except (ImageError, OSError) as e:
            task["errors"][str(rel)] = str(e)
        except Deferred:
            raise
        except Exception as e:  # a model or pipeline failure: recorded for this file, never retried forever
            log.exception("batch_file_error", task=task["id"], file=str(rel))
            task["errors"][str(rel)] = f"{e.__class__.__name__}: {e}"

    def status(self, task: dict) -> dict:
        end = task["finished_at"] or time.time()
        body = {"task_id": task["id"], "status": task["status"], "done": len(task["done"]),
                "failed": len(task["errors"]), "errors": task["errors"],
                "elapsed_s": round(end - task["created"], 1)}
        if task["status"] in FINISHED:
            body["result_url"] = f"/download/{task['id']}.zip"
        return body

    def zip_path(self, task: dict) -> Path:
        """The task's outputs as one ZIP in the state directory (made once, then served as a file)."""
        target = self.dir / f"{task['id']}.zip"
        if not target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            out = Path(task["output_dir"])
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # PNG and JPEG: no recompressing
                for rel in task["done"]:
                    for suffix in OUTPUT_SUFFIXES:
                        produced = output_path(out, Path(rel), suffix)
                        if produced.is_file():
                            archive.write(produced, produced.relative_to(out))
            os.replace(tmp, target)
        return target

    def stop(self) -> None:
        super().stop()
        self._wake.set()
