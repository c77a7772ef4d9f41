"""`vidrestore batch`: inputs, the local engine, Ray (a local cluster of two workers), a killed worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, one_line_error, run_cli, stream_packets
from vidrestore.batch import RestoreJob, create_engine, expand_inputs, run_batch
from vidrestore.errors import VidrestoreError
from vidrestore.pipeline import create_stage, restore
from vidrestore.synth.clips import ClipSpec, write_test_clip

FRAMES, SEGMENT = 20, 8  # three segments a video: long videos run one task per segment


def content(path: Path) -> list:
    """Every packet of every video and audio track, payload and time: the file but for the muxer's random ids
    (Matroska writes new ones on each run)."""
    return [stream_packets(path, kind) for kind in ("video", "audio")]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[list[Path], Path]:
    """Three good 64x48 clips (mp4 with audio, mkv, mov) and one corrupt (an mkv cut at 60 %); and the bad one."""
    folder = tmp_path_factory.mktemp("batch-in")
    good = [folder / "a.mp4", folder / "b.mkv", folder / "c.mov"]
    for i, path in enumerate(good):
        write_test_clip(path, ClipSpec(width=64, height=48, frames=FRAMES + i, audio=i == 0))
    bad = folder / "d.mkv"
    write_test_clip(bad, ClipSpec(width=64, height=48, frames=FRAMES))
    data = bad.read_bytes()
    bad.write_bytes(data[: int(len(data) * 0.6)])
    return [*good, bad], bad


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory) -> dict[str, list]:
    """Each good clip through plain `restore` (one process, segment after segment): name -> its packets."""
    out = tmp_path_factory.mktemp("batch-ref")
    return {v.name: content(restore(v, out / v.name, [create_stage("unsharp")], segment_frames=SEGMENT, progress=False).output)
            for v in videos[0][:3]}


def _batch(inputs: list[Path], out: Path, *options: str):
    return run_cli("batch", *inputs, "-o", out, *options, "restore", "-s", "unsharp", "--segment-frames", SEGMENT)


def _check(result, out: Path, bad: Path, reference: dict[str, list]) -> None:
    """Three outputs identical to `restore`'s, one failure line naming the corrupt file, exit code 1."""
    assert result.returncode == 1, result.stderr
    assert {p.name: content(p) for p in out.iterdir() if not p.name.startswith(".")} == reference
    failed = [line for line in result.stdout.splitlines() if " failed " in f" {line} " and bad.name in line]
    assert len(failed) == 1, result.stdout
    assert "truncated or corrupt" in failed[0] and "Traceback" not in result.stdout + result.stderr
    assert "3 ok, 0 kept (output already there), 1 failed" in result.stdout


def test_inputs_files_folders_globs_and_lists(tmp_path):
    for name in ("x.mp4", "y.mkv", "notes.md", "sub/z.mov"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# clips\nsub/z.mov\n\nx.mp4\n")
    assert expand_inputs([tmp_path]) == [tmp_path / "x.mp4", tmp_path / "y.mkv"]
    assert expand_inputs([f"{tmp_path}/**/*.mov", tmp_path / "list.txt"]) == [tmp_path / "sub/z.mov", tmp_path / "x.mp4"]
    with pytest.raises(VidrestoreError, match="no such file"):
        expand_inputs([tmp_path / "missing.mp4"])
    with pytest.raises(VidrestoreError, match="no file matches"):
        expand_inputs([f"{tmp_path}/*.avi"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidrestoreError, match="holds no video files"):
        expand_inputs([tmp_path / "empty"])


def test_two_inputs_of_one_name_are_refused(tmp_path):
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "clip.mp4").write_bytes(b"")
    one_line_error(run_cli("batch", tmp_path / "one", tmp_path / "two", "-o", tmp_path / "out", "restore"),
                   "two inputs are named clip.mp4")


def test_local_engine(videos, reference, tmp_path):
    """Segments of one video run as separate processes; a corrupt video fails alone; a second run keeps what is done."""
    inputs, bad = videos
    out = tmp_path / "out"
    _check(_batch(inputs, out, "--jobs", "2"), out, bad, reference)
    again = _batch(inputs, out, "--jobs", "2")
    assert again.returncode == 1 and "0 ok, 3 kept (output already there), 1 failed" in again.stdout


def test_ray_engine_missing_says_how_to_install(videos, tmp_path):
    """Without Ray (here: a `ray` that cannot be imported), `--engine ray` says in one line what to install."""
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(fake.parent) + os.pathsep + env
    try:
        result = _batch(videos[0][:1], tmp_path / "out", "--engine", "ray")
    finally:
        os.environ["PYTHONPATH"] = env
    one_line_error(result, "--engine ray needs Ray", "pip install 'vidrestore[distributed]'")


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray instance on this machine with two worker slots (2 CPUs); tests/ on the workers' path."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[test]' installs it)")
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src"), old])
    try:
        context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        os.environ["PYTHONPATH"] = old


