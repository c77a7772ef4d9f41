"""Archival-film damage with ground truth: blotches, line scratches, grain, dye fading, flicker.

`synth_film(source, out_dir)` writes into `out_dir`:

* ``damaged.mkv`` -- the source with film damage applied in the order it happens to a print:
  dye fading (per channel c: offset_c + gain_c * x ** gamma_c, each drifting linearly over the
  clip, so the channels drift apart), exposure flicker (a per-frame gain), grain (the AV1
  film-grain model: an autoregressive template per frame, 32x32 blocks at random offsets, scaled by a
  piecewise-linear function of intensity, added to luma), line scratches (narrow near-vertical
  lines that persist over a span of frames and wander slowly) and blotches (dirt and dust of
  random shapes -- irregular blobs and hairs, dark or light, each in one frame only);
* ``gt.mkv`` -- the undamaged source (both lossless FFV1);
* ``masks/blotch/NNNNNN.png`` and ``masks/scratch/NNNNNN.png`` -- per frame, 255 where the
  blotches or scratches changed the picture (opacity above 0.005), 0 elsewhere;
* ``params.json`` -- the settings, the grain model, and per frame the flicker gain, the fading,
  every blotch and every scratch.

The grain follows the AV1 film-grain synthesis (AV1 bitstream specification, sec. 7.18.3;
Norkin & Birkbeck, "Film grain synthesis for AV1 video codec", DCC 2018): Gaussian noise filtered
by a causal autoregressive filter of lag `ar_coeff_lag` over a 73x82 template, a new one each
frame (as AV1's decoder makes one from each frame's random seed: one template for a whole clip
would carry that template's chance correlations into every frame), copied in 32x32 blocks from
random offsets, and added as ``Y + scaling(Y) * grain`` where ``scaling`` is
piecewise linear through the model's points. Here intensities are on RGB's 0-1 scale and the
template is normalised to unit standard deviation, so ``scaling(Y)`` is the grain's standard
deviation at intensity Y; the same grain is added to R, G and B (luma grain only).

The same source, settings and seed give the same files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from ..errors import VidrestoreError
from ..io import EncodeSettings, write_video
from ..io.colour import luma
from ..io.paths import atomic_write_text, read_versioned_json
from ..util.progress import progress_bar
from .source import output_files, source_clip

PARAMS_VERSION = 1
FILES = {"damaged": "damaged.mkv", "gt": "gt.mkv", "params": "params.json"}
MASK_KINDS = ("blotch", "scratch")
GRAIN_BLOCK = 32
_TEMPLATE = (73, 82)   # AV1's luma grain template, rows x columns
_MASK_ALPHA = 0.005    # a pixel is in a mask where the damage's opacity exceeds this (it changes the pixel by a code value or more)


@dataclass(frozen=True)
class FilmDamage:
    """What `synth_film` does to the source.

    Attributes:
        blotches: mean number of blotches per frame (Poisson); each lies in one frame only.
        blotch_radius: (smallest, largest) blob radius in pixels, drawn log-uniformly.
        scratches: number of line scratches, each present over a random span of frames.
        grain: grain standard deviation at mid-grey (0-1 scale); 0 for none.
        fade: strength of dye fading, 0 (none) to 1 (strong).
        flicker: standard deviation of the per-frame exposure gain; 0 for none.
        seed: random seed of everything above.
    """

    blotches: float = 4.0
    blotch_radius: tuple[float, float] = (1.5, 9.0)
    scratches: int = 1
    grain: float = 0.02
    fade: float = 0.5
    flicker: float = 0.04
    seed: int = 0


@dataclass
class FilmResult:
    """Where the clip went and what it holds."""

    dir: Path
    damaged: Path
    gt: Path
    params: Path
    frames: int
    blotches: int
    seconds: float


# --- grain (AV1 model) -------------------------------------------------------------------------

def grain_model(strength: float, rng: np.random.Generator, lag: int = 2) -> dict:
    """A random AV1-style grain model: AR coefficients of `lag` and a scaling curve of mid-grey
    value `strength` (weaker in the shadows and highlights, as film grain is on a print)."""
    n = 2 * lag * (lag + 1)
    coeffs = rng.uniform(-0.1, 0.25, n)
    coeffs *= 0.6 / max(np.abs(coeffs).sum(), 1e-9)      # a stable filter: coefficients sum to at most 0.6 in magnitude
    xs = [0.0, 0.25, 0.5, 0.75, 1.0]
    ys = [strength * f for f in (0.5, 0.85, 1.0, 0.85, 0.5)]
    return {"ar_coeff_lag": lag, "ar_coeffs_y": np.round(coeffs, 4).tolist(),
            "scaling_points_y": [[x, round(y, 6)] for x, y in zip(xs, ys)], "block": GRAIN_BLOCK}


def grain_template(model: dict, rng: np.random.Generator) -> np.ndarray:
    """The 73x82 luma grain template: white Gaussian noise through the model's causal AR filter
    (neighbours up to `lag` rows above and `lag` columns either side, then left in the same row,
    in AV1's coefficient order), normalised to unit standard deviation."""
    return grain_templates(model, [rng])[0]


def grain_templates(model: dict, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """`grain_template` for each generator, computed together (N x rows x columns): fitting a
    model synthesizes hundreds of them."""
    lag = int(model["ar_coeff_lag"])
    coeffs = np.asarray(model["ar_coeffs_y"], np.float64)
    offsets = [(dy, dx) for dy in range(-lag, 1) for dx in range(-lag, lag + 1) if dy < 0 or dx < 0]
    if len(offsets) != len(coeffs):
        raise VidrestoreError(f"grain model of lag {lag} needs {len(offsets)} AR coefficients, not {len(coeffs)}")
    rows, cols = _TEMPLATE
    g = np.stack([rng.normal(0.0, 1.0, (rows, cols)) for rng in rngs])
    above = [(c, dy, dx) for c, (dy, dx) in zip(coeffs, offsets) if dy < 0]
    left = np.array([c for c, (dy, _) in zip(coeffs, offsets) if dy == 0][::-1])   # taps at x-1, x-2, ...
    recursion = np.concatenate([[1.0], -left])      # lfilter's denominator: g[x] = u[x] + sum left[k] g[x-1-k]
    for y in range(lag, rows) if lag else ():   # the rows above are done: their part at once, then the row's recursion
        u = g[:, y, lag:cols - lag] + sum(c * g[:, y + dy, lag + dx:cols - lag + dx] for c, dy, dx in above)
        past = g[:, y, lag - 1::-1]                 # the row's first `lag` values, nearest first: lfilter's state
        state = np.stack([(left[k:] * past[:, :lag - k]).sum(-1) for k in range(lag)], -1)
        g[:, y, lag:cols - lag] = lfilter([1.0], recursion, u, axis=-1, zi=state)[0]
    core = g[:, lag:, lag:cols - lag]
    mean, sd = core.mean(axis=(1, 2), keepdims=True), core.std(axis=(1, 2), keepdims=True)
    return ((core - mean) / sd).astype(np.float32)


def grain_field(template: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A frame of grain: 32x32 blocks copied from random offsets of the template (as AV1 does)."""
    b = GRAIN_BLOCK
    out = np.empty((-(-height // b) * b, -(-width // b) * b), np.float32)
    th, tw = template.shape
    for y in range(0, out.shape[0], b):
        for x in range(0, out.shape[1], b):
            oy, ox = rng.integers(0, th - b + 1), rng.integers(0, tw - b + 1)
            out[y:y + b, x:x + b] = template[oy:oy + b, ox:ox + b]
    return out[:height, :width]


def grain_scaling(model: dict, intensity: np.ndarray) -> np.ndarray:
    """The grain's standard deviation at each intensity: the model's piecewise-linear scaling function."""
    pts = np.asarray(model["scaling_points_y"], np.float64)
    return np.interp(intensity, pts[:, 0], pts[:, 1]).astype(np.float32)


def add_grain(rgb: np.ndarray, model: dict, field: np.ndarray) -> np.ndarray:
    """Add a grain field to a frame, scaled by the model's function of the frame's luma."""
    return np.clip(rgb + (grain_scaling(model, luma(rgb)) * field)[..., None], 0.0, 1.0)


# --- fading and flicker ------------------------------------------------------------------------

def fade_params(fade: float, frames: int, rng: np.random.Generator) -> list[dict]:
    """Per-frame dye fading: each channel's gain, gamma and offset drift linearly from a start to an
    end value; cyan dye fades fastest, so red gains least loss (the typical magenta-red cast)."""
    def ends(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> np.ndarray:
        return np.array([rng.uniform(a, b) for a, b in zip(lo, hi)])

    gain = [1 - fade * ends((0.0, 0.2, 0.3), (0.1, 0.35, 0.45)) for _ in range(2)]
    gamma = [np.exp(fade * ends((-0.2, 0.0, 0.05), (-0.05, 0.2, 0.3))) for _ in range(2)]
    offset = [fade * ends((0.04, 0.02, 0.0), (0.1, 0.06, 0.04)) for _ in range(2)]
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        mix = lambda pair: (1 - t) * pair[0] + t * pair[1]  # noqa: E731
        out.append({k: np.round(mix(v), 5).tolist() for k, v in (("gain", gain), ("gamma", gamma), ("offset", offset))})
    return out


def apply_fade(rgb: np.ndarray, p: dict) -> np.ndarray:
    """offset_c + gain_c * x ** gamma_c per channel (the identity for gain 1, gamma 1, offset 0)."""
    g, e, o = (np.asarray(p[k], np.float32) for k in ("gain", "gamma", "offset"))
    return np.clip(o + g * np.clip(rgb, 0.0, 1.0) ** e, 0.0, 1.0)


# --- blotches and scratches --------------------------------------------------------------------

def _blob(radius: float, rng: np.random.Generator) -> np.ndarray:
    """A binary irregular blob about `radius` pixels across each way: a disc's falloff plus smoothed noise."""
    half = int(np.ceil(2 * radius)) + 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    noise = gaussian_filter(rng.normal(0.0, 1.0, yy.shape), max(radius / 2.5, 0.6))
    noise /= max(noise.std(), 1e-9)
    return (1.0 - np.hypot(yy, xx) / radius + 0.35 * noise) > 0


def _hair(length: float, rng: np.random.Generator) -> np.ndarray:
    """A binary thin curved stroke of about `length` pixels (a random walk of gently turning steps)."""
    steps = 8
    angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.35, steps))
    pts = np.cumsum(np.stack([np.cos(angle), np.sin(angle)], -1) * length / steps, axis=0)
    pts -= pts.min(axis=0) - 2
    size = np.ceil(pts.max(axis=0)).astype(int) + 3
    img = np.zeros((size[1], size[0]), np.uint8)
    cv2.polylines(img, [np.round(pts * 4).astype(np.int32)], False, 1, thickness=int(rng.integers(1, 3)), shift=2)
    return img > 0


def plan_blotches(frames: int, height: int, width: int, damage: FilmDamage, rng: np.random.Generator) -> list[list[dict]]:
    """Per frame, its blotches: shape ("blob" 80 %, "hair" 20 %), size, top-left corner, value and opacity."""
    lo, hi = damage.blotch_radius
    out = []
    for _ in range(frames):
        items = []
        for _ in range(rng.poisson(damage.blotches)):
            hair = rng.random() < 0.2
            size = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            dark = rng.random() < 0.5          # dirt on the print is dark, dust on the negative prints light
            items.append({"shape": "hair" if hair else "blob", "size": round(3 * size if hair else size, 3),
                          "x": float(rng.uniform(0, 1)), "y": float(rng.uniform(0, 1)),
                          "value": round(float(rng.uniform(0.0, 0.15) if dark else rng.uniform(0.85, 1.0)), 4),
                          "opacity": round(float(rng.uniform(0.75, 1.0)), 4), "seed": int(rng.integers(1 << 31))})
        out.append(items)
    return out


def blotch_layer(items: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, value) maps of one frame's blotches: soft-edged shapes (a 0.6 px Gaussian edge),
    the value with a little texture of its own."""
    alpha = np.zeros((height, width), np.float32)
    value = np.zeros((height, width), np.float32)
    for b in items:
        rng = np.random.default_rng(b["seed"])
        shape = (_hair if b["shape"] == "hair" else _blob)(b["size"], rng)
        soft = cv2.GaussianBlur(np.pad(shape, 2).astype(np.float32), (0, 0), 0.6) * b["opacity"]
        sh, sw = soft.shape
        y0, x0 = int(b["y"] * (height - sh)), int(b["x"] * (width - sw))
        if y0 < 0 or x0 < 0:
            continue
        region = (slice(y0, y0 + sh), slice(x0, x0 + sw))
        tex = b["value"] + rng.normal(0.0, 0.02, soft.shape).astype(np.float32)
        a0 = alpha[region]
        value[region] = np.where(soft > a0, tex, value[region])
        alpha[region] = np.maximum(a0, soft)
    return alpha, np.clip(value, 0.0, 1.0)


def plan_scratches(frames: int, width: int, damage: FilmDamage, rng: np.random.Generator) -> list[dict]:
    """Line scratches: each present over frames first..last, at x(t, y) = x0 + drift * (t - first) +
    slope * y plus a slow wobble, with a Gaussian profile of `width` px (FWHM), light or dark."""
    out = []
    for _ in range(damage.scratches):
        first = int(rng.integers(0, max(1, frames // 2)))
        last = int(rng.integers(min(frames - 1, first + max(1, frames // 3)), frames))
        out.append({"first": first, "last": last, "x0": round(float(rng.uniform(0.1, 0.9) * width), 2),
                    "drift": round(float(rng.normal(0, 0.3)), 3), "slope": round(float(rng.normal(0, 0.01)), 4),
                    "width": round(float(rng.uniform(1.0, 2.5)), 2), "value": 0.95 if rng.random() < 0.6 else 0.05,
                    "opacity": round(float(rng.uniform(0.35, 0.7)), 3), "wobble": round(float(rng.uniform(0.2, 1.0)), 3),
                    "phase": round(float(rng.uniform(0, 2 * np.pi)), 3)})
    return out


def scratch_layer(scratches: list[dict], index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, value) maps of the scratches present in frame `index`."""
    alpha = np.zeros((height, width), np.float32)
    value = np.zeros((height, width), np.float32)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    for s in scratches:
        if not s["first"] <= index <= s["last"]:
            continue
        t = index - s["first"]
        centre = s["x0"] + s["drift"] * t + s["slope"] * ys + s["wobble"] * np.sin(0.3 * t + s["phase"])
        sigma = s["width"] / 2.355
        a = s["opacity"] * np.exp(-0.5 * ((xs - centre) / sigma) ** 2)
        value = np.where(a > alpha, s["value"], value)
        alpha = np.maximum(alpha, a)
    return alpha, value


# --- the clip ----------------------------------------------------------------------------------

def load_params(path: str | os.PathLike) -> dict:
    """Read params.json (or the params.json inside a `synth film` output folder)."""
    return read_versioned_json(path, FILES["params"], PARAMS_VERSION, "`vidrestore synth film`")


def read_mask(folder: str | os.PathLike, kind: str, index: int) -> np.ndarray:
    """One frame's ground-truth mask (bool) of `kind` ("blotch" or "scratch") from a synth film folder."""
    p = Path(folder) / "masks" / kind / f"{index:06d}.png"
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise VidrestoreError("missing or unreadable mask", p)
    return img > 127


def synth_film(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    damage: FilmDamage = FilmDamage(),
    *,
    start: int = 0,
    frames: int | None = None,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> FilmResult:
    """Make an archival-film clip (damaged.mkv, gt.mkv, masks/, params.json) from a clean video.

    Args:
        source: a clean video (or image folder).
        out_dir: output folder (created; its files are replaced only with `overwrite`).
        damage: what to apply, and the seed.
        start, frames: use source frames start..start+frames-1 (default: all from `start`).
        scale: resize the source first (sizes are made even).
        overwrite: replace existing output files.
        progress: show a progress bar.
    """
    t0 = time.perf_counter()
    lo, hi = damage.blotch_radius
    if damage.blotches < 0 or damage.scratches < 0 or damage.grain < 0 or not 0 <= damage.fade <= 1 or damage.flicker < 0:
        raise VidrestoreError("film damage needs blotches, scratches, grain, flicker >= 0 and fade in [0, 1] "
                              f"(got {damage.blotches}, {damage.scratches}, {damage.grain}, {damage.flicker}, {damage.fade})")
    if not 0.5 <= lo <= hi:
        raise VidrestoreError(f"blotch radius range must satisfy 0.5 <= smallest <= largest, not {damage.blotch_radius}")
    clip = source_clip(source, start, frames, scale)
    paths = output_files(clip, out_dir, FILES, overwrite)
    mask_dirs = {k: Path(out_dir) / "masks" / k for k in MASK_KINDS}
    for d in mask_dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    n, h, w = clip.count, clip.height, clip.width
    rng = np.random.default_rng([damage.seed, 0xF11A])
    gains = np.clip(1 + damage.flicker * rng.normal(0, 1, n), 0.5, 1.5)
    fades = fade_params(damage.fade, n, rng)
    model = grain_model(damage.grain, rng)
    blotches = plan_blotches(n, h, w, damage, rng)
    scratches = plan_scratches(n, w, damage, rng)

    def damaged() -> Iterator[np.ndarray]:
        bar = progress_bar(n, "synth film", progress)
        try:
            for i, rgb in enumerate(clip.frames()):
                x = apply_fade(rgb, fades[i]) * np.float32(gains[i])
                x = np.clip(x, 0.0, 1.0)
                if damage.grain > 0:
                    # streams of their own: `film --grain resynth` (`film_grain.GrainSynth`) with the same seed
                    # must not make the same noise again
                    template = grain_template(model, np.random.default_rng([damage.seed, 0x5F1A, i]))
                    field = grain_field(template, h, w, np.random.default_rng([damage.seed, 0x5F1B, i]))
                    x = add_grain(x, model, field)
                for kind, (alpha, value) in (("scratch", scratch_layer(scratches, i, h, w)), ("blotch", blotch_layer(blotches[i], h, w))):
                    x = x * (1 - alpha[..., None]) + (alpha * value)[..., None]
                    cv2.imwrite(str(mask_dirs[kind] / f"{i:06d}.png"), np.where(alpha > _MASK_ALPHA, 255, 0).astype(np.uint8))
                yield np.clip(x, 0.0, 1.0).astype(np.float32)
                bar.update(1)
        finally:
            bar.close()

    write_video(paths["gt"], clip.frames(), clip.fps, EncodeSettings("ffv1"), overwrite=overwrite)
    write_video(paths["damaged"], damaged(), clip.fps, EncodeSettings("ffv1"), overwrite=overwrite)
    params = {
        "version": PARAMS_VERSION, "source": str(clip.path.absolute()), "start": clip.start, "frame_count": n,
        "scale": clip.scale, "width": w, "height": h, "fps": float(clip.fps),
        "settings": asdict(damage), "grain": model if damage.grain > 0 else None, "scratches": scratches,
        "files": {"damaged": FILES["damaged"], "gt": FILES["gt"], "masks": "masks/{blotch,scratch}/NNNNNN.png"},
        "frames": [{"index": i, "flicker_gain": round(float(gains[i]), 5), "fade": fades[i], "blotches": blotches[i]}
                   for i in range(n)],
    }
    atomic_write_text(paths["params"], json.dumps(params, indent=1))
    return FilmResult(Path(out_dir), paths["damaged"], paths["gt"], paths["params"], n,
                      sum(len(b) for b in blotches), time.perf_counter() - t0)
