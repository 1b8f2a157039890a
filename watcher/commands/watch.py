"""``unet-matting watch``: configure logging once, then run the daemon until it is told to stop."""

from __future__ import annotations

from pathlib import Path

from unet_matting.watcher import logs
from unet_matting.watcher.config import load_config
from unet_matting.watcher.daemon import Daemon


def run_watch(config_path: Path) -> int:
    config = load_config(config_path)
    logs.configure(config.logging.level, config.logging.file, config.logging.console)
    return Daemon(config_path, config).run()
