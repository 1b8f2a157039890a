"""Issue 22 through the daemon: doubtful cut-outs are held in paths.review, never published unseen;
decisions from the CLI publish them whole; held items survive restarts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import DaemonProcess, save_print_model, wait_for
from tests.images import jpeg_bytes
from tests.test_cli import run


def red_square_on_white(side: int = 320) -> np.ndarray:
    """What the hand-set print model sees crisply: a confident, clean cut-out."""
    rgb = np.full((side, side, 3), 250, np.uint8)
    rgb[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = (200, 30, 30)
    return rgb


def test_a_doubtful_cut_out_is_held_survives_a_restart_and_is_published_on_approval(daemon, tmp_path: Path) -> None:
    # the random tiny model's flat grey matte is the doubtful case: a wide unsure region
    d: DaemonProcess = daemon(profile="ecom_product")
    (d.path("incoming") / "shop-a").mkdir(parents=True)
    (d.path("incoming") / "shop-a" / "mug.jpg").write_bytes(jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    line = d.finished("done")[0]
    assert line["held"] is True and line["review"] == "shop-a/mug"
    assert line["confidence"] < 0.55 and "large unsure region" in line["reasons"]
    assert "confidence" in line["stages_ms"]
    assert d.events("model_loaded")[0]["precision"] in ("fp32", "bf16")  # engine.precision auto on a CPU
    held = d.path("review") / "shop-a"
    record = json.loads((held / "mug.review.json").read_text())
    assert record["score"] == line["confidence"] and record["profile"] == "ecom_product"
    assert record["source"]["name"] == "mug.jpg" and len(record["source"]["sha256"]) == 64
    assert record["archived_as"] == "shop-a/mug.jpg"
    assert (held / "mug.png").exists() and (held / "mug.jpg").exists()
    assert not (d.path("output") / "shop-a" / "mug.png").exists()  # nothing public
    assert (d.path("archive") / "shop-a" / "mug.jpg").exists()  # the original is archived as usual
    png = (held / "mug.png").read_bytes()
    assert d.stop() == 0

    d.start()  # held items survive restarts
    listed = run("review", "list", "--config", str(d.config))
    assert listed.returncode == 0 and listed.stdout.startswith("shop-a/mug\tscore ")
    approved = run("review", "approve", "shop-a/mug", "--config", str(d.config))
    assert approved.returncode == 0, approved.stderr
    assert (d.path("output") / "shop-a" / "mug.png").read_bytes() == png
    assert (d.path("output") / "shop-a" / "mug.jpg").exists()
    assert not (held / "mug.review.json").exists() and not (held / "mug.png").exists()
    again = run("review", "approve", "shop-a/mug", "--config", str(d.config))
    assert again.returncode == 1
    assert again.stderr.strip() == "unet-matting: shop-a/mug is no longer held; it was decided already"
    wait_for(lambda: d.events("review_decision", decision="approve", by="cli"))
    assert d.stop() == 0


def test_a_confident_cut_out_is_published_and_a_stale_held_one_of_its_stem_goes(daemon, tmp_path: Path) -> None:
    d: DaemonProcess = daemon(profile="ecom_product")
    (d.path("incoming") / "mug.jpg").write_bytes(jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    assert d.finished("done")[0]["held"] is True
    assert d.stop() == 0

    # a better photo of the same product, through a model that sees it crisply
    model = save_print_model(tmp_path / "print-u2netp.pth")
    cfg = json.loads(json.dumps(d.cfg))
    cfg["engine"].update(model=str(model), input_size=320)
    d.config.write_text(json.dumps(cfg))
    d2 = DaemonProcess(d.config).start()
    try:
        (d2.path("incoming") / "mug.png").write_bytes(_png(red_square_on_white()))
        wait_for(lambda: len(d2.finished("done")) >= 2)
        line = d2.finished("done")[-1]
        assert line["held"] is False and line["confidence"] >= 0.55, line  # ecom_product review_below
        assert line["replaced_held"] == "mug"
        assert (d2.path("output") / "mug.png").exists()
        assert not (d2.path("review") / "mug.review.json").exists()
        assert not (d2.path("review") / "mug.png").exists()
        assert d2.stop() == 0
    finally:
        if d2.proc.poll() is None:
            d2.kill9()


def test_reject_and_retry_from_the_cli(daemon, tmp_path: Path) -> None:
    d: DaemonProcess = daemon(profile="ecom_product")
    for name in ("a.jpg", "b.jpg"):
        (d.path("incoming") / name).write_bytes(jpeg_bytes())
    wait_for(lambda: len(d.finished("done")) == 2)
    assert d.stop() == 0
    rejected = run("review", "reject", "a", "--reason", "the fork is kept", "--config", str(d.config))
    assert rejected.returncode == 0, rejected.stderr
    report = json.loads((d.path("failed") / "a.png.error.json").read_text())
    assert report["reason"] == "rejected in review: the fork is kept" and report["by"] == "cli"
    retried = run("review", "retry", "b", "--profile", "default", "--config", str(d.config))
    assert retried.returncode == 0, retried.stderr
    assert "retried b with profile default: held again" in retried.stdout
    record = json.loads((d.path("review") / "b.review.json").read_text())
    assert record["profile"] == "default" and record["retried_by"] == "cli"
    assert not (d.path("review") / "b.jpg").exists()  # default writes no JPEG: the earlier one is gone
    bad = run("review", "approve", "../etc/passwd", "--config", str(d.config))
    assert bad.returncode == 1 and "is not a held item's id" in bad.stderr and "Traceback" not in bad.stderr


def _png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()