def test_ray_engine_matches_local(ray_cluster, videos, reference, tmp_path):
    """`--engine ray --address` joins the running cluster: the same outputs as the local engine, the same failure."""
    inputs, bad = videos
    out = tmp_path / "out"
    _check(_batch(inputs, out, "--engine", "ray", "--address", ray_cluster), out, bad, reference)


def test_killed_ray_worker_does_not_stop_the_batch(ray_cluster, videos, tmp_path):
    """A worker is killed (SIGKILL) while it renders a segment: Ray runs the segment again, every video comes out."""
    from batch_helpers import Hold

    inputs = videos[0][:2]
    held = tmp_path / "held"
    held.mkdir()
    job = RestoreJob("restore", (Hold(str(held), frame=SEGMENT + 2),), segment_frames=SEGMENT)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(r=run_batch(inputs, tmp_path / "out", job, create_engine("ray"),
                                                                       progress=False)))
    runner.start()
    deadline = time.monotonic() + 120  # a guard against a hung test, not a measurement
    while not (held / "pid").exists() and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int((held / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    (held / "go").write_text("")
    runner.join()
    r = result["r"]
    assert [v.status for v in r.videos] == ["ok", "ok"], r.table()
    assert r.videos[0].tasks == 1 + 3 + 1  # prepare, three segments, join: the killed task was retried inside Ray
    ref = tmp_path / "ref"
    ref.mkdir()
    for v in inputs:
        assert content(tmp_path / "out" / v.name) == content(restore(v, ref / v.name, list(job.stages), segment_frames=SEGMENT,
                                                                    progress=False).output)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_split_restore_resumes_from_the_segments_already_rendered(videos, reference, tmp_path):
    """A segment rendered by an interrupted batch is kept (and a damaged one rendered again); the output is restore's."""
    from vidrestore.pipeline.split import SegmentedRestore

    video = videos[0][0]
    split = SegmentedRestore(video, tmp_path / video.name, (create_stage("unsharp"),), segment_frames=SEGMENT,
                             work_dir=tmp_path / "work")
    assert split.prepare() == [0, 1, 2]
    assert split.render(1, last=False) == SEGMENT and split.render(2, last=True) == FRAMES - 2 * SEGMENT
    assert split.prepare() == [0]  # another run: only the missing segment
    [seg2] = (tmp_path / "work").glob("jobs/*/seg_00002.mkv")
    seg2.write_bytes(seg2.read_bytes()[:-10])
    assert split.prepare() == [0, 2]
    for i in (0, 2):
        split.render(i, last=i == 2)
    assert split.join().frames == FRAMES
    assert content(tmp_path / video.name) == reference[video.name]
    assert not list((tmp_path / "work").glob("jobs/*"))


def test_every_stage_travels_to_a_worker_process():
    """`batch` pickles the stages for its worker processes: every registered stage survives it with its
    settings (the flow estimators' OpenCV objects and the denoiser's thread state did not: an internal error
    for `batch ... restore -s denoise`, `-s upscale` and the rest)."""
    import pickle

    from vidrestore.pipeline.stage import list_stages

    for name in set(list_stages()) - {"guided-deflicker"}:    # that one needs a guide video to be built
        stage = create_stage(name)
        assert pickle.loads(pickle.dumps(stage)).config() == stage.config(), name


def test_batch_runs_the_stage_commands(videos, tmp_path):
    """`batch ... upscale` (and likewise denoise, deblock) runs the command's stage on every video: the same
    packets as `restore` with that stage, at the new size, audio kept."""
    from vidrestore.restoration.upscale import Upscale

    clip = videos[0][0]
    result = run_cli("batch", clip, "-o", tmp_path / "out", "upscale", "--scale", "2", "--fidelity")
    assert result.returncode == 0, result.stderr
    expected = restore(clip, tmp_path / clip.name, [Upscale(2, fidelity=True)], progress=False).output
    assert content(tmp_path / "out" / clip.name) == content(expected)
    assert len(content(expected)[1]) > 0
