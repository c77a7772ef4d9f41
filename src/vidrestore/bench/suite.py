"""Benchmark suite files (TOML): which clips, made how, and which methods.

    name = "default"
    description = "..."
    data = "../../../shared/data"   # base of relative `source` paths, relative to this file
                                    # (`vidrestore bench --data DIR` overrides it)
    crop = 8                        # border pixels left out of PSNR/SSIM (default 0)
    lpips = "weights/alex_lpips.pth"  # optional: LPIPS weights (a path or a list of paths)
    lpips_net = "alex"              # optional: "alex" (default) or "vgg"

    [synth]                         # defaults for every synthesized clip
    scale = 0.5                     # synth_handheld arguments: start, frames, scale, noise, crf
    frames = 60
    sharp_share = 0.35              # ... and any ShakeSettings field (seed, exposure, blur_strength, ...)

    [[clips]]                       # a handheld clip synthesized from sharp footage: has ground truth
    name = "dog"
    source = "sharp/sam2_01_dog.mp4"
    synth = { seed = 1 }            # overrides [synth]

    [[clips]]                       # a real clip: no ground truth, no-reference metrics only
    name = "cockatoo"
    source = "real_blur/imageio_cockatoo_handheld.mp4"
    real = { start = 0, frames = 60, scale = 0.5 }

    [[methods]]
    name = "lucky"                  # a registered method (`vidrestore bench --list`)
    options = { radius = 3 }        # optional: passed to the method
    label = "lucky r3"              # optional: column name, to run a method with several options
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import VidrestoreError
from ..synth.shake import ShakeSettings

_SYNTH_ARGS = {"start", "frames", "scale", "noise", "crf"}
_SHAKE_ARGS = {f.name for f in fields(ShakeSettings)}
_REAL_ARGS = {"start", "frames", "scale"}


@dataclass(frozen=True)
class ClipSpec:
    """One clip of a suite: `synth` holds synth_handheld arguments (ground truth) or `real` the part to use."""

    name: str
    source: Path
    synth: dict | None = None
    real: dict | None = None

    @property
    def has_gt(self) -> bool:
        return self.synth is not None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    clips: list[ClipSpec]
    methods: list[MethodSpec]
    crop: int = 0
    lpips: list[Path] = field(default_factory=list)
    lpips_net: str = "alex"


def _check_keys(table: dict, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise VidrestoreError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}", path)


def load_suite(path: str | os.PathLike, data: str | os.PathLike | None = None) -> Suite:
    """Read and check a suite file; `data` overrides its `data` folder (base of relative sources)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise VidrestoreError("no such suite file", p) from None
    except tomllib.TOMLDecodeError as err:
        raise VidrestoreError(f"not a valid TOML suite ({err})", p) from None
    _check_keys(doc, {"name", "description", "data", "crop", "lpips", "lpips_net", "synth", "clips", "methods"}, "suite", p)
    base = Path(data) if data is not None else (p.parent / doc.get("data", ".")).resolve()
    defaults = doc.get("synth", {})
    _check_keys(defaults, _SYNTH_ARGS | _SHAKE_ARGS, "[synth]", p)
    clips = []
    for i, c in enumerate(doc.get("clips", [])):
        where = f"clip {c.get('name', i)!r}"
        _check_keys(c, {"name", "source", "synth", "real"}, where, p)
        if "name" not in c or "source" not in c:
            raise VidrestoreError(f"{where}: needs a name and a source", p)
        if ("synth" in c) == ("real" in c):
            raise VidrestoreError(f"{where}: give exactly one of `synth = {{...}}` (synthesized) or `real = {{...}}`", p)
        source = Path(c["source"]) if Path(c["source"]).is_absolute() else base / c["source"]
        if "synth" in c:
            _check_keys(c["synth"], _SYNTH_ARGS | _SHAKE_ARGS, where, p)
            clips.append(ClipSpec(c["name"], source, synth={**defaults, **c["synth"]}))
        else:
            _check_keys(c["real"], _REAL_ARGS, where, p)
            clips.append(ClipSpec(c["name"], source, real=dict(c["real"])))
    methods = []
    for i, m in enumerate(doc.get("methods", [])):
        _check_keys(m, {"name", "label", "options"}, f"method {m.get('name', i)!r}", p)
        if "name" not in m:
            raise VidrestoreError(f"method {i}: needs a name", p)
        methods.append(MethodSpec(m["name"], m.get("label", m["name"]), dict(m.get("options", {}))))
    if not clips or not methods:
        raise VidrestoreError("a suite needs at least one [[clips]] and one [[methods]] entry", p)
    for kind, names in (("clip", [c.name for c in clips]), ("method label", [m.label for m in methods])):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise VidrestoreError(f"{kind} names must be unique; repeated: {', '.join(sorted(dup))}", p)
    lp = doc.get("lpips", [])
    lpips = [(p.parent / x).resolve() for x in ([lp] if isinstance(lp, str) else lp) if x]
    return Suite(doc.get("name", p.stem), p, doc.get("description", ""), clips, methods, int(doc.get("crop", 0)),
                 lpips, doc.get("lpips_net", "alex"))
