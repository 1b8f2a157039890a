"""``unet-matting check``: a doctor for the server, one line per finding.

Problems (exit 1): unwritable or missing-and-uncreatable directories, low disk, an inotify watch
limit too small for incoming's tree, a model that does not load, a device that is not there.
Notes (no effect on the exit code): the device in use, and every setting that differs from the
shipped defaults, so an operator sees at a glance what was tuned.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

from unet_matting.engine.errors import ModelError
from unet_matting.watcher.config import Config, load_config, load_config_data
from unet_matting.watcher.config.secrets import secret_file_problem
from unet_matting.watcher.models.active import active_model

MIN_FREE_BYTES = 2 * 1024**3
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# What the daemon does in each directory: list and read uploads and rename them away; write,
# rename and read back its own files elsewhere.
NEEDS = {
    "incoming": os.R_OK | os.W_OK | os.X_OK,
    "output": os.W_OK | os.X_OK,
    "archive": os.W_OK | os.X_OK,
    "failed": os.W_OK | os.X_OK,
    "state": os.R_OK | os.W_OK | os.X_OK,
    "review": os.R_OK | os.W_OK | os.X_OK,
}
_VERBS = ((os.R_OK, "listed"), (os.W_OK, "written"), (os.X_OK, "entered"))


def access_problem(where: str, path: Path, needed: int) -> str | None:
    """None when this process may do ``needed`` in ``path``; else what it may not, with owner and mode."""
    missing = [verb for bit, verb in _VERBS if needed & bit and not os.access(path, bit)]
    if not missing:
        return None
    st = path.stat()
    return (
        f"{where}: {path} (owner uid {st.st_uid}, gid {st.st_gid}, mode {stat.filemode(st.st_mode)}) "
        f"cannot be {' or '.join(missing)} by uid {os.geteuid()}"
    )


def directory_problems(cfg: Config) -> list[str]:
    """What the service could not do in its directories, checked as the account that runs check.

    A missing directory is fine if the daemon can create it.
    """
    problems = []
    for key, needed in NEEDS.items():
        path: Path = getattr(cfg.paths, key)
        where = f"paths.{key}"
        if path.exists() and not path.is_dir():
            problems.append(f"{where}: {path} exists but is not a directory")
            continue
        probe = path if path.exists() else _nearest_existing(path)
        problem = access_problem(where, probe, needed if probe == path else os.W_OK | os.X_OK)
        if problem:
            problems.append(problem)
    if cfg.logging.file is not None:
        probe = _nearest_existing(cfg.logging.file)
        problem = access_problem("logging.file", probe, os.W_OK if probe == cfg.logging.file else os.W_OK | os.X_OK)
        if problem:
            problems.append(problem)
    return problems


def disk_problems(cfg: Config, minimum: int = MIN_FREE_BYTES) -> list[str]:
    problems = []
    for key in ("output", "archive", "state"):
        path = _nearest_existing(getattr(cfg.paths, key))
        free = shutil.disk_usage(path).free
        if free < minimum:
            problems.append(
                f"paths.{key}: only {free / 1024**3:.1f} GiB free on {path} (want at least {minimum / 1024**3:.0f} GiB)"
            )
    return problems


def inotify_problems(cfg: Config, limit_file: Path = INOTIFY_LIMIT) -> list[str]:
    """Recursive inotify needs one watch per directory below incoming."""
    if cfg.watcher.observer != "inotify" or not cfg.paths.incoming.is_dir():
        return []
    try:
        limit = int(limit_file.read_text())
    except (OSError, ValueError):
        return []
    dirs = 1 + sum(len(d) for _, d, _ in os.walk(cfg.paths.incoming))
    if dirs * 2 > limit:
        return [
            f"watcher.observer: incoming has {dirs} directories, fs.inotify.max_user_watches is {limit}; "
            "raise it (sysctl fs.inotify.max_user_watches=524288) or use the polling observer"
        ]
    return []


def engine_findings(cfg: Config) -> tuple[list[str], list[str]]:
    from unet_matting.engine.catalogue import SHIPPED_MODEL
    from unet_matting.engine.onnx_runtime import OnnxRuntimeNetwork
    from unet_matting.engine.session import open_model, resolve_device
    from unet_matting.watcher.processing.processes import process_settings

    problems, notes = [], []
    device = None
    try:
        device = resolve_device(cfg.engine.settings.device)
        notes.append(f"note: device {device.type}" + (f" ({_gpu_name()})" if device.type == "cuda" else ""))
    except ModelError as e:
        problems.append(str(e))
    try:
        path = active_model(cfg.engine.models_dir, cfg.engine.settings.model)
        net, info, _ = open_model(path, cfg.engine.settings.threads)
        notes.append(f"note: model {info.label} ({info.arch})")
        if device is not None:
            notes.append(precision_note(cfg.engine.settings.precision, device, not isinstance(net, OnnxRuntimeNetwork)))
        if cfg.engine.processes:
            threads = process_settings(cfg.engine.settings, cfg.engine.processes).threads
            notes.append(
                f"note: {cfg.engine.processes} render processes with a copy of the model each, "
                f"{threads} thread{'s' if threads > 1 else ''} each (engine.processes)"
            )
        if path.resolve() == SHIPPED_MODEL.resolve():
            notes.append(
                "warning: only the small fallback model is installed; cut-outs of real photos "
                "need a strong one: unet-matting models pull isnet-general-use"
            )
    except ModelError as e:
        problems.append(f"engine.model: {e}")
    return problems, notes


def precision_note(choice: str, device, in_torch: bool) -> str:
    """What ``engine.precision`` means here (the load then checks it against fp32)."""
    from unet_matting.engine.precision import resolve

    try:
        resolved = resolve(choice, device, in_torch)
    except ValueError as e:
        return f"warning: {e}"
    checked = "; the load compares it with fp32 on a test image" if resolved != "fp32" else ""
    return f"note: precision {resolved} (engine.precision {choice}{checked})"


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


# Where things live, not how the service behaves: every install sets them (paths are not settings)
LOCATIONS = ("model", "models_dir", "file")


def config_diff(cfg: Config) -> list[str]:
    """Every setting that differs from the built-in defaults, each section of the config included
    (locations excluded: the paths, the log file, the model and its directory; the broker URL,
    which may hold a password, is reported by the queue line)."""
    minimal = {
        "paths": dataclasses.asdict(cfg.paths),
        "engine": {"model": str(cfg.engine.settings.model or "auto")},
        "profiles_file": str(cfg.source.parent / "unused"),
        "logging": {"file": None},
    }
    defaults = load_config_data(minimal, cfg.source, profiles=cfg.profiles)
    lines = []
    for section in ("watcher", "engine", "output", "logging", "http", "queue"):
        ours, theirs = _settings(getattr(cfg, section)), _settings(getattr(defaults, section))
        for key, value in ours.items():
            if key not in (*LOCATIONS, "broker_url") and value != theirs[key]:
                lines.append(f"note: {section}.{key} = {_shown(value)} (default {_shown(theirs[key])})")
    if cfg.profile != defaults.profile:
        lines.append(f"note: profile = {cfg.profile!r} (default {defaults.profile!r})")
    return lines


def _settings(section: object) -> dict:
    """A config section as key -> value, the engine's own settings flattened into ``engine.*``."""
    values = dataclasses.asdict(section)
    values.update(values.pop("settings", {}))
    if values.get("listen") is not None:  # http.listen as written: host:port
        values["listen"] = "{}:{}".format(*values["listen"])
    return values


