"""Noise and compression: `synth noise`/`synth compress`, the noise profile, DCT shrinkage, the `denoise` stage and CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from conftest import one_line_error, psnr, run_cli, textured_scene
from vidrestore.io import EncodeSettings, probe, read_frames, write_video
from vidrestore.io.colour import luma
from vidrestore.pipeline import restore
from vidrestore.errors import VidrestoreError
from vidrestore.restoration.codec_qp import h264_step, read_qp
from vidrestore.restoration.dct_shrink import OPPONENT, dct_shrink, shrink_planes
from vidrestore.restoration.deblock import Deblock
from vidrestore.restoration.denoise import FAST_GARROTE, FAST_SHIFTS, Denoise, box_factor, temporal_average
from vidrestore.restoration.noise_level import estimate_noise, noise_spectrum, pair_level, temporal_scale
from vidrestore.synth.compress import synth_compress
from vidrestore.synth.noise import add_gaussian, synth_noise
from vidrestore.synth.paired import load_settings
from vidrestore.synth.sensor import linear_to_srgb, srgb_to_linear

W, H, N, FPS = 192, 128, 16, 25


def _frames(path):
    return [f.rgb for f in read_frames(path)]


def _scene(seed: int = 5) -> np.ndarray:
    """A natural-looking still: textured rectangles, slightly blurred (no pixel-level texture to mistake for noise)."""
    return cv2.GaussianBlur(textured_scene(np.random.default_rng(seed), W + 40, H + 20), (0, 0), 1.0)


@pytest.fixture(scope="module")
def clean_clip(tmp_path_factory):
    """N frames panning over the scene by (1.3, 0.4) px per frame, lossless."""
    scene = _scene()
    frames = [cv2.warpAffine(scene, np.float32([[1, 0, -1.3 * i], [0, 1, -0.4 * i]]), (W, H), flags=cv2.INTER_CUBIC)
              for i in range(N)]
    path = tmp_path_factory.mktemp("clean") / "clean.mkv"
    write_video(path, [np.clip(f, 0, 1) for f in frames], FPS, EncodeSettings("ffv1"))
    return path


@pytest.fixture(scope="module")
def noisy25(clean_clip, tmp_path_factory):
    return synth_noise(clean_clip, tmp_path_factory.mktemp("n25") / "clip", sigma=25, progress=False)


def _denoised(tmp_path, src, stage, name="out.mkv", **kw):
    out = tmp_path / name
    restore(src, out, [stage], EncodeSettings("ffv1"), progress=False, **kw)
    return out


# --- synth -------------------------------------------------------------------------------------

def test_synth_noise_gaussian_has_the_asked_level(noisy25, clean_clip):
    settings = load_settings(noisy25.dir)
    assert settings["noise"] == {"model": "gaussian", "sigma": 25.0} and settings["frame_count"] == N
    assert settings["files"] == {"gt": "gt.mkv", "degraded": "noisy.mkv"}
    gt, noisy = np.stack(_frames(noisy25.gt)), np.stack(_frames(noisy25.degraded))
    assert np.abs(gt - np.stack(_frames(clean_clip))).max() < 1.5 / 255          # the ground truth is the source
    mid = (gt > 0.25) & (gt < 0.75)                                              # away from clipping
    assert abs(255 * (noisy - gt)[mid].std() - 25) < 0.5


def test_synth_noise_is_reproducible_and_seeded(clean_clip, tmp_path):
    a = synth_noise(clean_clip, tmp_path / "a", sigma=10, seed=4, frames=3, progress=False)
    b = synth_noise(clean_clip, tmp_path / "b", sigma=10, seed=4, frames=3, progress=False)
    c = synth_noise(clean_clip, tmp_path / "c", sigma=10, seed=5, frames=3, progress=False)
    fa, fb, fc = (np.stack(_frames(r.degraded)) for r in (a, b, c))
    assert np.array_equal(fa, fb) and not np.array_equal(fa, fc)


def test_synth_noise_poisson_gaussian_follows_the_model(clean_clip, tmp_path):
    """Shot noise only: on the video's scale, sigma = f'(lin) * sqrt(shot * lin) (f the sRGB curve)."""
    shot = 0.004
    r = synth_noise(clean_clip, tmp_path / "pg", poisson=(shot, 0.0), progress=False)
    assert load_settings(r.settings)["noise"] == {"model": "poisson-gaussian", "shot": shot, "read": 0.0}
    gt, noisy = np.stack(_frames(r.gt)), np.stack(_frames(r.degraded))
    for lo, hi in ((0.2, 0.3), (0.7, 0.8)):
        sel = (gt >= lo) & (gt < hi)
        lin = srgb_to_linear(np.array([(lo + hi) / 2]))
        slope = (linear_to_srgb(lin + 1e-4) - linear_to_srgb(lin - 1e-4)) / 2e-4
        expected = float(slope[0] * np.sqrt(shot * lin[0]))
        assert abs((noisy - gt)[sel].std() / expected - 1) < 0.1, (lo, expected)


def test_synth_compress_h264_and_hevc(clean_clip, tmp_path):
    psnrs = {}
    for codec, crf in (("h264", 20), ("h264", 40), ("hevc", 40)):
        r = synth_compress(clean_clip, tmp_path / f"{codec}{crf}", codec=codec, crf=crf, frames=6, progress=False)
        s = load_settings(r.dir)
        assert (s["kind"], s["codec"], s["crf"], s["frame_count"]) == ("compress", codec, crf, 6)
        assert probe(r.degraded).codec == codec
        psnrs[(codec, crf)] = np.mean([psnr(a, b) for a, b in zip(_frames(r.degraded), _frames(r.gt))])
    assert psnrs[("h264", 20)] > psnrs[("h264", 40)] + 5


def test_synth_cli_and_its_errors(clean_clip, tmp_path):
    r = run_cli("synth", "noise", clean_clip, "-o", tmp_path / "n", "--sigma", "15", "--frames", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert "noisy.mkv" in r.stdout and load_settings(tmp_path / "n")["noise"]["sigma"] == 15
    r = run_cli("synth", "compress", clean_clip, "-o", tmp_path / "c", "--crf", "38", "--frames", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert load_settings(tmp_path / "c")["crf"] == 38
    one_line_error(run_cli("synth", "noise", clean_clip, "-o", tmp_path / "bad", "--sigma", "0"), "sigma")
    one_line_error(run_cli("synth", "compress", clean_clip, "-o", tmp_path / "bad2", "--crf", "60"), "crf")


# --- noise profile and DCT shrinkage ------------------------------------------------------------

def test_noise_profile_reads_level_against_intensity_per_channel():
    """Noise sigma = (0.01 + 0.06 y, 0.03, 0.05 - 0.04 y) per channel over a horizontal ramp of intensity."""
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.05, 0.95, 512, dtype=np.float32), (256, 1))
    clean = np.stack([ramp, ramp, ramp], axis=2)
    sig = np.stack([0.01 + 0.06 * ramp, np.full_like(ramp, 0.03), 0.05 - 0.04 * ramp], axis=2)
    profile = estimate_noise([clean + sig * rng.standard_normal(clean.shape).astype(np.float32) for _ in range(2)])
    for y in (0.2, 0.5, 0.8):
        want = np.array([0.01 + 0.06 * y, 0.03, 0.05 - 0.04 * y]) * 255
        assert np.allclose(profile.sigma_8bit(y), want, rtol=0.08), (y, profile.sigma_8bit(y), want)


@pytest.mark.parametrize("blur", [0.0, 0.5])
def test_aligned_frames_reveal_correlated_noise(blur):
    """White noise: the Haar level stands (scale 1, flat spectrum). Noise blurred over neighbouring pixels
    reads low in the Haar detail; consecutive frames show its per-pixel level and its low-pass spectrum."""
    rng = np.random.default_rng(2)
    scene = _scene()
    clean = [scene[:H, :W], scene[1:H + 1, 2:W + 2]]          # frame 2: the scene moved by (-2, -1) px

    def noise() -> np.ndarray:
        n = rng.standard_normal((H, W, 3)).astype(np.float32)
        if blur:
            n = cv2.GaussianBlur(n, (0, 0), blur)
        return 0.04 * n / n.std()

    frames = [c + noise() for c in clean]
    profile = estimate_noise(frames)
    level = pair_level(frames[0], frames[1], np.full((H, W, 2), [-2.0, -1.0], np.float32))
    scale, spectrum = temporal_scale(profile, [level]), noise_spectrum([level])
    haar = np.mean(profile.sigma_8bit(0.5)) / 255
    if blur:
        assert haar < 0.8 * 0.04 and abs(haar * scale / 0.04 - 1) < 0.1, (haar, scale)
        assert spectrum[:2, :2].mean() > 2 * spectrum[6:, 6:].mean()
    else:
        assert scale < 1.1 and abs(haar / 0.04 - 1) < 0.1
        assert spectrum.min() > 0.75 and spectrum.max() < 1.25


def test_dct_shrink_keeps_a_clean_image_and_removes_noise():
    clean = _scene()[:H, :W]
    assert np.abs(dct_shrink(clean, 1e-6) - clean).max() < 1e-5
    noisy = add_gaussian(clean, 20, np.random.default_rng(1))
    out = dct_shrink(noisy, 20 / 255)
    assert psnr(out, clean) > psnr(noisy, clean) + 6
    wiener = dct_shrink(noisy, 20 / 255, pilot=out)
    assert psnr(wiener, clean) > psnr(out, clean)
    assert np.abs(dct_shrink(clean, 0.0, pilot=clean) - clean).max() < 1e-5      # no noise: no change, no NaN


# --- the denoise stage -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def denoised25(noisy25, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dn")
    return {r: _denoised(folder, noisy25.degraded, Denoise(radius=r), f"r{r}.mkv") for r in (0, 2)}


def test_denoise_gains_and_the_aligned_neighbours_count(noisy25, denoised25):
    gt, noisy = _frames(noisy25.gt), _frames(noisy25.degraded)
    before = np.mean([psnr(a, b) for a, b in zip(noisy, gt)])
    spatial = np.mean([psnr(a, b) for a, b in zip(_frames(denoised25[0]), gt)])
    temporal = np.mean([psnr(a, b) for a, b in zip(_frames(denoised25[2]), gt)])
    assert spatial > before + 6, (before, spatial)
    assert temporal > spatial + 1.5, (spatial, temporal)


def test_strength_blends_input_and_result(noisy25, denoised25, tmp_path):
    noisy, full = _frames(noisy25.degraded), _frames(denoised25[2])
    none = _frames(_denoised(tmp_path, noisy25.degraded, Denoise(radius=2, strength=0.0), "s0.mkv"))
    half = _frames(_denoised(tmp_path, noisy25.degraded, Denoise(radius=2, strength=0.5), "s5.mkv"))
    assert all(np.array_equal(a, b) for a, b in zip(none, noisy))
    assert max(np.abs(h - (n + f) / 2).max() for h, n, f in zip(half, noisy, full)) <= 1.01 / 255


def test_segments_give_the_frames_of_one_run(noisy25, denoised25, tmp_path):
    """Each output frame depends on its window only: rendering in segments of 5 frames changes nothing."""
    seg = _denoised(tmp_path, noisy25.degraded, Denoise(radius=2), "seg.mkv", segment_frames=5, work_dir=tmp_path / "w")
    assert all(np.array_equal(a, b) for a, b in zip(_frames(seg), _frames(denoised25[2])))


def test_fast_path_denoises_with_its_neighbours_and_resumes(noisy25, tmp_path):
    """The fast path: a large gain, the aligned neighbours add to it, segments change nothing.
    (Its chroma is kept at half size: this clip's full-size colour edges cap it near 35 dB.)"""
    gt, noisy = _frames(noisy25.gt), _frames(noisy25.degraded)
    fast = _frames(_denoised(tmp_path, noisy25.degraded, Denoise(fast=True), "fast.mkv"))
    spatial = _frames(_denoised(tmp_path, noisy25.degraded, Denoise(radius=0, fast=True), "fast0.mkv"))
    before, ours, alone = (np.mean([psnr(a, b) for a, b in zip(x, gt)]) for x in (noisy, fast, spatial))
    assert ours > before + 8 and ours > alone + 1, (before, alone, ours)
    seg = _denoised(tmp_path, noisy25.degraded, Denoise(fast=True), "seg.mkv", segment_frames=5, work_dir=tmp_path / "w")
    assert all(np.array_equal(a, b) for a, b in zip(_frames(seg), fast))


def test_coarse_test_rejects_misaligned_texture_below_the_noise():
    """Texture of 0.85x the noise's level, shifted by 3 px where the flow says 0: the per-pixel test lets it
    through, the test on 4x4 means stops it; an aligned neighbour passes both."""
    rng = np.random.default_rng(3)
    sigma = 0.1
    texture = cv2.resize(rng.standard_normal((32, 48)).astype(np.float32), (192, 128), interpolation=cv2.INTER_CUBIC)
    scene = 0.5 + 0.85 * sigma * texture / texture.std()
    noisy = lambda img: img[..., None] + sigma * rng.standard_normal((*img.shape, 3)).astype(np.float32)  # noqa: E731
    centre, aligned, shifted = noisy(scene), noisy(scene), noisy(np.roll(scene, 3, axis=1))
    zero = np.zeros((128, 192, 2), np.float32)
    variance = np.full((128, 192), sigma ** 2, np.float32)
    coarse = np.full((32, 48), sigma ** 2 / 16, np.float32)
    n_eff = lambda nb, cv: temporal_average(centre, [nb], [zero], variance, coarse_variance=cv)[1][8:-8, 8:-8].mean()  # noqa: E731
    assert n_eff(shifted, None) > 1.8                         # per pixel, the shift hides under the noise
    assert n_eff(shifted, coarse) < 1.4
    assert n_eff(aligned, coarse) > 1.9


def test_box_factor_reads_the_noise_correlation():
    """The variance of a 2x2 mean is a quarter of the pixels' for white noise, more for low-pass noise."""
    assert box_factor(None) == 1.0 and box_factor(np.ones((8, 8))) == pytest.approx(1.0)
    u = np.arange(8)
    low_pass = np.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / 20.0)
    assert box_factor(low_pass) > 1.5


