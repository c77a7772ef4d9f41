"""probe on files and image folders; image sequences in and out."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from conftest import run_cli
from vidrestore import EncodeSettings, VidrestoreError, probe, read_frames, restore


def test_probe_reports_streams_timing_colour_rotation(clip_factory):
    src, spec, _ = clip_factory("probe_vfr.mkv", vfr=True, audio=True, subtitles=True, rotation=90, matrix="bt601")
    info = probe(src)
    assert (info.width, info.height, info.frame_count, info.frame_count_source) == (96, 64, 24, "counted")
    assert info.vfr and info.rotation == 90 and info.bit_depth == 8 and info.chroma == "4:2:0"
    assert info.colour.names() == {"range": "tv", "primaries": "smpte170m", "transfer": "smpte170m", "matrix": "smpte170m"}
    assert [(t.type, t.codec) for t in info.tracks] == [("audio", "aac"), ("subtitle", "subrip")]
    assert info.subtitles[0].language == "eng" and info.audio[0].sample_rate == 48000


def test_probe_cfr_mp4_frame_count_from_container(clip_factory):
    src, spec, _ = clip_factory("probe_cfr.mp4", fps=Fraction(30000, 1001), time_base=Fraction(1, 30000))
    info = probe(src)
    assert info.frame_count == 24 and info.frame_count_source == "container"
    assert not info.vfr and info.fps == Fraction(30000, 1001)
    assert info.duration == pytest.approx(24 * 1001 / 30000)


def test_probe_cli_text_and_json(clip_factory):
    src, _, _ = clip_factory("probe_vfr.mkv", vfr=True, audio=True, subtitles=True, rotation=90, matrix="bt601")
    text = run_cli("probe", src)
    assert text.returncode == 0
    for needle in ("96x64", "VFR", "24 frames", "rotation 90", "audio #1: aac", "subtitle #2: subrip", "matrix=smpte170m"):
        assert needle in text.stdout
    data = json.loads(run_cli("probe", src, "--json").stdout)
    assert data["frame_count"] == 24 and data["vfr"] is True and data["rotation"] == 90
    assert data["colour"]["matrix_name"] == "smpte170m" and [t["codec"] for t in data["tracks"]] == ["aac", "subrip"]


def _write_pngs(folder, frames, depth=8, names=None, ext=".png"):
    folder.mkdir()
    for i, rgb in enumerate(frames):
        peak = 255 if depth == 8 else 65535
        data = np.round(rgb * peak).astype(np.uint8 if depth == 8 else np.uint16)
        name = names[i] if names else f"f{i}{ext}"
        cv2.imwrite(str(folder / name), data[..., ::-1] if data.ndim == 3 else data)


def _frames(n, h=24, w=33, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((h, w, 3)).astype(np.float32) for _ in range(n)]


def test_image_folder_natural_order_and_probe(tmp_path):
    frames = _frames(12)
    _write_pngs(tmp_path / "seq", frames)  # f0 .. f11: natural order puts f2 before f10
    info = probe(tmp_path / "seq")
    assert (info.kind, info.frame_count, info.fps, info.bit_depth) == ("images", 12, Fraction(25), 8)
    got = [f.rgb for f in read_frames(tmp_path / "seq")]
    for a, b in zip(got, frames, strict=True):
        assert np.abs(a - b).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("depth", [8, 16])
def test_image_sequence_round_trip_is_lossless(tmp_path, depth):
    frames = _frames(6, seed=depth)
    _write_pngs(tmp_path / "in", frames, depth)
    video = tmp_path / "lossless.mkv"
    restore(tmp_path / "in", video, encode=EncodeSettings("ffv1"), progress=False, image_fps=Fraction(24))
    assert probe(video).fps == 24 and probe(video).bit_depth == depth
    restore(video, tmp_path / "out", progress=False)
    outs = sorted((tmp_path / "out").iterdir())
    assert len(outs) == 6
    for a, b in zip(read_frames(tmp_path / "in"), read_frames(tmp_path / "out"), strict=True):
        assert np.array_equal(a.rgb, b.rgb)


def test_ten_bit_video_to_sixteen_bit_pngs(clip_factory, tmp_path):
    src, _, _ = clip_factory("hevc10.mkv", codec="libx265", pix_fmt="yuv420p10le")
    restore(src, tmp_path / "png", progress=False)
    img = cv2.imread(str(sorted((tmp_path / "png").iterdir())[0]), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16
    first = next(iter(read_frames(src))).rgb
    assert np.abs(img[..., ::-1] / 65535.0 - first).max() < 1e-4


def test_png_output_folder_replaced_only_with_overwrite(clip_factory, tmp_path):
    """A folder of vidrestore's own frames is replaced only with overwrite; one holding anything else never."""
    src, _, _ = clip_factory("p.mkv", frames=5)
    out = tmp_path / "frames"
    restore(src, out, progress=False)
    with pytest.raises(VidrestoreError, match="--overwrite"):
        restore(src, out, progress=False)
    (out / "000004.png").unlink()
    restore(src, out, progress=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(5)]
    (out / "keep.txt").write_text("mine")
    with pytest.raises(VidrestoreError, match="keep.txt"):
        restore(src, out, progress=False, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"


def test_image_of_another_size_in_the_sequence(tmp_path):
    frames = _frames(3)
    _write_pngs(tmp_path / "seq", frames)
    cv2.imwrite(str(tmp_path / "seq" / "f3.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(VidrestoreError, match="10x10"):
        list(read_frames(tmp_path / "seq"))


def test_jpeg_and_16bit_tiff_and_grey(tmp_path):
    frames = _frames(2)
    _write_pngs(tmp_path / "jpg", frames, ext=".jpg")
    assert probe(tmp_path / "jpg").codec == "jpg"
    _write_pngs(tmp_path / "tif", frames, depth=16, ext=".tif")
    assert probe(tmp_path / "tif").bit_depth == 16
    grey = tmp_path / "grey"
    grey.mkdir()
    cv2.imwrite(str(grey / "a.png"), np.full((8, 8), 128, np.uint8))
    rgb = next(iter(read_frames(grey))).rgb
    assert rgb.shape == (8, 8, 3) and np.allclose(rgb, 128 / 255)


def test_every_subcommand_help_has_an_example():
    top = run_cli("--help")
    assert top.returncode == 0
    commands = [line.split()[0] for line in top.stdout.split("positional arguments:")[1].split("options:")[0].splitlines()[2:]
                if line.startswith("    ") and not line.startswith("      ")]
    assert {"probe", "restore"} <= set(commands)
    for cmd in commands:
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "examples:" in r.stdout and f"vidrestore {cmd}" in r.stdout
