"""install.sh's system install, run for real under a throwaway root (--root, DESTDIR-style)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the system install needs root")]


def seed_root(root: Path) -> None:
    """A root with just the account databases that useradd --prefix needs."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc" / "gshadow").write_text("root:*::\n")
    for name in ("shadow", "gshadow"):
        (root / "etc" / name).chmod(0o640)


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(REPO / "install.sh"), "--root", str(root), "--no-apt", *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ids(root: Path, db: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split(":")[2]) for line in (root / "etc" / db).read_text().splitlines()}


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    seed_root(root)
    install(root)
    return root


def test_accounts_and_directories(installed: Path) -> None:
    """System user and groups exist; each directory has the documented owner and mode."""
    users, groups = ids(installed, "passwd"), ids(installed, "group")
    assert "unet-matting" in users and {"unet-matting", "sftpusers"} <= set(groups)
    assert "unet-matting" in (installed / "etc" / "group").read_text().split("sftpusers:")[1].split("\n")[0]
    expected = {
        "srv/unet-matting/incoming": (0o2770, "sftpusers"),
        "srv/unet-matting/output": (0o755, "unet-matting"),
        "srv/unet-matting/archive": (0o750, "unet-matting"),
        "srv/unet-matting/failed": (0o750, "unet-matting"),
        "var/lib/unet-matting": (0o750, "unet-matting"),
        "var/log/unet-matting": (0o750, "unet-matting"),
    }
    for rel, (mode, group) in expected.items():
        st = (installed / rel).stat()
        assert stat.S_IMODE(st.st_mode) == mode, rel
        assert st.st_uid == users["unet-matting"] and st.st_gid == groups[group], rel


def test_files_and_config(installed: Path) -> None:
    """Config points at the system paths, unit and logrotate file are in place, the venv runs the CLI."""
    cfg = yaml.safe_load((installed / "etc/unet-matting/unet-matting.yaml").read_text())
    assert cfg["paths"]["incoming"] == "/srv/unet-matting/incoming" and cfg["paths"]["state"] == "/var/lib/unet-matting"
    assert cfg["logging"] == {"file": "/var/log/unet-matting/unet-matting.log", "level": "info", "console": False}
    assert cfg["engine"]["model"] == "auto" and cfg["engine"]["models_dir"] == "/opt/unet-matting/models"
    assert (installed / "opt/unet-matting/models/u2netp-products.pth").is_file()  # the offline fallback
    assert (installed / "etc/unet-matting/profiles.yaml").read_text() == (REPO / "etc/profiles.yaml").read_text()
    unit = (installed / "etc/systemd/system/unet-matting.service").read_text()
    exec_start = "ExecStart=/opt/unet-matting/venv/bin/unet-matting watch --config /etc/unet-matting/unet-matting.yaml"
    assert exec_start in unit
    assert "/srv/unet-matting/incoming" in unit.split("ReadWritePaths=")[1].split("\n")[0]
    assert "/var/log/unet-matting/*.log" in (installed / "etc/logrotate.d/unet-matting").read_text()
    worker = (installed / "etc/systemd/system/unet-matting-worker@.service").read_text()  # enabled per GPU by hand
    assert (
        "ExecStart=/opt/unet-matting/venv/bin/unet-matting worker --config /etc/unet-matting/unet-matting.yaml "
        "--name %i"
    ) in worker
    script = installed / "opt/unet-matting/venv/bin/unet-matting"
    assert script.read_text().startswith("#!/opt/unet-matting/venv/bin/python")
    version = subprocess.run(
        [str(installed / "opt/unet-matting/venv/bin/python"), "-m", "unet_matting.watcher", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("unet-matting ")


def test_second_run_changes_nothing_and_keeps_edited_config(installed: Path) -> None:
    """Re-running changes no file; an edited config is kept and the new default goes beside it."""
    before = snapshot(installed)
    install(installed)
    assert snapshot(installed) == before
    config = installed / "etc/unet-matting/unet-matting.yaml"
    config.write_text(config.read_text().replace("quiet_period_s: 2.0", "quiet_period_s: 5.0"))
    result = install(installed)
    assert "quiet_period_s: 5.0" in config.read_text()
    assert "quiet_period_s: 2.0" in (config.parent / "unet-matting.yaml.dist").read_text()
    assert "kept your /etc/unet-matting/unet-matting.yaml" in result.stdout


def test_the_service_account_can_run_the_installed_venv(installed: Path, tmp_path: Path) -> None:
    """The venv is built on Debian's /usr/bin/python3, so an unprivileged account runs the daemon's
    check with the shipped model (a venv on root's pyenv Python gave 'Permission denied')."""
    import pwd

    cfg = (installed / "opt/unet-matting/venv/pyvenv.cfg").read_text()
    assert "home = /usr/bin" in cfg
    nobody = pwd.getpwnam("nobody")
    for parent in [installed, *installed.parents]:  # let the account reach the throwaway root
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)
    work = Path(tempfile.mkdtemp(prefix="unet-matting-svc-"))
    work.chmod(0o777)
    config = work / "cfg.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(work / k) for k in ("incoming", "output", "archive", "failed", "state")},
                "logging": {"file": None, "console": True},
                "engine": {"model": str(installed / "opt/unet-matting/models/u2netp-products.pth"), "device": "cpu"},
                "profiles_file": str(installed / "etc/unet-matting/profiles.yaml"),
            }
        )
    )
    config.chmod(0o644)
    python = installed / "opt/unet-matting/venv/bin/python"
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}",
            "--clear-groups",
            str(python),
            "-m",
            "unet_matting.watcher",
            "check",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    shutil.rmtree(work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok: {config}" in result.stdout and "note: model u2netp-products.pth@" in result.stdout


def test_uninstall_keeps_data_and_config(installed: Path) -> None:
    """--uninstall removes code, unit and logrotate file; data, config and logs stay."""
    (installed / "srv/unet-matting/archive/keep.jpg").write_bytes(b"original")
    install(installed, "--uninstall")
    assert not (installed / "opt/unet-matting").exists()
    assert not (installed / "etc/systemd/system/unet-matting.service").exists()
    assert not (installed / "etc/systemd/system/unet-matting-worker@.service").exists()
    assert not (installed / "etc/logrotate.d/unet-matting").exists()
    assert (installed / "srv/unet-matting/archive/keep.jpg").read_bytes() == b"original"
    assert (installed / "etc/unet-matting/unet-matting.yaml").exists()
