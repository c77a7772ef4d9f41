"""Every real clip in ../shared/data: probed, decoded with the right frame count, and round-tripped."""

from __future__ import annotations

from fractions import Fraction

import pytest

from conftest import _assert_within_one_code_value, SHARED_DATA, decoded_times, psnr
from vidrestore import EncodeSettings, probe, read_frames, restore

CLIPS = sorted(str(p.relative_to(SHARED_DATA)) for p in SHARED_DATA.glob("*/*") if p.suffix in (".mp4", ".mkv", ".avi")) \
    if SHARED_DATA.exists() else []

pytestmark = pytest.mark.skipif(not CLIPS, reason=f"shared footage not present at {SHARED_DATA}")


@pytest.mark.slow
@pytest.mark.parametrize("name", CLIPS)
def test_real_clip_round_trip(name, tmp_path):
    src = SHARED_DATA / name
    info = probe(src)
    out = tmp_path / "lossless.mkv"
    result = restore(src, out, encode=EncodeSettings("ffv1"), progress=False)
    back = probe(out)
    assert result.frames == back.frame_count == info.frame_count
    assert (back.colour, back.rotation, back.bit_depth, back.width, back.height) == \
        (info.colour, info.rotation, info.bit_depth, info.width, info.height)
    # Matroska keeps milliseconds, and cannot store negative timestamps: when the input's audio
    # starts before its video (AAC priming in MP4), every track moves by the same amount.
    t_out, t_in = decoded_times(out), decoded_times(src)
    shift = t_out[0] - t_in[0]
    assert 0 <= shift < Fraction(1, 5)
    tick = Fraction(1, 1000) / 2 + (info.time_base if info.time_base > Fraction(1, 1000) else 0)
    assert all(abs(a - shift - b) <= tick for a, b in zip(t_out, t_in, strict=True))
    for a_in, a_out in zip(probe(src).audio, back.audio, strict=True):
        assert a_out.codec == a_in.codec
    step = 1.0 / (2**info.bit_depth - 1)
    decoded = 0
    for a, b in zip(read_frames(src), read_frames(out), strict=True):    # streamed: the cockatoo is 3 GB decoded
        decoded += 1
        if info.chroma == "4:4:4":
            _assert_within_one_code_value(a.rgb, b.rgb, step)
        else:
            assert psnr(a.rgb, b.rgb) >= 48
    assert decoded == info.frame_count
