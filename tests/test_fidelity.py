"""Fidelity mode (issue 21): `deblur --fidelity` builds every output pixel from observed pixels only,
and its report lists each frame's sources and weights, from which the output can be recomputed."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from conftest import one_line_error, psnr, run_cli
from vidrestore.io import EncodeSettings, VideoReader
from vidrestore.selfhvd import analyze_video
from vidrestore.flow.fusion import blurrier
from vidrestore.selfhvd import AnalysisSettings
from vidrestore.selfhvd.deblur import analysis_settings, deblur
from vidrestore.selfhvd.fidelity import FidelityStage, frame_sources, fuse
from vidrestore.selfhvd.selection import kept_sharp
from vidrestore.selfhvd.window import warp_onto
from vidrestore.synth.handheld import synth_handheld
from vidrestore.synth.shake import ShakeSettings


def _frames(path) -> list[np.ndarray]:
    return [f.rgb for f in VideoReader(path).frames()]


def _pngs(folder) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255 for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def fidelity_job(sharp_video, tmp_path_factory):
    """A short handheld clip through `vidrestore deblur --fidelity` into PNGs (exact 8-bit RGB), with a report."""
    folder = tmp_path_factory.mktemp("fidelity")
    clip = synth_handheld(sharp_video, folder / "clip", ShakeSettings(seed=4, blur_strength=2.0), frames=24, progress=False)
    work = folder / "work"
    r = run_cli("deblur", str(clip.blurry), "-o", str(folder / "out"), "--fidelity", "--report", str(folder / "report.html"),
                "--work-dir", str(work), "-q")
    assert r.returncode == 0, r.stderr
    html = (folder / "report.html").read_text()
    listing = json.loads(re.search(r'<script type="application/json" id="fidelity-sources">(.*?)</script>', html, re.S)[1])
    passed = re.search(r"fidelity mode: (\d+) frames fused from their sharper aligned neighbours, (\d+) passed through", r.stdout)
    assert passed and int(passed[1]) == sum(len(e["sources"]) > 1 for e in listing), r.stdout
    return clip, work, folder / "out", html, listing, int(passed[2])


def _luma_low(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on PSNR-Y's scale, Gaussian sigma 1.5: what the documented agreement compares."""
    y = rgb @ np.float32([0.299, 0.587, 0.114]) * np.float32(219 / 255)
    return cv2.GaussianBlur(y, (0, 0), 1.5)


def test_output_frames_are_recomputed_from_the_listed_sources_and_weights(fidelity_job):
    clip, work, out, html, listing, passed = fidelity_job
    a = analyze_video(clip.blurry, work_dir=work, progress=False)
    inputs, outputs = _frames(clip.blurry), _pngs(out)
    assert len(listing) == len(inputs) == len(outputs)
    assert "(fidelity mode)" in html and "No network made any pixel" in html
    assert "<td>budget</td>" not in html and "<td>fidelity</td><td>True</td>" in html  # no network settings shown
    kept = kept_sharp(a.selection.sharp, a.laplacian, radius=4)
    fused = [e for e in listing if len(e["sources"]) > 1]
    assert len(fused) >= 5
    h, w = inputs[0].shape[:2]
    moved = []
    for e in listing:
        i, sources, weights = e["frame"], e["sources"], e["weights"]
        assert sources[0] == i and weights[0] == 1.0
        if len(sources) == 1:  # kept (the selected sharp frames without a clearly sharper neighbour) or passed
            assert np.abs(outputs[i] - inputs[i]).max() <= 0.5 / 255 + 1e-6   # through (the fusion would blur it)
            candidates = frame_sources(a, i)
            assert kept[i] or blurrier(inputs[i], fuse(a, i, candidates, inputs.__getitem__)), i
            passed -= not kept[i]   # what the command printed
            continue
        assert not kept[i]
        low = _luma_low(inputs[i])
        acc, total = inputs[i].copy(), np.ones((h, w), np.float32)
        for t, wt in zip(sources[1:], weights[1:]):
            assert abs(t - i) <= 4 and a.laplacian[t] > a.laplacian[i]  # only sharper frames of the window
            assert wt == pytest.approx(4.0 * (float(a.laplacian[t]) / float(a.laplacian[i]) - 1) ** 3, rel=1e-6)
            aligned = warp_onto(a, i, t, inputs[t], (0, h, 0, w))
            visible = 1 - np.minimum(1, 0.8 * a.round_trip_error(i, t))
            d = np.abs(_luma_low(aligned) - low)
            grown = cv2.dilate(d, np.ones((13, 13), np.uint8))  # strong disagreement spreads over 13x13
            tau = visible * 0.01 / (0.01 + np.where(grown > 0.06, grown, d))
            acc += (wt * tau)[..., None] * aligned
            total += wt * tau
        expected = acc / total[..., None]
        diff = np.abs(outputs[i] - expected)
        assert diff.max() <= 1.01 / 255, (i, diff.max() * 255)
        assert diff.mean() <= 0.3 / 255  # 8-bit rounding alone: 0.25 code values on average
        moved.append(float(np.abs(outputs[i] - inputs[i]).max()))
    assert max(moved) > 30 / 255  # while the fusion moved pixels by far more
    assert passed == 0


