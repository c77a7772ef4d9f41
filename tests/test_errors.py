"""Bad input and impossible output: one clear line naming the file, exit code != 0, nothing touched."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import av
import numpy as np
import pytest

from conftest import ROOT, digest, one_line_error, run_cli


@pytest.fixture
def existing_output(tmp_path):
    """An output path that already holds something precious."""
    out = tmp_path / "precious.mkv"
    out.write_bytes(b"do not touch")
    return out


def test_missing_file(tmp_path, existing_output):
    missing = tmp_path / "nope.mp4"
    r = run_cli("restore", missing, "-o", existing_output, "--overwrite")
    one_line_error(r, str(missing), "no such file")
    assert existing_output.read_bytes() == b"do not touch"
    one_line_error(run_cli("probe", missing), "no such file")


def test_folder_without_images(tmp_path, existing_output):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("no pictures here")
    one_line_error(run_cli("restore", folder, "-o", existing_output, "--overwrite"), str(folder), "no images")
    assert existing_output.read_bytes() == b"do not touch"


def test_empty_file(tmp_path, existing_output):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    one_line_error(run_cli("restore", empty, "-o", existing_output, "--overwrite"), str(empty), "empty")
    assert existing_output.read_bytes() == b"do not touch"


def test_text_file_named_mp4(tmp_path, existing_output):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n" * 50)
    one_line_error(run_cli("restore", fake, "-o", existing_output, "--overwrite"), str(fake), "not a video")
    assert existing_output.read_bytes() == b"do not touch"


def test_truncated_file_names_the_frame(clip_factory, tmp_path, existing_output):
    src, _, _ = clip_factory("long.mkv", frames=60, lossless=False)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    line = one_line_error(run_cli("restore", cut, "-o", existing_output, "--overwrite"), str(cut), "truncated")
    assert "frame" in line
    assert existing_output.read_bytes() == b"do not touch"


def test_corrupt_mp4_says_where_decoding_failed(clip_factory, tmp_path, existing_output):
    src, _, _ = clip_factory("long.mp4", frames=60, lossless=False)
    data = bytearray(src.read_bytes())
    third = len(data) // 3
    data[third: third + 4000] = bytes(4000)  # zero out part of the coded pictures
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    line = one_line_error(run_cli("restore", bad, "-o", existing_output, "--overwrite"), str(bad))
    assert "decoding failed at frame" in line or "truncated or corrupt" in line
    assert existing_output.read_bytes() == b"do not touch"


def test_file_without_video_stream(tmp_path, existing_output):
    audio_only = tmp_path / "song.m4a"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("aac", rate=48000)
        for k in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 48000, k * 1024
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    one_line_error(run_cli("restore", audio_only, "-o", existing_output, "--overwrite"), str(audio_only), "no video stream")
    assert existing_output.read_bytes() == b"do not touch"


def test_unwritable_output_folder(clip_factory, tmp_path):
    src, _, _ = clip_factory("p.mkv", frames=5)
    if os.geteuid() == 0:
        target = "/sys/vidrestore-test-out.mkv"  # sysfs refuses new files even to root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = str(locked / "out.mkv")
    one_line_error(run_cli("restore", src, "-o", target), target, "cannot write")


def test_output_equals_input(clip_factory):
    src, _, _ = clip_factory("same.mkv", frames=5)
    before = digest(src)
    one_line_error(run_cli("restore", src, "-o", src, "--overwrite"), str(src), "output is the input")
    assert digest(src) == before


def test_existing_output_needs_overwrite(clip_factory, existing_output):
    src, _, _ = clip_factory("p.mkv", frames=5)
    one_line_error(run_cli("restore", src, "-o", existing_output), str(existing_output), "--overwrite")
    assert existing_output.read_bytes() == b"do not touch"


def test_unknown_codec(clip_factory, existing_output):
    src, _, _ = clip_factory("p.mkv", frames=5)
    one_line_error(run_cli("restore", src, "-o", existing_output, "--overwrite", "--codec", "divx"), "unknown codec 'divx'")
    assert existing_output.read_bytes() == b"do not touch"


def test_unsupported_output_container(clip_factory, tmp_path):
    src, _, _ = clip_factory("p.mkv", frames=5)
    one_line_error(run_cli("restore", src, "-o", tmp_path / "out.avi"), "out.avi", "unsupported output type")


@pytest.mark.parametrize("segment_frames, blamed", [("240", "work"), ("4", "output")])
def test_disk_full_while_writing(clip_factory, tmp_path, existing_output, segment_frames, blamed):
    """A file-size limit makes every write past 300 kB fail, as a full disk does: with one big segment
    the work directory fills first, with small segments the final file; the error names the one that did."""
    src, _, _ = clip_factory("big.mkv", width=320, height=240, frames=40, audio=True)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    work = tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), VIDRESTORE_WORK_DIR=str(work))
    r = subprocess.run([sys.executable, "-m", "vidrestore", "restore", str(src), "-o", str(existing_output),
                        "--overwrite", "--codec", "ffv1", "--segment-frames", segment_frames],
                       preexec_fn=limit, capture_output=True, text=True, env=env)
    if blamed == "work":
        one_line_error(r, f"error: {work}:", "disk full while writing the work directory")
    else:
        one_line_error(r, f"error: {existing_output}:", "disk full while writing the output")
    assert existing_output.read_bytes() == b"do not touch"
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_disk_full_outside_restore_is_one_line(clip_factory, tmp_path):
    """`deblur` writes its analysis into the work directory before `restore` runs: a full disk there is
    one line that says so and where, not an internal error."""
    src, _, _ = clip_factory("small.mkv", width=320, height=240, frames=12)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    work = tmp_path / "work"
    r = subprocess.run([sys.executable, "-m", "vidrestore", "deblur", str(src), "-o", str(tmp_path / "out.mkv"),
                        "--work-dir", str(work)], preexec_fn=limit, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    one_line_error(r, "disk full while writing the work directory", str(work), "File too large")
    assert not (tmp_path / "out.mkv").exists()


def test_debug_flag_shows_the_traceback(tmp_path):
    r = run_cli("probe", tmp_path / "nope.mp4", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr
