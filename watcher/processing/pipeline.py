"""One file through the engine: read safely, decode, matte, compose, encode.

Shared by the daemon and ``unet-matting process`` so both give byte-identical output.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from unet_matting.engine.confidence import Confidence, score, signals, working
from unet_matting.engine.errors import ImageError
from unet_matting.engine.postprocess import cutout
from unet_matting.engine.profile import Profile
from unet_matting.engine.renditions import Drawn, draw
from unet_matting.engine.session import Session
from unet_matting.watcher.intake.completion import Signature
from unet_matting.watcher.processing import validation
from unet_matting.watcher.processing.imageio import decode, encode_jpeg, encode_png, encode_webp
from unet_matting.watcher.processing.manifest import MANIFEST_SUFFIX, file_entry, manifest_bytes


class NotARegularFile(ImageError):
    """The upload is a symlink, FIFO, device or directory: refused without following it."""


@dataclass(frozen=True)
class Source:
    data: bytes
    signature: Signature


@dataclass
class Rendered:
    """A finished cut-out: output files by suffix (the main one first, the manifest ``.json``
    last), and what the log reports."""

    files: dict[str, bytes]
    width: int
    height: int
    input_bytes: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: str = ""  # the model's label (file@hash)
    worker: str = ""  # the queue worker that made it ("" when made in this process)
    confidence: Confidence | None = None  # how far to trust it (engine/confidence.py)
    # (rule, sentence) of each broken marketplace rule; None when the profile has no rules
    validation: list[tuple[str, str]] | None = None

    @property
    def output_bytes(self) -> int:
        return sum(len(b) for b in self.files.values())

    @property
    def main(self) -> str:
        """The suffix of the set's main file (the profile's first rendition)."""
        return next(iter(self.files))


def read_source(path: Path) -> Source:
    """Read a whole upload without following symlinks; the signature is from the same fd."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotARegularFile("symbolic link; refusing to follow it") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"not a regular file (mode {stat.filemode(st.st_mode)})")
        chunks = []
        while chunk := os.read(fd, 1 << 22):
            chunks.append(chunk)
        return Source(b"".join(chunks), Signature.of(st))
    finally:
        os.close(fd)


def render(
    data: bytes, session: Session, profile: Profile, max_pixels: int, compress_level: int, source: str = "upload"
) -> Rendered:
    """Bytes of an upload -> its cut-out's set (renditions and manifest); ``source`` is the
    upload's path as the manifest names it. Raises ``ImageError`` for bad input."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    waits: list[float] = []  # seconds this stage's network passes waited behind other callers' batches

    def lap(stage: str) -> None:
        """The stage's time since the last lap; what its network passes waited for other callers'
        batches is not the stage's but ``queue``'s, so the stages still add up to the whole."""
        nonlocal clock
        now = time.perf_counter()
        wait = sum(waits)
        timings[stage] = round((now - clock - wait) * 1000, 1)
        if waits:
            timings["queue"] = round(timings.get("queue", 0.0) + wait * 1000, 1)
            waits.clear()
        clock = now

    image = decode(data, max_pixels)
    lap("decode")
    prepared = session.prepare(image.rgb)  # the photo resized once for both passes
    alpha = session.predict_prepared(prepared, *image.rgb.shape[:2], waits=waits)
    lap("inference")
    alpha = session.complete(image.rgb, alpha, profile.see_through, overwrite=True)  # the raw matte is not reused
    lap("backdrop")
    small = working(alpha)
    size = session.check_size
    check = None if size is None else session.predict_prepared(prepared, *small.shape, size=size, waits=waits)
    lap("check")  # the confidence score's second opinion: a forward pass at the check size
    judged = score(signals(small, check))
    lap("confidence")
    rgba = cutout(alpha, image.rgb, profile, image.alpha)
    lap("postprocess")
    drawn = draw(rgba, profile)
    lap("renditions")  # sizes, shadow, flat colours
    files: dict[str, bytes] = {}
    entries: dict[str, dict] = {}
    broken: list[tuple[str, str]] = []
    each: dict[str, float] = {}
    for one in drawn:
        began = time.perf_counter()
        files[one.rendition.suffix] = encoded = encode(one, compress_level)
        entries[one.rendition.suffix] = file_entry(one, encoded)
        broken += validation.failures(one, encoded)
        each[f"encode.{one.rendition.label}"] = round((time.perf_counter() - began) * 1000, 1)
    lap("encode")  # every file, its checksum and its rules
    if profile.renditions:
        timings.update(each)
    checked = broken if profile.validated else None
    files[MANIFEST_SUFFIX] = manifest_bytes(
        stem=Path(source).stem,
        source_path=source,
        source=data,
        source_size=image.size,
        model=session.info.label,
        profile=profile.name,
        confidence=judged,
        files=entries,
        validation=None if checked is None else validation.summary(checked),
        timings_ms=dict(timings),
    )
    width, height = image.size
    return Rendered(files, width, height, len(data), timings, session.info.label, confidence=judged, validation=checked)


def encode(drawn: Drawn, compress_level: int) -> bytes:
    """A rendition's file bytes in its format."""
    rendition = drawn.rendition
    if rendition.format in ("png", "mask"):
        return encode_png(drawn.pixels, compress_level)
    if rendition.format == "webp":
        return encode_webp(drawn.pixels, rendition.quality)
    return encode_jpeg(drawn.pixels, rendition.quality)
