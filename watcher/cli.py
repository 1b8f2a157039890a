"""Command line: ``unet-matting {watch,process,check}``; the one place that prints and exits.

Heavy modules (torch, the engine) are imported inside the commands, so ``--version`` and
``--help`` stay instant and work without torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.errors import ConfigError, UnetMattingError
from watcher import __version__

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CONFIG = os.environ.get("UNET_MATTING_CONFIG", "/etc/unet-matting/unet-matting.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unet-matting", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"unet-matting {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = f"config file (default: $UNET_MATTING_CONFIG or {DEFAULT_CONFIG})"
    watch = sub.add_parser("watch", help="run the ingestion daemon in the foreground")
    watch.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=config_help)
    process = sub.add_parser("process", help="cut out files or directories once, then exit")
    process.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=config_help)
    process.add_argument("--profile", help="post-processing profile (default: the config's)")
    process.add_argument("--model", type=Path, help="weights file (default: engine.model)")
    process.add_argument("--out", type=Path, required=True, help="output directory")
    process.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    check = sub.add_parser("check", help="validate config, directories, model and device")
    check.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=config_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "watch":
            return _watch(args)
        if args.command == "process":
            from watcher.batch import run_process

            return run_process(args.config, args.inputs, args.out, args.profile, args.model)
        from watcher.doctor import run_check

        return run_check(args.config)
    except ConfigError as e:
        print(f"unet-matting: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except UnetMattingError as e:
        print(f"unet-matting: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _watch(args: argparse.Namespace) -> int:
    from watcher import logs
    from watcher.config import load_config
    from watcher.daemon import Daemon

    config = load_config(args.config)
    logs.configure(config.logging.level, config.logging.file, config.logging.console)
    return Daemon(args.config, config).run()
