"""Shared fixtures: generated clips, an isolated work directory, helpers to run the CLI and decode."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidrestore.synth.clips import ClipSpec, write_test_clip

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VIDRESTORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one core per worker, for its CLI children too
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"  # OpenCV's threads (and so `FlowEstimator.flow_pairs`' workers)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


@pytest.fixture(autouse=True, scope="session")
def _work_dir(tmp_path_factory):
    """Keep every test's resumable work out of the user's cache."""
    os.environ["VIDRESTORE_WORK_DIR"] = str(tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """make(name, **ClipSpec fields) -> (path, spec, pts); generated once per session."""
    root = tmp_path_factory.mktemp("clips")
    made: dict[str, tuple[Path, ClipSpec, list[int]]] = {}

    def make(name: str, **fields) -> tuple[Path, ClipSpec, list[int]]:
        spec = ClipSpec(**fields)
        key = hashlib.sha1(repr((name, spec)).encode()).hexdigest()[:12]  # the same name asked with other fields: another clip
        if key not in made:
            path = root / key / name
            path.parent.mkdir()
            made[key] = (path, spec, write_test_clip(path, spec))
        return made[key]

    return make


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m vidrestore ARGS` with this tree's sources; capture text output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "vidrestore", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The single "vidrestore: error:" line of a failed run (no traceback), which must hold every needle."""
    assert result.returncode != 0
    err = result.stderr.strip()
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("vidrestore: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decoded_times(path: Path) -> list[Fraction]:
    """Presentation time of every decoded video frame, as exact fractions of a second."""
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def stream_packets(path: Path, kind: str) -> list[list[tuple[bytes, Fraction]]]:
    """For each stream of `kind`, its packets as (payload, presentation time)."""
    out = []
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        for s in streams:
            with av.open(str(path)) as c2:
                out.append([(bytes(p), p.pts * p.time_base) for p in c2.demux(c2.streams[s.index]) if p.size])
    return out


def textured_scene(rng: np.random.Generator, w: int, h: int, rects: int = 160) -> np.ndarray:
    """Sharp-edged rectangles over fine noise: enough detail that a pixel of blur shows."""
    img = np.full((h, w, 3), 0.5, np.float32)
    for _ in range(rects):
        x, y = rng.integers(0, w), rng.integers(0, h)
        img[y:y + rng.integers(3, 30), x:x + rng.integers(3, 30)] = rng.uniform(0.05, 0.95, 3)
    img += rng.normal(0, 0.04, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


@pytest.fixture(scope="session")
def sharp_video(tmp_path_factory) -> Path:
    """A sharp 320x192 lossless clip of 36 frames at 30 fps: a textured scene panning 1.5 px per frame.

    Resampled at sub-pixel offsets (cubic), so frames at a half-pixel phase are softer than the rest
    (README: SelfHVD, the dataset-level model): judge restored texture on it knowing that. Cut at
    whole pixels instead, mildly blurred frames keep so much texture that the Laplacian selection
    takes them for sharp (`test_selection_matches_the_synthesizers_labels`: 0.78 instead of 0.92)."""
    from vidrestore.io import EncodeSettings, write_video

    scene = textured_scene(np.random.default_rng(7), 400, 212)
    frames = [cv2.warpAffine(scene, np.float32([[1, 0, -1.5 * i], [0, 1, -0.3 * i]]), (320, 192), flags=cv2.INTER_CUBIC)
              for i in range(36)]
    path = tmp_path_factory.mktemp("sharp") / "sharp.mkv"
    write_video(path, frames, 30, EncodeSettings("ffv1"))
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def shared(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared footage {p} not present (only in the project's CI and developer machines)")
    return p


def _assert_within_one_code_value(a: np.ndarray, b: np.ndarray, step: float) -> None:
    """Pictures agree within one code value, except where the source was clipped to [0, 1].

    A stored Y'CbCr triple can lie outside the RGB cube (real footage has a few such pixels);
    decoding clips it, and re-encoding the clipped colour rounds three components, which can move
    it by up to two code values. Everywhere else the round trip is within one code value.
    """
    diff = np.abs(a - b).max(axis=-1)
    clipped = ((a == 0) | (a == 1)).any(axis=-1)
    assert diff[~clipped].max(initial=0) <= step * 1.01
    assert diff.max() <= 2 * step * 1.01


def moving_square_clip(folder: Path):
    """A textured square crossing a panning scene (7 px per frame, against 1 px of pan), under handheld
    shake: 30 frames of 256x144, cut from the scene at whole pixels (a frame resampled at a sub-pixel
    offset is softer: `sharp_video`). Returns the synthesized clip and the square's top-left corner
    per frame."""
    from vidrestore.io import EncodeSettings, write_video
    from vidrestore.synth.handheld import synth_handheld
    from vidrestore.synth.shake import ShakeSettings

    scene = textured_scene(np.random.default_rng(7), 300, 172)
    square = textured_scene(np.random.default_rng(9), 32, 32, rects=12) * 0.5 + 0.5
    place = [(int(10 + 7 * i), 60 + int(12 * np.sin(i / 3))) for i in range(30)]
    frames = []
    for i, (x, y) in enumerate(place):
        f = cv2.warpAffine(scene, np.float32([[1, 0, -i], [0, 1, -(i // 5)]]), (256, 144), flags=cv2.INTER_CUBIC)
        f[y:y + 32, x:x + 32] = square
        frames.append(f)
    write_video(folder / "src.mkv", frames, 30, EncodeSettings("ffv1"))
    return synth_handheld(folder / "src.mkv", folder / "clip", ShakeSettings(seed=4, blur_strength=2.0), progress=False), place


def moving_square_scores(clip, place: list[tuple[int, int]], output: Path) -> dict[str, float]:
    """Mean PSNR over the clip's blurry frames, input and output against the ground truth: around the
    square ("in", "out") and on whole frames ("in_all", "out_all")."""
    from vidrestore.io import read_frames
    from vidrestore.synth.handheld import load_labels

    blurry = [not f["sharp"] for f in load_labels(clip.dir)["frames"]]
    scores: dict[str, list[float]] = {"in": [], "out": [], "in_all": [], "out_all": []}
    for i, (f_in, f_out, f_gt) in enumerate(zip(read_frames(clip.blurry), read_frames(output), read_frames(clip.dir / "gt.mkv"))):
        if not blurry[i]:
            continue
        x, y = place[i]
        box = (slice(max(0, y - 10), y + 42), slice(max(0, x - 10), x + 42))
        scores["in"].append(psnr(f_in.rgb[box], f_gt.rgb[box]))
        scores["out"].append(psnr(f_out.rgb[box], f_gt.rgb[box]))
        scores["in_all"].append(psnr(f_in.rgb, f_gt.rgb))
        scores["out_all"].append(psnr(f_out.rgb, f_gt.rgb))
    assert len(scores["in"]) >= 8
    return {k: float(np.mean(v)) for k, v in scores.items()}
