"""Studio backdrops (issue 21): the detector, and the fusion with the network's matte."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.conftest import save_print_model
from tests.images import glass_packshot, studio_packshot
from unet_matting.engine import backdrop
from unet_matting.engine.metrics import score
from unet_matting.engine.morphology import grow
from unet_matting.engine.postprocess import cutout
from unet_matting.engine.profile import Profile
from unet_matting.engine.session import EngineSettings, Session


@pytest.fixture(scope="module")
def print_session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """A session whose network sees only printed art, as IS-Net does on a white bag on white."""
    model = save_print_model(tmp_path_factory.mktemp("print") / "print-u2netp.pth")
    return Session.load(EngineSettings(model, "cpu"))


def detect(rgb: np.ndarray, alpha: np.ndarray) -> backdrop.Backdrop | None:
    small_rgb, small_alpha, _ = backdrop.working_copy(rgb, alpha)
    return backdrop.fit_backdrop(backdrop.to_lab(small_rgb), small_alpha)


def lifestyle(width: int = 240, height: int = 200, seed: int = 0) -> np.ndarray:
    """A cluttered scene: tiles of unrelated colours and textures from edge to edge."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((height, width, 3), np.float32)
    for y in range(0, height, 40):
        for x in range(0, width, 40):
            rgb[y : y + 40, x : x + 40] = rng.uniform(20, 235, 3) + rng.normal(0, 15, (min(40, height - y), 40, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "light",
    [{}, {"sweep": 0.12}, {"vignette": 0.2}, {"shadow": 0.35}, {"backdrop": (120, 170, 220)}],
    ids=["uniform", "sweep-gradient", "vignette", "floor-shadow", "coloured"],
)
def test_a_studio_backdrop_is_found_and_modelled(light: dict) -> None:
    rgb, box, _ = studio_packshot(**light)
    found = detect(rgb, box.astype(np.float32))
    assert found is not None
    surface = found.lab(*rgb.shape[:2])
    lab = backdrop.to_lab(rgb)
    corners = (slice(0, 10), slice(0, 10)), (slice(0, 10), slice(-10, None)), (slice(-10, None), slice(0, 10))
    for corner in corners:  # the smooth surface follows sweep and vignette into the corners
        assert np.linalg.norm(lab[corner] - surface[corner], axis=-1).mean() < 3.0


def test_a_lifestyle_photo_has_no_backdrop_and_its_matte_is_returned_untouched() -> None:
    rgb = lifestyle()
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[60:140, 80:160] = 1.0
    assert detect(rgb, alpha) is None
    assert backdrop.complete_matte(rgb, alpha) is alpha


def test_a_plain_wall_round_a_busy_scene_is_not_a_backdrop() -> None:
    """The border is one colour, but most of what the network calls background inside is not."""
    rgb, _, _ = studio_packshot()
    rgb[20:-20, 20:-20] = lifestyle(rgb.shape[1] - 40, rgb.shape[0] - 40, seed=3)
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[80:120, 100:140] = 1.0
    assert backdrop.complete_matte(rgb, alpha) is alpha


def test_off_returns_the_network_matte_itself(print_session: Session) -> None:
    rgb, _, _ = studio_packshot()
    alpha = print_session.predict_alpha(rgb)
    assert backdrop.complete_matte(rgb, alpha, "off") is alpha


@pytest.mark.parametrize(
    "scene",
    [
        {},
        {"sweep": 0.1},
        {"vignette": 0.15},
        {"falloff": 0.2},
        {"spot": 0.08},
        {"spot": 0.1, "backdrop": (200, 200, 205)},
        {"width": 1600, "height": 1200},
        {"backdrop": (200, 200, 205)},
    ],
    ids=["white", "sweep", "vignette", "floor-falloff", "spotlight", "grey-spotlight", "large", "grey"],
)
def test_a_white_box_on_white_comes_out_whole_opaque_and_soft_edged(print_session: Session, scene: dict) -> None:
    rgb, box, logo = studio_packshot(body=(250, 250, 250) if "backdrop" not in scene else (235, 235, 235), **scene)
    network = print_session.predict_alpha(rgb)
    assert network[box & ~logo].mean() < 0.05 and network[logo].mean() > 0.9  # the floating print
    alpha = backdrop.complete_matte(rgb, network)
    assert score(network, box.astype(np.uint8) * 255).iou < 0.2
    assert score(alpha, box.astype(np.uint8) * 255).iou > 0.95
    inner = box.copy()
    inner[:, :] = False
    h, w = box.shape
    ys, xs = np.nonzero(box)
    inner[ys.min() + h // 40 + 3 : ys.max() - h // 40 - 2, xs.min() + w // 40 + 3 : xs.max() - w // 40 - 2] = True
    assert (alpha[inner] == 1.0).mean() > 0.99  # the body is opaque, not see-through
    assert (alpha[~box] > 0.5).mean() < 0.002  # nothing of the backdrop joins it
    soft = (alpha > 0.02) & (alpha < 0.98)
    assert soft.sum() > 0.5 * (2 * (ys.max() - ys.min()) + 2 * (xs.max() - xs.min()))  # a soft outline


def tinted_shirt(
    jpeg_quality: int | None = None, tint: tuple[float, float, float] = (1.0, 0.998, 0.985)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, product mask, print mask): a white T-shirt as light as the white backdrop, with no
    shading at its outline, told apart only by its fabric's faint warm tint (~1.5 delta E, under
    the per-pixel noise of 1 level), and a red print on its chest; optionally JPEG-compressed
    (4:2:0, whose chroma blocks are offsets the tint test must not take for a product)."""
    height, width = 750, 600  # a working copy of half size, as an 800 px upload's
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / 2.5  # the shape drawn on a 300x240 grid
    image = np.full((height, width, 3), 246.0, np.float32) * (1 + 0.05 * (yy / 300 - 0.5))[..., None]
    body = (yy >= 90) & (yy < 250) & (xx >= 80) & (xx < 160)
    sleeves = (yy >= 90) & (yy < 130) & (xx >= 50) & (xx < 190) & (np.abs(xx - 120) > 35 + (yy - 90) * 0.2)
    shirt = body | sleeves
    image[shirt] *= np.array(tint, np.float32)  # warm by default: blue drops 1.5 %
    logo = (np.abs(yy - 140) < 12) & (np.abs(xx - 120) < 20)
    image[logo] = (200, 40, 30)
    image += rng.normal(0, 1.0, image.shape)
    rgb = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=jpeg_quality)
        rgb = np.asarray(Image.open(buffer).convert("RGB"))
    return rgb, shirt, logo


@pytest.mark.parametrize("jpeg_quality", [None, 90], ids=["raw", "jpeg-90"])
def test_a_white_product_with_no_outline_is_found_by_its_tint(print_session: Session, jpeg_quality: int | None) -> None:
    """No lightness step closes the shirt off, so the flood from the frame would run through it;
    its even tint, measured against the backdrop's own smoothed chroma noise, stops it."""
    rgb, shirt, logo = tinted_shirt(jpeg_quality)
    lab = backdrop.to_lab(rgb)
    assert abs(lab[shirt & ~logo][:, 0].mean() - lab[~shirt][:, 0].mean()) < 1.0  # as light as the backdrop
    network = print_session.predict_alpha(rgb)
    assert score(network, shirt.astype(np.uint8) * 255).iou < 0.2  # the floating print
    alpha = backdrop.complete_matte(rgb, network)
    assert score(alpha, shirt.astype(np.uint8) * 255).iou > 0.9
    assert (alpha[~shirt] > 0.5).mean() < 0.005  # the backdrop (JPEG blocks and all) stays out
    inner = shirt & ~grow(~shirt, 8)
    assert (alpha[inner] == 1.0).mean() > 0.98


@pytest.mark.parametrize(("jpeg_quality", "least"), [(None, 0.5), (90, 0.85)], ids=["raw", "jpeg-90"])
def test_a_completed_white_product_has_a_smooth_outline_where_the_photo_shows_none(
    print_session: Session, jpeg_quality: int | None, least: float
) -> None:
    """Where the shirt is as light as the backdrop, no single full-scale pixel tells them apart:
    testing each one frayed the outline and pulled it in to the working grid's staircase. The
    completed outline follows the shirt's own (its sleeves slant): most of it within 2 px."""
    rgb, shirt, _ = tinted_shirt(jpeg_quality)
    alpha = backdrop.complete_matte(rgb, print_session.predict_alpha(rgb))
    assert score(alpha, shirt.astype(np.uint8) * 255).boundary_f > least


def test_an_untinted_white_backdrop_has_no_tint(print_session: Session) -> None:
    """The same scene with the shirt's fabric as neutral as the backdrop: JPEG's chroma blocks,
    the sweep and the noise are not a tint, so nothing is, and with no outline either the matte
    stays what the network saw (a shape nobody can see is not made up)."""
    rgb, shirt, logo = tinted_shirt(90, tint=(1.0, 1.0, 1.0))
    network = print_session.predict_alpha(rgb)
    small_rgb, small_alpha, factor = backdrop.working_copy(rgb, network)
    lab = backdrop.to_lab(small_rgb)
    calm = backdrop.ring(*small_alpha.shape) & (small_alpha < backdrop.BACKGROUND)
    near_print = grow(small_alpha > 0.05, 6)  # the print's own colour, smoothed
    assert not (backdrop.tinted(lab, calm, small_alpha, factor) & ~near_print).any()
    assert score(backdrop.complete_matte(rgb, network), shirt.astype(np.uint8) * 255).iou < 0.2


def test_a_shadow_on_the_backdrop_is_not_kept(print_session: Session) -> None:
    rgb, box, _ = studio_packshot(shadow=0.35)
    alpha = backdrop.complete_matte(rgb, print_session.predict_alpha(rgb))
    ys, xs = np.nonzero(box)
    under = np.zeros_like(box)
    under[ys.max() + 6 : ys.max() + 14, xs.min() : xs.max()] = True  # the floor shadow, past the contact line
    lab = backdrop.to_lab(rgb)
    assert lab[under][:, 0].mean() < lab[:20][:, :, 0].mean() - 5  # the shadow is there, and dark
    assert (alpha[under] > 0.5).mean() < 0.02 and alpha[under].mean() < 0.05
    assert score(alpha, box.astype(np.uint8) * 255).iou > 0.9


@pytest.mark.parametrize(
    "light",
    [(262, 268, 278), (275, 268, 258), (300, 190, 200), (320, 300, 180)],
    ids=["white-cool", "white-warm", "pink-red-clipped", "yellow-red-green-clipped"],
)
def test_a_shadow_on_a_sweep_blown_out_is_not_kept(print_session: Session, light) -> None:
    """The usual pure-white packshot: the sweep lit above the product, clipped to 255, so its
    own slight cast shows only in its floor shadow; on a coloured sweep, the channels that clip
    change its hue, and the shadow shows the true one. That shadow is still the backdrop's: the
    white box is completed whole and nothing of the shadow is kept."""
    rgb, box, _ = studio_packshot(backdrop=light, shadow=0.35)
    free = np.ones(box.shape, bool)
    free[box] = False
    clipped = np.asarray(light) > 255
    assert (rgb[free][:, clipped] == 255).all(axis=1).mean() > 0.8  # blown out in those channels
    alpha = backdrop.complete_matte(rgb, print_session.predict_alpha(rgb))
    ys, xs = np.nonzero(box)
    under = np.zeros_like(box)
    under[ys.max() + 6 : ys.max() + 14, xs.min() : xs.max()] = True  # the floor shadow, past the contact line
    chroma = backdrop.to_lab(rgb)[under][:, 1:]
    assert np.hypot(*chroma.mean(axis=0)) > 2.5  # the shadow shows the cast, beyond the noise allowance
    assert (alpha[under] > 0.5).mean() < 0.02 and alpha[under].mean() < 0.05
    assert score(alpha, box.astype(np.uint8) * 255).iou > 0.9


def test_a_shadow_on_a_clipped_backdrop_is_one_factor_times_its_light() -> None:
    """``clipped_shadow`` on single pixels. A sweep clipped to white: a darker pixel with a
    white's cast is a shadow, a coloured one is not, nor is the white itself. A pink sweep
    clipped in red only (255, 190, 200): a pixel whose green and blue are the same share of the
    sweep's is a shadow when its red is at least that share of 255 (the true red was brighter);
    a red below that share, or green and blue that disagree, are not a shadow."""

    def shadow(pixels: list[tuple[int, int, int]], sweep: tuple[int, int, int], clipped: tuple[bool, ...]) -> list:
        rgb = np.array([pixels], np.uint8)
        surface = backdrop.to_lab(np.array([[sweep] * len(pixels)], np.uint8))
        return backdrop.clipped_shadow(rgb, surface, np.array(clipped), 2.0)[0].tolist()

    white = (255, 255, 255)
    cast, grey, red, itself = (180, 176, 170), (150, 150, 152), (180, 120, 110), white
    assert shadow([cast, grey, red, itself], white, (True, True, True)) == [True, True, False, False]
    pink = (255, 190, 200)
    # 0.6 of the pink's green and blue in linear light: green 190 -> 151, blue 200 -> 159 (sRGB)
    brighter_red, same_red, dim_red, blue_off = (230, 151, 159), (200, 151, 159), (160, 151, 159), (230, 151, 190)
    picks = [brighter_red, same_red, dim_red, blue_off]
    assert shadow(picks, pink, (True, False, False)) == [True, True, False, False]


def test_a_hole_through_the_product_stays_a_hole(print_session: Session) -> None:
    """A frame-shaped product the network found whole: the backdrop seen through it is not body."""
    rgb, box, _ = studio_packshot()
    ys, xs = np.nonzero(box)
    hole = np.zeros_like(box)
    hole[ys.min() + 25 : ys.max() - 25, xs.min() + 25 : xs.max() - 25] = True
    rgb[hole] = rgb[5, 5]
    alpha = np.where(box & ~hole, 1.0, 0.0).astype(np.float32)
    completed = backdrop.complete_matte(rgb, alpha)
    assert completed[hole].max() < 0.5


def two_print_lines(slot_colour: str, ink_rim: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, product mask, slot mask): a white box with two lines of dark print a few pixels
    apart, the slot between them the box's own white (``"box"``) or the backdrop's pixels, seen
    through a slit (``"backdrop"``); with ``ink_rim`` the print's edges are soft (a lens, JPEG),
    so the pixels beside it are partly ink."""
    rgb, box, logo = studio_packshot(width=480, height=400)
    rgb[logo] = rgb[box & ~logo][0]  # no round logo: two lines of print instead
    ys, xs = np.nonzero(box)
    middle, left, right = (ys.min() + ys.max()) // 2, xs.min() + 40, xs.max() - 40
    slot = np.zeros_like(box)
    slot[middle - 2 : middle + 3, left:right] = True
    rgb[middle - 14 : middle - 2, left:right] = (30, 40, 140)
    rgb[middle + 3 : middle + 15, left:right] = (30, 40, 140)
    if slot_colour == "backdrop":
        rgb[slot] = rgb[5:10, 5:10].reshape(-1, 3)[np.arange(slot.sum()) % 25]
        box = box & ~slot
    if ink_rim:
        rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(1.2)))
    return rgb, box, slot


@pytest.mark.parametrize("ink_rim", [False, True], ids=["sharp-print", "soft-print"])
def test_a_thin_slot_between_two_print_lines_is_body(print_session: Session, ink_rim: bool) -> None:
    """The network sees the two lines, and the box between them is as white as the backdrop.
    The slot continues the box's body, so it is body; it was left see-through (too thin for a
    patch of its own, and not what the network saw); with soft print edges too."""
    rgb, box, slot = two_print_lines("box", ink_rim)
    network = print_session.predict_alpha(rgb)
    assert network[slot].mean() < 0.3  # the network leaves the slot out
    alpha = backdrop.complete_matte(rgb, network)
    assert (alpha[slot] == 1.0).mean() > 0.95
    assert score(alpha, box.astype(np.uint8) * 255).iou > 0.95


def test_a_slit_between_two_print_lines_showing_the_backdrop_stays_see_through(print_session: Session) -> None:
    """The same slot with the backdrop's colour in it (the sky between a wing and its strut):
    nearer the backdrop than the box's white beside it, it is not the box's body."""
    rgb, box, slot = two_print_lines("backdrop")
    alpha = backdrop.complete_matte(rgb, print_session.predict_alpha(rgb))
    inner = slot.copy()
    inner[:, : np.nonzero(slot)[1].min() + 4] = False
    inner[:, np.nonzero(slot)[1].max() - 3 :] = False
    assert (alpha[inner] > 0.5).mean() < 0.1
    assert score(alpha, box.astype(np.uint8) * 255).iou > 0.95


def test_the_profiles_get_the_completed_matte(print_session: Session) -> None:
    """ecom_product on the completed matte: the whole box, trimmed, not the floating logo."""
    rgb, box, logo = studio_packshot()
    profile = Profile("t", drop_ghosts=True, solid_interior=True, trim=True)
    before = cutout(print_session.predict_alpha(rgb), rgb, profile)
    after = cutout(print_session.matte(rgb), rgb, profile)
    ys, xs = np.nonzero(box)
    assert abs(after.shape[0] - (ys.max() - ys.min() + 1)) <= 3
    assert abs(after.shape[1] - (xs.max() - xs.min() + 1)) <= 3
    assert before.shape[0] < after.shape[0] / 2  # before: the logo alone
    assert (after[..., 3] == 255).mean() > 0.9


def test_the_working_copy_is_a_whole_factor_smaller() -> None:
    """The step's cost does not grow with the photo: it works on a copy of at most WORK_SIDE."""
    rgb = np.zeros((3000, 2000, 3), np.uint8)
    rgb[:8, :8] = 80  # one working pixel's worth: a whole factor keeps it one working pixel
    small, alpha, factor = backdrop.working_copy(rgb, np.zeros((3000, 2000), np.float32))
    assert factor == 8 and small.shape[:2] == (375, 250) and alpha.shape == (375, 250)
    assert small[0, 0].tolist() == [80, 80, 80] and small[0, 1].tolist() == [0, 0, 0]


