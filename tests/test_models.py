"""Networks: every registered model runs forward and backward; tiling equals whole-frame inference; checkpoints."""

from __future__ import annotations

import pytest
import torch

from vidrestore.errors import VidrestoreError
from vidrestore.models import create_model, list_models, load_checkpoint, save_checkpoint
from vidrestore.models.checkpoint import read_checkpoint_info
from vidrestore.models.tiling import run_tiled


def _inputs(model, b=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = 2 * model.radius + 1
    frames = torch.rand(b, t, 3, h, w, generator=g)
    flows = torch.randn(b, t - 1, 2, h, w, generator=g)
    prior = torch.randn(b, t, h, w, generator=g)
    return frames, flows, -flows, prior


def _randomise(model, seed=0):
    """Non-trivial weights (a fresh model starts as an identity-like fusion)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.1 if p.dim() > 1 else 0.3))
    return model


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward(name):
    model = create_model(name, radius=1)
    frames, nf, pf, prior = _inputs(model)
    out = model(frames, nf, pf, prior)
    t_out = 1 if model.outputs == "centre" else frames.shape[1]
    assert out.shape == (2, t_out, 3, 32, 48)
    assert model.config()["radius"] == 1
    out.abs().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_fresh_models_start_as_their_input():
    """The last layer starts at zero: no prior -> the centre frame; a recurrent model -> every frame."""
    unet, rec = create_model("unet", radius=1), create_model("recurrent", radius=1)
    frames, nf, pf, _ = _inputs(unet)
    assert torch.allclose(unet(frames)[:, 0], frames[:, 1], atol=1e-6)
    assert torch.allclose(rec(frames, nf, pf), frames, atol=1e-6)


def test_fresh_fusion_model_is_the_priors_blend():
    model = create_model("unet", radius=1)
    frames, _, _, prior = _inputs(model)
    blend = (torch.softmax(prior, 1)[:, :, None] * frames).sum(1)
    assert torch.allclose(model(frames, prior=prior)[:, 0], blend, atol=1e-6)


def test_unknown_model_and_bad_config_are_clear_errors():
    with pytest.raises(VidrestoreError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(VidrestoreError, match="bad configuration"):
        create_model("unet", depth=3)


def test_tiled_inference_equals_whole_frame():
    model = _randomise(create_model("unet")).eval()
    frames, _, _, prior = _inputs(model, b=1, h=203, w=331)
    with torch.no_grad():
        whole = run_tiled(model, [frames, None, None, prior], model.multiple, tile=0)
        tiled = run_tiled(model, [frames, None, None, prior], model.multiple, tile=96, margin=48)
    assert whole.shape == (1, 1, 3, 203, 331)
    assert (whole - tiled).abs().max() < 1e-3
    assert (whole - frames[:, 2:3]).abs().mean() > 0.01  # the network did change the frame


def test_tiles_are_equal_and_no_longer_than_the_frame_needs():
    """720p in 512-px tiles with 48 px margins: six tiles of 416x496, not six of 512x512 (the last
    moved back to the edge), so the network computes 1.34x the frame's pixels instead of 1.71x;
    and the blend still equals one pass over the whole frame."""
    seen = []

    def forward(x):
        seen.append(tuple(x.shape[-2:]))
        return x * 2

    x = torch.rand(1, 3, 720, 1280)
    out = run_tiled(forward, [x], 8, tile=512, margin=48)
    assert torch.allclose(out, x * 2)
    assert set(seen) == {(416, 496)} and len(seen) == 6
    assert sum(h * w for h, w in seen) / (720 * 1280) < 1.35
    model = _randomise(create_model("unet")).eval()
    frames, _, _, prior = _inputs(model, b=1, h=203, w=331)
    with torch.no_grad():
        whole = run_tiled(model, [frames, None, None, prior], model.multiple, tile=0)
        for tile in (200, 256):
            tiled = run_tiled(model, [frames, None, None, prior], model.multiple, tile=tile, margin=48)
            assert (whole - tiled).abs().max() < 1e-3, tile


def test_the_clis_tile_is_the_default_tile():
    from vidrestore.cli import build_parser
    from vidrestore.models.tiling import DEFAULT_TILE

    assert build_parser().parse_args(["deblur", "in.mp4", "-o", "out.mkv"]).tile == DEFAULT_TILE


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = _randomise(create_model("unet", radius=1, width=8)).eval()
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, recipe={"sevd": True}, inputs=["a.mp4"])
    info = read_checkpoint_info(path)
    assert info["model"] == "unet" and info["config"]["width"] == 8 and info["recipe"] == {"sevd": True}
    loaded, _ = load_checkpoint(path)
    frames, _, _, prior = _inputs(model)
    with torch.no_grad():
        assert torch.equal(model(frames, prior=prior), loaded(frames, prior=prior))
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(VidrestoreError, match="junk.safetensors: not a safetensors model file"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(VidrestoreError, match="model file not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (runs where there is one)")
@pytest.mark.parametrize("name", list_models())
def test_cuda_gives_the_cpu_result_and_trains(name, monkeypatch):
    # TF32 (cuDNN's default) rounds to 10-bit mantissas: compare in full fp32.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model = _randomise(create_model(name, radius=1)).eval()
    inputs = _inputs(model, b=1, h=64, w=96)
    with torch.no_grad():
        cpu = model(*inputs)
        gpu = model.to("cuda")(*(x.to("cuda") for x in inputs)).cpu()
    assert (cpu - gpu).abs().max() < 1e-4
    out = model.train()(*(x.to("cuda") for x in inputs))
    out.abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
