"""Benchmark methods: a registry of named ways to restore a clip, each run as a user would run it.

A method is a function that reads `call.input` (the degraded clip) and writes `call.output` (a
lossless .mkv the harness then scores), given the suite's options for it. Adding one is one
registration, in its own module, imported from `vidrestore.bench.builtin`::

    @register_method("unsharp-strong", description="unsharp mask, amount 1.5")
    def _unsharp_strong(call: MethodCall) -> None:
        restore(call.input, call.output, [build_stage("unsharp", amount=1.5)], EncodeSettings("ffv1"),
                work_dir=call.work_dir)

`vidrestore.bench.selfhvd` registers the methods that train on the clip.

`trains=True` marks methods that learn from the clip first: the harness's wall time per method
covers everything the function does, training included, and the tables flag those methods.
Pipeline stages become methods with `stage_method` (identity, unsharp, lucky below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VidrestoreError
from ..io import EncodeSettings


@dataclass
class MethodCall:
    """What a method gets: its input clip, where to write, scratch space, options, a place for timings."""

    input: Path
    output: Path
    work_dir: Path
    options: dict = field(default_factory=dict)
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registered benchmark method."""

    name: str
    run: Callable[[MethodCall], None]
    description: str = ""
    trains: bool = False


_METHODS: dict[str, Method] = {}


def register_method(name: str, *, description: str = "", trains: bool = False):
    """Decorator: make `fn(call: MethodCall) -> None` available to suites as method `name`."""

    def deco(fn: Callable[[MethodCall], None]) -> Callable[[MethodCall], None]:
        _METHODS[name] = Method(name, fn, description, trains)
        return fn

    return deco


def stage_method(name: str, stage: str, description: str) -> None:
    """Register pipeline stage `stage` as method `name`: `vidrestore restore IN -o OUT -s stage:options`."""

    def run(call: MethodCall) -> None:
        from ..pipeline import build_stage, restore

        restore(call.input, call.output, [build_stage(stage, **call.options)], EncodeSettings("ffv1"),
                overwrite=True, work_dir=call.work_dir, progress=call.progress)

    register_method(name, description=description)(run)


def get_method(name: str) -> Method:
    methods = list_methods()
    if name not in methods:
        raise VidrestoreError(f"unknown benchmark method {name!r}; available: {', '.join(methods)}")
    return _METHODS[name]


def list_methods() -> list[str]:
    from . import builtin  # noqa: F401 - registers the built-in methods

    return sorted(_METHODS)
