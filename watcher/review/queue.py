"""Held cut-outs and the decisions on them: approve, reject, retry.

A held item is the output set a job would have published, written whole into
``paths.review/<sub>/`` under the names it would have in ``paths.output``, and its record
``<stem>.review.json`` (score, reasons, source, model, profile, time), written last: the record's
presence means the item is held. The item's id is ``<sub>/<stem>``.

Every change to an item happens under the item's lock (an ``flock`` in ``paths.state``, shared by
the daemon's jobs, its HTTP side and the ``review`` command), so two reviewers approving the same
item at once publish it once; the second is told it was decided already.

A decision is journalled (fsynced) before it acts, and its effects are ordered so that replaying
the journal (``recover``, at every start) finishes it: approve publishes the set into
``paths.output`` (``write_outputs``: staged, then renamed, the PNG last), then removes the record,
then the held files, then the journal. A kill at any point leaves the item held (nothing
published, or the same files published again on replay) or published, never half. A full disk
while publishing leaves the item held and the journal gone, with the reason.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from unet_matting.watcher.durable import atomic_write, fsync_dir
from unet_matting.watcher.errors import os_reason
from unet_matting.watcher.processing.output import (
    MANIFEST_SUFFIX,
    earlier_source,
    json_bytes,
    move_durably,
    output_path,
    quarantine,
    write_outputs,
)

if TYPE_CHECKING:
    from unet_matting.engine.profile import Profile
    from unet_matting.watcher.events import Events
    from unet_matting.watcher.processing.pipeline import Rendered
    from unet_matting.watcher.processing.runner import JobContext

log = structlog.get_logger(__name__)

RECORD = ".review.json"
DECISIONS = ("approve", "reject", "retry")


class ReviewError(Exception):
    """A decision that cannot be carried out; the message is one sentence for the reviewer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status it answers with


@dataclass(frozen=True)
class Held:
    """One held item: its id, where its record lies, and the record."""

    id: str
    record_path: Path
    record: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.record_path.parent

    def file(self, suffix: str) -> Path:
        return self.folder / self.record["files"][suffix]

    @property
    def main(self) -> str:
        """The suffix of the set's main file (its profile's first rendition; ``.png`` today)."""
        return next(iter(self.record["files"]))

    @property
    def upload(self) -> Path:
        """The upload's path under incoming (``shop-a/mug.jpg``)."""
        return Path(self.record["file"])


def item_id(relative: Path) -> str:
    """The id of the item an upload ``<sub>/<name>`` is held as: ``<sub>/<stem>``."""
    return (relative.parent / relative.stem).as_posix()


def _digest(item: str) -> str:
    return hashlib.sha256(item.encode()).hexdigest()[:32]