def test_wider_tapered_window_flickers_less_on_a_still_clip(tmp_path):
    """A still textured clip at sigma 50 (issue 18's flicker bar): the default window (4 frames each side,
    weighted 1 - d^2/25) leaves a residual that changes less from frame to frame than 2 each side
    weighted alike (the old default: the frame-to-frame variance was 22.9 against 14.7 on 8-bit)."""
    scene = np.clip(_scene()[:H, :W], 0, 1)
    write_video(tmp_path / "still.mkv", [scene] * 12, FPS, EncodeSettings("ffv1"))
    r = synth_noise(tmp_path / "still.mkv", tmp_path / "n50", sigma=50, progress=False)
    gt = _frames(r.gt)
    old = Denoise(radius=2)
    old.tapered = False

    def scores(stage: Denoise) -> tuple[float, float]:
        out = np.stack(_frames(_denoised(tmp_path, r.degraded, stage, f"{stage.radius}{stage.tapered}.mkv")))
        return float(np.mean((out[1:] - out[:-1]) ** 2)), float(np.mean([psnr(a, b) for a, b in zip(out, gt)]))

    (flicker_old, psnr_old), (flicker, ours) = scores(old), scores(Denoise())
    assert flicker < 0.75 * flicker_old and ours > psnr_old, (flicker_old, flicker, psnr_old, ours)


