"""Stabilization: global motion estimation, the two-pass stage, its CLI, and the stabilization metrics."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import run_cli, shared, stream_packets, textured_scene
from vidrestore.errors import VidrestoreError
from vidrestore.flow import motion
from vidrestore.flow.motion import estimate, frame_motions, prepare
from vidrestore.io import EncodeSettings, probe, read_frames, write_video
from vidrestore.metrics.stabilization import (
    crop_and_distortion, evaluate_stabilization, itf, path_jitter, path_parameters, stability_score,
)
from vidrestore.pipeline import create_stage, restore
from vidrestore.restoration.stabilize import Stabilize
from vidrestore.synth.shake import ShakeSettings
from vidrestore.synth.shaky import load_trajectory, synth_shaky, true_camera_path

W, H, N = 160, 96, 30


def _shake(n: int = N, seed: int = 0) -> np.ndarray:
    """A per-frame camera offset: slow pan plus +-3 px jitter (pixels, x and y)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.stack([0.5 * t + rng.uniform(-3, 3, n), 0.2 * t + rng.uniform(-3, 3, n)], -1)


def _render(scene: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [cv2.warpAffine(scene, np.float32([[1, 0, -20 - dx], [0, 1, -20 - dy]]), (W, H), flags=cv2.INTER_CUBIC)
            for dx, dy in offsets]


@pytest.fixture(scope="module")
def shaky_clip(tmp_path_factory):
    """A 160x96 lossless clip of a textured scene seen by a shaking camera, and the offsets."""
    offsets = _shake()
    path = tmp_path_factory.mktemp("stab") / "shaky.mkv"
    write_video(path, _render(textured_scene(np.random.default_rng(5), W + 80, H + 60), offsets), 30, EncodeSettings("ffv1"))
    return path, offsets


def test_motion_recovers_known_shifts(shaky_clip):
    path, offsets = shaky_clip
    motions, methods = frame_motions(f.rgb for f in read_frames(path))
    assert motions.shape == (N, 2, 3) and methods[0] == "first" and set(methods[1:]) == {"features"}
    # the camera moved by d: content moved by -d, so frame t maps onto t-1 by +d
    assert np.allclose(motions[1:, :, 2], np.diff(offsets, axis=0), atol=0.15)
    assert np.allclose(motions[1:, :, :2], np.eye(2), atol=2e-3)


def test_motion_ignores_a_moving_foreground():
    """A textured block covering a fifth of the frame slides 6 px per frame over a still background."""
    rng = np.random.default_rng(2)
    bg, block = textured_scene(rng, 320, 192), textured_scene(rng, 100, 80)
    a, b = bg.copy(), bg.copy()
    a[50:130, 60:160], b[50:130, 66:166] = block, block
    g = estimate(prepare(a), prepare(b))
    assert g.method == "features"
    assert np.allclose(g.matrix, np.eye(2, 3), atol=0.05)


def test_motion_falls_back_to_dense_flow(monkeypatch):
    """When tracked corners are too few to trust (here: made so by demanding more inliers than any
    frame has), DIS flow sampled on a grid finds the shift of smooth content; a flat frame pair
    shows no motion."""
    monkeypatch.setattr(motion, "MIN_INLIERS", 10**6)
    y, x = np.mgrid[0:192, 0:320].astype(np.float32)
    smooth = (0.5 + 0.2 * np.sin(x / 23) * np.cos(y / 17) + 0.1 * np.cos((x + y) / 31))[..., None].repeat(3, -1)
    shifted = cv2.warpAffine(smooth, np.float32([[1, 0, 3], [0, 1, -2]]), (320, 192), borderMode=cv2.BORDER_REFLECT)
    g = estimate(prepare(smooth), prepare(shifted))
    assert g.method == "dense"
    assert np.allclose(g.matrix[:, 2], [-3, 2], atol=0.3)
    flat = np.full((96, 160, 3), 0.4, np.float32)
    g = estimate(prepare(flat), prepare(flat))
    assert g.method in ("dense", "none") and np.allclose(g.matrix, np.eye(2, 3), atol=1e-3)


def test_stabilize_stage_removes_jitter_and_keeps_size_count_and_timing(shaky_clip, tmp_path):
    path, offsets = shaky_clip
    out = tmp_path / "steady.mkv"
    stage = Stabilize()
    restore(path, out, [stage], EncodeSettings("ffv1"), progress=False)
    assert stage.summary["solver"] == "l1" and stage.summary["frames"] == N
    zoom_out = np.hypot(stage.matrices[:, 0, 0], stage.matrices[:, 1, 0])   # output -> input scale
    assert np.all(zoom_out >= 0.85 - 1e-9)                                   # never more than the 15 % crop budget
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (W, H, N)
    motions, _ = frame_motions(f.rgb for f in read_frames(out))
    path_out = path_parameters(motions, W, H)
    jitter_in = path_jitter(path_parameters(frame_motions(f.rgb for f in read_frames(path))[0], W, H), 30, W, H)
    assert path_jitter(path_out, 30, W, H) < 0.1 * jitter_in
    r = evaluate_stabilization(out, path)
    assert r.jitter_reduction > 0.9
    assert r.crop == pytest.approx(0.15, abs=0.03) and r.distortion > 0.95
    assert r.output.itf > r.input.itf


def test_border_modes_and_gauss(shaky_clip, tmp_path):
    path, _ = shaky_clip
    frames = {}
    for spec in ("stabilize:border=black", "stabilize:border=reflect,smoother=gauss,sigma=8"):
        out = tmp_path / f"{spec.replace(':', '_').replace(',', '_').replace('=', '-')}.mkv"
        restore(path, out, [create_stage(spec)], EncodeSettings("ffv1"), progress=False)
        frames[spec] = [f.rgb for f in read_frames(out)]
    black = np.array(frames["stabilize:border=black"])
    assert (black.max(axis=-1) < 0.02).any(axis=(1, 2)).mean() > 0.5     # black shows where the frame moved away
    assert black[:, H // 2 - 10:H // 2 + 10, W // 2 - 10:W // 2 + 10].min() >= 0   # the centre always has picture
    assert len(frames["stabilize:border=reflect,smoother=gauss,sigma=8"]) == N
    with pytest.raises(VidrestoreError, match="border"):
        create_stage("stabilize:border=wrap")
    with pytest.raises(VidrestoreError, match="crop"):
        Stabilize(crop=0.6)


def test_stabilize_cli_keeps_audio(clip_factory, tmp_path):
    src, spec, _ = clip_factory("stab_audio.mkv", width=160, height=96, frames=20, audio=True)
    out = tmp_path / "steady.mkv"
    r = run_cli("stabilize", src, "-o", out, "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    assert probe(out).frame_count == spec.frames
    assert stream_packets(out, "audio") == stream_packets(src, "audio")
    bad = run_cli("stabilize", tmp_path / "missing.mp4", "-o", tmp_path / "x.mkv")
    assert bad.returncode == 1 and "missing.mp4" in bad.stderr and "Traceback" not in bad.stderr


def test_metrics_cli_stabilization(shaky_clip, tmp_path):
    path, _ = shaky_clip
    out = tmp_path / "steady.mkv"
    restore(path, out, [Stabilize()], EncodeSettings("ffv1"), progress=False)
    r = run_cli("metrics", out, path, "--stabilization", "--json", tmp_path / "s.json", "-q")
    assert r.returncode == 0, r.stderr
    assert "jitter reduction" in r.stdout and "cropping ratio" in r.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["jitter_reduction"] > 0.9


def test_stability_and_jitter_on_known_paths():
    t = np.arange(300)
    smooth = np.zeros((300, 4))
    smooth[:, 0] = 40 * np.sin(2 * np.pi * t / 300)          # one slow sway over the clip
    shaky = smooth.copy()
    shaky[:, 0] += 3 * np.sin(2 * np.pi * 5 * t / 30)          # plus 5 Hz shake of amplitude 3 px
    assert stability_score(smooth)[1] > 0.95   # (the magnitude |40 sin| has some harmonics)
    assert stability_score(shaky)[1] < stability_score(smooth)[1]
    assert path_jitter(smooth, 30, W, H) < 0.01
    assert path_jitter(shaky, 30, W, H) == pytest.approx(4.5, rel=0.05)      # mean of (3 sin)^2
    with pytest.raises(VidrestoreError, match="cutoff"):
        path_jitter(shaky, 30, W, H, cutoff_hz=20)


def test_path_parameters_follow_the_frame_centre():
    m = np.tile(np.eye(2, 3), (3, 1, 1))
    m[1:, :, 2] = (2.0, -1.0)
    p = path_parameters(m, W, H)
    assert np.allclose(p[:, :2], [[0, 0], [2, -1], [4, -2]]) and np.allclose(p[:, 2:], 0)


def test_crop_distortion_and_itf():
    frame = textured_scene(np.random.default_rng(9), 320, 192)
    zoom = cv2.warpAffine(frame, cv2.getRotationMatrix2D((159.5, 95.5), 0, 1 / 0.85), (320, 192), flags=cv2.INTER_CUBIC)
    ratio, worst, distortion = crop_and_distortion([frame, frame], [zoom, zoom])
    assert ratio == pytest.approx(0.85, abs=0.01) and worst == pytest.approx(0.85, abs=0.01)
    assert distortion > 0.98
    assert itf([frame, frame, frame]) == 100.0
    assert itf([frame, zoom]) < 30


def test_synth_shaky_path_is_recovered(tmp_path):
    """A still clip given a known hand trajectory: the measured camera path matches the injected one."""
    still = tmp_path / "still_scene.mkv"
    write_video(still, [textured_scene(np.random.default_rng(4), 192, 128)] * 20, 25, EncodeSettings("ffv1"))
    r = synth_shaky(still, tmp_path / "shaky", ShakeSettings(blur_strength=0.3, seed=1), progress=False)
    traj = load_trajectory(r.dir)
    assert traj["homographies"].shape == (20, 3, 3) and r.zoom >= 1
    truth = true_camera_path(traj["homographies"])
    motions, _ = frame_motions(f.rgb for f in read_frames(r.shaky))
    est = np.eye(3)
    centre = np.array([95.5, 63.5, 1])
    for t in range(1, 20):
        est = est @ np.vstack([motions[t], [0, 0, 1]])
        q = truth[t] @ centre
        assert np.linalg.norm(est @ centre - q / q[2]) < 1.0
    with pytest.raises(VidrestoreError, match="already exists"):
        synth_shaky(still, tmp_path / "shaky", progress=False)


@pytest.mark.slow
def test_real_shaky_footage_is_stabilized(tmp_path):
    """The first 90 frames of the shared handheld pan: jitter energy down by more than 90 % at 15 % crop."""
    src = tmp_path / "mesh90.mkv"
    write_video(src, (f.rgb for f in read_frames(shared("real_blur", "meshflow_shaky-5.avi"), 0, 90)), 30, EncodeSettings("ffv1"))
    out = tmp_path / "steady.mkv"
    restore(src, out, [Stabilize()], EncodeSettings("ffv1"), progress=False)
    r = evaluate_stabilization(out, src)
    assert r.jitter_reduction > 0.9 and r.crop < 0.16
