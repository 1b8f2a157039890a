"""Issue 24: renditions, the manifest, marketplace rules and shadows."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageCms

from tests.conftest import config_dict, matching, read_log, small_tmpfs, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from unet_matting.engine.profile import Profile, Rendition, Rules, Shadow
from unet_matting.engine.renditions import draw
from unet_matting.engine.shadow import cast, shadow_layer
from unet_matting.watcher.config import load_config
from unet_matting.watcher.errors import ConfigError
from unet_matting.watcher.processing.output import write_outputs
from unet_matting.watcher.processing.pipeline import encode
from unet_matting.watcher.processing.validation import failures

WHITE = (255, 255, 255)
SHOP_SET = (
    Rendition("zoom", "png", 2000),
    Rendition("listing", "webp", 800, 85),
    Rendition("thumb", "webp", 300, 80),
    Rendition("marketplace", "jpeg", (1000, 1000), 90, WHITE),
    Rendition("alpha", "mask", 300),
)


def canvas(height: int, width: int, box: tuple[int, int, int, int], soft: bool = True) -> np.ndarray:
    """An RGBA canvas with an opaque red product in ``box`` (top, bottom, left, right)."""
    rgba = np.zeros((height, width, 4), np.uint8)
    top, bottom, left, right = box
    rgba[top:bottom, left:right] = (200, 30, 30, 255)
    if soft:  # a one-pixel soft rim, as a feathered cut-out has
        rgba[top - 1, left:right] = rgba[bottom, left:right] = (200, 30, 30, 128)
    return rgba


def pixels_of(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# ---- sizes and formats --------------------------------------------------------------------------


def test_each_rendition_has_its_size_and_format() -> None:
    rgba = canvas(2000, 2000, (100, 1900, 300, 1700))
    profile = Profile("shop", renditions=SHOP_SET)
    drawn = {d.rendition.name: d for d in draw(rgba, profile)}
    expected = {
        "zoom": ("PNG", "RGBA", (2000, 2000)),
        "listing": ("WEBP", "RGBA", (800, 800)),
        "thumb": ("WEBP", "RGBA", (300, 300)),
        "marketplace": ("JPEG", "RGB", (1000, 1000)),
        "alpha": ("PNG", "L", (300, 300)),
    }
    for name, (fmt, mode, size) in expected.items():
        im = pixels_of(encode(drawn[name], 1))
        assert (im.format, im.mode, im.size) == (fmt, mode, size), name
        icc = im.info.get("icc_profile")
        if mode == "L":  # the bare matte is grey: no colour profile
            assert icc is None, name
        else:  # colour files say they are sRGB
            assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))), name
    assert [r.suffix for r in profile.outputs] == [
        ".zoom.png",
        ".listing.webp",
        ".thumb.webp",
        ".marketplace.jpg",
        ".alpha.png",
    ]


def test_a_small_canvas_is_never_enlarged_and_a_box_keeps_its_shape() -> None:
    rgba = canvas(600, 400, (50, 550, 50, 350))
    drawn = draw(rgba, Profile("x", renditions=(Rendition("zoom", "png", 2000), Rendition("box", "png", (1000, 800)))))
    assert (drawn[0].width, drawn[0].height) == (400, 600)
    # the box's shape (5:4) around the untouched 400x600 canvas: 750x600, the canvas centred in it
    assert (drawn[1].width, drawn[1].height) == (750, 600)
    assert np.array_equal(drawn[1].pixels[:, 175:575], rgba)
    assert drawn[1].pixels[:, :175, 3].max() == 0


def test_the_unnamed_outputs_keep_todays_names() -> None:
    profile = Profile("legacy", flat_background=WHITE, write_mask=True)
    assert [r.suffix for r in profile.outputs] == [".png", ".jpg", ".mask.png"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"main": {"format": "jpeg"}}, "format jpeg needs a background colour"),
        ({"main": {"format": "gif"}}, "format must be one of png, webp, jpeg, mask"),
        ({"main": {"format": "png", "size": "big"}}, "a longest side like 800 or a box like 1000x1000"),
        ({"main": {"format": "png", "sise": 800}}, "renditions.main.sise: unknown key"),
        ({"Main Image": {"format": "png"}}, "a rendition name is 1-32 of a-z"),
        ({"main": {"format": "png", "size": 3000}}, "larger than max_size 2000 px"),
        ({"main": {"format": "png", "background": "#ffffff"}}, "other formats keep their transparency"),
        ({"main": {"format": "png", "rules": {"background": "#ffffff"}}}, "a background rule checks a JPEG"),
    ],
)
def test_bad_renditions_are_config_errors(tmp_path: Path, tiny_model: Path, values: dict, message: str) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"p": {"max_size": 2000, "renditions": values}}))
    data = config_dict(tmp_path, tiny_model)
    data.update(profiles_file=str(profiles), profile="p")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_renditions_exclude_the_old_extra_outputs() -> None:
    with pytest.raises(ValueError, match="lists its JPEG and mask there"):
        Profile("x", flat_background=WHITE, renditions=(Rendition("zoom", "png"),))


# ---- marketplace rules ----------------------------------------------------------------------------

MARKET = Rules(background=WHITE, min_fill_percent=85, min_longest_side=1000)


def checked(rgba: np.ndarray, rendition: Rendition) -> tuple[list[tuple[str, str]], bytes]:
    (drawn,) = draw(rgba, Profile("m", renditions=(rendition,)))
    data = encode(drawn, 1)
    return failures(drawn, data), data


def test_a_product_filling_60_percent_of_a_tall_frame_fails_with_the_numbers() -> None:
    rgba = canvas(1600, 1000, (350, 1250, 200, 800), soft=False)  # 900 of 1600 high, 600 of 1000 wide
    found, _ = checked(rgba, Rendition("main", "jpeg", None, 90, WHITE, MARKET))
    assert found == [("min_fill_percent", "main: product fills 60 % of the frame (< 85 %)")]


def test_a_centred_square_product_passes_and_its_corners_are_pure_white() -> None:
    rgba = canvas(1200, 1200, (60, 1140, 60, 1140))
    found, data = checked(rgba, Rendition("main", "jpeg", None, 90, WHITE, MARKET))
    assert found == []
    rgb = np.asarray(pixels_of(data).convert("RGB"))
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert rgb[y, x].tolist() == [255, 255, 255]
    assert pixels_of(data).info.get("icc_profile")


def test_a_small_photo_is_reported_not_enlarged() -> None:
    rgba = canvas(870, 870, (60, 810, 60, 810))  # fills 86 %
    found, data = checked(rgba, Rendition("main", "jpeg", 2000, 90, WHITE, MARKET))
    assert pixels_of(data).size == (870, 870)
    assert found == [("min_longest_side", "main: longest side 870 px (< 1000 px): the photo is too small")]


def test_a_background_that_is_not_pure_white_fails() -> None:
    rgba = canvas(1200, 1200, (40, 1160, 40, 1160))
    rgba[..., 3] = np.maximum(rgba[..., 3], 8)  # a faint haze left over the whole backdrop
    found, _ = checked(rgba, Rendition("main", "jpeg", None, 90, WHITE, MARKET))
    assert [rule for rule, _ in found] == ["background"]
    assert found[0][1].startswith("main: background is not exactly #ffffff: 100.0 % of the border pixels differ")


# ---- shadows --------------------------------------------------------------------------------------


def test_a_contact_shadow_lies_under_the_product_and_never_over_its_body() -> None:
    rgba = canvas(1000, 1000, (100, 800, 300, 700))
    layer = shadow_layer(rgba[..., 3], Shadow("contact", opacity=0.5, softness=3))
    rows = np.flatnonzero(layer.max(axis=1) > 1)
    lowest_body_row = 799
    assert rows.min() >= lowest_body_row and rows.max() > lowest_body_row + 10
    assert layer.max() == pytest.approx(0.5 * 255, abs=13)
    shadowed = cast(rgba, layer)
    body = rgba[..., 3] == 255
    assert np.array_equal(shadowed[body], rgba[body])
    below = shadowed[805:820, 450:550]
    assert below[..., 3].min() > 0 and below[..., :3].max() == 0  # black, semi-transparent


def test_a_drop_shadow_falls_along_its_angle() -> None:
    rgba = canvas(1000, 1000, (300, 600, 300, 600), soft=False)
    for angle in (0, 60, 90, 135):
        layer = shadow_layer(rgba[..., 3], Shadow("drop", opacity=0.6, softness=1, offset=10, angle=angle)).astype(
            float
        )
        ys, xs = np.mgrid[0:1000, 0:1000]
        cy, cx = (layer * ys).sum() / layer.sum(), (layer * xs).sum() / layer.sum()
        moved = math.degrees(math.atan2(cy - 449.5, cx - 449.5)) % 360
        assert abs(moved - angle % 360) < 2, angle
        assert math.hypot(cy - 449.5, cx - 449.5) == pytest.approx(30, abs=1.5)  # 10 % of 300 px


def test_a_drop_shadow_is_enlarged_only_where_it_lies_and_as_a_whole_resize_would() -> None:
    """The blurred drop shadow is brought back to full size only round its non-zero part: within
    one level of resizing the whole reduced copy, and nothing outside that part."""
    from PIL import ImageFilter

    from unet_matting.engine.shadow import _enlarged

    for height, width, box in ((1000, 1000, (300, 600, 300, 600)), (1337, 901, (100, 400, 600, 880))):
        rgba = canvas(height, width, box)
        small = Image.fromarray(rgba[..., 3]).reduce(9).filter(ImageFilter.GaussianBlur(2))
        whole = np.asarray(small.resize((width, height), Image.BILINEAR)).astype(int)
        part = _enlarged(small, width, height).astype(int)
        assert np.abs(part - whole).max() <= 1
        assert part[whole == 0].max() == 0 and (part > 0).sum() > 0.9 * (whole > 0).sum()


def test_shadow_off_changes_no_byte() -> None:
    rgba = canvas(800, 600, (100, 700, 100, 500))
    plain = Profile("p", flat_background=WHITE, write_mask=True)
    off = Profile("p", flat_background=WHITE, write_mask=True, shadow=Shadow("none", opacity=0.9))
    for a, b in zip(draw(rgba, plain), draw(rgba, off), strict=True):
        assert encode(a, 1) == encode(b, 1)
    assert np.array_equal(draw(rgba, plain)[0].pixels, rgba)  # today's <stem>.png: the canvas itself


def test_the_shadow_reaches_flat_files_and_transparent_ones_only_when_asked() -> None:
    rgba = canvas(800, 600, (100, 700, 100, 500))
    renditions = (Rendition("web", "png"), Rendition("shop", "jpeg", background=WHITE))
    for transparent in (False, True):
        web, shop = draw(rgba, Profile("s", renditions=renditions, shadow=Shadow("contact", transparent=transparent)))
        assert shop.pixels[705, 300].max() < 230  # the floor under the product darkens
        assert (web.pixels[705, 300, 3] > 0) == transparent


# ---- sets on disk ---------------------------------------------------------------------------------


def test_a_later_set_removes_the_files_only_the_earlier_one_had(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = {"files": {"mug.zoom.png": {}, "mug.thumb.webp": {}, "other.png": {}}}
    write_outputs(
        out, Path("a/mug.jpg"), {".zoom.png": b"z", ".thumb.webp": b"t", ".json": json.dumps(manifest).encode()}
    )
    (out / "a/mug.notes.txt").write_text("the shop's own file")
    (out / "a/other.png").write_text("another product")
    written = write_outputs(out, Path("a/mug.jpg"), {".zoom.png": b"Z", ".json": b'{"files": {"mug.zoom.png": {}}}'})
    assert [p.name for p in written] == ["mug.zoom.png", "mug.json"]
    assert sorted(p.name for p in (out / "a").iterdir()) == ["mug.json", "mug.notes.txt", "mug.zoom.png", "other.png"]


def test_the_manifest_is_written_last_and_a_full_disk_publishes_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "out", "256k") as out:
        files = {".zoom.png": b"z" * 10_000, ".thumb.webp": os.urandom(400_000), ".json": b"{}"}
        with pytest.raises(OSError, match="No space left"):
            write_outputs(out, Path("shop/item.jpg"), files)
        assert [p for p in out.rglob("*") if p.is_file()] == []


SHOP_PROFILES = {
    "shop": {
        "trim": True,
        "padding": 5,
        "aspect": "1:1",
        "max_size": 400,
        "renditions": {
            "zoom": {"format": "png", "size": 400},
            "listing": {"format": "webp", "size": 200, "quality": 85},
            "marketplace": {
                "format": "jpeg",
                "background": "#ffffff",
                "rules": {"background": "#ffffff", "min_fill_percent": 85, "min_longest_side": 1000},
            },
        },
        "shadow": {"kind": "contact", "opacity": 0.3},
    }
}


def test_the_daemon_publishes_the_set_with_a_manifest_that_names_exactly_its_files(daemon, tmp_path: Path) -> None:
    profiles = tmp_path / "shop-profiles.yaml"
    profiles.write_text(yaml.safe_dump(SHOP_PROFILES, sort_keys=False))
    d = daemon(profiles_file=str(profiles), profile="shop")
    source = jpeg_bytes(product_rgb(320, 240))
    tmp = write(d.path("incoming") / "shop-a" / ".mug.jpg.part", source)
    tmp.rename(d.path("incoming") / "shop-a" / "mug.jpg")  # temp name, then rename, as sftp clients do
    manifest_path = d.path("output") / "shop-a" / "mug.json"
    wait_for(lambda: d.finished("done"), 60)
    manifest = json.loads(manifest_path.read_bytes())
    present = sorted(p.name for p in manifest_path.parent.iterdir())
    assert present == sorted([*manifest["files"], "mug.json"])
    assert sorted(manifest["files"]) == ["mug.listing.webp", "mug.marketplace.jpg", "mug.zoom.png"]
    for name, entry in manifest["files"].items():
        data = (manifest_path.parent / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        assert pixels_of(data).size == (entry["width"], entry["height"])
    assert manifest["source"] == {
        "name": "mug.jpg",
        "path": "shop-a/mug.jpg",
        "sha256": hashlib.sha256(source).hexdigest(),
        "bytes": len(source),
        "width": 320,
        "height": 240,
    }
    assert manifest["profile"] == "shop" and manifest["model"].startswith("tiny-u2netp.pth@")
    assert 0 <= manifest["confidence"]["score"] <= 1
    assert manifest["validation"]["passed"] is False  # a 320 px photo cannot make a 1000 px main image
    assert "marketplace: longest side" in manifest["validation"]["failures"][0]
    assert {"decode", "inference", "encode", "encode.zoom", "encode.marketplace"} <= set(manifest["timings_ms"])
    (line,) = d.finished("done")
    assert "min_longest_side" in line["validation"]["rules"] and line["output"] == "shop-a/mug.zoom.png"
    # a later upload of the same stem replaces the set whole
    write(d.path("incoming") / "shop-a" / "mug.png", _png(product_rgb(300, 300, seed=3)))
    wait_for(lambda: len(d.finished("done")) == 2, 60)
    later = json.loads(manifest_path.read_bytes())
    assert later["source"]["name"] == "mug.png" and sorted(later["files"]) == sorted(manifest["files"])
    for name, entry in later["files"].items():
        assert hashlib.sha256((manifest_path.parent / name).read_bytes()).hexdigest() == entry["sha256"]
    assert len(matching(read_log(Path(d.cfg["logging"]["file"])), "job_finished", outcome="done")) == 2


def test_validation_results_are_counted_for_metrics() -> None:
    from unet_matting.watcher.prometheus import Metrics

    metrics = Metrics(lambda: 0, lambda: 0)
    metrics.validated("marketplace_white", [])
    metrics.validated("marketplace_white", ["min_fill_percent", "background"])
    text = metrics.render().decode()
    assert 'unet_matting_validations_total{profile="marketplace_white",result="passed"} 1.0' in text
    assert 'unet_matting_validations_total{profile="marketplace_white",result="failed"} 1.0' in text
    assert 'unet_matting_validation_failures_total{profile="marketplace_white",rule="background"} 1.0' in text


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


# ---- phones' photos through the daemon -----------------------------------------------------------


def test_heic_and_avif_uploads_become_cutouts_and_a_truncated_heic_waits(daemon) -> None:
    d = daemon(watcher={"decode_grace_s": 30.0})
    incoming = d.path("incoming")
    for name, fmt in (("phone.heic", "HEIF"), ("web.avif", "AVIF")):
        buffer = io.BytesIO()
        Image.fromarray(product_rgb(320, 240)).save(buffer, fmt, quality=90)
        tmp = write(incoming / f".{name}.tmp", buffer.getvalue())
        tmp.rename(incoming / name)  # the temp name, then the rename, as most sftp clients upload
    buffer = io.BytesIO()
    Image.fromarray(product_rgb(320, 240, seed=5)).save(buffer, "HEIF", quality=90)
    whole = buffer.getvalue()
    cut = write(incoming / "cut.heic", whole[: len(whole) // 2])  # a killed upload
    wait_for(lambda: len(d.finished("done")) == 2 and d.events("job_finished", file="cut.heic", outcome="waiting"), 60)
    for stem in ("phone", "web"):
        assert pixels_of((d.path("output") / f"{stem}.png").read_bytes()).size == (320, 240)
        assert json.loads((d.path("output") / f"{stem}.json").read_bytes())["source"]["width"] == 320
    assert cut.exists() and not (d.path("failed") / "cut.heic").exists()
    with open(cut, "ab") as f:  # resumed to the end
        f.write(whole[len(whole) // 2 :])
    wait_for(lambda: len(d.finished("done")) == 3, 60)
    assert (d.path("output") / "cut.png").exists() and d.stop() == 0


def test_a_profile_with_renditions_travels_to_queue_workers_whole() -> None:
    import dataclasses

    import msgpack

    from unet_matting.watcher.remote.broker import profile_from

    cfg = load_config(Path(__file__).resolve().parent.parent / "etc/unet-matting.yaml")
    for name in ("shop_set", "marketplace_white", "ecom_product"):
        profile = cfg.get_profile(name)
        carried = msgpack.unpackb(msgpack.packb(dataclasses.asdict(profile)))
        assert profile_from(carried) == profile