def test_garrote_flickers_less_than_hard_thresholding():
    """Two noisy copies sharing 80 % of their noise (consecutive temporal averages of a still scene): the
    fast path's garrote at 0.7x the hard threshold gives outputs that differ less (0.6x) and lie closer to the truth."""
    rng = np.random.default_rng(0)
    img = torch.from_numpy(_scene()[:H, :W].transpose(2, 0, 1)[:1].astype(np.float32))
    common, a, b = (torch.from_numpy(rng.standard_normal(img.shape).astype(np.float32)) for _ in range(3))
    s = 22 / 255
    pair = [img + s * (0.8 ** 0.5 * common + 0.2 ** 0.5 * n) for n in (a, b)]
    out = {g: [shrink_planes(x, s, FAST_SHIFTS, 2.7 * (FAST_GARROTE if g else 1), garrote=g) for x in pair] for g in (False, True)}
    change = {g: float(((o[0] - o[1]) ** 2).mean()) for g, o in out.items()}
    error = {g: float(((o[0] - img) ** 2).mean()) for g, o in out.items()}
    assert change[True] < 0.75 * change[False] and error[True] < error[False], (change, error)


def test_fast_path_smoothing_flickers_less_than_its_estimates(tmp_path):
    """A still scene at sigma 50: the fast path's outputs (each estimate averaged with its neighbours') differ from
    frame to frame by a quarter less (0.64x here) than the estimates they are made of, and lie closer to the truth."""
    write_video(tmp_path / "still.mkv", [_scene()[:H, :W]] * 10, FPS, EncodeSettings("ffv1"))
    r = synth_noise(tmp_path / "still.mkv", tmp_path / "n50", sigma=50, progress=False)
    stage, estimates = Denoise(fast=True), {}

    def estimate(centre, neighbours):     # the stage's own, keeping each frame's estimated luma
        shrunk = Denoise._estimate(stage, centre, neighbours)
        estimates[centre.index] = shrunk.luma
        return shrunk

    stage._estimate = estimate
    out = [cv2.transform(f, OPPONENT[:1]) for f in _frames(_denoised(tmp_path, r.degraded, stage))]
    before = [estimates[i] for i in range(len(out))]
    truth = cv2.transform(_frames(r.gt)[0], OPPONENT[:1])
    flicker = {k: float(np.mean(np.diff(np.stack(v), axis=0) ** 2)) for k, v in (("out", out), ("estimates", before))}
    error = {k: float(np.mean((np.stack(v) - truth) ** 2)) for k, v in (("out", out), ("estimates", before))}
    assert flicker["out"] < 0.75 * flicker["estimates"] and error["out"] < error["estimates"], (flicker, error)


