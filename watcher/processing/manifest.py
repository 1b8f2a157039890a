"""``<stem>.json``: what a cut-out's set holds, for a CMS to read instead of guessing.

Written beside the set and made visible after every file it names (``output.write_outputs``),
so a manifest present means its whole set is in place; a later upload's manifest replaces it,
and the files only the earlier one named are removed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from unet_matting.watcher.processing.output import MANIFEST_SUFFIX, json_bytes

if TYPE_CHECKING:
    from unet_matting.engine.confidence import Confidence
    from unet_matting.engine.renditions import Drawn

__all__ = ["MANIFEST_SUFFIX", "file_entry", "manifest_bytes"]
VERSION = 1


def file_entry(drawn: Drawn, data: bytes) -> dict[str, Any]:
    return {
        "rendition": drawn.rendition.label,
        "format": drawn.rendition.format,
        "width": drawn.width,
        "height": drawn.height,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def manifest_bytes(
    *,
    stem: str,
    source_path: str,
    source: bytes,
    source_size: tuple[int, int],
    model: str,
    profile: str,
    confidence: Confidence | None,
    files: dict[str, dict[str, Any]],
    validation: dict | None,
    timings_ms: dict[str, float],
) -> bytes:
    """The manifest of one set; ``files`` maps each suffix to its ``file_entry``."""
    body: dict[str, Any] = {
        "version": VERSION,
        "source": {
            "name": source_path.rsplit("/", 1)[-1],
            "path": source_path,
            "sha256": hashlib.sha256(source).hexdigest(),
            "bytes": len(source),
            "width": source_size[0],
            "height": source_size[1],
        },
        "model": model,
        "profile": profile,
        "confidence": None if confidence is None else {"score": confidence.score, "reasons": list(confidence.reasons)},
        "files": {stem + suffix: entry for suffix, entry in files.items()},
    }
    if validation is not None:
        body["validation"] = validation
    body["timings_ms"] = timings_ms
    return json_bytes(body)
