"""``unet-matting process``: the daemon's engine and naming, once, over files and directories."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from unet_matting.engine.errors import ImageError, UnetMattingError
from unet_matting.watcher import logs
from unet_matting.watcher.config import load_config
from unet_matting.watcher.intake.completion import IgnoreRules
from unet_matting.watcher.intake.scanning import walk_files
from unet_matting.watcher.models.active import load_session
from unet_matting.watcher.processing.output import output_path, write_outputs
from unet_matting.watcher.processing.pipeline import read_source, render

log = structlog.get_logger(__name__)


def expand(inputs: list[Path], ignore: IgnoreRules) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to the input it came from) for files and directory trees."""
    for item in inputs:
        if item.is_dir():
            for path in walk_files(item):
                rel = path.relative_to(item)
                if not ignore.ignored(rel):
                    yield path, rel
        else:
            yield item, Path(item.name)


def same_stem_last(items: list[tuple[Path, Path]]) -> list[list[tuple[Path, Path, Path | None]]]:
    """Batches to run one after the other, so that of inputs sharing an output (``dup.jpg``,
    ``dup.png``) the later one wins, as a later upload does in the daemon; each later one names
    the input whose cut-out it replaces."""
    batches: list[list[tuple[Path, Path, Path | None]]] = []
    last: dict[Path, tuple[int, Path]] = {}  # output -> (batch index, source)
    for path, rel in items:
        key = output_path(Path(), rel)
        index = last[key][0] + 1 if key in last else 0
        if index == len(batches):
            batches.append([])
        batches[index].append((path, rel, last[key][1] if key in last else None))
        last[key] = (index, path)
    return batches


def run_process(config_path: Path, inputs: list[Path], out: Path, profile: str | None, model: Path | None) -> int:
    """Process every input, carry on past failures, exit 1 if any failed."""
    cfg = load_config(config_path)
    logs.configure("warning", None, console=True)
    if profile is not None:
        cfg.get_profile(profile)  # fail early, before the model loads, on an unknown name
    if out.exists() and not out.is_dir():
        raise UnetMattingError(f"--out {out} is a file; give a directory for the cut-outs")
    session = load_session(cfg.engine, model)

    def one(item: tuple[Path, Path, Path | None]) -> tuple[bool, str]:
        """Render and write one input: (succeeded, its line)."""
        path, rel, replaces = item
        started = time.perf_counter()
        try:
            chosen = cfg.get_profile(profile) if profile else cfg.profile_for(rel)
            rendered = render(
                read_source(path).data,
                session,
                chosen,
                cfg.engine.max_input_pixels,
                cfg.output.png_compress_level,
                rel.as_posix(),
            )
            target = write_outputs(out, rel, rendered.files)[0]
        except (ImageError, OSError) as e:
            return False, f"FAILED {path}: {e}"
        ms = (time.perf_counter() - started) * 1000
        note = f"; replaces the cut-out of {replaces}" if replaces else ""
        return True, f"ok {path} -> {target} ({rendered.width}x{rendered.height}, {ms:.0f} ms{note})"

    # As many files in flight as the daemon has workers: one decodes/encodes while another's
    # image is in the network (the session batches concurrent callers). Lines keep input order
    # within a batch; a later input of an already-seen stem comes in a later batch.
    failed = 0
    with ThreadPoolExecutor(cfg.watcher.workers, thread_name_prefix="process") as pool:
        for batch in same_stem_last(list(expand(inputs, IgnoreRules(cfg.watcher.ignore_patterns)))):
            for ok, line in pool.map(one, batch):
                failed += not ok
                print(line, file=sys.stdout if ok else sys.stderr)
    print(f"{failed} failed" if failed else "all inputs processed", file=sys.stderr)
    return 1 if failed else 0
