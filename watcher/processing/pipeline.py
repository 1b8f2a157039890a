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

import numpy as np

from unet_matting.engine.canvas import flatten
from unet_matting.engine.confidence import Confidence, score, signals, working
from unet_matting.engine.errors import ImageError
from unet_matting.engine.postprocess import cutout
from unet_matting.engine.profile import Profile
from unet_matting.engine.session import Session
from unet_matting.watcher.intake.completion import Signature
from unet_matting.watcher.processing.imageio import decode, encode_jpeg, encode_png


class NotARegularFile(ImageError):
    """The upload is a symlink, FIFO, device or directory: refused without following it."""


@dataclass(frozen=True)
class Source:
    data: bytes
    signature: Signature


@dataclass
class Rendered:
    """A finished cut-out: output files by suffix (".png" first), and what the log reports."""

    files: dict[str, bytes]
    width: int
    height: int
    input_bytes: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: str = ""  # the model's label (file@hash)
    worker: str = ""  # the queue worker that made it ("" when made in this process)
    confidence: Confidence | None = None  # how far to trust it (engine/confidence.py)

    @property
    def output_bytes(self) -> int:
        return sum(len(b) for b in self.files.values())


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


def render(data: bytes, session: Session, profile: Profile, max_pixels: int, compress_level: int) -> Rendered:
    """Bytes of an upload -> PNG bytes of its cut-out; raises ``ImageError`` for bad input."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round((now - clock) * 1000, 1)
        clock = now

    image = decode(data, max_pixels)
    lap("decode")
    prepared = session.prepare(image.rgb)  # the photo resized once for both passes
    alpha = session.predict_prepared(prepared, *image.rgb.shape[:2])
    lap("inference")
    alpha = session.complete(image.rgb, alpha, profile.see_through)
    lap("backdrop")
    small = working(alpha)
    size = session.check_size
    check = None if size is None else session.predict_prepared(prepared, *small.shape, size=size)
    lap("check")  # the confidence score's second opinion: a forward pass at the check size
    judged = score(signals(small, check))
    lap("confidence")
    rgba = cutout(alpha, image.rgb, profile, image.alpha)
    lap("postprocess")
    files = {".png": encode_png(rgba, compress_level)}
    if profile.flat_background is not None:
        files[".jpg"] = encode_jpeg(flatten(rgba, profile.flat_background), profile.flat_quality)
    if profile.write_mask:
        files[".mask.png"] = encode_png(np.ascontiguousarray(rgba[..., 3]), compress_level)
    lap("encode")
    width, height = image.size
    return Rendered(files, width, height, len(data), timings, session.info.label, confidence=judged)
