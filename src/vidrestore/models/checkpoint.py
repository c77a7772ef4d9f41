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
    return json.loads(meta[META_KEY])


AUTHORS_SUFFIXES = (".pth", ".pt")  # mmediting BasicVSR++ checkpoints (the SelfHVD authors' release)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model stored in `path`; returns (model in eval mode, its stored info).

    A .pth/.pt file is read as an mmediting BasicVSR++ checkpoint (`basicvsrpp.load_mmedit_checkpoint`).
    """
    if Path(path).suffix in AUTHORS_SUFFIXES:
        from .basicvsrpp import load_mmedit_checkpoint

        if not Path(path).is_file():
            raise VidrestoreError("model file not found", path)
        model, info = load_mmedit_checkpoint(path)
        return model.to(device), info
    info = read_checkpoint_info(path)
    model = create_model(info["model"], **info["config"])
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as err:
        raise VidrestoreError(f"weights do not fit the stored configuration ({str(err).splitlines()[0]})", path) from None
    return model.to(device).eval(), info
