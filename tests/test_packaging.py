"""The installed layout: one import package named after the project, every room of it packaged."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.conftest import REPO


def package_folders() -> set[str]:
    """Import names of the folders under watcher/ and engine/ that hold an __init__.py."""
    found = set()
    for top in ("watcher", "engine"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add(".".join(("unet_matting", *init.parent.relative_to(REPO).parts)))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    """A new room (a folder with __init__.py) that pyproject.toml does not list would be left out of the wheel."""
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(package_folders())


def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    """The built wheel holds unet_matting/ and its dist-info only: no generic 'watcher' or 'engine' names."""
    source = tmp_path / "src"  # a copy without build/ left-overs of earlier builds
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "var", "build", "runs", "*.egg-info", "__pycache__", "data"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("unet_matting-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"unet_matting"}
    assert "unet_matting/engine/catalogue.yaml" in names and "unet_matting/watcher/api/server.py" in names
    assert "unet_matting/__init__.py" not in names  # a namespace package: nothing to clobber
