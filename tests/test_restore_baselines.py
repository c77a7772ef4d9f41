"""Classical baselines as pipeline stages: identity, unsharp mask, lucky-frame fusion."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from conftest import psnr, run_cli
from vidrestore.errors import VidrestoreError
from vidrestore.io import read_frames
from vidrestore.io.reader import Frame
from vidrestore.metrics import laplacian_variance
from vidrestore.pipeline import Window, apply_stage, create_stage, list_stages


def _scene(seed: int = 0, w: int = 192, h: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h + 40, w + 40, 3), 0.5, np.float32)
    for _ in range(80):
        x, y = rng.integers(0, w + 20), rng.integers(0, h + 20)
        img[y:y + rng.integers(3, 20), x:x + rng.integers(3, 20)] = rng.random(3)
    return img


def _frames(rgbs: list[np.ndarray]) -> list[Frame]:
    return [Frame(i, i, Fraction(1, 25), x) for i, x in enumerate(rgbs)]


def _motion_blur(img: np.ndarray, length: int) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0 / length
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def test_registered():
    assert {"identity", "unsharp", "lucky"} <= set(list_stages())


def test_identity_and_unsharp():
    x = _scene()[:128, :192]
    w = Window(tuple(_frames([x])), 0)
    assert np.array_equal(create_stage("identity").process(w), x)
    sharpened = create_stage("unsharp:sigma=1.5,amount=0.8").process(w)
    assert laplacian_variance(sharpened) > 1.5 * laplacian_variance(x)
    flat = np.full((32, 32, 3), 0.4, np.float32)
    assert np.allclose(create_stage("unsharp").process(Window(tuple(_frames([flat])), 0)), flat)
    with pytest.raises(VidrestoreError, match="sigma > 0"):
        create_stage("unsharp:sigma=0")


def test_lucky_fusion_restores_a_blurry_frame_from_sharp_neighbours():
    """Camera pans 2 px per frame; frame 3 of 7 is motion-blurred; its sharp neighbours bring it back."""
    scene = _scene(1)
    truth = [scene[10 + i: 138 + i, 10 + 2 * i: 202 + 2 * i].copy() for i in range(7)]
    video = list(truth)
    video[3] = _motion_blur(truth[3], 9)
    out = [f.rgb for f in apply_stage(create_stage("lucky"), _frames(video))]
    c = (slice(16, -16), slice(16, -16))
    before, after = psnr(video[3][c], truth[3][c]), psnr(out[3][c], truth[3][c])
    assert after > before + 3, (before, after)
    for i in (0, 1, 2, 4, 5, 6):  # sharp frames: neighbours only as sharp as they are weigh (almost) nothing
        assert psnr(out[i], video[i]) > 40
    sharpest = int(np.argmax([laplacian_variance(x, scale=0.5) for x in video]))
    assert np.array_equal(out[sharpest], video[sharpest])


def test_lucky_aligns_with_blur_matched_flows_and_trusts_them(monkeypatch):
    """Frames 2-4 of 7 are motion-blurred by 5 px, so frame 3's sharp neighbours lie two frames away. Its flow
    to them is estimated with the sharper frame blurred to its sharpness first (`flow.match_blur`): with plain
    DIS flows the result is 2.3 dB further from the truth here. The strength of 8 that such flows allow adds
    0.8 dB over the 4 used with plain flows."""
    from vidrestore.restoration import lucky

    scene = _scene(1)
    truth = [scene[10 + i: 138 + i, 10 + 2 * i: 202 + 2 * i].copy() for i in range(7)]
    video = [_motion_blur(x, 5) if i in (2, 3, 4) else x for i, x in enumerate(truth)]
    c = (slice(16, -16), slice(16, -16))

    def restored(spec: str) -> float:
        return psnr([f.rgb for f in apply_stage(create_stage(spec), _frames(video))][3][c], truth[3][c])

    default, weaker = restored("lucky"), restored("lucky:strength=4")
    plain_flow = lucky.create_flow
    monkeypatch.setattr(lucky, "create_flow", lambda name, match_blur=False, **cfg: plain_flow(name, False, **cfg))
    plain = restored("lucky")
    assert default > weaker + 0.5 and default > plain + 1.5, (default, weaker, plain)


def test_lucky_bad_options_and_cli(clip_factory, tmp_path):
    with pytest.raises(VidrestoreError, match="radius >= 1"):
        create_stage("lucky:radius=0")
    path, spec, _ = clip_factory("lucky_src.mkv", codec="ffv1", pix_fmt="yuv444p", frames=8)
    out = tmp_path / "out.mkv"
    r = run_cli("restore", path, "-o", out, "-s", "lucky:radius=2", "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    assert len(list(read_frames(out))) == spec.frames


def test_lucky_uses_a_repeated_edge_frame_once():
    """Near the start the window repeats frame 0; it must weigh as one neighbour, not three."""
    scene = _scene(2)
    truth = [scene[10 + i: 138 + i, 10 + 2 * i: 202 + 2 * i].copy() for i in range(5)]
    video = [truth[0], _motion_blur(truth[1], 5)] + [_motion_blur(t, 15) for t in truth[2:]]
    wide = [f.rgb for f in apply_stage(create_stage("lucky:radius=3"), _frames(video))]
    narrow = [f.rgb for f in apply_stage(create_stage("lucky:radius=1"), _frames(video))]
    assert not np.array_equal(wide[1], video[1])
    assert np.allclose(wide[1], narrow[1], atol=1e-6)


def test_lucky_passes_through_a_frame_its_misaligned_neighbours_would_blur(monkeypatch):
    """`fusion.never_blurrier`: a mildly blurred frame whose sharper neighbours arrive misaligned (each
    warped neighbour averaged with itself shifted by a pixel, as flows off by a pixel or two leave them
    on shaky phone footage) would come out blurrier than it went in; it is passed through as it is."""
    from vidrestore.flow.fusion import blurrier
    from vidrestore.restoration import lucky

    scene = _scene(1)
    truth = [scene[10 + i: 138 + i, 10 + 2 * i: 202 + 2 * i].copy() for i in range(7)]
    video = list(truth)
    video[3] = _motion_blur(truth[3], 3)
    warp = lucky.backward_warp

    def misaligned(frame, flow, **kw):
        warped, valid = warp(frame, flow, **kw)
        return (warped + np.roll(warped, (1, 1), (0, 1))) / 2, valid

    monkeypatch.setattr(lucky, "backward_warp", misaligned)
    monkeypatch.setattr(lucky, "never_blurrier", lambda frame, restored: restored)
    blended = [f.rgb for f in apply_stage(create_stage("lucky"), _frames(video))]
    assert blurrier(video[3], blended[3])   # what the rule guards against
    monkeypatch.undo()
    monkeypatch.setattr(lucky, "backward_warp", misaligned)
    out = [f.rgb for f in apply_stage(create_stage("lucky"), _frames(video))]
    assert np.array_equal(out[3], video[3])
    monkeypatch.undo()
    aligned = [f.rgb for f in apply_stage(create_stage("lucky"), _frames(video))]
    assert not blurrier(video[3], aligned[3]) and not np.array_equal(aligned[3], video[3])
