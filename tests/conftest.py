"""Shared fixtures: a tiny random U²-Net-P, configs under tmp_path, a daemon subprocess."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from unet_matting.watcher.logs import PREFIX

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for servers the tests start: sshd, HTTP, RabbitMQ)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_log(path: Path) -> list[dict]:
    """The ``[UNET-MATTING]`` JSON lines of a log file (a daemon's or a queue worker's), as a log
    shipper reads them: a last line without its newline is still being written, and waits."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")[:-1]  # what follows the last newline is not a whole line yet
    return [json.loads(line.removeprefix(PREFIX)) for line in lines if line.startswith(PREFIX)]


def matching(lines: list[dict], name: str, **match: object) -> list[dict]:
    return [e for e in lines if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real full-disk setting: a tmpfs of ``size`` mounted on ``path`` (skips without root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def save_tiny_model(path: Path, seed: int = 0, matte_bias: float = 0.5) -> Path:
    """A randomly initialised U²-Net-P checkpoint at ``path``. Random weights give a flat matte of
    ~0.48; ``matte_bias`` is added to the fused logit so that the matte (~0.6 by default) counts as
    a product, and a large negative one makes a model that finds nothing (an empty matte)."""
    import torch

    from unet_matting.engine.u2net import build

    torch.manual_seed(seed)
    net = build("u2netp")
    with torch.no_grad():
        net.outconv.bias += matte_bias
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def save_print_model(path: Path) -> Path:
    """A hand-set U²-Net-P that sees only what is darker than a white product: printed art.

    Every weight is zero but one path: stage 1's input convolution makes f = relu(1.5 - mean of
    the normalised RGB) (0 on white, ~1.5 on a red print), stage 1d and side 1 pass f on, and the
    fusion gives sigmoid(10 (f - 0.75)). It is the network of issue 21 in miniature: a white box
    on white comes out as its logo, floating.
    """
    import torch

    from unet_matting.engine.u2net import build

    net = build("u2netp")
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.fill_(1.0 if name.split(".")[-2].startswith("bn") and name.endswith("weight") else 0.0)
        net.stage1.rebnconvin.conv_s1.weight[0, :, 1, 1] = -1 / 3
        net.stage1.rebnconvin.conv_s1.bias[0] = 1.5
        net.stage1d.rebnconvin.conv_s1.weight[0, 64, 1, 1] = 1.0  # the skip's channel 0: stage 1's f
        net.side1.weight[0, 0, 1, 1] = 1.0
        net.outconv.weight[0, 0, 0, 0] = 10.0
        net.outconv.bias[0] = -7.5
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def profiles_without_review(folder: Path) -> str:
    """The shipped profiles with every ``review_below`` off: for tests of what a profile makes,
    through a random model whose grey mattes the review queue would (rightly) hold."""
    profiles = yaml.safe_load((REPO / "etc" / "profiles.yaml").read_text())
    for values in profiles.values():
        values.pop("review_below", None)
    path = folder / "profiles-no-review.yaml"
    path.write_text(yaml.safe_dump(profiles))
    return str(path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised U²-Net-P checkpoint: the pipeline must not care which weights run."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny-u2netp.pth")


def config_dict(root: Path, model: Path, **sections: dict) -> dict:
    cfg = {
        "paths": {k: str(root / k) for k in ("incoming", "output", "archive", "failed", "state", "review")},
        "logging": {"file": str(root / "log" / "unet-matting.log"), "level": "info", "console": False},
        "watcher": {
            "observer": "inotify",
            "quiet_period_s": 0.3,
            "rescan_interval_s": 1.0,
            "polling_interval_s": 0.2,
            "decode_grace_s": 3.0,
            "max_attempts": 2,
        },
        "engine": {"model": str(model), "device": "cpu", "threads": 1, "input_size": 64},
        "output": {"png_compress_level": 1},
        "profiles_file": str(REPO / "etc" / "profiles.yaml"),
        "profile": "default",  # keeps the input canvas, so tests can assert sizes
    }
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(cfg.get(name), dict):
            cfg[name].update(values)
        else:
            cfg[name] = values
    return cfg


@pytest.fixture
def make_config(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    def make(**sections: dict) -> Path:
        path = tmp_path / "unet-matting.yaml"
        path.write_text(yaml.safe_dump(config_dict(tmp_path, tiny_model, **sections)))
        return path

    return make


class DaemonProcess:
    """``unet-matting watch`` as a real subprocess, with its JSON log parsed for assertions."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> None:
        self.config = config
        self.prefix = prefix  # e.g. setpriv dropping capabilities
        self.cfg = yaml.safe_load(config.read_text())
        self.root = Path(self.cfg["paths"]["incoming"]).parent
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def path(self, key: str) -> Path:
        return Path(self.cfg["paths"][key])

    def start(self, wait_ready: bool = True) -> DaemonProcess:
        command = [*self.prefix, sys.executable, "-m", "unet_matting.watcher", "watch", "--config", str(self.config)]
        self.proc = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if wait_ready:
            starts = len(self.events("daemon_ready"))
            wait_for(lambda: len(self.events("daemon_ready")) > starts or self.proc.poll() is not None, 60)
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
        return self

    def log_lines(self) -> list[dict]:
        return read_log(Path(self.cfg["logging"]["file"]))

    def events(self, name: str, **match: object) -> list[dict]:
        return matching(self.log_lines(), name, **match)

    def finished(self, outcome: str | None = None) -> list[dict]:
        return self.events("job_finished", **({"outcome": outcome} if outcome else {}))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.proc.stderr.close()
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stderr.close()


@pytest.fixture
def daemon(make_config: Callable[..., Path]) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(config: Path | None = None, env: dict[str, str] | None = None, **sections: dict) -> DaemonProcess:
        proc = DaemonProcess(config or make_config(**sections), env).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill9()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads of ours running; reset logging handlers after it."""
    before = set(threading.enumerate())
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_unet_matting_handler", False)]:
        root.removeHandler(handler)
        handler.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]
        ours = [
            t
            for t in set(threading.enumerate()) - before
            if t.is_alive() and (t.name.startswith(("worker-", "intake", "observer")))
        ]
        if not leaked and not ours:
            return
        time.sleep(0.05)
    pytest.fail(f"threads leaked: {[t.name for t in leaked + ours]}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)
