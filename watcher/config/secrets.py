"""Secrets read from files (the HTTP bearer token): readable by the service, by nobody else.

One rule for ``watch`` (which refuses to start or reload with a file others can read) and
``check`` (which reports it), so the two never disagree.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from unet_matting.watcher.errors import ConfigError


def secret_file_problem(path: Path, key: str) -> str | None:
    """Why ``path`` may not hold a secret (missing, unreadable, group/other permissions), or None."""
    try:
        st = path.stat()
    except OSError as e:
        return f"{key}: cannot read {path}: {e.strerror or e}"
    if st.st_mode & 0o077:
        return f"{key}: {path} (mode {stat.filemode(st.st_mode)}) is readable by others; chmod 600 it"
    if not os.access(path, os.R_OK):
        return f"{key}: {path} is not readable by uid {os.geteuid()}"
    return None


def read_secret(path: Path, key: str) -> str:
    """The secret in ``path`` (one line); a file others can read, unreadable or empty: ``ConfigError``."""
    if (problem := secret_file_problem(path, key)) is not None:
        raise ConfigError(problem)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{key}: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not secret:
        raise ConfigError(f"{key}: {path} is empty")
    return secret
