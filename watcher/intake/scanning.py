"""Walking a folder tree for uploads (start-up and periodic rescans, HTTP batches, ``process``),
with no dependency on the watchdog adapter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def walk_files(root: Path) -> Iterator[Path]:
    """Every non-directory entry below ``root``, hidden directories skipped, links not followed.

    A symlink to a directory is yielded as an entry (so it is refused like any symlink), never
    descended into; a ``root`` that is itself a symlink is yielded alone.
    """
    if root.is_symlink():
        yield root
        return
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        links = [d for d in dirnames if os.path.islink(os.path.join(directory, d))]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
        for name in sorted(filenames + links):
            yield Path(directory, name)
