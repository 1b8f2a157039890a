"""Command line: ``unet-matting {watch,process,check,status,preview,evaluate,models}``; prints and exits here.

Heavy modules (torch, the engine) are imported inside the commands, so ``--version`` and
``--help`` stay instant and work without torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from unet_matting.engine.errors import UnetMattingError
from unet_matting.engine.memory import keep_large_buffers
from unet_matting.watcher import __version__
from unet_matting.watcher.errors import ConfigError

DESCRIPTION = "Turns completed product-photo uploads into transparent PNG cut-outs."
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
SYSTEM_CONFIG = Path("/etc/unet-matting/unet-matting.yaml")
CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "etc" / "unet-matting.yaml"


def default_config() -> Path:
    """$UNET_MATTING_CONFIG, else the system config, else the checkout's etc/ (development)."""
    if env := os.environ.get("UNET_MATTING_CONFIG"):
        return Path(env)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() or not CHECKOUT_CONFIG.exists() else CHECKOUT_CONFIG


DEFAULT_CONFIG = default_config()


def _command(
    sub: argparse._SubParsersAction, name: str, help_text: str, engine: bool = False, profile: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand with --config, and --profile/--model when it runs the engine on files."""
    cmd = sub.add_parser(name, help=help_text)
    cmd.add_argument(
        "--config",
        type=Path,
        default=Path(DEFAULT_CONFIG),
        help=f"config file (default: $UNET_MATTING_CONFIG, {SYSTEM_CONFIG} or the checkout's etc/)",
    )
    if engine:
        cmd.add_argument(
            "--profile",
            default=profile,
            help=f"post-processing profile (default: {profile or 'the configured one, per folder'})",
        )
        cmd.add_argument("--model", type=Path, help="weights file (default: the active model)")
    return cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unet-matting", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"unet-matting {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _command(sub, "watch", "run the ingestion daemon in the foreground")
    process = _command(sub, "process", "cut out files or directories once, then exit", engine=True)
    process.add_argument("--out", type=Path, required=True, help="output directory")
    process.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    worker = _command(sub, "worker", "take matting jobs from the RabbitMQ queue (queue.broker_url)")
    worker.add_argument("--name", help="this worker's name in logs (default: worker); e.g. the GPU index")
    worker.add_argument("--threads", type=int, help="jobs at once (default: queue.worker_threads)")
    _command(sub, "check", "doctor: config, directories, disk, inotify, model and device")
    _command(sub, "status", "what the running daemon is doing")
    preview = _command(sub, "preview", "contact sheet: original | alpha | on checkerboard | on white", engine=True)
    preview.add_argument("--out", type=Path, required=True, help="PNG to write")
    preview.add_argument("files", nargs="+", type=Path, metavar="FILE")
    evaluate = _command(
        sub, "evaluate", "score the model against reference masks", engine=True, profile="default"
    )  # scores the raw matte unless a profile is named
    evaluate.add_argument("--images", type=Path, required=True, help="directory of photos")
    evaluate.add_argument("--masks", type=Path, required=True, help="8-bit masks with the same base names")
    evaluate.add_argument("--input-size", type=int, help="network input side (default: engine.input_size)")
    evaluate.add_argument("--sheet", type=Path, help="write a contact sheet PNG here")
    _models_parser(sub)
    _review_parser(sub)
    return parser


def _review_parser(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="cut-outs held for a person: list, show, approve, reject, retry")
    actions = review.add_subparsers(dest="action", required=True)
    _command(actions, "list", "the held items, oldest first")
    for name, text in (("show", "a held item's record"), ("approve", "publish held items into paths.output")):
        _command(actions, name, text).add_argument("items", nargs="+", metavar="ITEM", help="id like shop-a/mug")
    reject = _command(actions, "reject", "move held items to paths.failed ('rejected in review')")
    reject.add_argument("items", nargs="+", metavar="ITEM")
    reject.add_argument("--reason", default="", help="why, for the report beside it")
    retry = _command(actions, "retry", "re-render from the archived original and hold the result again", engine=True)
    retry.add_argument("items", nargs="+", metavar="ITEM")


def _models_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model catalogue: list, pull, use, import, verify")
    actions = models.add_subparsers(dest="action", required=True)
    _command(actions, "list", "known models, which are installed, which is active")
    _command(actions, "verify", "check installed models against the catalogue's checksums")
    pull = _command(actions, "pull", "download a catalogue model into engine.models_dir (resumable)")
    pull.add_argument("name")
    pull.add_argument("--timeout", type=float, default=10.0, help="seconds without data before giving up")
    use = _command(actions, "use", "make a model active (the daemon switches live)")
    use.add_argument("name", help="catalogue name or file name in engine.models_dir")
    imp = _command(actions, "import", "install a local model file (.pth or .onnx)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--as", dest="name", help="the catalogue model it is (its checksum is checked)")


def _run(args: argparse.Namespace) -> int:
    """Dispatch to the command's module, imported only now (torch stays out of --version)."""
    if args.command == "watch":
        from unet_matting.watcher.commands.watch import run_watch

        return run_watch(args.config)
    if args.command == "process":
        from unet_matting.watcher.commands.process import run_process

        return run_process(args.config, args.inputs, args.out, args.profile, args.model)
    if args.command == "worker":
        from unet_matting.watcher.remote.worker import run_worker

        return run_worker(args.config, args.name, args.threads)
    if args.command == "models":
        from unet_matting.watcher.commands.models import run_models

        return run_models(args)
    if args.command == "status":
        from unet_matting.watcher.commands.status import run_status

        return run_status(args.config)
    if args.command == "preview":
        from unet_matting.watcher.commands.preview import run_preview

        return run_preview(args.config, args.files, args.out, args.profile, args.model)
    if args.command == "evaluate":
        from unet_matting.watcher.commands.evaluate import run_evaluate

        return run_evaluate(args.config, args.images, args.masks, args.model, args.profile, args.sheet, args.input_size)
    if args.command == "review":
        from unet_matting.watcher.commands.review import run_review

        return run_review(
            args.config,
            args.action,
            getattr(args, "items", []),
            getattr(args, "reason", ""),
            getattr(args, "profile", None),
            getattr(args, "model", None),
        )
    from unet_matting.watcher.commands.check import run_check

    return run_check(args.config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_large_buffers()  # before any thread starts (torch's and ours): see engine/memory.py
    try:
        return _run(args)
    except ConfigError as e:
        print(f"unet-matting: configuration error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except UnetMattingError as e:
        print(f"unet-matting: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
