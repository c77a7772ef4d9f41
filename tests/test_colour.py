"""Colour conversion: known answers per standard, exact round trips, chroma resampling quality."""

import numpy as np
import pytest
import skimage.data

from conftest import psnr
from vidrestore.errors import VidrestoreError
from vidrestore.io.colour import Colour, guess_matrix, layout_of, planes_to_rgb, rgb_to_planes


def _rgb(planes, name, matrix="bt709", full=False):
    return planes_to_rgb([np.asarray(p) for p in planes], layout_of(name), Colour(matrix, full))


@pytest.mark.parametrize(
    "name,codes,full,expected",
    [
        ("yuv444p", (235, 128, 128), False, (1, 1, 1)),  # limited-range white
        ("yuv444p", (16, 128, 128), False, (0, 0, 0)),  # limited-range black
        ("yuv444p10le", (940, 512, 512), False, (1, 1, 1)),  # 10-bit limited white
        ("yuv444p10le", (64, 512, 512), False, (0, 0, 0)),
        ("yuv444p", (255, 128, 128), True, (1, 1, 1)),  # full-range white
        ("yuv444p", (0, 128, 128), True, (0, 0, 0)),
        ("yuv444p10le", (1023, 512, 512), True, (1, 1, 1)),
    ],
)
def test_known_grey_levels(name, codes, full, expected):
    planes = [np.full((2, 2), c, dtype=layout_of(name).dtype) for c in codes]
    assert np.allclose(_rgb(planes, name, full=full)[0, 0], expected, atol=1e-6)


@pytest.mark.parametrize("matrix,red_codes", [("bt709", (63, 102, 240)), ("bt601", (81, 90, 240)), ("bt2020", (74, 97, 240))])
def test_pure_red_codes_per_matrix(matrix, red_codes):
    # Y'CbCr of R'G'B' = (1, 0, 0) in 8-bit limited range, from each standard's Kr/Kb (H.273 eq.).
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1
    y, cb, cr = rgb_to_planes(red, layout_of("yuv444p"), Colour(matrix, False))
    assert (int(y[0, 0]), int(cb[0, 0]), int(cr[0, 0])) == red_codes


@pytest.mark.parametrize(
    "name,matrix,full",
    [
        ("yuv444p", "bt709", False), ("yuv444p", "bt601", True), ("yuv444p10le", "bt2020", False),
        ("yuv444p12le", "bt709", True), ("gbrp", "rgb", True), ("gbrp10le", "rgb", True), ("gbrp16le", "rgb", True),
        ("rgb24", "rgb", True), ("rgb48le", "rgb", True), ("bgr0", "rgb", True), ("gray", "bt709", True),
        ("gray10le", "bt709", False),
    ],
)
def test_444_and_rgb_round_trip_is_exact(name, matrix, full):
    layout = layout_of(name)
    rng = np.random.default_rng(0)
    # Odd size on purpose; colours kept inside the gamut so that no sample is clipped on the way.
    rgb = rng.uniform(0.03, 0.97, (17, 23, 3)).astype(np.float32)
    if layout.kind == "gray":
        rgb[:] = rgb[..., :1]
    codes = rgb_to_planes(rgb, layout, Colour(matrix, full))
    back = rgb_to_planes(planes_to_rgb(codes, layout, Colour(matrix, full)), layout, Colour(matrix, full))
    for a, b in zip(codes, back):
        assert a.dtype == layout.dtype
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["yuv420p", "yuv422p", "yuv420p10le", "yuv440p", "yuv411p"])
@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
@pytest.mark.parametrize("crop", [np.s_[:, :], np.s_[:-1, :-3]], ids=["even", "odd"])
def test_subsampled_round_trip_psnr(name, photo, crop):
    # A real photograph (shipped inside scikit-image) decoded once from a subsampled format, then
    # encoded and decoded again: what a stage that changes nothing costs. Photographs carry
    # full-resolution colour detail, harder than camera video whose chroma is already subsampled.
    rgb = np.ascontiguousarray(getattr(skimage.data, photo)()[crop], dtype=np.float32) / 255
    layout = layout_of(name)
    colour = Colour("bt709", False)
    once = planes_to_rgb(rgb_to_planes(rgb, layout, colour), layout, colour)
    twice = planes_to_rgb(rgb_to_planes(once, layout, colour), layout, colour)
    assert once.shape == rgb.shape and once.dtype == np.float32
    assert psnr(once, twice) >= 48


def test_matrix_guess_and_unsupported():
    assert guess_matrix(None, 1920, 1080) == "bt709"
    assert guess_matrix(2, 640, 480) == "bt601"
    assert guess_matrix(9, 640, 480) == "bt2020"
    with pytest.raises(VidrestoreError, match="unsupported colour matrix"):
        guess_matrix(8, 640, 480)


def test_output_is_float32_in_unit_range():
    # Out-of-gamut code values (legal in limited range) must be clipped, not wrapped.
    planes = [np.full((4, 4), v, np.uint8) for v in (250, 20, 240)]
    rgb = _rgb(planes, "yuv444p")
    assert rgb.dtype == np.float32 and rgb.min() >= 0 and rgb.max() <= 1
