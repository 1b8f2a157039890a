"""A job's files: atomic output sets, archiving originals, quarantining failures.

Order of a job's effects: output renamed into place (and its directory fsynced) *before* the
original is moved to the archive. A crash between the two leaves the original in incoming, so the
job is redone and the output replaced by an identical file; nothing is lost or half-written.
A set's manifest (``<stem>.json``) is renamed in last: present, it means its whole set is.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from unet_matting.watcher.durable import TEMP_PREFIX, atomic_write, fsync_dir, stage


def output_path(output_root: Path, relative: Path, suffix: str = ".png") -> Path:
    """``<output>/<subdir>/<stem><suffix>`` for ``<incoming>/<subdir>/<name>``."""
    return output_root / relative.parent / (relative.stem + suffix)


MANIFEST_SUFFIX = ".json"


def write_outputs(output_root: Path, relative: Path, files: dict[str, bytes]) -> list[Path]:
    """Write a job's output set whole or not at all; returns the targets in ``files``' order.

    Every file is first written in full to a temp file (where a full disk fails); only when all
    are on disk are they renamed into place, the manifest last, so its presence means 'all
    done'. Files the replaced set's manifest named and this set has not are then removed (a
    profile that dropped a rendition leaves no stale file behind).
    """
    ordered = sorted(files.items(), key=lambda item: item[0] == MANIFEST_SUFFIX)
    earlier = earlier_set(output_path(output_root, relative, MANIFEST_SUFFIX))
    staged: list[tuple[Path, Path]] = []
    try:
        for suffix, data in ordered:
            target = output_path(output_root, relative, suffix)
            staged.append((stage(target, data), target))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        os.replace(tmp, target)
    written = {target.name for _, target in staged}
    for name in earlier - written:
        (output_path(output_root, relative).parent / name).unlink(missing_ok=True)
    for directory in {target.parent for _, target in staged}:
        fsync_dir(directory)
    by_suffix = {suffix: target for (suffix, _), (_, target) in zip(ordered, staged, strict=True)}
    return [by_suffix[suffix] for suffix in files]


def earlier_set(manifest: Path) -> set[str]:
    """The file names the manifest of a set already in place lists (beside it, of its stem);
    none when there is no manifest or it cannot be read: then nothing is removed."""
    try:
        files = json.loads(manifest.read_bytes()).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    stem = manifest.name.removesuffix(MANIFEST_SUFFIX)
    if not isinstance(files, dict):
        return set()
    return {n for n in files if isinstance(n, str) and n.startswith(stem + ".") and "/" not in n and "\0" not in n}


def earlier_source(archive_root: Path, relative: Path) -> Path | None:
    """The archived upload whose cut-out ``relative``'s output replaces, if one is there.

    Uploads of one stem share an output (``dup.jpg`` and later ``dup.png`` both make
    ``dup.png``): the later one is a new version of the same product. The earlier source is the
    last archived file of that stem, under its own name or a dated one (``unique_path``).
    """
    folder = archive_root / relative.parent
    if not folder.is_dir():
        return None
    pattern = re.compile(re.escape(relative.stem) + r"(\.\d{8}T\d{6}Z(-\d+)?)?\.[^.]+")
    found = []
    for p in folder.iterdir():
        if pattern.fullmatch(p.name) and p.is_file():
            found.append((p.stat().st_ctime_ns, p))
    return max(found)[1].relative_to(archive_root) if found else None


def unique_path(target: Path) -> Path:
    """``target`` if free, else ``<stem>.<UTC time>[-n]<suffix>`` beside it."""
    if not os.path.lexists(target):
        return target
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1, 10_000):
        candidate = target.with_name(f"{target.stem}.{stamp}{'' if n == 1 else f'-{n}'}{target.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(target))


def move_durably(source: Path, target_dir_root: Path, relative: Path) -> Path:
    """Move ``source`` to ``<root>/<relative>`` (a fresh name if taken); never overwrites.

    A rename on one filesystem; across filesystems a copy, fsync, then unlink of the source.
    """
    target = unique_path(target_dir_root / relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        _copy_across(source, target)
    fsync_dir(target.parent)
    fsync_dir(source.parent)
    return target


def _copy_across(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, tmp, follow_symlinks=False)
        os.link(tmp, target)  # fails rather than overwrite a file that appeared meanwhile
    finally:
        Path(tmp).unlink(missing_ok=True)
    source.unlink()


def quarantine(source: Path, failed_root: Path, relative: Path, reason: dict[str, Any]) -> Path:
    """Move ``source`` under ``failed_root`` and write ``<name>.error.json`` beside it."""
    target = move_durably(source, failed_root, relative)
    report = {
        "file": str(relative),
        "quarantined_as": target.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **reason,
    }
    atomic_write(target.with_name(target.name + ".error.json"), json_bytes(report))
    return target


def json_bytes(value: dict[str, Any]) -> bytes:
    """A report or record as the files beside outputs hold it: indented UTF-8 JSON, one newline;
    file names that are not UTF-8 kept byte for byte."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode("utf-8", "surrogateescape") + b"\n"
