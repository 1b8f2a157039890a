"""The command line: --version without torch, process, check, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image

from tests.conftest import REPO
from tests.images import jpeg_bytes, product_rgb, write


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "unet_matting.watcher", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_version_does_not_import_torch() -> None:
    """--version answers without importing torch (or the engine)."""
    code = (
        "import sys\nfrom unet_matting.watcher.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0\nprint('torch' in sys.modules, 'unet_matting.engine.session' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    version, imported = out.stdout.splitlines()
    assert version.startswith("unet-matting ") and imported == "False False"


def test_operator_commands_without_a_model_do_not_import_torch(make_config) -> None:
    """status and models list read state and configuration only: torch, numpy and scipy stay unloaded."""
    config = make_config()
    for argv in (["status", "--config", str(config)], ["models", "list", "--config", str(config)]):
        code = (
            "import sys\nfrom unet_matting.watcher.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('torch', 'numpy', 'scipy') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO)
        assert out.stdout.splitlines()[-1] == "[]", (argv, out.stdout, out.stderr)


def test_process_writes_outputs_and_fails_after_the_rest(make_config, tmp_path: Path) -> None:
    """process handles files and directories, mirrors subfolders, and exits 1 if any failed."""
    config = make_config()
    src = tmp_path / "src"
    write(src / "a.jpg", jpeg_bytes(product_rgb(120, 80)))
    write(src / "sub" / "b.jpg", jpeg_bytes())
    write(src / "sub" / "broken.jpg", b"nope")
    write(src / ".hidden.jpg", jpeg_bytes())
    single = write(tmp_path / "single.jpg", jpeg_bytes())
    result = run("process", "--config", str(config), "--out", str(tmp_path / "out"), str(src), str(single))
    assert result.returncode == 1, result.stderr
    assert "FAILED" in result.stderr and "broken.jpg" in result.stderr
    outputs = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert outputs == ["a.png", "single.png", "sub/b.png"]
    assert Image.open(tmp_path / "out" / "a.png").size == (120, 80)
    assert (src / "a.jpg").exists(), "process must never move the user's files"


def test_process_matches_daemon_output(make_config, tmp_path: Path, daemon) -> None:
    """process and the daemon give byte-identical PNGs for the same input and profile."""
    data = jpeg_bytes(product_rgb(150, 100, seed=4))
    config = make_config()
    run("process", "--config", str(config), "--out", str(tmp_path / "cli"), str(write(tmp_path / "x.jpg", data)))
    d = daemon(config)
    write(d.path("incoming") / "x.jpg", data)
    from tests.conftest import wait_for

    wait_for(lambda: d.finished("done"))
    assert (tmp_path / "cli" / "x.png").read_bytes() == (d.path("output") / "x.png").read_bytes()
    assert d.stop() == 0


def test_process_unknown_profile_is_a_config_error(make_config, tmp_path: Path) -> None:
    """--profile with a bad name exits 2 and lists the valid profiles."""
    result = run("process", "--config", str(make_config()), "--profile", "fancy", "--out", str(tmp_path), str(tmp_path))
    assert result.returncode == 2
    assert "valid profiles: default, ecom_product, ecom_translucent, id_photo" in result.stderr


def test_process_with_explicit_model(make_config, tmp_path: Path, tiny_model: Path) -> None:
    """--model overrides engine.model; a missing file is a clear error, exit 1."""
    src = write(tmp_path / "a.jpg", jpeg_bytes())
    ok = run(
        "process", "--config", str(make_config()), "--model", str(tiny_model), "--out", str(tmp_path / "o"), str(src)
    )
    assert ok.returncode == 0 and (tmp_path / "o" / "a.png").exists()
    bad = run(
        "process",
        "--config",
        str(make_config()),
        "--model",
        str(tmp_path / "none.pth"),
        "--out",
        str(tmp_path / "o"),
        str(src),
    )
    assert bad.returncode == 1 and "cannot read model file" in bad.stderr


def test_check_ok_problems_and_config_error(make_config, tmp_path: Path) -> None:
    """check: 0 when fine, 1 with one line per problem, 2 on a configuration error."""
    config = make_config()
    ok = run("check", "--config", str(config))
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1].startswith("ok: ")
    data = yaml.safe_load(config.read_text())
    data["engine"]["model"] = str(tmp_path / "missing.pth")
    write(tmp_path / "blocker", b"")
    data["paths"]["archive"] = str(tmp_path / "blocker")
    config.write_text(yaml.safe_dump(data))
    problems = run("check", "--config", str(config))
    assert problems.returncode == 1
    lines = problems.stdout.splitlines()
    assert any(line.startswith("paths.archive:") and "not a directory" in line for line in lines)
    assert any(line.startswith("engine.model:") and "missing.pth" in line for line in lines)
    data["engine"]["device"] = "gpu"
    config.write_text(yaml.safe_dump(data))
    bad = run("check", "--config", str(config))
    assert bad.returncode == 2 and "engine.device: must be one of auto, cpu, cuda" in bad.stderr


def test_watch_with_bad_config_exits_2(tmp_path: Path) -> None:
    """The unit's RestartPreventExitStatus=2 relies on this exit code."""
    bad = write(tmp_path / "c.yaml", b"paths: {}\n")
    result = run("watch", "--config", str(bad))
    assert result.returncode == 2 and "paths.incoming: required" in result.stderr


