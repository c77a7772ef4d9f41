"""Stages: the unit of work the pipeline runs over a video, and the registry that names them.

A stage maps a window of frames to one output frame. Three shapes cover every restoration task:

* per-frame (``radius = 0``): the window is the frame itself (unsharp mask, colour);
* windowed (``radius = k``): the frame and its k neighbours on each side, edge frames repeated at
  the ends of the video (temporal denoise, deblurring with neighbours);
* two-pass (``two_pass = True``): an analysis pass over the whole video first (a camera path, a
  model trained on the video), saved to a cache folder, then the render pass.

A stage's output for frame i must depend only on its window (and its analysis), never on which
frames it saw before: that is what lets an interrupted job resume mid-video and still produce
the same frames.
"""

from __future__ import annotations

import inspect
import typing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VidrestoreError
from ..io.probe import VideoInfo
from ..io.reader import Frame


@dataclass(frozen=True)
class Window:
    """Frames i-k..i+k around the frame being produced (clamped copies at the video's ends)."""

    frames: tuple[Frame, ...]
    center: int

    @property
    def frame(self) -> Frame:
        return self.frames[self.center]

    @property
    def index(self) -> int:
        return self.frame.index


class Stage:
    """Base class of all stages; subclasses set `name`, maybe `radius`/`two_pass`, and override `process`."""

    name: str = "stage"
    radius: int = 0
    two_pass: bool = False

    def config(self) -> dict:
        """Every parameter that changes the output (part of cache and resume keys)."""
        return {}

    def inputs(self) -> list[Path]:
        """Files the stage reads besides the video (a guide): the output may never replace them."""
        return []

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the frames `process` returns for frames of width x height (a resizing stage overrides it)."""
        return width, height

    def check(self, info: VideoInfo) -> None:
        """Refuse, before any work, a video the stage cannot process (raise VidrestoreError)."""

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        """Two-pass stages: look at every frame, save what the render pass needs under cache_dir."""

    def load(self, cache_dir: Path) -> None:
        """Two-pass stages: restore the analysis saved by `analyze` (called before rendering)."""

    def process(self, window: Window) -> np.ndarray:
        raise NotImplementedError


def apply_stage(stage: Stage, frames: Iterable[Frame]) -> Iterator[Frame]:
    """Run one stage over a frame stream, yielding processed frames in order."""
    k = stage.radius
    if k == 0:
        for f in frames:
            yield f.with_rgb(stage.process(Window((f,), 0)))
        return
    buf: deque[Frame] = deque()
    it = iter(frames)
    exhausted = False
    pos = 0  # position in buf of the next frame to produce
    while True:
        while not exhausted and len(buf) <= pos + k:
            try:
                buf.append(next(it))
            except StopIteration:
                exhausted = True
        if pos >= len(buf):
            return
        last = len(buf) - 1
        window = tuple(buf[min(max(pos + d, 0), last)] for d in range(-k, k + 1))
        yield buf[pos].with_rgb(stage.process(Window(window, k)))
        pos += 1
        if pos > k:
            buf.popleft()
            pos -= 1


def apply_stages(stages: Iterable[Stage], frames: Iterable[Frame]) -> Iterator[Frame]:
    """Chain stages: each one's output is the next one's input."""
    out: Iterable[Frame] = frames
    for stage in stages:
        out = apply_stage(stage, out)
    return iter(out)


# --- registry ---------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., Stage]] = {}
_LOADERS: list[Callable[[], None]] = []


def register_stage(name: str) -> Callable[[Callable[..., Stage]], Callable[..., Stage]]:
    """Decorator: make a stage factory available by name to `create_stage` and the CLI."""

    def deco(factory: Callable[..., Stage]) -> Callable[..., Stage]:
        _REGISTRY[name] = factory
        return factory

    return deco


def register_stage_loader(load: Callable[[], None]) -> None:
    """Register a function that imports, and so registers, a family of stages when stages are first
    looked up (the pipeline itself knows no stage; `vidrestore.restoration` registers its own)."""
    _LOADERS.append(load)


def list_stages() -> list[str]:
    """Names of the registered stages."""
    while _LOADERS:
        _LOADERS.pop(0)()
    return sorted(_REGISTRY)


def _parse_value(text: str) -> object:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _typed(stage: str, factory: Callable[..., Stage], options: dict[str, object]) -> dict[str, object]:
    """Options converted to the types the factory declares (an int where a float is wanted is fine)."""
    params = inspect.signature(factory).parameters
    hints = typing.get_type_hints(factory)
    out = {}
    for key, value in options.items():
        if key not in params:
            raise VidrestoreError(f"stage {stage!r} has no option {key!r}; its options: {', '.join(params) or 'none'}")
        want = hints.get(key)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif want in (int, float, str, bool) and type(value) is not want:
            kind = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[want]
            raise VidrestoreError(f"option {key} of stage {stage!r} must be {kind}, not {value!r}")
        out[key] = value
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in out
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise VidrestoreError(f"stage {stage!r} needs {', '.join(f'{k}=...' for k in missing)} "
                              f"(e.g. -s {stage}:{missing[0]}=VALUE)")
    return out


def build_stage(name: str, **options: object) -> Stage:
    """Build a registered stage by name with keyword options (what `create_stage` does after parsing)."""
    names = list_stages()
    if name not in _REGISTRY:
        raise VidrestoreError(f"unknown stage {name!r}; available: {', '.join(names) or 'none'}")
    factory = _REGISTRY[name]
    return factory(**_typed(name, factory, options))


def create_stage(spec: str) -> Stage:
    """Build a stage from "name" or "name:key=value,key=value"."""
    name, _, args = spec.partition(":")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise VidrestoreError(f"stage option {item!r} in {spec!r} is not key=value")
        kwargs[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return build_stage(name, **kwargs)