def test_clean_video_passes_nearly_unchanged(clean_clip, tmp_path):
    out = _frames(_denoised(tmp_path, clean_clip, Denoise(), "clean-out.mkv"))
    assert np.mean([psnr(a, b) for a, b in zip(out, _frames(clean_clip))]) >= 45


@pytest.mark.parametrize("fast, least_db", [(False, 45), (True, 30)])
def test_noise_free_video_passes_nearly_unchanged(tmp_path, fast, least_db):
    """A still shot without noise (animation, a screen recording, a clip whose codec took the noise): frame to
    frame differences are all zero, nothing shapes the noise spectrum, which used to come out all zeros
    and turn every frame into one flat colour (6-9 dB). The fast path's chroma at half size costs it the
    sharp coloured edges of this generated scene (35 dB on it, on the panning clean clip too)."""
    still = tmp_path / "still.mkv"
    write_video(still, [np.clip(_scene()[:H, :W], 0, 1)] * 8, FPS, EncodeSettings("ffv1"))
    out = _frames(_denoised(tmp_path, still, Denoise(fast=fast), "still-out.mkv"))
    assert np.mean([psnr(a, b) for a, b in zip(out, _frames(still))]) >= least_db


def test_denoise_cli_reports_the_noise_and_refuses_bad_options(noisy25, tmp_path):
    out = tmp_path / "cli.mkv"
    r = run_cli("denoise", noisy25.degraded, "-o", out, "--codec", "ffv1", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("noise measured"))
    mid = [float(v) for v in line.split("): ")[1].split(", ")[1].removesuffix(" at 50%").split("/")]
    assert all(abs(v - 25) < 2.5 for v in mid), line
    assert probe(out).frame_count == N
    one_line_error(run_cli("denoise", noisy25.degraded, "-o", tmp_path / "x.mkv", "--strength", "1.5"), "strength")
    r = run_cli("restore", noisy25.degraded, "-o", tmp_path / "chain.mkv", "-s", "denoise:radius=1", "-s", "unsharp", "-q")
    assert r.returncode == 0, r.stderr


