"""Full-resolution inference in overlapping tiles, blended, equal to untiled inference.

A frame is padded (reflected) to a multiple of the network's downsampling factor and cut into
tiles of `tile` pixels that overlap by at least 2 * `margin`; each tile's output is weighted by
a ramp that is 0 within `margin` of an inner edge, rises linearly to 1 over the next `margin`,
and the weighted outputs are normalised by the summed weights. For a network whose receptive
field reaches at most `margin` pixels (the default U-Net reaches 43), every output pixel that
gets weight was computed from the same input as in an untiled run, so the blend equals the
untiled result up to float rounding; with a smaller margin the ramps hide the seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

DEFAULT_TILE = 768  # 512 costs time at 1080p and above for little memory saved (README, "Tiles since")
DEFAULT_MARGIN = 48


def _spans(size: int, tile: int, overlap: int, multiple: int) -> tuple[list[int], int]:
    """Starts and length of the fewest equal tiles, at most `tile` long, that cover `size` overlapping by
    at least `overlap` (`size`, `tile` multiples of `multiple`). Equal tiles just long enough: tiles of
    the full `tile`, the last moved back to the end, recompute much of a frame whose size is not a
    multiple of the step."""
    if size <= tile:
        return [0], size
    step = tile - overlap - multiple  # starts are rounded down to the multiple below
    n = -(-(size - overlap - multiple) // step)
    length = min(tile, -(-(size + (n - 1) * (overlap + multiple)) // (n * multiple)) * multiple)
    starts = [k * (size - length) // (n - 1) // multiple * multiple for k in range(n)]
    starts[-1] = size - length
    return starts, length


def _ramp(n: int, lo_edge: bool, hi_edge: bool, margin: int, device, dtype) -> torch.Tensor:
    """Weights along one side of a tile: 0 within `margin` of an inner edge, rising linearly to 1 over the next `margin`."""
    d = torch.arange(n, device=device, dtype=dtype) + 0.5
    r = torch.ones(n, device=device, dtype=dtype)
    if margin > 0:
        if not lo_edge:
            r = torch.minimum(r, ((d - margin) / margin).clamp(0, 1))
        if not hi_edge:
            r = torch.minimum(r, ((n - d - margin) / margin).clamp(0, 1))
    return r


def run_tiled(forward: Callable[..., torch.Tensor], inputs: list[torch.Tensor | None], multiple: int = 8,
              tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN) -> torch.Tensor:
    """Apply `forward(*inputs)` tile by tile over the last two dimensions and blend.

    Args:
        forward: maps the inputs (each (..., H, W)) of one tile to an output (..., h, w) of the
            tile's size (e.g. a model taking frames and flows).
        inputs: tensors sharing their last two dimensions (None entries are passed through).
        multiple: height and width of what `forward` sees must be multiples of this.
        tile: tile side (raised to at least 4 * margin + multiple, rounded up to `multiple`; 0: no tiling).
        margin: half the overlap between neighbouring tiles.
    """
    ref = next(x for x in inputs if x is not None)
    h, w = ref.shape[-2:]
    ph, pw = -h % multiple, -w % multiple

    def pad(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or (ph == 0 and pw == 0):
            return x
        flat = x.reshape(-1, *x.shape[-3:]) if x.dim() > 3 else x[None]
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        out = F.pad(flat, (0, pw, 0, ph), mode=mode)
        return out.reshape(*x.shape[:-2], h + ph, w + pw)

    # Contiguous inputs: a compiled network given strided views (a permuted HWC array, a tile
    # cut from a frame) ran 2.5x slower than eager on the CPU; eager runs the same either way.
    padded = [None if x is None else pad(x).contiguous() for x in inputs]
    H, W = h + ph, w + pw
    t = -(-max(tile, 4 * margin + multiple) // multiple) * multiple if tile else max(H, W)
    if H <= t and W <= t:
        return forward(*padded)[..., :h, :w]
    overlap = 2 * margin
    (ys, th), (xs, tw) = _spans(H, t, overlap, multiple), _spans(W, t, overlap, multiple)
    out = None
    weight = torch.zeros(H, W, device=ref.device, dtype=ref.dtype)
    for y0 in ys:
        for x0 in xs:
            y1, x1 = y0 + th, x0 + tw
            crop = [None if x is None else x[..., y0:y1, x0:x1].contiguous() for x in padded]
            res = forward(*crop)
            if out is None:
                out = torch.zeros(*res.shape[:-2], H, W, device=ref.device, dtype=res.dtype)
            wy = _ramp(y1 - y0, y0 == 0, y1 == H, margin, ref.device, ref.dtype)
            wx = _ramp(x1 - x0, x0 == 0, x1 == W, margin, ref.device, ref.dtype)
            wt = wy[:, None] * wx[None, :]
            out[..., y0:y1, x0:x1] += res * wt
            weight[y0:y1, x0:x1] += wt
    return (out / weight)[..., :h, :w]
