"""SelfHVD part 2: sampling (RSCR, Ren), SIS, training (reproducible, resumable), deblur/train/demo jobs."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch

from conftest import decoded_times, run_cli, stream_packets
from vidrestore.errors import VidrestoreError
from vidrestore.flow import backward_warp
from vidrestore.io import EncodeSettings, probe, read_frames, write_video
from vidrestore.models.checkpoint import read_checkpoint_info
from vidrestore.selfhvd import AnalysisSettings, analyze_video
from vidrestore.selfhvd import train as train_mod
from vidrestore.selfhvd.deblur import deblur, trained_model
from vidrestore.selfhvd.analysis import detail_factor
from vidrestore.selfhvd.infer import add_change
from vidrestore.selfhvd.sampling import Batch, Sampler, loader_batches
from vidrestore.selfhvd.selection import kept_sharp
from vidrestore.selfhvd.train import Budget, TrainSettings, sis, train
from vidrestore.synth.handheld import load_labels, synth_handheld
from vidrestore.synth.shake import ShakeSettings

TINY = dict(crop=64, batch=2)


@pytest.fixture(scope="module")
def shaky(sharp_video, tmp_path_factory):
    return synth_handheld(sharp_video, tmp_path_factory.mktemp("shaky") / "clip", ShakeSettings(seed=4, blur_strength=2.0),
                          progress=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def analysed(shaky, work):
    return analyze_video(shaky.blurry, work_dir=work, progress=False)


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_budget_parsing():
    assert Budget.parse("800") == Budget(steps=800) and Budget.parse("800steps") == Budget(steps=800)
    assert Budget.parse("5m") == Budget(minutes=5) and Budget.parse("90s") == Budget(minutes=1.5)
    assert Budget.parse("1.5h") == Budget(minutes=90)
    assert Budget.parse("0") == Budget(steps=0)  # deblur: apply the model as it is
    for bad in ("soon", "0m", "-3m"):
        with pytest.raises(VidrestoreError, match="budget"):
            Budget.parse(bad)


def test_rscr_replaces_sharp_frames_by_blurry_neighbours(analysed):
    s = Sampler([analysed], 2, True, "centre", 64, "selfhvd", np.random.default_rng(0))
    sharp = analysed.selection.sharp
    i = int(np.flatnonzero(sharp)[0])
    idx = [min(max(i + d, 0), analysed.count - 1) for d in range(-2, 3)]
    sources = s._rscr(analysed, idx, 1.0)
    for t, u in zip(idx, sources):
        assert (u == t) if not sharp[t] else (not sharp[u] and abs(u - t) <= 3)
    batch = s.batch(4, rscr_prob=1.0)
    assert batch.inputs.shape == (4, 5, 3, 64, 64) and batch.prior.shape == (4, 5, 64, 64)
    assert batch.label.shape == (4, 1, 3, 64, 64) and batch.mask.shape == (4, 1, 1, 64, 64)
    assert batch.clean is not None and batch.clean_prior.shape == batch.prior.shape

    # RSCR degrades the input only: the label and mask stay those of the original centre frame
    box = (16, 80, 32, 96)
    s._box = lambda a: box
    degraded = 0
    for _ in range(12):
        x = s.sample(rscr_prob=1.0)
        clean = x["clean"] if x["clean"] is not None else x["inputs"]
        (centre,) = [j for j in range(analysed.count) if np.array_equal(clean[2], analysed.frame(j, box))]
        label, mask = analysed.label(centre, box)
        assert np.array_equal(x["label"][0], label) and np.array_equal(x["mask"][0, 0], mask)
        degraded += x["clean"] is not None and not np.array_equal(x["inputs"], x["clean"])
    assert degraded > 0


@pytest.mark.parametrize("recipe", ["selfhvd", "ren"])
def test_a_batch_built_on_worker_threads_is_the_batch_built_one_sample_at_a_time(analysed, monkeypatch, recipe):
    """The random choices are drawn in order on the calling thread and the samples built on worker threads (four
    here, whatever the machine): for the same seed, the batches are those one thread builds."""
    def batches(threads: int) -> list[Batch]:
        monkeypatch.setattr(cv2, "getNumThreads", lambda: threads)
        s = Sampler([analysed], 2, True, "centre", 64, recipe, np.random.default_rng(3))
        return [s.batch(5, rscr_prob=0.5) for _ in range(3)]

    alone, together = batches(1), batches(4)
    for a, b in zip(alone, together):
        for k, x in vars(a).items():
            assert (x is None and vars(b)[k] is None) or np.array_equal(x, vars(b)[k]), k
    assert not np.array_equal(together[0].inputs[0], together[0].inputs[1])  # each sample its own crop


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # e.g. a loader process aborted at its exit
def test_background_loaders_draw_distinct_batches_and_follow_the_rscr_switch(analysed):
    batches, rscr = loader_batches(Sampler([analysed], 2, True, "centre", 64, "selfhvd", np.random.default_rng(0)), 3, 2, [0, 0, 0])
    first = [next(batches) for _ in range(4)]
    assert all(b.inputs.shape == (3, 5, 3, 64, 64) and b.label.shape == (3, 1, 3, 64, 64) for b in first)
    assert all(b.clean is None for b in first)  # RSCR off
    assert all(isinstance(b.inputs, torch.Tensor) for b in first)  # through shared memory, not pickled
    assert len({b.inputs.numpy().tobytes() for b in first}) == 4  # each worker its own random stream
    rscr.value = 1.0
    later = [next(batches) for _ in range(14)]
    assert any(b.clean is not None for b in later[10:])  # drawn after the switch (eight were drawn ahead)
    del batches
    model, info = train([analysed], TrainSettings(**TINY, stage1_share=0.5, loaders=1), Budget(steps=3), progress=False)
    assert info["steps"] == 3 and info["stage1_steps"] == 2  # the third in stage 2 (RSCR through the loader)


def test_ren_samples_blur_sharp_frames_and_label_them_with_themselves(analysed):
    from vidrestore.metrics.blur import laplacian_variance

    s = Sampler([analysed], 2, True, "centre", 96, "ren", np.random.default_rng(1))
    box = (0, 96, 16, 112)
    s._box = lambda a: box
    sharp = np.flatnonzero(analysed.selection.sharp)
    for _ in range(4):
        x = s.sample()
        assert x["mask"].min() == 1  # centres are sharp frames
        assert laplacian_variance(x["inputs"][2]) < laplacian_variance(x["label"][0])
        # the label is a sharp frame exactly as stored, and the input its synthetically blurred copy
        assert any(np.array_equal(x["label"][0], analysed.frame(int(j), box)) for j in sharp)
        assert not np.array_equal(x["inputs"][2], x["label"][0])


def test_sis_picks_the_sharp_label_only_when_it_is_sharper_and_not_distorted():
    rng = np.random.default_rng(0)
    sharp = torch.from_numpy(rng.random((1, 1, 3, 32, 32), dtype=np.float32))
    own = torch.full_like(sharp, 0.5) + 0.01 * sharp  # flat: less sharp
    mask = torch.zeros(1, 1, 1, 32, 32)
    mask[..., 4:28, 4:28] = 1
    label, m = sis(sharp, mask, torch.tensor([[0.9]]), own, 0.5)
    assert torch.equal(label[..., 10, 10], sharp[..., 10, 10]) and torch.equal(label[..., 0, 0], own[..., 0, 0])
    assert m.min() == 1
    label, _ = sis(sharp, mask, torch.tensor([[0.3]]), own, 0.5)  # too little of the frame covered
    assert torch.equal(label, own)
    label, _ = sis(own, mask, torch.tensor([[0.9]]), sharp, 0.5)  # the model's own output is sharper
    assert torch.equal(label, sharp)


def test_training_is_reproducible_for_a_seed(analysed):
    settings = TrainSettings(**TINY, stage1_share=0.5)
    a, _ = train([analysed], settings, Budget(steps=4), progress=False)
    b, _ = train([analysed], settings, Budget(steps=4), progress=False)
    c, _ = train([analysed], TrainSettings(**TINY, stage1_share=0.5, seed=1), Budget(steps=4), progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b)))
    assert not all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(c)))


def test_training_on_the_cpu_keeps_freed_memory_for_the_next_step(analysed, monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "reuse_freed_memory", lambda: calls.append(True) or True)
    train([analysed], TrainSettings(**TINY), Budget(steps=1), device="cpu", progress=False)
    assert calls, "each step's activations would be fresh mappings the kernel faults in (util.memory)"


def test_interrupted_training_resumes_to_the_same_model(analysed, tmp_path, monkeypatch):
    settings = TrainSettings(**TINY, stage1_share=0.5)
    whole, info = train([analysed], settings, Budget(steps=6), progress=False)
    assert info["steps"] == 6 and info["stage1_steps"] == 3
    monkeypatch.setattr(train_mod, "CHECKPOINT_S", 0.0)
    real, calls = Sampler.batch, []

    def crash_on_fifth(self, *a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Sampler, "batch", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        train([analysed], settings, Budget(steps=6), state_dir=tmp_path, progress=False)
    monkeypatch.setattr(Sampler, "batch", real)
    resumed, info = train([analysed], settings, Budget(steps=6), state_dir=tmp_path, progress=False)
    assert info["steps"] == 6
    assert all(torch.equal(x, y) for x, y in zip(_weights(whole), _weights(resumed)))


def test_every_model_trains_with_every_stage(analysed):
    for name in ("unet", "recurrent"):
        model, info = train([analysed], TrainSettings(model=name, model_config={"radius": 1, "width": 8}, **TINY,
                                                       stage1_share=0.34), Budget(steps=3), progress=False)
        assert info["stage1_steps"] == 2 and np.isfinite(info["loss"])


def test_deblur_trains_on_the_video_and_keeps_sharp_frames(shaky, work, analysed, tmp_path, monkeypatch):
    from vidrestore.flow import fusion
    from vidrestore.selfhvd import infer

    passed = []   # frames the network (6 steps) left less sharp: passed through (`fusion.never_blurrier`)
    monkeypatch.setattr(infer, "never_blurrier", lambda frame, restored: (passed.append(fusion.blurrier(frame, restored)),
                                                                          fusion.never_blurrier(frame, restored))[1])
    out = tmp_path / "out.mkv"
    report = deblur(shaky.blurry, out, budget=Budget(steps=6), settings=TrainSettings(**TINY), encode=EncodeSettings("ffv1"),
                    work_dir=work, progress=False)
    assert report.training["steps"] == 6 and report.fallback is None
    assert decoded_times(out) == decoded_times(shaky.blurry)
    selected = kept_sharp(analysed.selection.sharp, analysed.laplacian, radius=4)  # the default network's window
    assert 0 < selected.sum() < len(selected)
    changed = []
    for f_in, f_out, sharp in zip(read_frames(shaky.blurry), read_frames(out), selected):
        if sharp:
            assert np.array_equal(f_out.rgb, f_in.rgb)  # sharp frames are kept as they are
        else:
            changed.append(not np.array_equal(f_out.rgb, f_in.rgb))
    assert len(passed) == len(changed) and sum(passed) <= 2
    assert all(c != p for c, p in zip(changed, passed))   # every other frame the network rendered changed
    again = deblur(shaky.blurry, out, budget=Budget(steps=6), settings=TrainSettings(**TINY), encode=EncodeSettings("ffv1"),
                   work_dir=work, overwrite=True, progress=False)
    assert again.training == report.training  # the trained model was reused, not trained again
    fresh = tmp_path / "fresh.mkv"
    deblur(shaky.blurry, fresh, budget=Budget(steps=6), settings=TrainSettings(**TINY), encode=EncodeSettings("ffv1"),
           work_dir=tmp_path / "other-work", progress=False)
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(read_frames(out), read_frames(fresh)))  # a step budget reproduces


def test_network_change_at_the_working_size_is_upscaled_onto_the_full_frame():
    rng = np.random.default_rng(0)
    frame = rng.random((40, 60, 3), dtype=np.float32) * 0.5
    before = cv2.resize(frame, (30, 20), interpolation=cv2.INTER_AREA)
    after = before + 0.1
    assert np.allclose(add_change(frame, before, after), frame + 0.1, atol=1e-6)  # a constant change lands everywhere
    assert np.array_equal(add_change(frame, frame, frame * 2), frame * 2)  # at full size: the output itself


def test_working_size_is_the_resolution_the_footage_holds():
    rng = np.random.default_rng(1)
    detailed = rng.random((96, 128, 3), dtype=np.float32)  # detail at every pixel: halving loses it
    soft = cv2.GaussianBlur(detailed, (0, 0), 2.5)  # no detail finer than about 8 pixels
    assert detail_factor([detailed], 2) == 1
    assert detail_factor([soft * 0.2, soft], 2) == 2  # decided on the sharpest frame
    assert detail_factor([soft, detailed], 2) == 1
    assert detail_factor([soft], 1) == 1  # never below the limit


def test_deblur_of_soft_footage_works_at_half_size_and_keeps_the_full_frames(shaky, tmp_path):
    """Footage that holds no more detail than half its size (the clip upscaled 2x) is analysed and trained on
    at half size; the output keeps the full size and its sharp frames unchanged, and its blurry frames come
    closer to the ground truth than at full resolution."""
    def upscaled(path, name):   # the first 24 frames: the suite's slowest test with all 36
        frames = [cv2.resize(f.rgb, (640, 384), interpolation=cv2.INTER_CUBIC) for f in itertools.islice(read_frames(path), 24)]
        write_video(tmp_path / name, frames, 30, EncodeSettings("ffv1"))
        return tmp_path / name

    blurry, gt = upscaled(shaky.blurry, "blurry.mkv"), upscaled(shaky.gt, "gt.mkv")
    truly_blurry = [not f["sharp"] for f in load_labels(shaky.labels)["frames"]]
    scores, selected = {}, None
    for limit in (1, 2):
        out = tmp_path / f"out{limit}.mkv"
        settings = AnalysisSettings(max_downscale=limit)
        deblur(blurry, out, budget=Budget(steps=6), settings=TrainSettings(**TINY), analysis=settings,
               encode=EncodeSettings("ffv1"), work_dir=tmp_path / "work", progress=False)
        a = analyze_video(blurry, settings, work_dir=tmp_path / "work", progress=False)  # the cached analysis
        assert a.size == ((384, 640) if limit == 1 else (192, 320)) and a.meta["downscale"] == limit
        selected = selected if limit > 1 else a.selection.sharp
        assert np.array_equal(a.selection.sharp, selected)  # selected on the full frames either way
        kept = kept_sharp(a.selection.sharp, a.laplacian, radius=4)
        errors = {"input": [], "output": []}
        for f_in, f_out, f_gt, k, b in zip(read_frames(blurry), read_frames(out), read_frames(gt), kept, truly_blurry):
            assert f_out.rgb.shape == (384, 640, 3)
            if k:
                assert np.array_equal(f_out.rgb, f_in.rgb)
            elif b:
                errors["input"].append(np.mean((f_in.rgb - f_gt.rgb) ** 2))
                errors["output"].append(np.mean((f_out.rgb - f_gt.rgb) ** 2))
        scores[limit] = {k: -10 * np.log10(np.mean(v)) for k, v in errors.items()}
    assert scores[2]["output"] > scores[1]["output"] + 0.5 > scores[1]["input"] + 0.5, scores  # 35.8, 34.9, 33.2 dB
    cache = tmp_path / "work" / "cache"
    folders = set(cache.iterdir())
    done = run_cli("deblur", blurry, "-o", tmp_path / "fid.mkv", "--fidelity", "--codec", "ffv1", "--work-dir", tmp_path / "work")
    assert done.returncode == 0 and "worked at" not in done.stdout, done.stderr
    assert set(cache.iterdir()) == folders  # fidelity mode used the full-size analysis, and the command read that one


def test_default_budgets_are_steps_and_the_help_states_the_defaults():
    from vidrestore.selfhvd.analysis import MAX_DOWNSCALE
    from vidrestore.selfhvd.deblur import DEFAULT_BUDGET
    from vidrestore.selfhvd.demo import DEMO_BUDGET

    assert DEFAULT_BUDGET.steps and DEFAULT_BUDGET.minutes is None and DEMO_BUDGET.steps and DEMO_BUDGET.minutes is None
    deblur_help = " ".join(run_cli("deblur", "--help").stdout.split())
    assert f"default {DEFAULT_BUDGET}" in deblur_help
    assert f"below the video's size (default {MAX_DOWNSCALE})" in deblur_help  # the CLI states it without importing it
    assert f"default {DEMO_BUDGET}" in " ".join(run_cli("demo", "--help").stdout.split())


def test_video_without_sharp_frames_falls_back_with_a_note(clip_factory, tmp_path, caplog):
    path, spec, _ = clip_factory("steady_audio.mkv", codec="ffv1", pix_fmt="yuv444p", frames=12, audio=True, width=128, height=96)
    out = tmp_path / "out.mkv"
    report = deblur(path, out, work_dir=tmp_path / "w", progress=False)
    assert report.training is None and "lucky-frame fusion is used instead" in report.fallback
    assert report.selection["problem"]
    assert stream_packets(out, "audio") == stream_packets(path, "audio")
    assert len(list(read_frames(out))) == spec.frames


def test_train_cli_then_deblur_with_the_model_and_adaptation(shaky, clip_factory, tmp_path):
    model = tmp_path / "phone.safetensors"
    work = tmp_path / "w"
    r = run_cli("train", shaky.blurry, shaky.blurry.with_name("gt.mkv"), "-o", model, "--budget", "3", "--loaders", "1", "-q",
                "--work-dir", work)
    assert r.returncode == 0, r.stderr
    info = read_checkpoint_info(model)
    assert info["model"] == "unet" and info["training"]["steps"] == 3
    assert info["training"]["recipe"]["loaders"] == 1  # the crops were drawn by a background process
    assert len(info["inputs"]) == 1  # gt.mkv has no blurry frames: left out, with a warning
    assert "left out of training" in r.stderr
    path, spec, _ = clip_factory("model_audio.mkv", codec="ffv1", pix_fmt="yuv444p", frames=12, audio=True, width=128, height=96)
    out = tmp_path / "applied.mkv"
    r = run_cli("deblur", path, "-o", out, "--model", model, "--budget", "0", "--codec", "ffv1", "-q", "--work-dir", work)
    assert r.returncode == 0, r.stderr
    assert stream_packets(out, "audio") == stream_packets(path, "audio")
    assert probe(out).frame_count == spec.frames
    r = run_cli("deblur", shaky.blurry, "-o", tmp_path / "adapted.mkv", "--model", model, "--budget", "2", "-q", "--work-dir", work)
    assert r.returncode == 0, r.stderr
    assert "trained 2 steps" in r.stdout


def test_deblur_cli_errors_are_one_line(tmp_path, shaky):
    r = run_cli("deblur", tmp_path / "missing.mp4", "-o", tmp_path / "o.mp4")
    assert r.returncode == 1 and "missing.mp4" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("deblur", shaky.blurry, "-o", tmp_path / "o.mp4", "--model", tmp_path / "none.safetensors")
    assert r.returncode == 1 and "model file not found" in r.stderr
    r = run_cli("deblur", shaky.blurry, "-o", tmp_path / "o.mp4", "--budget", "soon")
    assert r.returncode == 1 and "not a training budget" in r.stderr
    r = run_cli("deblur", shaky.blurry, "-o", shaky.blurry)
    assert r.returncode == 1 and "output is the input" in r.stderr
    r = run_cli("train", shaky.blurry, "-o", tmp_path / "m.pt")
    assert r.returncode == 1 and "must end in .safetensors" in r.stderr
    if not torch.cuda.is_available():
        r = run_cli("deblur", shaky.blurry, "-o", tmp_path / "o.mp4", "--device", "cuda")
        assert r.returncode == 1 and "no CUDA device" in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (runs where there is one)")
def test_deblur_on_cuda(shaky, tmp_path):
    out = tmp_path / "cuda.mkv"
    r = run_cli("deblur", shaky.blurry, "-o", out, "--device", "cuda", "--budget", "20", "-q",
                "--work-dir", tmp_path / "w")
    assert r.returncode == 0, r.stderr
    assert probe(out).frame_count == probe(shaky.blurry).frame_count


@pytest.mark.slow
def test_demo_runs_and_reports_psnr(tmp_path):
    r = run_cli("demo", "-o", tmp_path / "demo", "--budget", "20", "-q", "--work-dir", tmp_path / "w", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "PSNR-Y against ground truth, blurry frames" in r.stdout
    for name in ("blurry.mkv", "deblurred.mkv", "gt.mkv", "side_by_side.mp4", "labels.json"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
    before, after = (float(x.split(" dB")[0]) for x in r.stdout.split("blurry frames: input ")[1].split("-> output "))
    assert after > before
    assert probe(tmp_path / "demo" / "side_by_side.mp4").width == 3 * probe(tmp_path / "demo" / "blurry.mkv").width


class _RunsCode:
    """Pickles to a call of Path.touch(marker): what a planted training state would run on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_training_state_is_read_without_running_code(analysed, tmp_path, caplog):
    """Issue 22, defect 4: a pickle planted as train_state.pt must not run; training starts afresh."""
    marker = tmp_path / "code-ran"
    state = tmp_path / "state"
    state.mkdir()
    torch.save({"model": _RunsCode(marker)}, state / "train_state.pt")
    _, info = train([analysed], TrainSettings(**TINY), Budget(steps=2), state_dir=state, progress=False)
    assert not marker.exists()
    assert info["steps"] == 2
    assert "unreadable training state discarded" in caplog.text


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_cached_model_is_trained_again(analysed, tmp_path, caplog, damage):
    """Issue 22, defect 5: a damaged cached model is discarded with a warning and trained again."""
    settings = TrainSettings(**TINY)
    first, _ = trained_model([analysed], settings, Budget(steps=2), work_dir=tmp_path, device=torch.device("cpu"), progress=False)
    (cached,) = tmp_path.glob("cache/selfhvd-model-*/model.safetensors")
    cached.write_bytes(b"garbage" if damage == "garbage" else cached.read_bytes()[:-100])
    again, info = trained_model([analysed], settings, Budget(steps=2), work_dir=tmp_path, device=torch.device("cpu"), progress=False)
    assert "cache entry damaged or of another version: discarded" in caplog.text and info["steps"] == 2
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class _Bits:
    """A stand-in generator whose `integers` draws the given flips."""

    def __init__(self, bits):
        self.bits = bits

    def integers(self, low, high, size):
        return np.array(self.bits)