def test_wording_for_operators(make_config, tmp_path: Path) -> None:
    """Top-level help is a plain sentence; process refuses a file as --out once, not per input."""
    helped = run("--help")
    assert "Turns completed product-photo uploads into transparent PNG cut-outs." in helped.stdout
    assert "``" not in helped.stdout and "prints and exits here" not in helped.stdout
    src = write(tmp_path / "a.jpg", jpeg_bytes())
    result = run("process", "--config", str(make_config()), "--out", str(src), str(src))
    assert result.returncode == 1
    assert result.stderr.strip() == f"unet-matting: --out {src} is a file; give a directory for the cut-outs"


def test_process_same_stem_later_input_wins_and_says_so(make_config, tmp_path: Path) -> None:
    """process: of dup.jpg and dup.png the later input makes dup.png, and its line names the one it replaced."""
    src = tmp_path / "src"
    first = write(src / "a" / "dup.jpg", jpeg_bytes(product_rgb(120, 80)))
    write(src / "a" / "dup.png", jpeg_bytes(product_rgb(90, 60)))  # a JPEG under .png decodes all the same
    result = run("process", "--config", str(make_config()), "--out", str(tmp_path / "out"), str(src))
    assert result.returncode == 0, result.stderr
    assert f"replaces the cut-out of {first}" in result.stdout.splitlines()[-1]
    assert Image.open(tmp_path / "out" / "a" / "dup.png").size == (90, 60)


def test_check_lists_every_tuned_setting_and_nothing_else(make_config, tmp_path: Path) -> None:
    """check notes the http.* settings that differ from the defaults (listen as host:port), and on the
    shipped config it notes no setting at all: engine.models_dir is a location, not a tuning."""
    config = make_config(http={"listen": "127.0.0.1:8081", "max_pending": 4, "request_timeout_s": 10})
    notes = [line for line in run("check", "--config", str(config)).stdout.splitlines() if " = " in line]
    assert "note: http.listen = 127.0.0.1:8081 (default null)" in notes
    assert "note: http.max_pending = 4 (default 16)" in notes
    assert "note: http.request_timeout_s = 10.0 (default 30.0)" in notes
    assert not [line for line in notes if "models_dir" in line or "token_file" in line]
    shipped = run("check", "--config", str(REPO / "etc" / "unet-matting.yaml"))
    assert shipped.returncode in (0, 1), shipped.stderr
    assert not [line for line in shipped.stdout.splitlines() if line.startswith("note: ") and " = " in line]
