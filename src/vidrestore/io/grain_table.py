"""AV1 film grain as codec parameters: a measured grain model written as libaom's film-grain table,
and an AV1 encode that carries it (the decoder synthesizes the grain; the pixels hold none).

The table is the text file `aomenc --film-grain-table` reads (libaom aom_dsp/grain_table.c): a
"filmgrn1" line, then per time range an "E start end apply seed update" line (times in libaom's
10 MHz ticks) and, when updating, the parameters of AV1's film-grain syntax (spec. sec. 5.9.30):
"p" (AR lag, AR shift, grain scale shift, scaling shift, chroma from luma, overlap, and Cb/Cr
multipliers), "sY"/"sCb"/"sCr" (scaling points: count, then x y pairs on 8-bit codes), "cY" (the
2 * lag * (lag + 1) luma AR coefficients) and "cCb"/"cCr" (one more each).

The model (`restoration.film_grain`, `synth.film`) gives the grain's standard deviation on RGB's
0-1 scale per luma, the same grain on R, G and B: that is grain on Y' alone (Cb and Cr are
differences of R, G, B that an equal change leaves as they are), so the table has no chroma points.
On decoding, AV1 adds `scaling(Y) * g / 2 ** scaling_shift` to each luma code, where g is its grain
template: Gaussian values of deviation 2048 / 64 = 32 (8-bit; AV1's 12-bit Gaussian table of
deviation about 512, shifted right by 4) through the AR filter, whose gain `ar_gain` gives. So
scaling(Y) = deviation (0-1) * code range (219 limited, 255 full) * 2 ** shift / (32 * gain).

Encoding: PyAV's only AV1 encoder here (SVT-AV1) takes no film-grain table (its library parses no
such key; only its command-line application reads one), so the table-carrying encode runs the
`ffmpeg` program with libaom-av1 (`-aom-params film-grain-table=PATH`), from a lossless
intermediate the restoration wrote.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import VidrestoreError

WHITE_SD = 32.0        # deviation of AV1's grain Gaussians at 8 bits (about 512 at 12 bits, shifted right by 4)
_END = 2**63 - 1       # the one time range covers the whole video
_SEED = 7391           # the grain's random seed in the table (libaom varies it per frame from there)
DEFAULT_CPU_USED = 6   # libaom's fastest "good quality" speed


def ar_gain(coeffs: list[float], lag: int, size: int = 160, seed: int = 0) -> float:
    """Deviation of AV1's causal AR filter's output over its white input's (simulated on a size x size field)."""
    offsets = [(dy, dx) for dy in range(-lag, 1) for dx in range(-lag, lag + 1) if dy < 0 or dx < 0]
    c = np.asarray(coeffs, np.float64)
    g = np.random.default_rng(seed).normal(0.0, 1.0, (size, size))
    white = g.copy()
    for y in range(lag, size):
        for x in range(lag, size - lag):
            g[y, x] += sum(k * g[y + dy, x + dx] for k, (dy, dx) in zip(c, offsets))
    core = slice(size // 4, size), slice(size // 4, size - lag)      # away from the unfiltered border
    return float(g[core].std() / white[core].std())


def _shift_for(values: np.ndarray, shifts: range, limit: float) -> int:
    """The largest of `shifts` at which every |value| * 2 ** shift stays within `limit` (the smallest if none)."""
    fits = [s for s in shifts if np.abs(values).max(initial=0.0) * 2**s <= limit]
    return max(fits) if fits else min(shifts)


def grain_table(model: dict, full_range: bool) -> str:
    """The model as a libaom film-grain table (one entry, the whole video) for luma codes of
    limited (16-235) or full (0-255) range."""
    lag = int(model["ar_coeff_lag"])
    coeffs = np.asarray(model["ar_coeffs_y"], np.float64)
    if not 0 <= lag <= 3 or len(coeffs) != 2 * lag * (lag + 1):
        raise VidrestoreError(f"AV1 film grain takes AR lag 0-3 with 2 * lag * (lag + 1) coefficients, not lag {lag} "
                              f"with {len(coeffs)}")
    pts = np.asarray(model["scaling_points_y"], np.float64)
    low, span = (0.0, 255.0) if full_range else (16.0, 219.0)
    sd_codes = pts[:, 1] * span / (WHITE_SD * ar_gain(coeffs.tolist(), lag))   # scaling values at shift 0
    scaling_shift = _shift_for(sd_codes, range(8, 12), 255.0)
    ar_shift = _shift_for(coeffs, range(6, 10), 127.0)
    xs, ys, last = [], [], -1
    for x, v in zip(np.round(low + pts[:, 0] * span), np.clip(np.round(sd_codes * 2**scaling_shift), 0, 255)):
        if x > last:                         # AV1's points rise strictly in x
            xs.append(int(x))
            ys.append(int(v))
            last = x
    if len(xs) > 14:
        raise VidrestoreError(f"AV1 film grain takes at most 14 luma scaling points, not {len(xs)}")
    q = np.clip(np.round(coeffs * 2**ar_shift), -128, 127).astype(int)
    return "\n".join([
        "filmgrn1",
        f"E 0 {_END} 1 {_SEED} 1",
        f"\tp {lag} {ar_shift} 0 {scaling_shift} 0 0 0 0 0 0 0 0",
        f"\tsY {len(xs)} " + "".join(f" {x} {y}" for x, y in zip(xs, ys)),
        "\tsCb 0",
        "\tsCr 0",
        "\tcY" + "".join(f" {c}" for c in q),
        "\tcCb" + " 0" * (len(q) + 1),
        "\tcCr" + " 0" * (len(q) + 1),
        "",
    ])


def check_encoder() -> str:
    """The `ffmpeg` program that can encode AV1 with a film-grain table (libaom-av1); raises
    VidrestoreError saying what is missing."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise VidrestoreError("--grain-table needs the ffmpeg program with libaom-av1 on PATH (PyAV's AV1 encoder, "
                              "SVT-AV1, takes no film-grain table): ffmpeg was not found")
    help_text = subprocess.run([exe, "-hide_banner", "-h", "encoder=libaom-av1"], capture_output=True, text=True, check=False).stdout
    if "aom-params" not in help_text:
        raise VidrestoreError(f"--grain-table needs ffmpeg with libaom-av1 (for -aom-params film-grain-table): {exe} has no such encoder")
    return exe


def encode_with_table(src: Path, out: Path, table: Path, crf: int, cpu_used: int, pix_fmt: str) -> None:
    """Encode `src`'s video as AV1 (libaom, constant quality `crf`, speed `cpu_used`) carrying the
    film-grain `table`, its other streams copied, into `out`."""
    exe = check_encoder()
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy",
           "-c:v", "libaom-av1", "-crf", str(crf), "-b:v", "0", "-cpu-used", str(cpu_used), "-row-mt", "1",
           "-pix_fmt", pix_fmt, "-aom-params", f"film-grain-table={table}", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise VidrestoreError(f"ffmpeg (libaom-av1 with the film-grain table) failed: {done.stderr.strip()[-500:]}", out)
