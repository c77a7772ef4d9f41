"""The one factory that builds networks by name (timm's `create_model` pattern), no import-time scan.

A model module registers a constructor with `@register_model("name")`; `create_model(name,
**cfg)` builds it. Every model exposes `config()` (the keyword arguments that rebuild it) and
three attributes the training and inference code read:

* ``radius``: frames of context on each side the model wants (a window of 2 * radius + 1);
* ``aligned_input``: True when it expects its neighbours already warped onto the centre frame
  (window models), False when it takes consecutive frames and their flows (recurrent models);
* ``outputs``: "centre" (one frame out per window) or "all" (one frame out per frame in).

Every model's ``forward(frames, next_flow, prev_flow, prior)`` takes frames (B, T, 3, H, W) in
[0, 1], the flows t -> t+1 and t+1 -> t, each (B, T-1, 2, H, W) in pixels (window models ignore
them), and a fusion prior (B, T, H, W) of log-weights over the window's frames (recurrent
models ignore it), and returns (B, T_out, 3, H, W).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import VidrestoreError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a model constructor available to `create_model` under `name`."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    from . import builtin  # noqa: F401 - registers the built-in models

    return sorted(_MODELS)


def create_model(name: str, **cfg) -> nn.Module:
    """Build a registered model by name with its configuration."""
    names = list_models()
    if name not in _MODELS:
        raise VidrestoreError(f"unknown model {name!r}; available: {', '.join(names)}")
    try:
        model = _MODELS[name](**cfg)
    except TypeError as err:
        raise VidrestoreError(f"bad configuration for model {name!r}: {err}") from None
    model.name = name
    return model
