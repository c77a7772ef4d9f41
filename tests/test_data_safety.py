"""Nothing lost, ever: each test replays a command from issue 22 that lost or replaced data, or
failed after the work, and checks that it now refuses at once (or works) and leaves every file alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from conftest import ROOT, decoded_times, digest, one_line_error, run_cli
from vidrestore import EncodeSettings, Stage, read_frames, restore
from vidrestore.models import create_model, save_checkpoint
from vidrestore.restoration.stabilize import Stabilize


@pytest.fixture(scope="module")
def good(clip_factory):
    return clip_factory("good.mp4", frames=8)[0]


def _frames(path) -> list[np.ndarray]:
    return [f.rgb for f in read_frames(path)]


# --- defect 1: --overwrite with an existing folder as the output -----------------------------------

@pytest.mark.parametrize("case", ["holds-the-input", "unrelated-files", "folder-named-x.mkv"])
def test_overwrite_never_empties_an_existing_folder(good, tmp_path, case):
    if case == "holds-the-input":        # mkdir -p dir/sub && cp good.mp4 dir/sub/in.mp4; restore dir/sub/in.mp4 -o dir
        out = tmp_path / "dir"
        src = out / "sub" / "in.mp4"
        src.parent.mkdir(parents=True)
        shutil.copy(good, src)
        kept = [src]
    else:
        out = tmp_path / ("precious" if case == "unrelated-files" else "x.mkv")
        out.mkdir()
        (out / "notes.txt").write_text("years of notes")
        src, kept = good, [out / "notes.txt"]
    before = {p: digest(p) for p in kept}
    one_line_error(run_cli("restore", src, "-o", out, "--overwrite"), str(out), "folder")
    assert {p: digest(p) for p in kept} == before
    assert sorted(p.name for p in out.parent.iterdir() if "vidrestore" in p.name) == []


def test_overwrite_replaces_a_folder_of_its_own_frames(good, tmp_path):
    out = tmp_path / "frames"
    assert run_cli("restore", good, "-o", out).returncode == 0
    assert len(list(out.glob("*.png"))) == 8
    (out / "000007.png").unlink()
    r = run_cli("restore", good, "-o", out, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("*.png"))) == 8


# --- defect 2: deflicker --guide same.mp4 -o same.mp4 --overwrite -------------------------------------

def test_deflicker_never_replaces_its_guide(good, tmp_path):
    same = tmp_path / "same.mp4"
    shutil.copy(good, same)
    before = digest(same)
    one_line_error(run_cli("deflicker", good, "--guide", same, "-o", same, "--overwrite"), str(same), "input")
    assert digest(same) == before


# --- defect 3: metrics --json / --csv -------------------------------------------------------------------

def test_metrics_files_never_replace_an_input_or_an_existing_file(good, tmp_path):
    g2 = tmp_path / "g2.mp4"
    shutil.copy(good, g2)
    before = digest(g2)
    one_line_error(run_cli("metrics", good, g2, "--json", g2), str(g2), "input")
    one_line_error(run_cli("metrics", good, g2, "--csv", g2, "--overwrite"), str(g2), "input")
    assert digest(g2) == before
    old = tmp_path / "old.csv"
    old.write_text("keep me")
    one_line_error(run_cli("metrics", good, g2, "--csv", old), str(old), "--overwrite")
    assert old.read_text() == "keep me"
    r = run_cli("metrics", good, g2, "--csv", old, "--json", tmp_path / "s.json", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert old.read_text().startswith("index,") and json.loads((tmp_path / "s.json").read_text())["all"]["frames"] == 8


# --- defect 5: a damaged job or stage cache is rebuilt, not an error on every rerun -------------------------

class _Darken(Stage):
    """Darkens frames; `fail_at` (not part of the config) interrupts a run at that frame."""

    name = "darken-test"
    fail_at: int | None = None

    def process(self, window):
        if self.fail_at is not None and window.index == self.fail_at:
            raise KeyboardInterrupt
        return window.frame.rgb * 0.5


class _Same(Stage):
    name = "same-test"

    def process(self, window):
        return window.frame.rgb


def test_damaged_segment_of_an_interrupted_run_is_rendered_again(clip_factory, tmp_path):
    src, _, _ = clip_factory("resume12.mkv", frames=12)
    work = tmp_path / "work"
    enc = EncodeSettings("ffv1")
    reference = tmp_path / "reference.mkv"
    restore(src, reference, [_Darken()], enc, work_dir=tmp_path / "other", segment_frames=4, progress=False)
    out = tmp_path / "out.mkv"
    stage = _Darken()
    stage.fail_at = 9
    with pytest.raises(KeyboardInterrupt):
        restore(src, out, [stage], enc, work_dir=work, segment_frames=4, progress=False)
    (segment,) = work.glob("jobs/*/seg_00000.mkv")
    segment.write_bytes(b"garbage" * 100)
    r = restore(src, out, [_Darken()], enc, work_dir=work, segment_frames=4, progress=False)
    assert r.segments_reused == 0
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out), _frames(reference), strict=True))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "marker"])
def test_damaged_stage_analysis_is_built_again(clip_factory, tmp_path, damage):
    src, _, _ = clip_factory("stab16.mkv", frames=16)
    work = tmp_path / "work"
    restore(src, tmp_path / "a.mkv", [Stabilize()], EncodeSettings("ffv1"), work_dir=work, progress=False)
    (cache,) = work.glob("cache/stabilize-*")
    path = cache / "path.npz"
    if damage == "garbage":
        path.write_bytes(b"garbage")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    else:
        (cache / ".complete").write_text("{not json")
    restore(src, tmp_path / "b.mkv", [Stabilize()], EncodeSettings("ffv1"), work_dir=work, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(tmp_path / "a.mkv"), _frames(tmp_path / "b.mkv"), strict=True))


# --- defect 6: NaN or damaged --model weights ------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_model_with_non_finite_weights_is_refused_naming_the_tensor(good, tmp_path, value):
    net = create_model("unet")
    name = next(iter(net.state_dict()))
    with torch.no_grad():
        net.state_dict()[name].view(-1)[0] = value
    model = tmp_path / "bad.safetensors"
    save_checkpoint(net, model)
    out = tmp_path / "out.mp4"
    one_line_error(run_cli("deblur", good, "--model", model, "-o", out), str(model), repr(name), "NaN or infinite")
    assert not out.exists()


# --- defect 7: .webm with the default codec ----------------------------------------------------------------------

def test_webm_gets_a_codec_it_holds_before_any_work(good, tmp_path):
    out = tmp_path / "out.webm"
    r = run_cli("restore", good, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "cannot hold h264" in r.stderr and "av1" in r.stderr
    assert len(_frames(out)) == 8
    one_line_error(run_cli("restore", good, "-o", tmp_path / "x.webm", "--codec", "h264"), "x.webm", "--codec av1")
    assert not list(tmp_path.glob(".*"))


# --- defect 8: tiny frames ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[(1, 1), (2, 2), (8, 6)], ids=lambda s: f"{s[0]}x{s[1]}")
def tiny(request, clip_factory):
    w, h = request.param
    return clip_factory(f"tiny{w}x{h}.mkv", width=w, height=h, frames=14, codec="ffv1", pix_fmt="yuv444p")[0]


@pytest.mark.parametrize("command", ["stabilize", "deflicker", "deflicker --guide", "restore -s unsharp", "analyze",
                                     "deblur", "metrics --stabilization", "metrics", "metrics --no-gt"])
def test_tiny_frames_work_or_say_the_minimum_size(tiny, tmp_path, command):
    out = tmp_path / ("an" if command == "analyze" else "out.mkv")
    words = command.split()
    if words[0] == "metrics":
        args = ["metrics", tiny, tiny, *words[1:]]
    elif command == "deflicker --guide":
        args = ["deflicker", tiny, "--guide", tiny, "-o", out]
    elif words[0] == "deblur":
        args = ["deblur", tiny, "-o", out, "--budget", "2"]
    else:
        args = [words[0], tiny, *words[1:], "-o", out]
    r = run_cli(*args, "-q")
    assert "Warning" not in r.stderr, r.stderr  # no library warnings leak (matplotlib's log scale of zeros)
    if r.returncode != 0:
        one_line_error(r, str(tiny), "at least")
    elif words[0] not in ("metrics", "analyze"):
        assert len(_frames(out)) == 14


# --- defect 9: two different runs to the same output --------------------------------------------------------------

HELD = """
import os, sys, time
from vidrestore import EncodeSettings, Stage, restore

