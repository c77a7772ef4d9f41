"""Shared fixtures: generated clips, an isolated work directory, helpers to run the CLI and decode."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidrestore.synth.clips import ClipSpec, write_test_clip

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VIDRESTORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


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
        if name not in made:
            spec = ClipSpec(**fields)
            path = root / name
            made[name] = (path, spec, write_test_clip(path, spec))
        return made[name]

    return make


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m vidrestore ARGS` with this tree's sources; capture text output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "vidrestore", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


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