def test_a_clear_bottle_on_white_stays_see_through_with_its_label_opaque(print_session: Session) -> None:
    """Item 3: see_through (ecom_translucent) keys the matte against the known backdrop: the clear
    glass is see-through, the label and cap opaque; without it the bottle is a solid body."""
    rgb, masks = glass_packshot()
    network = print_session.predict_alpha(rgb)
    solid = backdrop.complete_matte(rgb, network)
    glass = backdrop.complete_matte(rgb, network, see_through=True)
    assert solid[masks["body"]].mean() > 0.9  # ecom_product: a bottle a shop can publish as a solid
    assert glass[masks["body"]].mean() < 0.2  # ecom_translucent: the backdrop shows through
    assert glass[masks["label"]].min() > 0.9 and glass[masks["cap"]].min() > 0.9
    assert glass[~masks["bottle"]].max() < 0.5


@pytest.mark.parametrize("see_through", [False, True], ids=["solid", "see-through"])
def test_overwrite_completes_the_matte_in_place_and_otherwise_leaves_it_alone(
    print_session: Session, see_through: bool
) -> None:
    """The daemon owns the network's matte and lets it be completed in place (no 48 MB copy of a
    12 MP matte); every other caller gets a new matte and keeps its own as it was."""
    rgb, box, _ = studio_packshot(body=(250, 250, 250))
    network = print_session.predict_alpha(rgb)
    kept = network.copy()
    completed = backdrop.complete_matte(rgb, network, see_through=see_through)
    assert completed is not network and np.array_equal(network, kept)
    assert not np.array_equal(completed, kept)  # the backdrop did change the matte
    in_place = backdrop.complete_matte(rgb, network, see_through=see_through, overwrite=True)
    assert in_place is network and np.array_equal(in_place, completed)


def test_see_through_does_nothing_without_a_backdrop(print_session: Session) -> None:
    rgb = lifestyle()
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[60:140, 80:160] = 1.0
    assert backdrop.complete_matte(rgb, alpha, see_through=True) is alpha