def _shown(value: object) -> str:
    """A setting as the operator writes it in YAML: paths and strings bare, unset as null."""
    if value is None:
        return "null"
    if isinstance(value, Path | str):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


def token_problems(cfg: Config) -> list[str]:
    """The HTTP bearer token files and the events' secret files must be readable by the service
    and by nobody else (``watch`` refuses them otherwise)."""
    found = []
    for key in ("token_file", "reviewer_token_file"):
        path = getattr(cfg.http, key)
        if path is not None and (problem := secret_file_problem(path, f"http.{key}")):
            found.append(problem)
    for i, endpoint in enumerate(cfg.events.endpoints):  # the webhooks' signing secrets: the same rule
        if problem := secret_file_problem(endpoint.secret_file, f"events.endpoints[{i}].secret_file"):
            found.append(problem)
    return found


def queue_findings(cfg: Config) -> list[str]:
    """Queue mode: is the broker reachable, how many workers and jobs it has; a config file
    that others can read while the broker URL holds a password."""
    url = cfg.queue.broker_url
    if url is None:
        return []
    from kombu import Connection

    notes = []
    with Connection(url, connect_timeout=5) as conn:
        mode = cfg.source.stat().st_mode
        if conn.password and mode & 0o004:
            notes.append(
                f"warning: {cfg.source} (mode {stat.filemode(mode)}) is readable by every user and "
                f"queue.broker_url holds a password; chmod 640 it"
            )
        shown = conn.as_uri()  # the password masked
        try:
            conn.connect()
            _, ready, workers = conn.default_channel.queue_declare(cfg.queue.jobs, passive=True)
        except Exception as e:  # refused, unknown vhost, bad password, queue not declared yet
            reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            if "NOT_FOUND" in reason:
                return [
                    *notes,
                    f"note: queue: broker {shown} reachable; {cfg.queue.jobs} is declared when the "
                    f"watcher or a worker first connects",
                ]
            return [
                *notes,
                f"warning: queue: broker {shown} not reachable ({reason}); uploads will wait "
                f"in incoming until it answers",
            ]
    return [*notes, f"note: queue: broker {shown}, {workers} workers connected, {ready} jobs waiting for one"]


def run_check(config_path: Path) -> int:
    """Exit 0 when all is well, 1 with one printed line per problem (config errors raise: 2)."""
    cfg = load_config(config_path)
    engine_problems, notes = engine_findings(cfg)
    problems = (
        directory_problems(cfg) + disk_problems(cfg) + inotify_problems(cfg) + token_problems(cfg) + engine_problems
    )
    for line in problems + notes + queue_findings(cfg) + config_diff(cfg):
        print(line)
    if not problems:
        active = active_model(cfg.engine.models_dir, cfg.engine.settings.model)
        print(f"ok: {cfg.source} (model {active.name}, profile {cfg.profile}, observer {cfg.watcher.observer})")
    return 1 if problems else 0
