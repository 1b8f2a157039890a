"""Configuration parsing: typed, validated at the edge, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, config_dict
from unet_matting.watcher.config import load_config
from unet_matting.watcher.errors import ConfigError


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_default_resolves_under_var() -> None:
    """etc/unet-matting.yaml works from a checkout: its directories resolve under ./var/."""
    cfg = load_config(REPO / "etc" / "unet-matting.yaml")
    assert cfg.paths.incoming == REPO / "var" / "incoming"
    assert cfg.logging.file == REPO / "var" / "log" / "unet-matting.log"
    assert cfg.profile == "ecom_product" and set(cfg.profiles) >= {"default", "id_photo", "ecom_product"}
    assert cfg.engine.settings.model is None  # auto: the best installed model
    assert cfg.engine.models_dir == REPO / "var" / "models"
    assert cfg.engine.settings.backdrop == "auto"  # a studio backdrop completes the matte (issue 21)
    assert cfg.get_profile("ecom_translucent").see_through and not cfg.get_profile("ecom_product").see_through


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, tiny_model: Path) -> None:
    """A relative path means relative to the config file, not to the working directory."""
    data = config_dict(tmp_path, tiny_model)
    data["paths"]["incoming"] = "in"
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).paths.incoming == tmp_path / "sub" / "in"


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("watcher", "quiet_period_s", -1, r"watcher\.quiet_period_s: must be > 0, got -1"),
        ("watcher", "observer", "fanotify", r"watcher\.observer: must be one of inotify, polling"),
        ("watcher", "max_attempts", True, r"watcher\.max_attempts: expected int"),
        ("engine", "device", "tpu", r"engine\.device: must be one of auto, cpu, cuda"),
        ("engine", "input_size", 100, r"engine\.input_size: must be a multiple of 32"),
        ("engine", "backdrop", "on", r"engine\.backdrop: must be one of auto, off"),
        ("output", "png_compress_level", 12, r"output\.png_compress_level: must be 0\.\.9"),
        ("watcher", "quiet_perod_s", 2, r"watcher\.quiet_perod_s: unknown key"),
    ],
)
def test_bad_values_and_unknown_keys_name_the_key(
    tmp_path: Path, tiny_model: Path, section: str, key: str, value: object, message: str
) -> None:
    """Every invalid value or typo is an error naming its key path, never a silent default."""
    data = config_dict(tmp_path, tiny_model)
    data[section][key] = value
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, data))


def test_unknown_profile_lists_valid_ones(tmp_path: Path, tiny_model: Path) -> None:
    """A profile name that does not exist is an error listing the valid names."""
    data = config_dict(tmp_path, tiny_model)
    data["profile"] = "catalog"
    valid = "default, ecom_product, ecom_translucent, id_photo"
    with pytest.raises(ConfigError, match=f"unknown profile 'catalog'; valid profiles: {valid}"):
        load_config(write(tmp_path, data))
    cfg = load_config(write(tmp_path, config_dict(tmp_path, tiny_model)))
    with pytest.raises(ConfigError, match="valid profiles"):
        cfg.get_profile("nope")


def test_bad_profile_values_name_the_profile(tmp_path: Path, tiny_model: Path) -> None:
    """A profile file with a bad knob names the profile and the knob."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"ecom_product": {"erosion_kernel": 2}}))
    data = config_dict(tmp_path, tiny_model)
    data["profiles_file"] = str(profiles)
    with pytest.raises(ConfigError, match=r"profiles\.ecom_product: erosion_kernel must be 0 or an odd size"):
        load_config(write(tmp_path, data))


def test_nested_directories_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    """Output inside incoming would feed the daemon its own results: refused."""
    data = config_dict(tmp_path, tiny_model)
    data["paths"]["output"] = str(tmp_path / "incoming" / "out")
    with pytest.raises(ConfigError, match="lies inside"):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize("pair", [("output", "incoming"), ("state", "archive"), ("failed", "state")])
def test_equal_paths_are_refused(tmp_path: Path, tiny_model: Path, pair: tuple[str, str]) -> None:
    """Two of the five paths naming one directory (output == incoming would eat its own results) is an error."""
    data = config_dict(tmp_path, tiny_model)
    data["paths"][pair[0]] = data["paths"][pair[1]]
    with pytest.raises(
        ConfigError,
        match=f"paths.{pair[1]} and paths.{pair[0]} are the same directory|"
        f"paths.{pair[0]} and paths.{pair[1]} are the same directory",
    ):
        load_config(write(tmp_path, data))


def test_state_inside_another_path_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    """paths.state nested in incoming (its files would look like uploads) is refused too."""
    data = config_dict(tmp_path, tiny_model)
    data["paths"]["state"] = str(tmp_path / "incoming" / ".state")
    with pytest.raises(ConfigError, match=r"paths.state .* lies inside paths.incoming"):
        load_config(write(tmp_path, data))


def test_the_review_folder_is_apart_from_the_web_directory(tmp_path: Path, tiny_model: Path) -> None:
    """Held cut-outs must not be public: paths.review inside (or equal to) paths.output is refused;
    inside paths.state (private to the daemon) it may be, and that is where it goes when an older
    config has no paths.review."""
    data = config_dict(tmp_path, tiny_model)
    data["paths"]["review"] = str(tmp_path / "output" / "review")
    with pytest.raises(ConfigError, match=r"paths.review .* lies inside paths.output"):
        load_config(write(tmp_path, data))
    data["paths"]["review"] = data["paths"]["output"]
    with pytest.raises(ConfigError, match="same directory"):
        load_config(write(tmp_path, data))
    del data["paths"]["review"]
    assert load_config(write(tmp_path, data)).paths.review == tmp_path / "state" / "review"
    data["paths"]["review"] = str(tmp_path / "state" / "held")
    assert load_config(write(tmp_path, data)).paths.review == tmp_path / "state" / "held"


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    """Unparseable YAML and an absent file are configuration errors with the path."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("paths: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
