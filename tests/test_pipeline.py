"""The pipeline runner: per-frame, windowed and two-pass stages, segments, resume, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import decoded_times
from vidrestore import EncodeSettings, read_frames, restore
from vidrestore.errors import VidrestoreError
from vidrestore.pipeline import Stage, Window, apply_stages, create_stage, register_stage
from vidrestore.io.reader import Frame


class Invert(Stage):
    name = "invert"

    def process(self, window: Window) -> np.ndarray:
        return 1.0 - window.frame.rgb


class TemporalMean(Stage):
    """Mean of the window: a known answer for windowed stages."""

    name = "tmean"

    def __init__(self, radius: int):
        self.radius = radius

    def config(self) -> dict:
        return {"radius": self.radius}

    def process(self, window: Window) -> np.ndarray:
        return np.mean([f.rgb for f in window.frames], axis=0)


class GlobalBrightness(Stage):
    """Two-pass: the analysis measures the whole video's mean; rendering subtracts it."""

    name = "gbright"
    two_pass = True
    analyses = 0

    def analyze(self, frames, info, cache_dir: Path) -> None:
        GlobalBrightness.analyses += 1
        means = [float(f.rgb.mean()) for f in frames]
        (cache_dir / "mean.json").write_text(json.dumps({"mean": float(np.mean(means)), "n": len(means)}))

    def load(self, cache_dir: Path) -> None:
        data = json.loads((cache_dir / "mean.json").read_text())
        self.mean, self.n = data["mean"], data["n"]

    def process(self, window: Window) -> np.ndarray:
        return np.clip(window.frame.rgb - self.mean + 0.5, 0, 1)


class Crash(Stage):
    """Fails once it has produced `after` frames: simulates a killed job in-process."""

    name = "crash"

    def __init__(self, after: int):
        self.after, self.seen = after, 0

    def process(self, window: Window) -> np.ndarray:
        self.seen += 1
        if self.seen > self.after:
            raise KeyboardInterrupt
        return window.frame.rgb


def _frames(n: int) -> list[Frame]:
    return [Frame(i, i, 1, np.full((2, 3, 3), i, np.float32)) for i in range(n)]


def test_windowed_stage_sees_clamped_neighbours():
    out = list(apply_stages([TemporalMean(2)], _frames(6)))
    # frame 0's window is [0, 0, 0, 1, 2] (start repeated), frame 5's is [3, 4, 5, 5, 5].
    assert [float(f.rgb[0, 0, 0]) for f in out] == pytest.approx([0.6, 1.2, 2, 3, 3.8, 4.4])
    assert [f.index for f in out] == list(range(6))


def test_chained_windowed_stages_match_direct_computation():
    once = [f.rgb for f in apply_stages([TemporalMean(1)], _frames(7))]
    twice_direct = [np.mean([once[max(0, min(6, i + d))] for d in (-1, 0, 1)], axis=0) for i in range(7)]
    chained = [f.rgb for f in apply_stages([TemporalMean(1), TemporalMean(1)], _frames(7))]
    for a, b in zip(chained, twice_direct):
        assert np.allclose(a, b)


def test_per_frame_stage_end_to_end(clip_factory, tmp_path):
    src, spec, _ = clip_factory("p.mkv", frames=10)
    out = tmp_path / "inv.mkv"
    restore(src, out, [Invert()], encode=EncodeSettings("ffv1"), progress=False)
    for a, b in zip(read_frames(src), read_frames(out)):
        assert np.abs((1 - a.rgb) - b.rgb).mean() < 0.01


def test_two_pass_stage_analyses_once_and_reuses_cache(clip_factory, tmp_path):
    src, spec, _ = clip_factory("p.mkv", frames=10)
    GlobalBrightness.analyses = 0
    stage = GlobalBrightness()
    restore(src, tmp_path / "a.mkv", [stage], encode=EncodeSettings("ffv1"), progress=False)
    assert stage.n == spec.frames and GlobalBrightness.analyses == 1
    restore(src, tmp_path / "b.mkv", [GlobalBrightness()], encode=EncodeSettings("ffv1"), progress=False)
    assert GlobalBrightness.analyses == 1  # second output: analysis loaded from the cache


def test_interrupted_job_resumes_with_identical_output(clip_factory, tmp_path):
    src, spec, _ = clip_factory("resume.mkv", frames=23, vfr=True, audio=True)
    enc = EncodeSettings("h264", crf=23, preset="veryfast")
    reference = tmp_path / "ref.mkv"
    restore(src, reference, [TemporalMean(1)], enc, segment_frames=5, progress=False)

    out = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        restore(src, out, [TemporalMean(1), Crash(after=12)], enc, segment_frames=5, progress=False)
    assert not out.exists()
    # Same command again, without the crash: finished segments are reused, the rest rendered.
    crash_free = Crash(after=10**9)  # same name and config as before, so the same job
    result = restore(src, out, [TemporalMean(1), crash_free], enc, segment_frames=5, progress=False)
    assert result.segments_reused == 2 and result.segments == 5
    assert crash_free.seen <= 23 - 10 + 2  # only frames from segment 2 on (plus a neighbour) were processed
    assert decoded_times(out) == decoded_times(reference)
    for a, b in zip(read_frames(out), read_frames(reference)):
        assert np.array_equal(a.rgb, b.rgb)


def test_stage_registry_parses_options():
    @register_stage("test-tmean")
    def _factory(radius: int = 1) -> Stage:
        return TemporalMean(radius)

    assert create_stage("test-tmean:radius=3").radius == 3
    with pytest.raises(VidrestoreError, match="unknown stage"):
        create_stage("no-such-stage")
    with pytest.raises(VidrestoreError, match="has no option 'bogus'"):
        create_stage("test-tmean:bogus=1")
    with pytest.raises(VidrestoreError, match="option radius of stage 'test-tmean' must be a whole number, not 'abc'"):
        create_stage("test-tmean:radius=abc")
    with pytest.raises(VidrestoreError, match="stage 'guided-deflicker' needs guide="):   # was a TypeError, an internal error
        create_stage("guided-deflicker")
    with pytest.raises(VidrestoreError, match="not key=value"):
        create_stage("test-tmean:radius")
