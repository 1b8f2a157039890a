"""``unet-matting check``: config, directories, permissions, model and device, one line a problem."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ModelError
from watcher.config import Config, load_config


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def directory_problems(cfg: Config) -> list[str]:
    """A missing directory is fine if the daemon can create it; an unwritable one is not."""
    problems = []
    for key in ("incoming", "output", "archive", "failed", "state"):
        path: Path = getattr(cfg.paths, key)
        where = f"paths.{key}: {path}"
        if path.exists() and not path.is_dir():
            problems.append(f"{where}: exists but is not a directory")
            continue
        probe = _nearest_existing(path)
        if not os.access(probe, os.W_OK | os.X_OK):
            problems.append(f"{where}: {probe} is not writable by uid {os.getuid()}")
    if cfg.logging.file is not None:
        probe = _nearest_existing(cfg.logging.file)
        if not os.access(probe, os.W_OK):
            problems.append(f"logging.file: {cfg.logging.file}: {probe} is not writable")
    return problems


def engine_problems(cfg: Config) -> list[str]:
    from engine.session import load_network, resolve_device

    problems = []
    try:
        resolve_device(cfg.engine.device)
    except ModelError as e:
        problems.append(f"engine.device: {e}")
    try:
        load_network(cfg.engine.model)
    except ModelError as e:
        problems.append(f"engine.model: {e}")
    return problems


def run_check(config_path: Path) -> int:
    """Exit 0 when all is well, 1 with one printed line per problem (config errors raise: 2)."""
    cfg = load_config(config_path)
    problems = directory_problems(cfg) + engine_problems(cfg)
    for line in problems:
        print(line)
    if not problems:
        print(f"ok: {cfg.source} (model {cfg.engine.model.name}, profile {cfg.profile}, "
              f"observer {cfg.watcher.observer})")
    return 1 if problems else 0
