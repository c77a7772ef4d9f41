"""`film --grain-table`: the grain model as libaom's film-grain table, and AV1 output whose decoder adds the grain."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import one_line_error, run_cli

from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings, write_video
from vidrestore.io.grain_table import (
    WHITE_SD,
    ar_gain,
    check_encoder,
    encode_with_table,
    grain_table,
)
from vidrestore.synth.film import add_grain, grain_field, grain_template

MODEL = {"ar_coeff_lag": 1, "ar_coeffs_y": [0.0, 0.25, 0.0, 0.3], "scaling_points_y": [[0.0, 0.01], [0.5, 0.03], [1.0, 0.015]],
         "block": 32}
LEVELS = (0.25, 0.5, 0.75)          # the test clip's flat bands


def _has_encoder() -> bool:
    try:
        check_encoder()
    except VidrestoreError:
        return False
    return True


needs_libaom = pytest.mark.skipif(not _has_encoder(), reason="no ffmpeg program with libaom-av1")


def test_table_holds_the_model_on_luma_codes():
    lines = grain_table(MODEL, full_range=False).splitlines()
    assert lines[0] == "filmgrn1" and lines[1].split()[0] == "E"
    p = lines[2].split()
    assert p[0] == "p" and p[1] == "1" and p[3] == "0" and p[5] == "0" and p[6] == "0"   # lag 1, no grain scale shift,
    ar_shift, scaling_shift = int(p[2]), int(p[4])                                    # no chroma from luma, no overlap
    sy = lines[3].split()
    points = np.array(sy[2:], int).reshape(-1, 2)
    assert sy[0] == "sY" and int(sy[1]) == len(points) == 3
    assert points[:, 0].tolist() == [16, 126, 235]                       # limited range: 16 + 219 * intensity
    deviation = points[:, 1] * WHITE_SD * ar_gain(MODEL["ar_coeffs_y"], 1) / 2 ** scaling_shift / 219
    assert deviation == pytest.approx([0.01, 0.03, 0.015], rel=0.03)
    assert [int(c) / 2 ** ar_shift for c in lines[6].split()[1:]] == pytest.approx(MODEL["ar_coeffs_y"], abs=0.01)
    assert lines[4].split() == ["sCb", "0"] and lines[5].split() == ["sCr", "0"]
    assert len(lines[7].split()) == len(lines[8].split()) == 1 + 5      # one more chroma coefficient than luma's 4


def _bands(tmp_path, grain: bool = False):
    """8 frames of three flat grey bands (LEVELS), 192x64, lossless; with `grain`, under MODEL's grain."""
    frame = np.concatenate([np.full((64, 64, 3), v, np.float32) for v in LEVELS], axis=1)
    rng = np.random.default_rng(2)
    template = grain_template(MODEL, rng)
    frames = [add_grain(frame, MODEL, grain_field(template, 64, 192, rng)) if grain else frame for _ in range(8)]
    path = tmp_path / f"bands{'-grain' if grain else ''}.mkv"
    write_video(path, frames, 24, EncodeSettings("ffv1"))
    return path


def _decoded_luma(path, grain: bool) -> np.ndarray:
    """Luma codes (frames, height, width) as libdav1d decodes them, with or without its film-grain synthesis."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.options = {} if grain else {"export_side_data": "film_grain"}
        return np.stack([f.to_ndarray(format="yuv420p")[:f.height].astype(np.float64) for f in c.decode(s)])


@needs_libaom
def test_av1_output_decodes_with_the_models_grain(tmp_path):
    table = tmp_path / "grain.tbl"
    table.write_text(grain_table(MODEL, full_range=False))
    out = tmp_path / "out.mkv"
    encode_with_table(_bands(tmp_path), out, table, crf=20, cpu_used=8, pix_fmt="yuv420p")
    grain = _decoded_luma(out, True) - _decoded_luma(out, False)
    for i, level in enumerate(LEVELS):
        band = grain[:, 8:56, 64 * i + 8:64 * i + 56] / 219
        expected = np.interp(level, *np.array(MODEL["scaling_points_y"]).T)
        assert band.std() == pytest.approx(expected, rel=0.15), (level, band.std(), expected)
    across = np.corrcoef(grain[:, 8:56, 9:184].ravel(), grain[:, 8:56, 8:183].ravel())[0, 1]
    assert across > 0.2, across                                           # the AR filter's correlation is there


@needs_libaom
def test_film_grain_table_end_to_end(tmp_path):
    out = tmp_path / "out.mkv"
    r = run_cli("film", _bands(tmp_path, grain=True), "-o", out, "--codec", "av1", "--grain", "resynth", "--grain-table", "--no-deflicker",
                "--colour", "off", "--no-dust", "--no-scratches", "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.grain.tbl").read_text().startswith("filmgrn1") and not (tmp_path / "out.grainless.mkv").exists()
    grain = _decoded_luma(out, True) - _decoded_luma(out, False)
    assert grain[:, 8:56, 72:120].std() / 219 == pytest.approx(0.03, rel=0.25)       # mid-grey band: the model's 0.03

def test_grain_table_refuses_other_codecs_and_modes(tmp_path):
    src = _bands(tmp_path)
    r = run_cli("film", src, "-o", tmp_path / "out.mp4", "--grain", "resynth", "--grain-table", "--work-dir", tmp_path / "w")
    one_line_error(r, "--grain-table", "must be AV1", "h264")
    r = run_cli("film", src, "-o", tmp_path / "out.mkv", "--codec", "av1", "--grain-table", "--work-dir", tmp_path / "w")
    one_line_error(r, "re-synthesized grain", "--grain resynth")