class ReviewQueue:
    """The held items under ``root`` (``paths.review``); locks and journal under ``state``."""

    def __init__(
        self,
        root: Path,
        output: Path,
        failed: Path,
        state: Path,
        counted: Callable[[str], None] | None = None,
        events: Events | None = None,
    ) -> None:
        self.root, self.output, self.failed, self.state = root, output, failed, state
        self._locks = state / "review-locks"
        self._journal = state / "review-journal"
        self._counted = counted  # called with each decision carried out (metrics)
        self._events = events  # approvals and rejections are told to the shop's systems

    @classmethod
    def of(cls, paths, counted: Callable[[str], None] | None = None, events: Events | None = None) -> ReviewQueue:
        return cls(paths.review, paths.output, paths.failed, paths.state, counted, events)

    # ---- holding (the daemon's jobs) ----------------------------------------------------------

    def hold(self, relative: Path, files: dict[str, bytes], record: dict[str, Any]) -> Held:
        """Hold a job's output set (suffix -> bytes) for ``relative`` (the upload under incoming),
        replacing a held item of the same stem; the record is written last."""
        item = item_id(relative)
        with self._locked(item):
            earlier = self._read(item)
            write_outputs(self.root, relative, files)
            names = {suffix: output_path(self.root, relative, suffix).name for suffix in files}
            full = {"id": item, "file": relative.as_posix(), "files": names, **record}
            record_path = self._record_path(item)
            atomic_write(record_path, json_bytes(full))
            if earlier is not None:  # files the earlier version had and this one has not
                for name in set(earlier.record["files"].values()) - set(names.values()):
                    (record_path.parent / name).unlink(missing_ok=True)
            return Held(item, record_path, full)

    def note(self, item: str, **fields: Any) -> None:
        """Add ``fields`` to a held item's record (the archived original's name, after archiving)."""
        with self._locked(item):
            held = self._read(item)
            if held is not None:
                atomic_write(held.record_path, json_bytes({**held.record, **fields}))

    def discard(self, relative: Path) -> bool:
        """A newer cut-out of the same stem was published: the held one is stale; True if one was."""
        item = item_id(relative)
        with self._locked(item):
            held = self._read(item)
            if held is None:
                return False
            held.record_path.unlink()
            fsync_dir(held.folder)
            for suffix in held.record["files"]:
                held.file(suffix).unlink(missing_ok=True)
            return True

    # ---- reading ------------------------------------------------------------------------------

    def items(self) -> list[Held]:
        """Every held item, oldest first (by its record's time)."""
        found = []
        if not self.root.is_dir():
            return found
        for record_path in self.root.rglob("*" + RECORD):
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
                st = record_path.lstat()
            except (OSError, ValueError):  # decided meanwhile, or being replaced
                continue
            if stat.S_ISREG(st.st_mode) and isinstance(record, dict) and "id" in record:
                found.append((st.st_mtime_ns, Held(record["id"], record_path, record)))
        return [held for _, held in sorted(found, key=lambda pair: (pair[0], pair[1].id))]

    def count(self) -> int:
        return sum(1 for _ in self.root.rglob("*" + RECORD)) if self.root.is_dir() else 0

    def get(self, item: str) -> Held:
        held = self._read(self.checked(item))
        if held is None:
            raise ReviewError(f"no held item {item}; it may have been decided already", 404)
        return held

    def checked(self, item: str) -> str:
        """``item`` if it names a place inside the review folder without symlinks; else an error."""
        parts = item.split("/")
        if (
            not item
            or item.startswith("/")
            or "\0" in item
            or any(p in ("", ".", "..") for p in parts)
            or any(p.startswith(".") for p in parts)
        ):
            raise ReviewError(f"{item!r} is not a held item's id (like shop-a/mug)", 400)
        place = self.root
        for part in parts[:-1]:
            place = place / part
            if place.is_symlink():
                raise ReviewError(f"{item} lies behind a symbolic link in the review folder; refusing it", 400)
        record = place / (parts[-1] + RECORD)
        if record.is_symlink():
            raise ReviewError(f"{item} is a symbolic link in the review folder; refusing it", 400)
        return item

    # ---- decisions ----------------------------------------------------------------------------

    def approve(self, item: str, by: str) -> list[Path]:
        """Publish the held set into ``paths.output`` (and its event); returns the published
        files, the main one first, the manifest last."""
        item = self.checked(item)
        with self._locked(item):
            held = self._held(item)
            journal = self._write_journal(held, "approve", by)
            try:
                published = self._publish(held)
                self._tell_published(held, by)
            except OSError as e:
                journal.unlink(missing_ok=True)
                raise ReviewError(f"could not publish {item}, it stays held: {os_reason(e)}", 507) from None
            self._finish(held, journal)
        self._decided(held, "approve", by, output=str(published[0].relative_to(self.output)))
        return published

    def reject(self, item: str, by: str, reason: str = "") -> Path:
        """Move the held cut-out to ``paths.failed`` with ``rejected in review`` and ``reason``."""
        item = self.checked(item)
        with self._locked(item):
            held = self._held(item)
            journal = self._write_journal(held, "reject", by, reason=reason)
            target = self._move_to_failed(held, by, reason)
            self._tell_rejected(held, by, reason, target)
            self._finish(held, journal)
        self._decided(held, "reject", by, reason=reason, quarantined_as=str(target.relative_to(self.failed)))
        return target

    def retry(self, item: str, by: str, rerender: Callable[[Held], tuple[dict[str, bytes], dict[str, Any]]]) -> Held:
        """Re-render from the archived original (``rerender``: the held item -> files, record
        fields) and hold the result again, replacing the item."""
        item = self.checked(item)
        held = self.get(item)
        files, record = rerender(held)
        keep = {k: held.record[k] for k in ("source", "archived_as") if k in held.record}
        again = self.hold(held.upload, files, {**record, **keep, "retried_by": by})
        self._decided(held, "retry", by, profile=record.get("profile"), model=record.get("model"))
        return again

    def recover(self) -> int:
        """Finish the decisions a crash interrupted (journal replay); returns how many."""
        if not self._journal.is_dir():
            return 0
        finished = 0
        for journal in sorted(self._journal.glob("*.json")):
            try:
                entry = json.loads(journal.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                journal.unlink(missing_ok=True)
                continue
            item = entry["id"]
            with self._locked(item):
                held = Held(item, Path(entry["record_path"]), entry["record"])
                if held.record_path.exists():  # not acted on, or acted on part-way: act again
                    if entry["decision"] == "approve":
                        self._publish(held)
                        self._tell_published(held, entry["by"])
                    else:
                        target = self._move_to_failed(held, entry["by"], entry.get("reason", ""))
                        self._tell_rejected(held, entry["by"], entry.get("reason", ""), target)
                self._finish(held, journal)
            log.info("review_decision_recovered", item=item, decision=entry["decision"], by=entry["by"])
            finished += 1
        return finished

    # ---- inside ------------------------------------------------------------------------------

    def _record_path(self, item: str) -> Path:
        return self.root / (item + RECORD)

    def _read(self, item: str) -> Held | None:
        path = self._record_path(item)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            raise ReviewError(f"the record of {item} cannot be read; see {path}", 500) from None
        return Held(item, path, record)

    def _held(self, item: str) -> Held:
        held = self._read(item)
        if held is None:
            raise ReviewError(f"{item} is no longer held; it was decided already", 409)
        return held

    def _publish(self, held: Held) -> list[Path]:
        files = {suffix: held.file(suffix).read_bytes() for suffix in held.record["files"]}
        return write_outputs(self.output, held.upload, files)

    def _tell_published(self, held: Held, by: str) -> None:
        """``output.published`` for an approved set (a set held before manifests existed: none)."""
        manifest = output_path(self.output, held.upload, MANIFEST_SUFFIX)
        if self._events is not None and MANIFEST_SUFFIX in held.record["files"] and manifest.exists():
            self._events.published(held.upload, manifest.read_bytes(), _about(held, "approve"), review=held.id, by=by)

    def _tell_rejected(self, held: Held, by: str, reason: str, target: Path) -> None:
        if self._events is not None:
            quarantined_as = str(target.relative_to(self.failed))
            self._events.rejected(held.upload, held.id, by, reason, quarantined_as, _about(held, "reject"))

    def _move_to_failed(self, held: Held, by: str, reason: str) -> Path:
        """The held set to ``paths.failed``, the report beside its main file (the PNG today)."""
        report = {
            "error": "Rejected",
            "reason": "rejected in review" + (f": {reason}" if reason else ""),
            "by": by,
            "score": held.record.get("score"),
            "reasons": held.record.get("reasons"),
            "source": held.record.get("source"),
            "model": held.record.get("model"),
            "profile": held.record.get("profile"),
        }
        main = held.file(held.main)
        sub = held.upload.parent
        target = self.failed / sub / main.name
        if main.exists():
            target = quarantine(main, self.failed, sub / main.name, report)
        for suffix, name in held.record["files"].items():
            if suffix != held.main and (held.folder / name).exists():
                move_durably(held.folder / name, self.failed, sub / name)
        return target

    def _finish(self, held: Held, journal: Path) -> None:
        """The record first (the item is no longer held), then its files, then the journal."""
        held.record_path.unlink(missing_ok=True)
        fsync_dir(held.folder)
        for suffix in held.record["files"]:
            held.file(suffix).unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        fsync_dir(journal.parent)

    def _write_journal(self, held: Held, decision: str, by: str, **more: Any) -> Path:
        journal = self._journal / (_digest(held.id) + ".json")
        entry = {
            "id": held.id,
            "decision": decision,
            "by": by,
            "record_path": str(held.record_path),
            "record": held.record,
            **more,
        }
        atomic_write(journal, json_bytes(entry))
        return journal

    def _decided(self, held: Held, decision: str, by: str, **more: Any) -> None:
        log.info("review_decision", item=held.id, decision=decision, by=by, score=held.record.get("score"), **more)
        if self._counted is not None:
            self._counted(decision)

    @contextmanager
    def _locked(self, item: str) -> Iterator[None]:
        self._locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._locks / (_digest(item) + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _about(held: Held, decision: str) -> str:
    """What a decision's event is about: the item as held then (a replayed decision: the same)."""
    return f"{held.id}\0{held.record.get('time')}\0{decision}"


def archived_original(held: Held, archive_root: Path) -> bytes:
    """The held item's upload as archived (its recorded name, else the newest archived file of
    its stem), checked against the recorded checksum."""
    named = held.record.get("archived_as")
    candidates = [archive_root / named] if named else []
    earlier = earlier_source(archive_root, held.upload)
    if earlier is not None:
        candidates.append(archive_root / earlier)
    wanted = held.record.get("source", {}).get("sha256")
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if wanted is None or hashlib.sha256(data).hexdigest() == wanted:
            return data
    raise ReviewError(f"the original of {held.id} is no longer in the archive; upload it again", 409)


def rerendering(ctx: JobContext, profile: Profile) -> Callable[[Held], tuple[dict[str, bytes], dict[str, Any]]]:
    """``retry``'s re-render: the archived original through ``ctx`` (a model and the config, as
    a job runs with them) with ``profile``."""

    def rerender(held: Held) -> tuple[dict[str, bytes], dict[str, Any]]:
        data = archived_original(held, ctx.config.paths.archive)
        rendered = ctx.render(data, profile, "review-retry", str(held.upload))
        return rendered.files, record_of(rendered, held.upload.name, data, profile.name)

    return rerender


def record_of(rendered: Rendered, source_name: str, data: bytes, profile: str) -> dict[str, Any]:
    """The record of a held cut-out made from the upload ``data`` named ``source_name``."""
    judged = rendered.confidence
    return record_for(
        judged.score if judged is not None else None,
        judged.reasons if judged is not None else (),
        source_name,
        hashlib.sha256(data).hexdigest(),
        rendered.model,
        profile,
        signals=judged.signals if judged is not None else {},
        width=rendered.width,
        height=rendered.height,
    )


def record_for(
    score: float | None,
    reasons: tuple[str, ...],
    source_name: str,
    source_sha256: str,
    model: str,
    profile: str,
    **more: Any,
) -> dict[str, Any]:
    """The fields of a held item's record that the job knows."""
    return {
        "score": score,
        "reasons": list(reasons),
        "source": {"name": source_name, "sha256": source_sha256},
        "model": model,
        "profile": profile,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **more,
    }
