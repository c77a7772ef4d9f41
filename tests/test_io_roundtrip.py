"""`restore` with no stages is a faithful re-encode (issue 2's acceptance on generated clips).

For every kind of input users bring (CFR and VFR, audio and subtitles, 10-bit HEVC, odd sizes,
rotation, BT.601 / BT.709 / full range, RGB sources) the output has the same frame count, the
same timestamps, byte-identical audio and subtitle packets, the same colour tags, rotation and
bit depth, and -- with a lossless codec -- the same pictures: within one code value for 4:4:4 and
RGB sources, at >= 48 dB for 4:2:0 (chroma resampling).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from conftest import _assert_within_one_code_value, decoded_times, psnr, stream_packets
from vidrestore import EncodeSettings, probe, read_frames, restore
from vidrestore.io.colour import read_planes
from vidrestore.io.reader import VideoReader
from vidrestore.synth.clips import PATCHES, patch_centres

CASES = {
    "cfr_audio_subs_mp4": dict(name="cfr.mp4", audio=True, subtitles=True),
    "vfr_audio_subs_mkv": dict(name="vfr.mkv", vfr=True, audio=True, subtitles=True),
    "vfr_audio_mp4": dict(name="vfr.mp4", vfr=True, audio=True, time_base=Fraction(1, 90000)),
    "hevc_10bit": dict(name="hevc10.mkv", codec="libx265", pix_fmt="yuv420p10le"),
    "odd_size_444": dict(name="odd444.mp4", width=641, height=359, pix_fmt="yuv444p"),
    "odd_size_420": dict(name="odd420.mkv", width=641, height=359, codec="ffv1", pix_fmt="yuv420p"),
    "rotation_90": dict(name="rot90.mp4", rotation=90, audio=True),
    "bt601_limited": dict(name="bt601.mkv", matrix="bt601"),
    "bt709_limited": dict(name="bt709.mkv", matrix="bt709"),
    "full_range": dict(name="full.mkv", full_range=True),
    "full_range_601_422_10bit": dict(name="full422.mkv", matrix="bt601", full_range=True, pix_fmt="yuv422p10le"),
    "untagged": dict(name="untagged.mkv", matrix=None),
    "rgb_8bit": dict(name="rgb8.mkv", codec="ffv1", pix_fmt="bgr0"),
    "rgb_10bit": dict(name="rgb10.mkv", codec="ffv1", pix_fmt="gbrp10le"),
}


def _lossless(path):
    """A lossless output beside `path`: FFV1 in Matroska, or x264 at qp 0 for MP4 (8-bit)."""
    if path.suffix == ".mkv":
        return EncodeSettings("ffv1")
    return EncodeSettings("h264", crf=0)


@pytest.fixture(scope="module", params=sorted(CASES))
def roundtrip(request, clip_factory, tmp_path_factory):
    fields = dict(CASES[request.param])
    name = fields.pop("name")
    src, spec, pts = clip_factory(name, **fields)
    out = tmp_path_factory.mktemp("rt") / f"out{src.suffix}"
    result = restore(src, out, encode=_lossless(src), progress=False)
    return src, out, spec, result


def test_frame_count_and_timestamps(roundtrip):
    src, out, spec, result = roundtrip
    assert result.frames == spec.frames
    assert probe(out).frame_count == spec.frames
    assert decoded_times(out) == decoded_times(src)


def test_audio_and_subtitles_copied_byte_for_byte(roundtrip):
    src, out, spec, _ = roundtrip
    for kind in ("audio", "subtitle"):
        assert stream_packets(out, kind) == stream_packets(src, kind)
    assert len(stream_packets(out, "audio")) == int(spec.audio)
    assert len(stream_packets(out, "subtitle")) == int(spec.subtitles)


def test_colour_tags_rotation_bit_depth_size(roundtrip):
    src, out, _, _ = roundtrip
    a, b = probe(src), probe(out)
    assert b.colour == a.colour
    assert b.rotation == a.rotation
    assert b.bit_depth == a.bit_depth
    assert (b.width, b.height) == (a.width, a.height)
    assert b.chroma == a.chroma or (b.chroma == "4:4:4" and a.width % 2)


def test_pictures_survive(roundtrip):
    src, out, _, _ = roundtrip
    info = probe(src)
    step = 1.0 / (2**info.bit_depth - 1)
    for a, b in zip(read_frames(src), read_frames(out)):
        if info.chroma == "4:4:4":
            _assert_within_one_code_value(a.rgb, b.rgb, step)
        else:
            assert psnr(a.rgb, b.rgb) >= 48


def test_lossless_copy_in_the_same_pixel_format_is_bit_exact(roundtrip):
    # With no stages the decoded frames go to the encoder untouched (no float RGB round trip).
    src, out, _, _ = roundtrip
    if probe(src).pix_fmt != probe(out).pix_fmt:
        pytest.skip("output pixel format differs from the input's: converted, not copied")
    pairs = zip(VideoReader(src).native_frames(), VideoReader(out).native_frames(), strict=True)
    for a, b in pairs:
        for pa, pb in zip(read_planes(a.frame), read_planes(b.frame), strict=True):
            np.testing.assert_array_equal(pa, pb)


def test_reader_uses_the_streams_own_matrix_and_range(roundtrip):
    # The clip's YUV was computed from known RGB patch colours with the textbook formula for its
    # tagged matrix and range; a reader using another matrix or range misses by 10+ code values.
    src, _, spec, _ = roundtrip
    frame = next(iter(read_frames(src)))
    got = np.array([frame.rgb[r, c] for r, c in patch_centres(spec.width, spec.height)])
    assert np.abs(got - PATCHES).max() * 255 <= 1.5


def test_vfr_is_reported_and_kept(clip_factory, tmp_path):
    src, _, _ = clip_factory("vfr.mkv", **{k: v for k, v in CASES["vfr_audio_subs_mkv"].items() if k != "name"})
    assert probe(src).vfr
    out = tmp_path / "vfr_h264.mkv"
    restore(src, out, progress=False)  # default lossy H.264 keeps the timestamps too
    assert probe(out).vfr
    assert decoded_times(out) == decoded_times(src)


def test_default_h264_output_is_playable_and_faithful(clip_factory, tmp_path):
    src, spec, _ = clip_factory("cfr.mp4", **{k: v for k, v in CASES["cfr_audio_subs_mp4"].items() if k != "name"})
    out = tmp_path / "out.mp4"
    restore(src, out, progress=False)
    info = probe(out)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    for a, b in zip(read_frames(src), read_frames(out)):
        assert psnr(a.rgb, b.rgb) > 35


@pytest.mark.parametrize("codec,ext", [("hevc", ".mkv"), ("av1", ".mkv"), ("ffv1", ".mkv"), ("h264", ".mov")])
def test_every_output_codec_keeps_10bit(clip_factory, tmp_path, codec, ext):
    src, spec, _ = clip_factory("hevc10.mkv", **{k: v for k, v in CASES["hevc_10bit"].items() if k != "name"})
    out = tmp_path / f"out{ext}"
    restore(src, out, encode=EncodeSettings(codec), progress=False)
    info = probe(out)
    assert info.bit_depth == 10 and info.frame_count == spec.frames
    assert decoded_times(out) == decoded_times(src)


def test_cross_container_converts_subtitles_and_says_so(clip_factory, tmp_path):
    src, _, _ = clip_factory("cfr.mp4", **{k: v for k, v in CASES["cfr_audio_subs_mp4"].items() if k != "name"})
    out = tmp_path / "out.mkv"
    result = restore(src, out, progress=False)
    assert any("subtitle" in n and "converted" in n for n in result.notes)
    cues = stream_packets(out, "subtitle")[0]
    assert [p for p, _ in cues] == [b"first line", b"second line"]
    # Matroska cannot store the negative timestamp of the MP4's AAC priming packet, so every track
    # moves by the same amount: cue times relative to the first video frame are unchanged.
    shift = decoded_times(out)[0] - decoded_times(src)[0]
    src_cues = [t for p, t in stream_packets(src, "subtitle")[0] if p != b"\x00\x00"]
    assert [t - shift for _, t in cues] == src_cues
    assert [t - shift for t in decoded_times(out)] == decoded_times(src)
    assert [p for p, _ in stream_packets(out, "audio")[0]] == [p for p, _ in stream_packets(src, "audio")[0]]


def test_audio_reencoded_only_when_container_cannot_hold_it(clip_factory, tmp_path):
    src, _, _ = clip_factory("cfr.mp4", **{k: v for k, v in CASES["cfr_audio_subs_mp4"].items() if k != "name"})
    out = tmp_path / "out.webm"
    result = restore(src, out, encode=EncodeSettings("av1"), progress=False)
    assert any("audio #1 re-encoded from aac to libopus" in n for n in result.notes)
    info = probe(out)
    assert [t.codec for t in info.audio] == ["opus"]
    assert info.frame_count == probe(src).frame_count
