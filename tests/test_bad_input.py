"""The bad-input table (issue 22): every command given bad input, bad options or a dangerous output.

Each case runs the command in a sandbox folder (also the current folder) and checks that it fails
with exactly one "vidrestore: error:" line holding the expected words, no traceback and no
internal error, and that no file in the sandbox was lost, replaced or added.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import digest
from vidrestore.cli import main
from vidrestore.models import create_model, save_checkpoint

UNWRITABLE = Path("/sys") if os.geteuid() == 0 else None  # sysfs refuses new files even to root


@pytest.fixture(scope="module")
def clips(clip_factory):
    return {
        "good": clip_factory("bad_good.mp4", frames=8)[0],
        "twelve": clip_factory("bad_twelve.mp4", frames=12)[0],
        "tiny": clip_factory("bad_tiny.mkv", width=8, height=6, frames=14, codec="ffv1", pix_fmt="yuv444p")[0],
    }


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory) -> Path:
    net = create_model("unet")
    with torch.no_grad():
        next(iter(net.parameters())).view(-1)[0] = float("nan")
    path = tmp_path_factory.mktemp("models") / "nan.safetensors"
    save_checkpoint(net, path)
    return path


@pytest.fixture
def sandbox(tmp_path, clips, nan_model, monkeypatch):
    """A folder of things to protect (videos, a folder holding an input, notes, an old CSV, a model)
    inside a folder that is protected too; the command runs in the inner one."""
    outer, tmp_path = tmp_path, tmp_path / "box"
    tmp_path.mkdir()
    (outer / "beside.txt").write_text("beside the current folder")
    shutil.copy(clips["good"], tmp_path / "good.mp4")
    shutil.copy(clips["good"], tmp_path / "g2.mp4")
    shutil.copy(clips["twelve"], tmp_path / "twelve.mp4")
    shutil.copy(clips["tiny"], tmp_path / "tiny.mkv")
    shutil.copy(nan_model, tmp_path / "nan.safetensors")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    shutil.copy(clips["good"], tmp_path / "dir" / "sub" / "in.mp4")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("years of notes")
    (tmp_path / "x.mkv").mkdir()
    (tmp_path / "x.mkv" / "keep.txt").write_text("keep")
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "readme.txt").write_text("no pictures")
    (tmp_path / "mixed").mkdir()
    cv2.imwrite(str(tmp_path / "mixed" / "f1.png"), np.zeros((10, 12, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "mixed" / "f2.png"), np.zeros((10, 14, 3), np.uint8))
    (tmp_path / "empty.mp4").touch()
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    (tmp_path / "old.csv").write_text("keep me")
    (tmp_path / "garbage.safetensors").write_bytes(b"garbage" * 20)
    (tmp_path / "suite.toml").write_text("this is = not [toml")
    monkeypatch.chdir(tmp_path)
    return outer


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): digest(p) for p in folder.rglob("*") if p.is_file()}


def _unwritable(name: str) -> str:
    if UNWRITABLE is None:
        pytest.skip("needs root for an unwritable folder that tmp_path cannot make")
    return str(UNWRITABLE / name)


# (case id, arguments (callable when they depend on the environment), words the error line must hold)
CASES: list[tuple[str, list[str] | Callable[[], list[str]], list[str]]] = [
    # restore: inputs
    ("restore-missing-input", ["restore", "nope.mp4", "-o", "out.mkv"], ["nope.mp4", "no such file"]),
    ("restore-empty-file", ["restore", "empty.mp4", "-o", "out.mkv"], ["empty.mp4", "empty"]),
    ("restore-text-file", ["restore", "text.mp4", "-o", "out.mkv"], ["text.mp4", "not a video"]),
    ("restore-folder-without-images", ["restore", "no_images", "-o", "out.mkv"], ["no_images", "no images"]),
    ("restore-mixed-size-images", ["restore", "mixed", "-o", "out.mkv"], ["f2.png", "one size"]),
    ("restore-fps-zero", ["restore", "good.mp4", "-o", "out.mkv", "--fps", "0"], ["frame rate must be positive"]),
    # restore: outputs
    ("restore-output-is-input", ["restore", "good.mp4", "-o", "good.mp4", "--overwrite"], ["good.mp4", "output is the input"]),
    ("restore-existing-output", ["restore", "good.mp4", "-o", "g2.mp4"], ["g2.mp4", "--overwrite"]),
    ("restore-folder-holding-input", ["restore", "dir/sub/in.mp4", "-o", "dir", "--overwrite"], ["dir", "folder holds"]),
    ("restore-folder-of-other-files", ["restore", "good.mp4", "-o", "precious", "--overwrite"], ["precious", "notes.txt"]),
    ("restore-folder-named-like-video", ["restore", "good.mp4", "-o", "x.mkv", "--overwrite"], ["x.mkv", "existing folder"]),
    ("restore-current-folder", ["restore", "good.mp4", "-o", ".", "--overwrite"], ["current folder"]),
    ("restore-missing-output-folder", ["restore", "good.mp4", "-o", "nodir/out.mkv"], ["nodir/out.mkv", "does not exist"]),
    ("restore-outer-folder", ["restore", "good.mp4", "-o", "..", "--overwrite"], ["..", "current folder"]),
    ("restore-unwritable-folder", lambda: ["restore", "good.mp4", "-o", _unwritable("out.mkv")], ["cannot write"]),
    ("restore-avi-output", ["restore", "good.mp4", "-o", "out.avi"], ["out.avi", "unsupported output type"]),
    # restore: codec and options
    ("restore-unknown-codec", ["restore", "good.mp4", "-o", "out.mkv", "--codec", "divx"], ["unknown codec 'divx'"]),
    ("restore-webm-h264", ["restore", "good.mp4", "-o", "out.webm", "--codec", "h264"], ["out.webm", "--codec av1"]),
    ("restore-folder-ffv1", ["restore", "good.mp4", "-o", "frames", "--codec", "ffv1"], ["frames", "PNG sequence"]),
    ("restore-crf-999", ["restore", "good.mp4", "-o", "out.mkv", "--crf", "999"], ["--crf 999", "0 to 51"]),
    ("restore-crf-lossless", ["restore", "good.mp4", "-o", "out.mkv", "--codec", "ffv1", "--crf", "5"], ["lossless"]),
    ("restore-segment-frames-0", ["restore", "good.mp4", "-o", "out.mkv", "--segment-frames", "0"], ["--segment-frames", "at least 1"]),
    ("restore-segment-frames-text", ["restore", "good.mp4", "-o", "out.mkv", "--segment-frames", "abc"], ["not a whole number"]),
    ("restore-unknown-stage", ["restore", "good.mp4", "-o", "out.mkv", "-s", "nosuch"], ["unknown stage 'nosuch'"]),
    ("restore-stage-option-text", ["restore", "good.mp4", "-o", "out.mkv", "-s", "unsharp:amount=abc"], ["amount", "a number"]),
    ("restore-stage-unknown-option", ["restore", "good.mp4", "-o", "out.mkv", "-s", "unsharp:foo=1"], ["no option 'foo'"]),
    ("restore-stage-bad-value", ["restore", "good.mp4", "-o", "out.mkv", "-s", "unsharp:sigma=-1"], ["sigma > 0"]),
    ("restore-stage-not-key-value", ["restore", "good.mp4", "-o", "out.mkv", "-s", "unsharp:amount"], ["not key=value"]),
    # stabilize, deflicker
    ("stabilize-output-is-input", ["stabilize", "good.mp4", "-o", "good.mp4", "--overwrite"], ["output is the input"]),
    ("deflicker-guide-is-output", ["deflicker", "good.mp4", "--guide", "g2.mp4", "-o", "g2.mp4", "--overwrite"],
     ["g2.mp4", "an input of this command"]),
    ("deflicker-guide-other-length", ["deflicker", "good.mp4", "--guide", "twelve.mp4", "-o", "out.mkv"],
     ["twelve.mp4", "original"]),
    ("deflicker-guide-missing", ["deflicker", "good.mp4", "--guide", "nope.mp4", "-o", "out.mkv"], ["nope.mp4", "no such file"]),
    ("deflicker-radius-0", ["deflicker", "good.mp4", "--guide", "g2.mp4", "-o", "out.mkv", "--radius", "0"], ["--radius", "at least 1"]),
    # metrics
    ("metrics-json-is-input", ["metrics", "good.mp4", "g2.mp4", "--json", "g2.mp4"], ["g2.mp4", "input"]),
    ("metrics-csv-exists", ["metrics", "good.mp4", "g2.mp4", "--csv", "old.csv"], ["old.csv", "--overwrite"]),
    ("metrics-csv-is-json", ["metrics", "good.mp4", "g2.mp4", "--csv", "s.json", "--json", "s.json"], ["same file"]),
    ("metrics-csv-unwritable", lambda: ["metrics", "good.mp4", "g2.mp4", "--csv", _unwritable("m.csv")], ["cannot write"]),
    ("metrics-frame-count", ["metrics", "good.mp4", "twelve.mp4"], ["good.mp4", "12 in the reference"]),
    ("metrics-labels-missing", ["metrics", "good.mp4", "g2.mp4", "--labels", "nolabels.json"], ["nolabels.json"]),
    ("metrics-tiny-ssim", ["metrics", "tiny.mkv", "tiny.mkv"], ["tiny.mkv", "at least 11x11"]),
    ("metrics-tiny-stabilization", ["metrics", "tiny.mkv", "tiny.mkv", "--stabilization"], ["tiny.mkv", "at least 16x16"]),
    ("metrics-crop-negative", ["metrics", "good.mp4", "g2.mp4", "--crop", "-2"], ["--crop", "at least 0"]),
    # deblur, train
    ("deblur-budget-negative", ["deblur", "good.mp4", "-o", "out.mkv", "--budget", "-5m"], ["not a training budget: '-5m'"]),
    ("deblur-budget-text", ["deblur", "good.mp4", "-o", "out.mkv", "--budget", "soon"], ["not a training budget"]),
    ("deblur-model-missing", ["deblur", "good.mp4", "-o", "out.mkv", "--model", "no.safetensors"], ["no.safetensors", "not found"]),
    ("deblur-model-garbage", ["deblur", "good.mp4", "-o", "out.mkv", "--model", "garbage.safetensors"],
     ["garbage.safetensors", "not a safetensors model"]),
    ("deblur-model-nan", ["deblur", "good.mp4", "-o", "out.mkv", "--model", "nan.safetensors"], ["nan.safetensors", "NaN"]),
    ("deblur-tile-negative", ["deblur", "good.mp4", "-o", "out.mkv", "--tile", "-5"], ["--tile", "at least 0"]),
    ("deblur-scratch-without-budget", ["deblur", "good.mp4", "-o", "out.mkv", "--model", "scratch", "--budget", "0"],
     ["from scratch needs a budget above 0 steps"]),
    ("deblur-webm-h264", ["deblur", "good.mp4", "-o", "out.webm", "--codec", "h264"], ["out.webm", "--codec av1"]),
    ("deblur-existing-output", ["deblur", "good.mp4", "-o", "g2.mp4"], ["g2.mp4", "--overwrite"]),
    ("train-not-safetensors", ["train", "good.mp4", "-o", "model.txt"], ["model.txt", ".safetensors"]),
    ("train-existing-model", ["train", "good.mp4", "-o", "nan.safetensors"], ["nan.safetensors", "--overwrite"]),
    # analyze, probe, synth, bench
    ("analyze-block-0", ["analyze", "good.mp4", "--block", "0"], ["--block", "at least 1"]),
    ("analyze-output-is-file", ["analyze", "good.mp4", "-o", "old.csv"], ["old.csv", "must be a folder"]),
    ("analyze-unwritable", lambda: ["analyze", "good.mp4", "-o", _unwritable("an")], ["cannot write"]),
    ("probe-missing", ["probe", "nope.mp4"], ["nope.mp4", "no such file"]),
    ("probe-mixed-size-images", ["probe", "mixed"], ["f2.png", "one size"]),
    ("synth-output-is-file", ["synth", "handheld", "good.mp4", "-o", "old.csv"], ["old.csv", "must be a folder"]),
    ("synth-noise-text", ["synth", "handheld", "good.mp4", "-o", "clip", "--noise", "abc"], ["not SHOT,READ"]),
    ("synth-unwritable", lambda: ["synth", "handheld", "good.mp4", "-o", _unwritable("clip")], ["cannot write"]),
    ("bench-missing-suite", ["bench", "nosuite.toml"], ["nosuite.toml"]),
    ("bench-bad-toml", ["bench", "suite.toml"], ["suite.toml"]),
]


@pytest.mark.parametrize("args, needles", [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_fails_in_one_line_and_touches_nothing(sandbox, capsys, args, needles):
    argv = [str(a) for a in (args() if callable(args) else args)]
    before = _snapshot(sandbox)
    try:
        code = main([*argv, "-q"])
    except SystemExit as stop:  # argparse refuses the arguments themselves
        code = stop.code
    err = capsys.readouterr().err
    assert code not in (0, None), err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("vidrestore: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _snapshot(sandbox) == before, "a file was lost, replaced or added"


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
