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
SYSTEM_CONFIG = Path("/etc/unet-matting/unet-matting.yaml")
CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "etc" / "unet-matting.yaml"


def default_config() -> Path:
    """$UNET_MATTING_CONFIG, else the system config, else the checkout's etc/ (development)."""
    if env := os.environ.get("UNET_MATTING_CONFIG"):
        return Path(env)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() or not CHECKOUT_CONFIG.exists() else CHECKOUT_CONFIG


DEFAULT_CONFIG = default_config()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unet-matting", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"unet-matting {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = f"config file (default: $UNET_MATTING_CONFIG, {SYSTEM_CONFIG} or the checkout's etc/)"
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
    status = sub.add_parser("status", help="what the running daemon is doing")
    status.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=config_help)
    preview = sub.add_parser("preview", help="contact sheet: original | alpha | cut-out on checkerboard and white")
    preview.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=config_help)
    preview.add_argument("--profile", help="post-processing profile (default: the config's)")
    preview.add_argument("--model", type=Path, help="weights file (default: engine.model)")
    preview.add_argument("--out", type=Path, required=True, help="PNG to write")
    preview.add_argument("files", nargs="+", type=Path, metavar="FILE")
    evaluate = sub.add_parser("evaluate", help="score the model against reference masks")
    evaluate.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help=config_help)
    evaluate.add_argument("--images", type=Path, required=True, help="directory of photos")
    evaluate.add_argument("--masks", type=Path, required=True, help="8-bit masks with the same base names")
    evaluate.add_argument("--model", type=Path, help="weights file (default: engine.model)")
    evaluate.add_argument("--profile", help="post-processing profile (default: 'default', the raw matte)")
    evaluate.add_argument("--input-size", type=int, help="network input side (default: engine.input_size)")
    evaluate.add_argument("--sheet", type=Path, help="write a contact sheet PNG here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "watch":
            return _watch(args)
        if args.command == "process":
            from watcher.batch import run_process

            return run_process(args.config, args.inputs, args.out, args.profile, args.model)
        if args.command == "status":
            from watcher.status import run_status

            return run_status(args.config)
        if args.command == "preview":
            from watcher.preview import run_preview

            return run_preview(args.config, args.files, args.out, args.profile, args.model)
        if args.command == "evaluate":
            from watcher.evaluate import run_evaluate

            return run_evaluate(args.config, args.images, args.masks, args.model, args.profile, args.sheet,
                                args.input_size)
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