def test_fidelity_output_lies_between_its_source_pixels_and_is_sharper(fidelity_job):
    clip, work, out, _, listing, _ = fidelity_job
    a = analyze_video(clip.blurry, work_dir=work, progress=False)
    inputs, outputs, gt = _frames(clip.blurry), _pngs(out), _frames(clip.gt)
    h, w = inputs[0].shape[:2]
    gains = []
    for e in listing:
        i = e["frame"]
        if len(e["sources"]) == 1:
            continue
        stack = np.stack([inputs[i]] + [warp_onto(a, i, t, inputs[t], (0, h, 0, w)) for t in e["sources"][1:]])
        assert (outputs[i] >= stack.min(0) - 1 / 255).all() and (outputs[i] <= stack.max(0) + 1 / 255).all()
        gains.append(psnr(outputs[i][8:-8, 8:-8], gt[i][8:-8, 8:-8]) - psnr(inputs[i][8:-8, 8:-8], gt[i][8:-8, 8:-8]))
    assert np.mean(gains) > 1.0, gains


def test_fidelity_does_not_paste_a_moving_object(tmp_path):
    """Fusion trusts a neighbour only where it agrees with the frame, and a strong disagreement (an
    object that moved) spreads over its neighbourhood: around a moving square the output stays at
    least as close to the truth as the input (per-pixel agreement alone lost 0.19 dB there)."""
    from conftest import moving_square_clip, moving_square_scores

    clip, place = moving_square_clip(tmp_path)
    deblur(clip.blurry, tmp_path / "out.mkv", fidelity=True, encode=EncodeSettings("ffv1"), work_dir=tmp_path / "w",
           progress=False)
    mean = moving_square_scores(clip, place, tmp_path / "out.mkv")
    assert mean["out"] >= mean["in"] + 0.03, mean
    assert mean["out_all"] > mean["in_all"] + 1.0, mean


def test_a_frame_the_fusion_would_blur_is_passed_through_and_listed_as_its_own_source(sharp_video, tmp_path, monkeypatch):
    """`fusion.never_blurrier` in fidelity mode: with a fusion that blurs (a Gaussian over it, as a blend of
    neighbours misaligned by a pixel or two gives), every frame comes out as it went in and the listing says
    so; the decisions outlive the run (a resumed job lists the frames an earlier run rendered), and without
    them the listing renders the frames again to decide."""
    from vidrestore.selfhvd import fidelity

    clip = synth_handheld(sharp_video, tmp_path / "clip", ShakeSettings(seed=4, blur_strength=2.0), frames=12, progress=False)
    work = tmp_path / "w"
    fusion = fidelity.fuse
    honest = deblur(clip.blurry, tmp_path / "fused.mkv", fidelity=True, encode=EncodeSettings("ffv1"), work_dir=work,
                    progress=False).sources
    assert sum(len(s) > 1 for s in honest) >= 3
    monkeypatch.setattr(fidelity, "fuse", lambda a, i, sources, frame_of: cv2.GaussianBlur(fusion(a, i, sources, frame_of), (0, 0), 1.5))
    a = analyze_video(clip.blurry, analysis_settings(AnalysisSettings(), True, None), work_dir=work, progress=False)
    for record in (a.dir / "fidelity-r4").iterdir():
        record.unlink()
    report = deblur(clip.blurry, tmp_path / "out.mkv", fidelity=True, encode=EncodeSettings("ffv1"), work_dir=work, progress=False)
    assert report.sources == [[(i, 1.0)] for i in range(len(honest))]
    assert all(np.array_equal(f, g) for f, g in zip(_frames(clip.blurry), _frames(tmp_path / "out.mkv")))
    for record in (a.dir / "fidelity-r4").iterdir():
        record.unlink()
    assert FidelityStage(a).sources(clip.blurry) == report.sources   # rendered again to decide
    monkeypatch.undo()
    assert FidelityStage(a).sources(clip.blurry) == report.sources   # the decisions it recorded
    for record in (a.dir / "fidelity-r4").iterdir():
        record.unlink()
    assert FidelityStage(a).sources(clip.blurry) == honest


def test_fidelity_refuses_a_model(sharp_video, tmp_path):
    r = run_cli("deblur", str(sharp_video), "-o", str(tmp_path / "o.mkv"), "--fidelity", "--model", str(tmp_path / "m.safetensors"))
    assert r.returncode != 0
    one_line_error(r, "fidelity mode uses no network")