@pytest.mark.parametrize("bits", list(itertools.product([0, 1], repeat=3)), ids=lambda b: "hflip%d-vflip%d-transpose%d" % b)
def test_flow_augmentation_keeps_flows_consistent_with_the_frames(bits):
    """After any flip or transpose, each flow still carries the (flipped) later frame onto the earlier one."""
    h, w = 48, 64
    later = cv2.GaussianBlur(np.random.default_rng(3).random((h, w, 3), dtype=np.float32), (0, 0), 2.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([2.0 + 0.02 * xx, -1.5 + 0.03 * yy], axis=-1)  # neither symmetric nor constant
    earlier, _ = backward_warp(later, flow)
    chw = lambda x: np.moveaxis(x, -1, 0)[None, None]  # noqa: E731 - (h, w, c) -> (1, 1, c, h, w)
    batch = Batch(np.concatenate([chw(earlier), chw(later)], axis=1), None, chw(flow), None, None, None,
                  chw(earlier), np.ones((1, 1, 1, h, w), np.float32), np.ones((1, 1), np.float32))
    t = train_mod._tensors(batch, torch.device("cpu"), _Bits(bits))
    hwc = lambda x: np.ascontiguousarray(np.moveaxis(x.numpy(), 0, -1))  # noqa: E731
    a, b, f = hwc(t["inputs"][0, 0]), hwc(t["inputs"][0, 1]), hwc(t["next_flow"][0, 0])
    warped, valid = backward_warp(b, f)
    inner = np.zeros(valid.shape, bool)
    inner[4:-4, 4:-4] = True
    inner &= valid > 0
    assert inner.sum() > 0.5 * inner.size
    assert np.abs(warped - a)[inner].max() < 1e-4


def test_sevd_uses_a_stopped_gradient_and_scscm_a_frozen_anchor(analysed, tmp_path, monkeypatch):
    """Stage 2: SIS sees the model's own output without gradient (sg(D(B))), and the SCSCM anchor
    (the model as stage 1 left it) does not change while the model keeps learning."""
    own_grads, states = [], []
    real_sis, real_save = train_mod.sis, train_mod._save_state

    def spy_sis(label, mask, coverage, own, min_coverage):
        own_grads.append(own.requires_grad)
        return real_sis(label, mask, coverage, own, min_coverage)

    def spy_save(path, state):
        states.append({k: {n: t.clone() for n, t in v.items()} for k, v in state.items() if k in ("model", "anchor") and v})
        real_save(path, state)

    monkeypatch.setattr(train_mod, "sis", spy_sis)
    monkeypatch.setattr(train_mod, "_save_state", spy_save)
    monkeypatch.setattr(train_mod, "CHECKPOINT_S", 0.0)
    settings = TrainSettings(**TINY, stage1_share=0.5)
    _, info = train([analysed], settings, Budget(steps=6), state_dir=tmp_path, progress=False)
    assert info["stage1_steps"] == 3 and own_grads == [False] * 3
    with_anchor = [s for s in states if "anchor" in s]
    first, last = with_anchor[0], with_anchor[-1]
    assert all(torch.equal(first["anchor"][n], last["anchor"][n]) for n in first["anchor"])
    assert not all(torch.equal(first["model"][n], last["model"][n]) for n in first["model"])
    assert all(torch.equal(first["anchor"][n], first["model"][n]) for n in first["anchor"])  # taken from the model


def test_moving_object_is_not_made_worse(tmp_path):
    """A square crossing a panning scene under handheld shake (`conftest.moving_square_clip`): deblur
    must not carry another moment's square into a frame. On blurry frames, PSNR-Y against the
    ground truth around the square stays at least the input's, and the whole frame gains."""
    from conftest import moving_square_clip, moving_square_scores

    clip, place = moving_square_clip(tmp_path)
    deblur(clip.blurry, tmp_path / "out.mkv", budget=Budget(steps=6), settings=TrainSettings(**TINY),
           encode=EncodeSettings("ffv1"), work_dir=tmp_path / "w", progress=False)
    mean = moving_square_scores(clip, place, tmp_path / "out.mkv")
    assert mean["out"] >= mean["in"] - 0.05, mean
    assert mean["out_all"] > mean["in_all"] + 0.3, mean


class _PastesSharperNeighbours(torch.nn.Module):
    """A window network at its worst around motion: each aligned neighbour blended in everywhere by the
    best weight its fusion prior gives it anywhere (frame-level weights, no per-pixel trust), so an
    object's other positions in sharper frames are pasted into the frame."""

    aligned_input, outputs, multiple, radius = True, "centre", 8, 4

    def forward(self, frames, next_flow=None, prev_flow=None, prior=None):
        w = prior.flatten(2).amax(2).exp()[..., None, None, None]
        return ((frames * w).sum(1) / w.sum(1))[:, None]


class _BlendsMisaligned(torch.nn.Module):
    """A window network at its worst on footage whose neighbours cannot be aligned to the pixel: the
    frame averaged with itself shifted by 2 px (what a blend of misaligned sharper neighbours gives)."""

    aligned_input, outputs, multiple, radius = True, "centre", 8, 4

    def forward(self, frames, next_flow=None, prev_flow=None, prior=None):
        centre = frames[:, 4]
        return ((centre + torch.roll(centre, (2, 2), (-2, -1))) / 2)[:, None]


def test_a_frame_the_network_would_make_blurrier_is_passed_through(tmp_path):
    """`fusion.never_blurrier`: every blurry frame of the clip goes through a network that blurs it, and
    comes out as it went in (README: SelfHVD, real phone footage); the sharpening network of the test
    below still changes them."""
    from conftest import moving_square_clip
    from vidrestore.io import read_frames
    from vidrestore.pipeline import restore
    from vidrestore.selfhvd import infer

    clip, _ = moving_square_clip(tmp_path)
    a = analyze_video(clip.blurry, work_dir=tmp_path / "w", progress=False)
    for net, name in ((_BlendsMisaligned(), "blurs.mkv"), (_PastesSharperNeighbours(), "pastes.mkv")):
        restore(clip.blurry, tmp_path / name, [infer.DeblurStage(net, a, torch.device("cpu"))], EncodeSettings("ffv1"),
                work_dir=tmp_path / "w", progress=False)
    changed = {name: [not np.array_equal(f.rgb, g.rgb) for f, g in zip(read_frames(clip.blurry), read_frames(tmp_path / name))]
               for name in ("blurs.mkv", "pastes.mkv")}
    assert not any(changed["blurs.mkv"])
    assert sum(changed["pastes.mkv"]) >= 8, changed


def test_moving_object_guard_holds_a_network_that_pastes_other_moments(tmp_path, monkeypatch):
    """The guard (`infer.guard_moving`, `window.moving_share`) without training in the way: on the moving
    square clip, a network that pastes the sharper neighbours everywhere loses 6 dB around the square
    on its own; through the guard it stays within 0.6 dB of the input there (0.48; 0.25 before the
    alignment flows were blur-matched, whose smoother field misses its round trips around the square by
    less; 1.35 when the guard counted disagreement alone), and whole blurry frames still gain. (The
    trained defaults gain 0.17 dB around the square, README: SelfHVD, moving objects.)"""
    from conftest import moving_square_clip, moving_square_scores
    from vidrestore.pipeline import restore
    from vidrestore.selfhvd import infer

    clip, place = moving_square_clip(tmp_path)
    a = analyze_video(clip.blurry, work_dir=tmp_path / "w", progress=False)
    net = _PastesSharperNeighbours()
    restore(clip.blurry, tmp_path / "guarded.mkv", [infer.DeblurStage(net, a, torch.device("cpu"))], EncodeSettings("ffv1"),
            work_dir=tmp_path / "w", progress=False)
    monkeypatch.setattr(infer, "guard_moving", lambda restored, fusion, share: restored)
    restore(clip.blurry, tmp_path / "bare.mkv", [infer.DeblurStage(net, a, torch.device("cpu"))], EncodeSettings("ffv1"),
            work_dir=tmp_path / "w2", progress=False)
    bare = moving_square_scores(clip, place, tmp_path / "bare.mkv")
    guarded = moving_square_scores(clip, place, tmp_path / "guarded.mkv")
    assert bare["out"] < bare["in"] - 1.0, bare
    assert guarded["out"] >= guarded["in"] - 0.6, guarded
    assert guarded["out_all"] > guarded["in_all"] + 1.0, guarded
