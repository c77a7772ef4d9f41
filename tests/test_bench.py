"""The benchmark harness: suites, the method registry, tables, and the baselines' ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA, run_cli, shared
from vidrestore.bench import MethodCall, load_suite, register_method, run_suite
from vidrestore.bench import methods as registry
from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings
from vidrestore.pipeline import restore


def _suite(tmp_path: Path, source: Path, methods: str) -> Path:
    text = f"""
name = "tiny"
crop = 4
[synth]
frames = 24
blur_strength = 2.0
[[clips]]
name = "pan"
source = "{source}"
synth = {{ seed = 3 }}
[[clips]]
name = "real"
source = "{source}"
real = {{ frames = 6 }}
{methods}
"""
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


@pytest.fixture
def trainer(monkeypatch):
    """A method registered by a test, as issue-5 methods will be: one decorator, trains=True."""
    registry.list_methods()  # the built-in methods register into the real registry first
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))

    @register_method("test-trainer", description="pretends to train, then copies", trains=True)
    def run(call: MethodCall) -> None:
        call.timings["train_s"] = 0.0
        restore(call.input, call.output, [], EncodeSettings("ffv1"), overwrite=True, work_dir=call.work_dir, progress=False)


def test_suite_runs_methods_and_tabulates(sharp_video, tmp_path, trainer):
    methods = "\n".join(f'[[methods]]\nname = "{m}"' for m in ("identity", "lucky", "test-trainer"))
    suite = load_suite(_suite(tmp_path, sharp_video, methods))
    out = tmp_path / "results"
    run_suite(suite, out, work_dir=tmp_path / "work", progress=False)
    res = json.loads((out / "results.json").read_text())
    pan = next(c for c in res["clips"] if c["name"] == "pan")
    real = next(c for c in res["clips"] if c["name"] == "real")
    assert pan["has_gt"] and not real["has_gt"] and pan["frames"] == 24 and real["frames"] == 6
    ident, lucky = pan["methods"]["identity"]["summary"], pan["methods"]["lucky"]["summary"]
    assert lucky["blurry"]["psnr_y"] > ident["blurry"]["psnr_y"] + 0.5
    assert ident["sharp"]["psnr_y"] >= 40 and ident["sharp"]["frames"] == pan["sharp_frames"]
    assert pan["methods"]["test-trainer"]["trains"] and pan["methods"]["test-trainer"]["timings"] == {"train_s": 0.0}
    assert all(m["wall_s"] > 0 for c in res["clips"] for m in c["methods"].values())
    assert real["methods"]["lucky"]["summary"]["all"]["psnr_y"] is None
    mean = res["mean_over_synthesized_clips"]
    assert mean["lucky"]["blurry"]["psnr_y"] == pytest.approx(lucky["blurry"]["psnr_y"])
    md = (out / "results.md").read_text()
    assert "## Mean over 1 synthesized clips" in md and "| test-trainer† |" in md and "## Real clips" in md
    assert len((out / "frames" / "pan--lucky.csv").read_text().splitlines()) == 25

    # A second run reuses the synthesized clip.
    made = sorted((tmp_path / "work" / "bench" / "clips").iterdir())
    stamp = (made[0] / "blurry.mkv").stat().st_mtime_ns
    run_suite(suite, out, work_dir=tmp_path / "work", methods=["identity"], clips=["pan"], progress=False)
    assert sorted((tmp_path / "work" / "bench" / "clips").iterdir()) == made
    assert (made[0] / "blurry.mkv").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("body,message", [
    ('[[methods]]\nname = "nope"', "unknown benchmark method"),
    ('[[methods]]\nname = "identity"\nspeed = 1', "unknown key"),
    ("", "at least one"),
])
def test_bad_suites_are_clear_errors(sharp_video, tmp_path, body, message):
    with pytest.raises(VidrestoreError, match=message):
        run_suite(load_suite(_suite(tmp_path, sharp_video, body)), tmp_path / "out", work_dir=tmp_path / "w", progress=False)


def test_clip_needs_exactly_one_kind_and_an_existing_source(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[clips]]\nname = "a"\nsource = "x.mp4"\n[[methods]]\nname = "identity"\n')
    with pytest.raises(VidrestoreError, match="exactly one of"):
        load_suite(path)
    path.write_text('[[clips]]\nname = "a"\nsource = "x.mp4"\nreal = {}\n[[methods]]\nname = "identity"\n')
    with pytest.raises(VidrestoreError, match="not found"):
        run_suite(load_suite(path), tmp_path / "out", work_dir=tmp_path / "w", progress=False)


def test_cli_bench(sharp_video, tmp_path):
    suite = _suite(tmp_path, sharp_video, '[[methods]]\nname = "identity"\n[[methods]]\nname = "unsharp"')
    r = run_cli("bench", suite, "-o", tmp_path / "out", "--clips", "real", "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    assert "| real (320x192, 6 fr) | unsharp |" in (tmp_path / "out" / "results.md").read_text()
    r = run_cli("bench", suite, "--clips", "nope", "-q")
    assert r.returncode == 1 and "has no clip nope" in r.stderr
    r = run_cli("bench", "--list")
    assert "lucky" in r.stdout and "identity" in r.stdout


def test_committed_suites_load():
    for name in ("default", "ci"):
        suite = load_suite(ROOT / "benchmarks" / "suites" / f"{name}.toml", SHARED_DATA)
        assert len([c for c in suite.clips if c.has_gt]) >= 2
        assert {m.name for m in suite.methods} == {"identity", "unsharp", "lucky"}


@pytest.mark.slow
def test_ci_suite_lucky_beats_identity_on_blurry_frames_of_every_clip(tmp_path):
    shared("sharp", "sam2_01_dog.mp4")
    suite = load_suite(ROOT / "benchmarks" / "suites" / "ci.toml", SHARED_DATA)
    results = run_suite(suite, tmp_path / "out", work_dir=tmp_path / "work", progress=False)
    for clip in results:
        ident, lucky = (clip.methods[m].summary["blurry"]["psnr_y"] for m in ("identity", "lucky"))
        assert lucky > ident, (clip.name, ident, lucky)


def test_selfhvd_method_takes_training_and_analysis_options(sharp_video, tmp_path):
    body = '[[methods]]\nname = "selfhvd"\noptions = { budget = "2", label_scale = 1.0, nope = 1 }'
    with pytest.raises(VidrestoreError, match=r"unknown option\(s\) nope; allowed: .*label_scale.*sevd"):
        run_suite(load_suite(_suite(tmp_path, sharp_video, body)), tmp_path / "out", work_dir=tmp_path / "w", progress=False)