class Held(Stage):
    name = "held"
    def process(self, window):
        deadline = time.time() + 120
        while window.index == 4 and not os.path.exists(sys.argv[3]) and time.time() < deadline:
            time.sleep(0.02)  # hold the output until the test says so
        return window.frame.rgb

restore(sys.argv[1], sys.argv[2], [Held()], EncodeSettings("ffv1"), segment_frames=2, progress=False)
"""


def test_second_run_to_an_output_being_written_refuses(clip_factory, tmp_path):
    src, _, _ = clip_factory("held12.mkv", frames=12)
    script = tmp_path / "held.py"
    script.write_text(HELD)
    release = tmp_path / "release"
    work = tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), VIDRESTORE_WORK_DIR=str(work))
    out = tmp_path / "out.mkv"
    first = subprocess.Popen([sys.executable, str(script), str(src), str(out), str(release)], env=env,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None and not list(work.glob("jobs/*/seg_00001.json")):
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read()  # the first run holds the output, waiting at frame 4
    second = subprocess.run([sys.executable, "-m", "vidrestore", "restore", str(src), "-o", str(out), "--codec", "ffv1",
                             "-s", "unsharp"], env=env, capture_output=True, text=True, timeout=120)
    release.touch()
    assert first.wait(timeout=120) == 0, first.stderr.read()
    one_line_error(second, str(out), "another vidrestore run is writing this output")
    reference = tmp_path / "reference.mkv"  # what the first run writes, not the second's sharpened frames
    restore(src, reference, [_Same()], EncodeSettings("ffv1"), work_dir=work, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(out), _frames(reference), strict=True))


# --- defect 10: large frames, interrupted commands that do not resume ---------------------------------------------

def test_frames_too_large_for_memory_are_refused_with_the_figure(good, tmp_path, monkeypatch):
    from vidrestore.errors import VidrestoreError
    from vidrestore.pipeline import runner

    monkeypatch.setattr(runner, "available_memory", lambda: 100_000)
    with pytest.raises(VidrestoreError, match=r"96x64 need about 0\.4 MB of memory to process; 0\.1 MB is available"):
        restore(good, tmp_path / "out.mkv", progress=False)
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(runner, "available_memory", lambda: 3 * runner.memory_needed(runner.probe(good), []) // 2)
    r = restore(good, tmp_path / "out.mkv", progress=False)
    assert any("MB of memory available" in n for n in r.notes)


@pytest.mark.parametrize("command, resumes", [("metrics", False), ("restore", True)])
def test_interrupted_command_says_whether_it_resumes(good, tmp_path, monkeypatch, capsys, command, resumes):
    from vidrestore import cli
    from vidrestore.metrics import report
    from vidrestore.pipeline import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "evaluate_videos", interrupted)
    monkeypatch.setattr(runner, "_run", interrupted)
    args = ["metrics", good, good] if command == "metrics" else ["restore", good, "-o", tmp_path / "out.mkv"]
    assert cli.main([str(a) for a in args]) == 130
    err = capsys.readouterr().err
    assert ("run the same command again to resume" in err) == resumes
    assert ("does not resume" in err) == (not resumes)


# --- defect 11: deblur's --fps and --drop-subtitles, and a missing --model found first ---------------------------

@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "untrained.safetensors"
    save_checkpoint(create_model("unet"), path)
    return path


def test_deblur_honours_drop_subtitles(clip_factory, untrained_model, tmp_path):
    src, _, _ = clip_factory("subs.mkv", frames=6, subtitles=True)
    out = tmp_path / "out.mkv"
    r = run_cli("deblur", src, "--model", untrained_model, "--budget", "0", "-o", out, "--drop-subtitles", "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert not c.streams.subtitles and len(c.streams.video) == 1


def test_deblur_honours_fps_of_an_image_folder(good, untrained_model, tmp_path):
    frames = tmp_path / "frames"
    assert run_cli("restore", good, "-o", frames).returncode == 0
    out = tmp_path / "out.mkv"
    r = run_cli("deblur", frames, "--model", untrained_model, "--budget", "0", "-o", out, "--fps", "10", "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    assert decoded_times(out) == [Fraction(i, 10) for i in range(8)]


def test_deblur_finds_a_missing_model_before_any_analysis(good, tmp_path):
    work = tmp_path / "w"
    r = run_cli("deblur", good, "--model", tmp_path / "no.safetensors", "-o", tmp_path / "out.mkv", "--work-dir", work)
    one_line_error(r, "no.safetensors", "not found")
    assert not list(work.glob("cache/*"))
