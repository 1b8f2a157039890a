"""What a reload applies, in-process on parsed configs (the daemon's SIGHUP path, without a daemon)."""

from __future__ import annotations

from pathlib import Path

import structlog
import yaml

from tests.conftest import config_dict
from unet_matting.watcher.config import load_config_data
from unet_matting.watcher.reload import plan_reload


def parsed(tmp_path: Path, tiny_model: Path, **sections: dict):
    raw = yaml.safe_load(yaml.safe_dump(config_dict(tmp_path, tiny_model, **sections)))
    return load_config_data(raw, tmp_path / "unet-matting.yaml")


def test_settings_a_running_daemon_cannot_take_are_kept_and_named(tmp_path: Path, tiny_model: Path) -> None:
    """paths, the observer, workers, the queue and http.listen keep their old values, with a warning naming them;
    the profile, timings, the token file and batch roots apply at once."""
    old = parsed(tmp_path, tiny_model, http={"listen": "127.0.0.1:8081"})
    new = parsed(
        tmp_path / "other",
        tiny_model,
        profile="ecom_product",
        watcher={"observer": "polling", "workers": 7, "quiet_period_s": 9.0},
        http={
            "listen": "127.0.0.1:9999",
            "token_file": str(tmp_path / "token"),
            "batch_roots": [str(tmp_path / "shop")],
        },
        queue={"broker_url": "amqp://localhost:5672//"},
    )
    with structlog.testing.capture_logs() as logged:
        plan = plan_reload(old, new, local_model=True)
    applied = plan.config
    assert applied.paths == old.paths and applied.queue == old.queue
    assert (applied.watcher.observer, applied.watcher.workers, applied.watcher.quiet_period_s) == ("inotify", 2, 9.0)
    assert applied.http.listen == ("127.0.0.1", 8081) and applied.http.token_file == tmp_path / "token"
    assert applied.http.batch_roots == ((tmp_path / "shop").resolve(),) and applied.profile == "ecom_product"
    keys = [e["keys"] for e in logged if e["event"] == "reload_needs_restart"]
    assert keys == ["paths, watcher.observer", "queue", "http.listen"]
    assert plan.engine is None


def test_a_new_engine_waits_for_its_model_only_where_a_model_runs(tmp_path: Path, tiny_model: Path) -> None:
    """With a local model the new engine section applies once its model has loaded (the old one stays until
    then); in queue mode there is no model here and it applies at once."""
    old = parsed(tmp_path, tiny_model)
    new = parsed(tmp_path, tiny_model, engine={"input_size": 96})
    local = plan_reload(old, new, local_model=True)
    assert local.config.engine == old.engine and local.engine == new.engine
    remote = plan_reload(old, new, local_model=False)
    assert remote.config.engine == new.engine and remote.engine is None
