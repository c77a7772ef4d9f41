"""Metrics against references: scikit-image for PSNR/SSIM, known shifts, injected flicker, LPIPS by hand."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import run_cli, shared
from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings, read_frames, write_video
from vidrestore.metrics import blur_effect, drift, edge_variance, laplacian_variance, local_drift, psnr, rgb_to_y, ssim, warping_error
from vidrestore.metrics.drift import drift_flow
from vidrestore.metrics.lpips import load_lpips
from vidrestore.metrics.report import evaluate


def _scene(seed: int = 0, w: int = 256, h: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), 1.2)
    for _ in range(40):
        x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
        img[y:y + rng.integers(4, 20), x:x + rng.integers(4, 20)] = rng.random(3)
    return np.clip(img, 0, 1)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _sk_ssim(a, b, channel_axis=-1):
    return structural_similarity(a, b, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 channel_axis=channel_axis)


def _pairs():
    rng = np.random.default_rng(1)
    a = rng.random((97, 130, 3), dtype=np.float32)
    yield a, np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    s = _scene(2)
    yield s, cv2.GaussianBlur(s, (0, 0), 1.5)


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_ssim_agree_with_scikit_image(crop):
    for a, b in _pairs():
        c = (slice(crop, -crop or None), slice(crop, -crop or None))
        assert abs(psnr(a, b, crop) - peak_signal_noise_ratio(a[c], b[c], data_range=1)) < 1e-4
        assert abs(ssim(a, b, crop) - _sk_ssim(a[c], b[c])) < 1e-4
        ya, yb = rgb_to_y(a[c]), rgb_to_y(b[c])
        assert abs(psnr(a, b, crop, "y") - peak_signal_noise_ratio(ya, yb, data_range=1)) < 1e-4
        assert abs(ssim(a, b, crop, "y") - _sk_ssim(ya, yb, None)) < 1e-4


def test_psnr_ssim_agree_with_scikit_image_on_real_frames():
    path = shared("sharp", "vid4_city_GT.mkv")
    a = next(read_frames(path)).rgb
    b = cv2.GaussianBlur(a, (0, 0), 1.0)
    assert abs(psnr(a, b, 8) - peak_signal_noise_ratio(a[8:-8, 8:-8], b[8:-8, 8:-8], data_range=1)) < 1e-4
    assert abs(ssim(a, b, 8) - _sk_ssim(a[8:-8, 8:-8], b[8:-8, 8:-8])) < 1e-4
    assert abs(ssim(a, b, 0, "y") - _sk_ssim(rgb_to_y(a), rgb_to_y(b), None)) < 1e-4


def test_y_is_bt601_luma_of_restoration_papers():
    x = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    assert np.allclose(rgb_to_y(x) * 255, rgb2ycbcr(x)[..., 0], atol=1e-3)
    assert psnr(x, x) == float("inf")


def test_bad_inputs_are_clear_errors():
    a = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(VidrestoreError, match="differ in size"):
        psnr(a, np.zeros((32, 30, 3), np.float32))
    with pytest.raises(VidrestoreError, match="leaves nothing"):
        ssim(a, a, crop=16)


def _video(n: int = 6, flicker: float = 0.0) -> list[np.ndarray]:
    base = _scene(3)
    return [np.clip(_shift(base, 1.0 * i, 0.4 * i) * (1 + flicker * (-1) ** i), 0, 1) for i in range(n)]


def test_warping_error_zero_for_itself_and_static_video_and_grows_with_flicker():
    ref = _video()
    same = warping_error(ref, ref)
    assert same.mean > 0 and same.excess == 0.0
    static = [ref[0]] * 4
    assert warping_error(static, static).mean < 1e-10
    excess = [warping_error(_video(flicker=k), ref).excess for k in (0.0, 0.02, 0.05, 0.1)]
    assert excess[0] == 0.0
    assert all(b > a for a, b in zip(excess, excess[1:])), excess
    with pytest.raises(VidrestoreError, match="fewer frames"):
        warping_error(ref, ref[:3])


@pytest.mark.parametrize("dx,dy", [(1.5, 0.0), (0.0, -1.5), (1.06, 1.06)])
def test_drift_measures_an_injected_shift(dx, dy):
    ref = _scene(4)
    d = drift(_shift(ref, dx, dy), ref)  # the content moves by (dx, dy)
    assert abs(d.magnitude - np.hypot(dx, dy)) < 0.2
    assert abs(d.dx - dx) < 0.2 and abs(d.dy - dy) < 0.2
    assert drift(ref, ref).magnitude < 0.05


def test_drift_on_real_frame_and_local_map_finds_the_moved_region():
    ref = next(read_frames(shared("sharp", "vid4_city_GT.mkv"))).rgb
    assert abs(drift(_shift(ref, 1.5, 0), ref).magnitude - 1.5) < 0.2
    ref = _scene(5, 256, 256)
    out = ref.copy()
    out[128:, 128:] = _shift(ref, 3, 0)[128:, 128:]  # one quadrant moved by 3 px
    local = local_drift(drift_flow(out, ref), block=32)
    assert local.shape == (8, 8)
    assert np.median(local[5:7, 5:7]) > 2.0 and np.median(local[1:3, 1:3]) < 0.3


def test_blur_measures_rank_a_blurred_frame():
    s = _scene(6)
    b = cv2.GaussianBlur(s, (0, 0), 2.0)
    assert blur_effect(b) > blur_effect(s) + 0.05
    assert laplacian_variance(b) < 0.5 * laplacian_variance(s)
    assert laplacian_variance(np.full((32, 32, 3), 0.3, np.float32)) == 0.0


def test_edge_variance_leaves_out_the_noise_a_blend_averages_away():
    """`edge_variance` (`fusion.blurrier`'s measure): white noise raises the Laplacian variance of a frame,
    so that the same frame with half the noise (what averaging it with aligned neighbours leaves) reads
    less sharp by it; less the noise's share it does not, and a blur still shows."""
    s = _scene(6)
    noisy, half = (np.clip(s + np.random.default_rng(0).normal(0, sd, s.shape).astype(np.float32), 0, 1) for sd in (0.06, 0.03))
    assert laplacian_variance(noisy, 0.5) > 1.3 * laplacian_variance(half, 0.5) > 1.3 * laplacian_variance(s, 0.5)
    clean = edge_variance(s)
    assert edge_variance(half) >= 0.95 * edge_variance(noisy) and abs(edge_variance(half) - clean) < 0.05 * clean
    assert abs(edge_variance(noisy) - clean) < 0.2 * clean
    assert edge_variance(cv2.GaussianBlur(noisy, (0, 0), 1.5)) < 0.3 * clean


# --- LPIPS on weights the test makes -----------------------------------------------------------

_ALEX = [(0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3), (8, 384, 256, 3), (10, 256, 256, 3)]


def _random_lpips_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random AlexNet + non-negative linear heads, named as the reference lpips implementation names them."""
    g = torch.Generator().manual_seed(seed)
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    state = {}
    for idx, cin, cout, k in _ALEX:
        state[f"net.slice{slices[idx]}.{idx}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5
        state[f"net.slice{slices[idx]}.{idx}.bias"] = torch.randn(cout, generator=g) * 0.01
    for n, (_, _, cout, _) in enumerate(_ALEX):
        state[f"lin{n}.model.1.weight"] = torch.rand(1, cout, 1, 1, generator=g) / cout
    state["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    return state


def _lpips_by_hand(state, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS written out with torch.nn.functional from the paper's definition."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}

    def feats(x):
        x = (torch.from_numpy(x).permute(2, 0, 1)[None] * 2 - 1 - shift) / scale
        out = []
        for idx, _, _, k in _ALEX:
            if idx in (3, 6):
                x = F.max_pool2d(x, 3, 2)
            w, bias = state[f"net.slice{slices[idx]}.{idx}.weight"], state[f"net.slice{slices[idx]}.{idx}.bias"]
            x = F.relu(F.conv2d(x, w, bias, stride=4 if idx == 0 else 1, padding={11: 2, 5: 2, 3: 1}[k]))
            out.append(x)
        return out

    total = 0.0
    for n, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total += float((state[f"lin{n}.model.1.weight"] * (na - nb) ** 2).sum(1).mean())
    return total


def test_lpips_matches_its_definition_on_weights_made_here(tmp_path):
    from safetensors.torch import save_file

    state = _random_lpips_state()
    save_file(state, str(tmp_path / "lpips.safetensors"))
    model = load_lpips(tmp_path / "lpips.safetensors")
    a = _scene(7, 96, 80)
    b = np.clip(a + np.random.default_rng(0).normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert model.distance(a, a) == 0.0
    assert abs(model.distance(a, b) - _lpips_by_hand(state, a, b)) < 1e-5
    noisier = np.clip(a + np.random.default_rng(0).normal(0, 0.2, a.shape), 0, 1).astype(np.float32)
    assert model.distance(a, noisier) > model.distance(a, b) > 0

    # The same weights split as torchvision's backbone file + lpips' heads file give the same metric.
    backbone = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in state.items() if k.startswith("net.")}
    heads = {k: v for k, v in state.items() if k.startswith("lin")}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    split = load_lpips([tmp_path / "alexnet.pth", tmp_path / "alex.pth"])
    assert split.distance(a, b) == pytest.approx(model.distance(a, b), abs=1e-7)


def test_lpips_vgg_backbone_loads(tmp_path):
    from vidrestore.metrics.lpips import LPIPS

    own = LPIPS("vgg").state_dict()
    torch.save({k: torch.rand_like(v) * 0.01 for k, v in own.items()}, tmp_path / "vgg.pth")
    model = load_lpips(tmp_path / "vgg.pth", "vgg")
    a = _scene(8, 64, 64)
    assert model.distance(a, a) == 0.0 and model.distance(a, 1 - a) > 0


def test_lpips_without_usable_weights_says_what_to_do(tmp_path):
    with pytest.raises(VidrestoreError, match="needs a local weights file"):
        load_lpips(None)
    with pytest.raises(VidrestoreError, match="not found"):
        load_lpips(tmp_path / "nope.pth")
    heads = {k: v for k, v in _random_lpips_state().items() if k.startswith("lin")}
    torch.save(heads, tmp_path / "heads.pth")
    with pytest.raises(VidrestoreError, match="incomplete"):
        load_lpips(tmp_path / "heads.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VidrestoreError, match="cannot read"):
        load_lpips(tmp_path / "junk.pth")
    r = run_cli("metrics", tmp_path / "a.mkv", tmp_path / "b.mkv", "--lpips", tmp_path / "nope.pth", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr


# --- whole-video report -------------------------------------------------------------------------


def test_report_groups_by_label_and_video_against_itself(tmp_path):
    ref = _video(5)
    out = [cv2.GaussianBlur(f, (0, 0), 1.5) if i % 2 else f for i, f in enumerate(ref)]
    rep = evaluate(out, ref, labels=[i % 2 == 0 for i in range(5)], crop=4)
    s = rep.summary()
    assert s["sharp"]["frames"] == 3 and s["blurry"]["frames"] == 2
    assert s["sharp"]["psnr_rgb"] == float("inf") and s["blurry"]["psnr_rgb"] < 40
    # frames passed through unchanged do not make the whole video's mean infinite: they are counted
    assert s["all"]["psnr_rgb"] == pytest.approx(s["blurry"]["psnr_rgb"]) and s["all"]["identical"] == 3
    assert s["sharp"]["identical"] == 3 and s["blurry"]["identical"] == 0
    assert s["blurry"]["blur_effect"] > s["sharp"]["blur_effect"]
    assert rep.rows[0]["warp_error"] is None and rep.rows[1]["warp_error"] is not None
    rep.write_csv(tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_text().splitlines()[0].startswith("index,label,psnr_rgb")
    nogt = evaluate(out, ref, gt=False).rows[1]
    assert nogt["psnr_rgb"] is None and nogt["drift_px"] is not None


def test_cli_metrics_video_against_itself(tmp_path):
    frames = _video(5)
    path = tmp_path / "v.mkv"
    write_video(path, frames, 25, EncodeSettings("ffv1"))
    r = run_cli("metrics", path, path, "--json", tmp_path / "s.json", "--csv", tmp_path / "f.csv", "-q")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["all"]["psnr_rgb"] == "inf" and s["all"]["ssim_y"] == pytest.approx(1.0)
    assert s["all"]["warp_excess"] == 0.0 and s["all"]["drift_px"] < 0.05
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 6


def test_nearest_sharp_known_answer():
    from vidrestore.metrics.agreement import nearest_sharp

    assert nearest_sharp([False, True, False, False, False, True]) == [1, 1, 1, 1, 5, 5]  # tie at 3 -> earlier
    assert nearest_sharp([False, False]) == [-1, -1]


def _panning_clip(n: int = 9, sharp_every: int = 4) -> tuple[list[np.ndarray], list[np.ndarray], list[bool]]:
    """Ground truth, a clip blurred along the pan except every `sharp_every`-th frame, and those flags."""
    scene = _scene(3, 320, 200)
    gt = [_shift(scene, -2.0 * i, -0.5 * i)[20:180, 20:300] for i in range(n)]
    k = np.zeros((9, 9), np.float32)
    k[4, :] = 1 / 9
    sharp = [i % sharp_every == 0 for i in range(n)]
    blurry = [g if s else cv2.filter2D(g, -1, k, borderType=cv2.BORDER_REFLECT) for g, s in zip(gt, sharp)]
    return gt, blurry, sharp


def test_sharp_frame_agreement_rewards_restoration_and_punishes_sharpening():
    """Ground truth scores far above the input, an unsharp mask below it, the input equal to itself."""
    from vidrestore.metrics.agreement import sharp_frame_agreement

    gt, blurry, sharp = _panning_clip()
    unsharp = [np.clip(b + 1.5 * (b - cv2.GaussianBlur(b, (0, 0), 2)), 0, 1) for b in blurry]
    rows = {name: sharp_frame_agreement(out, blurry, sharp) for name, out in
            [("gt", gt), ("input", blurry), ("unsharp", unsharp)]}
    assert [r.index for r in rows["gt"]] == [i for i, s in enumerate(sharp) if not s]
    for r in rows["input"]:
        assert r.output_psnr == pytest.approx(r.input_psnr) and r.coverage > 0.5
    gain = {name: np.mean([r.output_psnr - r.input_psnr for r in rs]) for name, rs in rows.items()}
    assert gain["gt"] > 5.0
    assert gain["unsharp"] < -0.5
    assert all(r.partner in (0, 4, 8) and abs(r.partner - r.index) <= 2 for r in rows["gt"])


def test_report_adds_agreement_with_sharp_flags():
    gt, blurry, sharp = _panning_clip()
    report = evaluate(gt, blurry, gt=False, sharp=sharp)
    summary = report.summary()["all"]
    assert summary["agree_gain"] > 5.0
    assert [r["agree_out"] is None for r in report.rows] == sharp
    with pytest.raises(VidrestoreError, match="sharp-frame flags cover"):
        evaluate(gt, blurry, gt=False, sharp=sharp[:-1])


def test_cli_metrics_no_gt_reports_agreement(tmp_path):
    gt, blurry, sharp = _panning_clip(12)
    write_video(tmp_path / "in.mkv", blurry, 30, EncodeSettings("ffv1"))
    write_video(tmp_path / "out.mkv", gt, 30, EncodeSettings("ffv1"))
    r = run_cli("metrics", tmp_path / "out.mkv", tmp_path / "in.mkv", "--no-gt", "--json", tmp_path / "s.json", "-q")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "s.json").read_text())["all"]
    assert summary["agree_gain"] > 3.0 and "agree_gain" in r.stdout
