"""Checkpoints: safetensors weights with the JSON configuration in the file's metadata.

One file holds everything needed to rebuild and trust a model: ``metadata["vidrestore"]`` is a
JSON object with "model" (registry name), "config" (its constructor arguments) and whatever the
trainer records ("recipe", "inputs", "steps", ...). safetensors loads no code (no pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ..errors import VidrestoreError
from .registry import create_model

META_KEY = "vidrestore"


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **info) -> None:
    """Write `model`'s weights and configuration (plus `info`) to `path`, atomically."""
    p = Path(path)
    meta = {"model": model.name, "config": model.config(), **info}
    tmp = p.with_name(f".{p.name}.tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={META_KEY: json.dumps(meta)})
    os.replace(tmp, p)


def read_checkpoint_info(path: str | os.PathLike) -> dict:
    """The JSON configuration stored in a checkpoint."""
    p = Path(path)
    if not p.is_file():
        raise VidrestoreError("model file not found", p)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise VidrestoreError(f"not a safetensors model file ({err})", p) from None
    if META_KEY not in meta:
        raise VidrestoreError("not a vidrestore model (its metadata has no configuration)", p)
    try:
        info = json.loads(meta[META_KEY])
    except json.JSONDecodeError as err:
        raise VidrestoreError(f"the model's stored configuration is not valid JSON ({err})", p) from None
    if not isinstance(info, dict) or not isinstance(info.get("model"), str) or not isinstance(info.get("config"), dict):
        raise VidrestoreError("the model's stored configuration names no network and settings", p)
    return info


def check_weights(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights that do not fit the network (naming the tensor) or hold NaN or infinite values."""
    for name, want in expected.items():
        if name not in weights:
            raise VidrestoreError(f"tensor {name!r} is missing from the weights", path)
        if tuple(weights[name].shape) != tuple(want.shape):
            raise VidrestoreError(f"tensor {name!r} is {tuple(weights[name].shape)}, the network needs {tuple(want.shape)}", path)
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise VidrestoreError(f"tensor {extra[0]!r} is not part of the stored network ({len(extra)} unexpected tensors)", path)
    for name, w in weights.items():
        if w.is_floating_point() and not bool(torch.isfinite(w).all()):
            bad = int((~torch.isfinite(w)).sum())
            raise VidrestoreError(f"tensor {name!r} holds {bad} NaN or infinite values: the model is damaged", path)


AUTHORS_SUFFIXES = (".pth", ".pt")  # mmediting BasicVSR++ checkpoints (the SelfHVD authors' release)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model stored in `path`; returns (model in eval mode, its stored info).

    A .pth/.pt file is read as an mmediting BasicVSR++ checkpoint (`basicvsrpp.load_mmedit_checkpoint`).
    Raises VidrestoreError naming the file (and the tensor) when the file is not a vidrestore
    model, its weights do not fit its configuration, or any weight is NaN or infinite.
    """
    if Path(path).suffix in AUTHORS_SUFFIXES:
        from .basicvsrpp import load_mmedit_checkpoint

        if not Path(path).is_file():
            raise VidrestoreError("model file not found", path)
        model, info = load_mmedit_checkpoint(path)
        return model.to(device), info
    info = read_checkpoint_info(path)
    try:
        model = create_model(info["model"], **info["config"])
    except VidrestoreError as err:
        raise VidrestoreError(err.message, path) from None
    except (TypeError, ValueError) as err:
        raise VidrestoreError(f"the stored configuration does not build a {info['model']} network ({err})", path) from None
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise VidrestoreError(f"the weights cannot be read ({err})", path) from None
    check_weights(weights, model.state_dict(), path)
    model.load_state_dict(weights)
    return model.to(device).eval(), info
