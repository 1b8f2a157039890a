"""unet-matting models list/use/import/verify as an operator runs them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_cli import run


def models_config(make_config, tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    return make_config(engine={"model": "auto", "models_dir": str(models)}), models


def test_list_shows_the_fallback_active_when_nothing_is_pulled(make_config, tmp_path: Path) -> None:
    """With an empty models_dir, auto runs the shipped model and list says so; check warns about it."""
    config, _ = models_config(make_config, tmp_path)
    result = run("models", "list", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "active: u2netp-products.pth" in result.stdout
    assert any(line.startswith("  isnet-general-use ") and " - " in line for line in result.stdout.splitlines())
    check = run("check", "--config", str(config))
    assert "warning: only the small fallback model is installed" in check.stdout


def test_import_then_use_switches_the_active_model(make_config, tmp_path: Path, tiny_model: Path) -> None:
    """import copies a loadable file into models_dir; use names it in active_model, atomically."""
    config, models = models_config(make_config, tmp_path)
    imported = run("models", "import", str(tiny_model), "--config", str(config))
    assert imported.returncode == 0, imported.stderr
    assert (models / tiny_model.name).read_bytes() == tiny_model.read_bytes()
    used = run("models", "use", tiny_model.name, "--config", str(config))
    assert used.returncode == 0, used.stderr
    assert (models / "active_model").read_text() == f"{tiny_model.name}\n"
    assert f"active: {tiny_model.name}" in run("models", "list", "--config", str(config)).stdout
    assert sorted(p.name for p in models.iterdir()) == ["active_model", tiny_model.name]


def test_bad_requests_are_one_plain_sentence(make_config, tmp_path: Path) -> None:
    """Unknown or absent models and unloadable files are refused with one line, nothing installed."""
    config, models = models_config(make_config, tmp_path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a model")
    for args, message in [
        (("use", "isnet-general-use"), "is not installed"),
        (("use", "nonsense"), "nonsense.* is not installed"),
        (("pull", "nonsense"), "no model called 'nonsense' in the catalogue"),
        (("import", str(junk)), "not a loadable PyTorch checkpoint"),
        (("import", str(junk), "--as", "u2net"), "is not u2net: md5 is"),
    ]:
        result = run("models", *args, "--config", str(config))
        assert result.returncode == 1, (args, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert re.search(message, lines[0]), lines[0]
    assert not models.exists() or [p.name for p in models.iterdir()] == []


def test_verify_flags_a_damaged_model(make_config, tmp_path: Path) -> None:
    """verify recomputes each installed catalogue model's checksum; a damaged file fails it (exit 1)."""
    config, models = models_config(make_config, tmp_path)
    models.mkdir()
    (models / "u2net.onnx").write_bytes(b"damaged")
    result = run("models", "verify", "--config", str(config))
    assert result.returncode == 1
    assert "BAD  u2net: md5 is" in result.stdout


def test_use_works_for_the_shipped_fallback(make_config, tmp_path: Path, tiny_model: Path) -> None:
    """models use u2netp-products makes the shipped model active although it lives in the repository."""
    config, models = models_config(make_config, tmp_path)
    run("models", "import", str(tiny_model), "--config", str(config))
    assert run("models", "use", tiny_model.name, "--config", str(config)).returncode == 0
    used = run("models", "use", "u2netp-products", "--config", str(config))
    assert used.returncode == 0, used.stderr
    assert (models / "active_model").read_text() == "u2netp-products.pth\n"
    assert "active: u2netp-products.pth" in run("models", "list", "--config", str(config)).stdout
    escaped = run("models", "use", "../../etc/passwd", "--config", str(config))
    assert escaped.returncode == 1 and "which is not a file name in engine.models_dir" in escaped.stderr


def test_list_reports_what_a_running_daemon_runs(daemon, make_config, tmp_path: Path, tiny_model: Path) -> None:
    """With active_model naming a model that is not there, list says what the daemon really runs."""
    import shutil

    from tests.conftest import wait_for

    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(tiny_model, models / "first.pth")
    (models / "active_model").write_text("first.pth\n")
    d = daemon(engine={"model": "auto", "models_dir": str(models)})
    (models / "active_model").write_text("nonesuch.pth\n")
    wait_for(lambda: d.events("model_loading", model=str(models / "nonesuch.pth")) or d.events("model_load_failed"))
    listed = run("models", "list", "--config", str(d.config)).stdout
    assert re.search(
        r"^running: first\.pth@[0-9a-f]{12} \(daemon pid \d+; engine\.model: auto\); "
        r"nonesuch\.pth is chosen, but it is not installed$",
        listed,
        re.M,
    ), listed
    assert d.stop() == 0


def test_list_shows_quality_at_the_input_side_that_runs(make_config, tmp_path: Path) -> None:
    """On a CPU, IS-Net runs at 768 and list shows its 768 figures; on CUDA, the 1024 ones."""
    for device, figures in (("cpu", "0.75 / 0.94 @768"), ("cuda", "0.73 / 0.94 @1024")):
        config = make_config(
            engine={"model": "auto", "models_dir": str(tmp_path / "models"), "device": device, "input_size": None}
        )
        line = next(
            line
            for line in run("models", "list", "--config", str(config)).stdout.splitlines()
            if line[2:].startswith("isnet-general-use ")
        )
        assert figures in line, line


def test_import_of_random_bytes_names_the_users_file(make_config, tmp_path: Path) -> None:
    """A random .onnx is refused with a sentence naming the operator's file, not an internal temp copy."""
    config, models = models_config(make_config, tmp_path)
    junk = tmp_path / "random.onnx"
    junk.write_bytes(bytes(range(256)) * 64)
    result = run("models", "import", str(junk), "--config", str(config))
    assert result.returncode == 1 and str(junk) in result.stderr, result.stderr
    assert ".random.onnx." not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not models.exists() or not [p for p in models.iterdir() if p.name != "active_model"]