# --- deblock -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crf40(clean_clip, tmp_path_factory):
    return synth_compress(clean_clip, tmp_path_factory.mktemp("crf40") / "clip", crf=40, progress=False)


def test_qp_is_read_from_the_bitstream(crf40):
    qp = read_qp(crf40.degraded)
    assert len(qp) == N and qp[0].block == 16 and qp[0].qp.shape == (H // 16, W // 16)
    assert 35 <= np.mean([q.qp.mean() for q in qp]) <= 51                     # CRF 40
    assert h264_step(np.array([4, 28]))[1] == pytest.approx(16.0)              # H.264's table: 1.0 at 4, 16 at 28


def test_deblock_gains_on_h264_and_refuses_video_without_a_quantiser(crf40, clean_clip, tmp_path):
    out = _denoised(tmp_path, crf40.degraded, Deblock(), "db.mkv")
    gt = _frames(crf40.gt)
    before = np.mean([psnr(a, b) for a, b in zip(_frames(crf40.degraded), gt)])
    after = np.mean([psnr(a, b) for a, b in zip(_frames(out), gt)])
    assert after > before + 0.1, (before, after)
    with pytest.raises(VidrestoreError, match="quantiser of H.264 video; this is ffv1"):
        restore(clean_clip, tmp_path / "x.mkv", [Deblock()], EncodeSettings("ffv1"), progress=False)
    r = run_cli("deblock", crf40.degraded, "-o", tmp_path / "cli.mkv", "--codec", "ffv1", "-q")
    assert r.returncode == 0 and "mean QP" in r.stdout, r.stderr
    one_line_error(run_cli("deblock", crf40.degraded, "-o", tmp_path / "y.mkv", "--strength", "-1"), "deblock", "strength")
    with pytest.raises(VidrestoreError, match="exports no quantiser"):
        read_qp(clean_clip)


def test_recompress_changes_the_frames_by_the_coding_alone(clean_clip):
    """Coded at QP 0 the frames come back within 45 dB (luma) and no brighter or darker; at QP 42 they lose detail."""
    from vidrestore.restoration.deblock_net import recompress

    frames = _frames(clean_clip)[:3]
    lossless, coded = recompress(frames, 0), recompress(frames, 42)
    assert len(lossless) == 3 and lossless[0].shape == frames[0].shape
    assert min(psnr(luma(a), luma(b)) for a, b in zip(lossless, frames)) > 45
    assert abs(np.mean([luma(a).mean() - luma(b).mean() for a, b in zip(lossless, frames)])) < 0.1 / 255
    assert max(psnr(luma(a), luma(b)) for a, b in zip(coded, frames)) < 35


def test_learned_deblock_network_learns_the_way_back_on_unseen_frames(clean_clip):
    """Trained for 40 steps on 8 frames coded at QP 42 (their luma back to the clean luma), the network brings
    8 other frames, coded likewise, closer to theirs (measured: +0.08 dB at 60 steps); untrained (its last
    convolution at zero) it is the identity, so the margin fails without training."""
    from vidrestore.restoration import deblock_net, residual_cnn

    frames = _frames(clean_clip)
    clean = [luma(x) for x in frames]
    coded = [luma(x) for x in deblock_net.recompress(frames, 42)]

    def gain(net) -> float:
        return float(np.mean([psnr(np.clip(residual_cnn.apply(net, c[None])[0], 0, 1), y) - psnr(c, y)
                              for c, y in zip(coded[8:], clean[8:])]))

    assert gain(residual_cnn.residual_cnn(1).eval()) == 0.0
    assert gain(residual_cnn.train([c[None] for c in coded[:8]], clean[:8], 40)) > 0.03


def test_learned_deblock_stage_trains_once_and_resumes(crf40, tmp_path):
    """`deblock --learned` trains in the analysis pass and caches the network with the quantiser; the CLI
    (--learned --steps) run with the same work folder reuses it and makes the same frames."""
    _trains_once_and_resumes(crf40.degraded, tmp_path, Deblock(learned=True, steps=5), "deblock", "deblocker.safetensors")


def _trains_once_and_resumes(src, tmp_path, stage, command: str, model_name: str) -> list[np.ndarray]:
    """`stage` (a learned path at 5 steps) run through restore, then `command --learned --steps 5` with the same
    work folder: the cached network is neither retrained nor duplicated and the frames are the same. Returns them."""
    work = tmp_path / "work"
    restore(src, tmp_path / "a.mkv", [stage], EncodeSettings("ffv1"), progress=False, work_dir=work)
    model = next(work.rglob(model_name))
    stamp = model.stat().st_mtime_ns
    r = run_cli(command, src, "-o", tmp_path / "b.mkv", "--codec", "ffv1", "--learned", "--steps", "5", "--work-dir", work, "-q")
    assert r.returncode == 0, r.stderr
    assert list(work.rglob(model_name)) == [model] and model.stat().st_mtime_ns == stamp
    a, b = _frames(tmp_path / "a.mkv"), _frames(tmp_path / "b.mkv")
    assert len(a) == N and all(np.array_equal(x, y) for x, y in zip(a, b))
    return a


# --- denoise --learned (Noise2Noise across aligned frames) ---------------------------------------


def test_n2n_target_is_the_neighbour_warped_and_the_mask_drops_what_cannot_be_trusted():
    """A neighbour whose content moved 2 px right: its warp is frame t's scene (within the noise), trusted
    inside; outside the picture (the last 2 columns) and where the neighbour's content changed (a
    square), the mask is 0."""
    from vidrestore.restoration import denoise_net

    rng = np.random.default_rng(3)
    scene = _scene(7)[:H, :W]
    sigma = 0.02
    noisy = (scene + rng.normal(0, sigma, scene.shape)).astype(np.float32)
    other = np.roll(scene, 2, axis=1) + rng.normal(0, sigma, scene.shape).astype(np.float32)
    other[40:70, 60:90] += 0.3        # content that is not in frame t (a brightness 15 sigma away)
    to, back = np.zeros((H, W, 2), np.float32), np.zeros((H, W, 2), np.float32)
    to[..., 0], back[..., 0] = 2.0, -2.0
    target, mask = denoise_net.target_and_mask(noisy, other, to, back, np.full((H, W), sigma ** 2, np.float32))
    assert target.shape == (3, H, W) and mask.shape == (H, W)
    inside = np.zeros((H, W), bool)
    inside[5:-5, 5:-5] = True
    inside[35:75, 50:95] = False
    assert np.abs(target.transpose(1, 2, 0) - scene)[inside].mean() < 2 * sigma
    assert mask[inside].mean() > 0.8
    assert mask[:, -2:].max() == 0.0
    assert mask[45:65, 62:84].max() < 0.05


def test_noise2noise_with_masks_learns_the_clean_scene_from_noisy_targets():
    """residual_cnn trained on (estimate, an independent noisy observation) pairs, never the clean scene, makes
    unseen estimates closer to their clean scenes (Noise2Noise); where the target is garbage (a constant
    over half of every frame) the mask keeps it out: unmasked, a fifth of the training already pulls the
    output towards the garbage. Untrained, the network is the identity (gain 0)."""
    from vidrestore.restoration import residual_cnn

    rng = np.random.default_rng(0)
    scenes = [_scene(s)[:64, :96] for s in range(8)]
    estimates = [np.clip(c + rng.normal(0, 0.06, c.shape), 0, 1).astype(np.float32) for c in scenes]
    targets = [(c + rng.normal(0, 0.1, c.shape)).astype(np.float32) for c in scenes]
    masks = []
    for t in targets:
        t[:, :48] = 1.0
        m = np.ones(t.shape[:2], np.float32)
        m[:, :48] = 0.0
        masks.append(m)
    inputs = [e.transpose(2, 0, 1) for e in estimates[:6]]
    planes = [t.transpose(2, 0, 1) for t in targets[:6]]

    def gain(net) -> float:
        return float(np.mean([psnr(np.clip(residual_cnn.apply(net, e.transpose(2, 0, 1)).transpose(1, 2, 0), 0, 1), c) - psnr(e, c)
                              for e, c in zip(estimates[6:], scenes[6:])]))

    assert gain(residual_cnn.residual_cnn(3, 3).eval()) == 0.0
    masked = gain(residual_cnn.train(inputs, planes, 150, masks=masks[:6]))     # measured: +3.9 dB
    unmasked = gain(residual_cnn.train(inputs, planes, 30))                     # measured: -11.7 dB
    assert masked > 1.0 and unmasked < -3.0, (masked, unmasked)


def test_learned_denoise_stage_trains_once_and_resumes(noisy25, tmp_path):
    """`denoise --learned` trains in the analysis pass and caches the network with the noise profile; the CLI
    (--learned --steps) run with the same work folder reuses it and makes the same frames, which differ
    from the classical path's; --fast with --learned is refused in one line."""
    a = _trains_once_and_resumes(noisy25.degraded, tmp_path, Denoise(learned=True, steps=5), "denoise", "denoiser.safetensors")
    classical = _frames(_denoised(tmp_path, noisy25.degraded, Denoise(), "c.mkv"))
    assert not np.array_equal(a[N // 2], classical[N // 2])
    one_line_error(run_cli("denoise", noisy25.degraded, "-o", tmp_path / "d.mkv", "--fast", "--learned"), "--fast", "--learned")
