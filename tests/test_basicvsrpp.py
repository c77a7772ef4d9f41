"""BasicVSR++ and the authors' checkpoint format: deformable convolution by known answers, loading, deblur --model X.pth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from vidrestore.errors import VidrestoreError
from vidrestore.io import EncodeSettings, read_frames, write_video
from vidrestore.models import create_model, load_checkpoint
from vidrestore.models.basicvsrpp import modulated_deform_conv2d


def _conv_case(groups: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 8, 12, 14, generator=g)
    w = torch.randn(5, 8, 3, 3, generator=g)
    b = torch.randn(5, generator=g)
    offset = torch.zeros(2, groups * 18, 12, 14)
    mask = torch.ones(2, groups * 9, 12, 14)
    return x, w, b, offset, mask


def test_deform_conv_with_zero_offsets_is_a_convolution():
    x, w, b, offset, mask = _conv_case()
    out = modulated_deform_conv2d(x, offset, mask, w, b, 4)
    assert torch.allclose(out, F.conv2d(x, w, b, padding=1), atol=1e-5)
    half = modulated_deform_conv2d(x, offset, mask * 0.5, w, None, 4)
    assert torch.allclose(half, 0.5 * F.conv2d(x, w, None, padding=1), atol=1e-5)


def test_deform_conv_offsets_shift_each_group_by_dy_dx():
    """Offsets (dy, dx) = (0, 1) in the first group, (2, 0) in the others: each group reads its input shifted."""
    x, w, b, offset, mask = _conv_case(groups=2)
    offset = offset.view(2, 2, 9, 2, 12, 14)
    offset[:, 0, :, 1] = 1.0
    offset[:, 1, :, 0] = 2.0
    out = modulated_deform_conv2d(x, offset.reshape(2, 36, 12, 14), mask, w, b, 2)
    shifted = torch.zeros_like(x)
    shifted[:, :4, :, :-1] = x[:, :4, :, 1:]  # group 0 samples one pixel to the right (0 outside, as mmcv)
    shifted[:, 4:, :-2] = x[:, 4:, 2:]  # group 1 two rows down
    # (away from the top and left edges, where the convolution's own zero padding would come into view)
    assert torch.allclose(out[..., 2:, 1:], F.conv2d(shifted, w, b, padding=1)[..., 2:, 1:], atol=1e-5)
    assert torch.allclose(out[..., -3:, -3:], F.conv2d(shifted, w, b, padding=1)[..., -3:, -3:], atol=1e-5)
    frac = offset.clone()
    frac[:, 0, :, 1] = 0.5
    frac[:, 1, :, 0] = 0.0
    mid = modulated_deform_conv2d(x, frac.reshape(2, 36, 12, 14), mask, w, None, 2)
    half = x.clone()
    half[:, :4, :, :-1] = 0.5 * (x[:, :4, :, :-1] + x[:, :4, :, 1:])
    assert torch.allclose(mid[..., 1:-1, 1:-2], F.conv2d(half, w, None, padding=1)[..., 1:-1, 1:-2], atol=1e-5)


def _authors_file(model, path, **extra):
    """An mmediting-style checkpoint: meta, and the restorer's state (generator.* plus a buffer of its own)."""
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    state["step_counter"] = torch.zeros(1)
    torch.save({"meta": {"mmedit_version": "0.16.0", "iter": 200000}, "state_dict": state, **extra}, path)


def _randomised(mid=8, blocks=2, seed=1):
    model = create_model("basicvsrpp", mid_channels=mid, num_blocks=blocks, radius=1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def test_authors_checkpoint_loads_with_its_width_and_depth(tmp_path):
    model = _randomised(mid=8, blocks=2)
    _authors_file(model, tmp_path / "pretrain.pth")
    loaded, info = load_checkpoint(tmp_path / "pretrain.pth")
    assert info["model"] == "basicvsrpp" and info["config"]["mid_channels"] == 8 and info["config"]["num_blocks"] == 2
    x = torch.rand(1, 3, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert (model(x) - x).abs().mean() > 1e-3  # random weights change the frames: the comparison means something


def test_checkpoint_that_could_run_code_is_refused_without_running_it(tmp_path):
    import os

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    model = _randomised()
    _authors_file(model, tmp_path / "evil.pth", hook=Evil())
    with pytest.raises(VidrestoreError, match="could run code"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_bad_authors_checkpoints_are_named(tmp_path):
    good = tmp_path / "good.pth"
    _authors_file(_randomised(), good)
    damaged = {"junk.pth": b"not a checkpoint", "text.pth": b"junk\n", "empty.pth": b"",
               "truncated.pth": good.read_bytes()[: good.stat().st_size // 2]}
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(VidrestoreError, match=name):
            load_checkpoint(tmp_path / name)
    torch.save({"state_dict": {"generator.other.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(VidrestoreError, match="not a BasicVSR"):
        load_checkpoint(tmp_path / "other.pth")
    model = _randomised()
    state = model.state_dict()
    state["conv_last.weight"] = state["conv_last.weight"] * float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(VidrestoreError, match="conv_last.weight"):
        load_checkpoint(tmp_path / "nan.pth")


def test_deblur_runs_an_authors_checkpoint_through_the_pipeline(tmp_path):
    """An identity BasicVSR++ (last layer zero) returns the input frames, in order, through deblur --model X.pth."""
    rng = np.random.default_rng(0)
    frames = [np.clip(rng.random((48, 64, 3), dtype=np.float32), 0, 1) for _ in range(5)]
    write_video(tmp_path / "in.mkv", frames, 10, EncodeSettings("ffv1"))
    model = _randomised()
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
    _authors_file(model, tmp_path / "pretrain.pth")
    r = run_cli("deblur", tmp_path / "in.mkv", "-o", tmp_path / "out.mkv", "--model", tmp_path / "pretrain.pth",
                "--budget", "0", "--codec", "ffv1", "-q")
    assert r.returncode == 0, r.stderr
    out = [f.rgb for f in read_frames(tmp_path / "out.mkv")]
    src = [f.rgb for f in read_frames(tmp_path / "in.mkv")]
    assert len(out) == 5 and all(np.abs(a - b).max() < 2 / 255 for a, b in zip(out, src))
