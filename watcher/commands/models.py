"""``unet-matting models {list,pull,use,import,verify}``: the catalogue and ``engine.models_dir``."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from unet_matting.engine.catalogue import Entry, catalogue, entry_for_file, lookup
from unet_matting.engine.errors import ModelError
from unet_matting.watcher.commands.status import running_status
from unet_matting.watcher.config import Config, load_config
from unet_matting.watcher.durable import atomic_write
from unet_matting.watcher.errors import FetchError
from unet_matting.watcher.models.active import CONTROL_FILE, active_model, installed, named_model
from unet_matting.watcher.models.fetch import ProgressBar, checksum_problem, pull


def _models_dir(cfg: Config) -> Path:
    if cfg.engine.models_dir is None:
        raise ModelError("engine.models_dir is not set in the configuration; the models commands need it")
    return cfg.engine.models_dir


def _size(entry: Entry) -> str:
    return f"{entry.size / 1e6:.0f} MB" if entry.size else "?"


def run_list(config_path: Path) -> int:
    """The catalogue; ``*`` marks the model that runs (a running daemon's, else the one a start
    would load); quality is shown at the input side this host runs."""
    cfg = load_config(config_path)
    models_dir = cfg.engine.models_dir
    have = {e.name for e in installed(models_dir)}
    device = _device_type(cfg.engine.settings.device)
    running = running_status(cfg)
    try:
        chosen, problem = active_model(models_dir, cfg.engine.settings.model), None
    except ModelError as e:
        chosen, problem = None, str(e)
    runs = running["model"].split("@")[0] if running else (chosen.name if chosen and chosen.is_file() else None)
    print(
        f"{'':2s}{'name':26s} {'installed':9s} {'rank':>4s} {'size':>7s}  {'quality (IoU coco / ref @ input)':32s} "
        "licence"
    )
    for entry in catalogue().values():
        mark = "*" if entry.file == runs else " "
        state = "shipped" if not entry.sources else ("yes" if entry.name in have else "-")
        size = cfg.engine.settings.input_size or entry.preprocessing.size_on(device)  # the side that runs here
        figures = entry.quality_at(size)
        quality = " / ".join(f"{figures[s][0]:.2f}" if s in figures else "?" for s in ("coco-ccby", "u2net-reference"))
        print(
            f"{mark} {entry.name:26s} {state:9s} {entry.rank:4d} {_size(entry):>7s}  "
            f"{f'{quality} @{size}':32s} {entry.licence}"
        )
    print(_active_line(cfg, chosen, problem, running))
    return 0


def _device_type(configured: str) -> str:
    """The device a daemon with this setting runs on (``auto``: CUDA when torch sees a GPU)."""
    if configured != "auto":
        return configured
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _active_line(cfg: Config, chosen: Path | None, problem: str | None, running: dict | None) -> str:
    configured = f"engine.model: {cfg.engine.settings.model or 'auto'}"
    if running:
        line = f"running: {running['model']} (daemon pid {running['pid']}; {configured})"
        if chosen is not None and chosen.name != running["model"].split("@")[0]:
            line += f"; {chosen.name} is chosen" + ("" if chosen.is_file() else ", but it is not installed")
        return line + (f"; {problem}" if problem else "")
    if problem:
        return f"active: none loadable: {problem}"
    if not chosen.is_file():
        return f"active: {chosen.name} is chosen but not installed; a daemon would not start ({configured})"
    return f"active: {chosen.name} (* above; {configured})"


def run_pull(config_path: Path, name: str, timeout: float) -> int:
    cfg = load_config(config_path)
    entry = lookup(name)
    target = pull(entry, _models_dir(cfg), timeout, ProgressBar(name))
    print(f"installed {entry.name} as {target} (checksum verified; licence: {entry.licence})")
    return 0


def run_use(config_path: Path, name: str) -> int:
    cfg = load_config(config_path)
    models_dir = _models_dir(cfg)
    file = lookup(name).file if name in catalogue() else name
    if not named_model(models_dir, file).is_file():  # a path instead of a name: ModelError
        hint = f"; run: unet-matting models pull {name}" if name in catalogue() else ""
        raise ModelError(f"{file} is not installed in {models_dir}{hint}")
    models_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(models_dir / CONTROL_FILE, f"{file}\n".encode())
    print(f"active model: {file} (a running daemon switches to it within seconds)")
    return 0


def run_import(config_path: Path, source: Path, name: str | None) -> int:
    """Copy a model file into models_dir (as a catalogue model when ``name`` is given), verified."""
    from unet_matting.engine.session import open_model

    cfg = load_config(config_path)
    models_dir = _models_dir(cfg)
    if not source.is_file():
        raise ModelError(f"{source} is not a file")
    entry = lookup(name) if name else None
    if entry is not None and (entry.sha256 or entry.md5) and (problem := checksum_problem(source, entry)):
        raise ModelError(f"{source} is not {entry.name}: {problem}")
    target = models_dir / (entry.file if entry else source.name)
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=f".{target.name}.", suffix=source.suffix)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        try:
            _, info, _ = open_model(Path(tmp))  # refuses what the engine cannot run, before it is installed
        except ModelError as e:  # its message names the copy: name the operator's file instead
            raise ModelError(str(e).replace(tmp, str(source)).replace(Path(tmp).name, source.name)) from None
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"imported {source} as {target} ({info.arch}, sha256 {info.sha256[:12]})")
    return 0


def run_verify(config_path: Path) -> int:
    cfg = load_config(config_path)
    models_dir = _models_dir(cfg)
    bad = 0
    for entry in installed(models_dir):
        if not entry.sources:
            continue
        problem = checksum_problem(models_dir / entry.file, entry)
        bad += problem is not None
        print(f"{'BAD' if problem else 'ok'}  {entry.name}: {problem or 'checksum matches the catalogue'}")
    others = (
        sorted(
            p.name
            for p in models_dir.glob("*")
            if p.is_file() and not p.name.startswith(".") and p.name != CONTROL_FILE and entry_for_file(p) is None
        )
        if models_dir.is_dir()
        else []
    )
    for name in others:
        print(f"--  {name}: not in the catalogue (imported); nothing to check it against")
    print(f"{bad} model(s) do not match their checksum" if bad else "all catalogue models verified")
    return 1 if bad else 0


def run_models(args) -> int:
    """Dispatch ``models ACTION``; a fetch failure is one plain line and exit 1."""
    try:
        if args.action == "list":
            return run_list(args.config)
        if args.action == "pull":
            return run_pull(args.config, args.name, args.timeout)
        if args.action == "use":
            return run_use(args.config, args.name)
        if args.action == "import":
            return run_import(args.config, args.file, args.name)
        return run_verify(args.config)
    except FetchError as e:
        print(f"unet-matting: {e}", file=sys.stderr)
        return 1
