"""Dust, dirt and blotches on film: found as temporal spikes, filled from the aligned neighbours.

Dirt and dust sit on one frame of the film only, so a blotch is a pixel that differs from both
motion-compensated neighbours, and in the same direction (darker than both, or lighter than
both): Kokaram's spike detection index SDIa,

    s(p) = max(0, Y(p) - max(P(p), N(p)), min(P(p), N(p)) - Y(p))

with Y the frame's luma and P, N the previous and next frames' luma backward-warped onto it
(DIS flow, bicubic). Where a neighbour is occluded on one side only, that side agrees with the
frame and s is 0: the two-sided test is what makes SDIa robust to occlusion. The first and last
frames have neighbours on one side only; they are tested against the two nearest there, which
catches their dirt but not occlusion: fast motion in them can be taken for dirt. Before the test each neighbour's local
brightness is matched to the frame's (film flicker is local; `tone_offset`).

Confirmation, per connected region of s above the low threshold:

* over a region (hysteresis): the region needs a pixel whose rank-ordered difference (ROD: the
  same test against every pixel of the 3x3 neighbourhoods in P and N, so that sub-pixel
  misalignment at an edge is no spike) exceeds the high threshold. Both thresholds are in units
  of the frame's noise (grain), the robust spread (1.4826 MAD) of Y - (P + N) / 2;
* the flow is mended over the candidates: a blotch drags the flow estimated over it towards
  whatever it resembles, so inside every candidate (grown by 6 px) the flow is replaced by the
  flow around it (`mend_flow`), the neighbours are warped again and the tests rerun (the noise
  is measured once, before);
* a blotch is opaque: the median spike over the region must reach 8 noise sigmas (`_BODY`).
  Grain and texture that happen to line up with neither neighbour peak above the high threshold
  but their body stays near the low one: on the old films of `benchmarks/film.py` the false
  regions' median spike was 5-7 sigmas, the synthesized blotches' (change over 0.05) 8 or more
  (95 % of them 11 or more on *rtn_oldfilm_001*), and *rtn_oldfilm_001*'s false regions fell from
  28 to 14;
* against fast motion and occlusion (flow consistency): the two motion-compensated neighbours
  must agree with each other around the region and inside it (a blotch is in neither, so both
  show the scene; where the motion was not followed they disagree), and the region must differ
  from both by about as much (the symmetry of Kokaram's original SDI: mean of the smaller
  difference at least 0.75 of the larger) -- motion the flow missed differs from the two sides
  by different amounts. At the first and last frames, whose two neighbours lie on one side, the
  two tests are stricter (0.85 and 0.5). Measured on the old films and sam2 clips of
  `benchmarks/film.py` (24 frames): 0.85 / 0.5 everywhere gave a mean blotch F1 of 0.901 on the
  films with 0.04-0.09 % of the moving pixels falsely detected; 0.75 / 0.6 (one-sided ends
  0.85 / 0.5) gives 0.952 with 0.06-0.69 %, but more false regions on the moving sam2 clips
  (F1 0.72-0.94 there, from 0.83-0.95); 0.6 / 0.75 gave 0.971 with 1.1-4.7 % (the issue's bar is 1 %).

Repair: the confirmed regions, grown by `grow` pixels (blotch edges are soft), are replaced by
the median of the motion-compensated neighbours and the spatial inpainting of the frame
(`cv2.inpaint`, Telea, on 8-bit colour: on float images it overshoots far outside the
frame's range): with both neighbours a median of three, so a neighbour the flow got
wrong is outvoted; with one, that neighbour; where none is inside the frame, the inpainting.

References:
    Kokaram, Morris, Fitzgerald, Rayner, "Detection of missing data in image sequences",
    IEEE TIP 1995 (SDIa).
    Kokaram, "Motion Picture Restoration", Springer 1998 (SDI, motion estimation over missing data).
    Knutsson, Westin, "Normalized and differential convolution", CVPR 1993.
    Nadenau, Mitra, "Blotch and scratch detection in image sequences based on rank ordered
    differences", Time-Varying Image Processing and Moving Object Recognition 4, 1997 (ROD).
    Telea, "An image inpainting technique based on the fast marching method", JGT 2004.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ..errors import VidrestoreError
from ..flow import create_flow
from ..io.colour import luma
from ..pipeline import Stage, Window, register_stage

_TONE_BLOCK = 16      # block size (pixels) of the neighbours' brightness matching
_RING_PX = 3          # width of the ring around a candidate on which its surroundings are checked
_MEND_PX = 6          # candidates are grown by this many pixels before the flow over them is mended
_MEND_SIGMA = 6.0     # Gaussian sigma (pixels) of the normalised average that mends the flow
_SYMMETRY = 0.75      # a blotch differs from both neighbours by about as much: mean(min) / mean(max) at least this
_AGREE_SHARE = 0.6    # inside a blotch the neighbours must agree within this share of the spike
_ONE_SIDED = (0.85, 0.5)   # the same two, stricter, where both neighbours lie on one side (occlusion is not caught there)
_BODY = 8.0           # a blotch is opaque: its median spike reaches this many noise sigmas (lined-up grain only peaks)
_MIN_SIGMA = 0.008    # noise floor of the thresholds (0-1 scale): clean digital frames still have quantisation


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)


def sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """`image` sampled (edges repeated) at the points (xs, ys), 1-D float32 arrays: what a
    full-frame `cv2.remap` gives at those points, for a few points of a frame at a time."""
    n, k = xs.size, 256           # remap's maps are 2-D and under 32767 on a side: (n / k, k)
    m = max(-(-n // k), 1)
    mx, my = np.zeros(m * k, np.float32), np.zeros(m * k, np.float32)
    mx[:n], my[:n] = xs, ys
    out = cv2.remap(image, mx.reshape(m, k), my.reshape(m, k), interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(m * k, *image.shape[2:])[:n]


class SharedFlows:
    """The flows the `dust` stage computed (and mended over the blotches) from each frame to its
    two neighbours, kept for the `scratches` stage after it, which needs the same pairs: the film
    chain computes them once. Like the stages' own caches it holds one video's frames by index."""

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._flows: dict[tuple[int, int], np.ndarray] = {}

    def put(self, a: int, b: int, flow: np.ndarray) -> None:
        """Keep the flow from frame a to frame b (and forget those from frames `keep` or more before a)."""
        self._flows[a, b] = flow
        for key in [k for k in self._flows if k[0] <= a - self.keep]:
            del self._flows[key]

    def get(self, a: int, b: int) -> np.ndarray | None:
        """The flow from frame a to frame b, if kept."""
        return self._flows.get((a, b))


@dataclass
class Neighbour:
    """A neighbouring frame aligned onto the frame being repaired: its luma warped by the flow
    (bicubic) with its local brightness matched to the frame's (`tone_offset`); its colour is
    sampled only where a repair needs it (`rgb_at`)."""

    source: np.ndarray    # (H, W, 3) the neighbouring frame, not warped
    source_y: np.ndarray  # its luma
    xs: np.ndarray        # (H, W) float32: the column of the neighbour each pixel is taken from
    ys: np.ndarray        # and the row
    raw: np.ndarray       # the neighbour's luma sampled there
    offset: np.ndarray    # (H, W) local brightness difference of the frame from `raw`
    y: np.ndarray         # raw + offset, clipped to [0, 1]
    inside: np.ndarray    # bool (H, W): warped from inside the frame

    @classmethod
    def warp(cls, source: np.ndarray, source_y: np.ndarray, flow: np.ndarray, y: np.ndarray) -> Neighbour:
        """The neighbour `source` (luma `source_y`) warped by `flow` onto the frame of luma `y`."""
        h, w = y.shape
        xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
        ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
        raw = cv2.remap(source_y, xs, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        return cls._matched(source, source_y, xs, ys, raw, y)

    @classmethod
    def _matched(cls, source: np.ndarray, source_y: np.ndarray, xs: np.ndarray, ys: np.ndarray, raw: np.ndarray,
                 y: np.ndarray) -> Neighbour:
        """The neighbour sampled at (xs, ys) as `raw`, its brightness matched to the frame's."""
        h, w = y.shape
        inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
        offset = tone_offset(y, raw)
        return cls(source, source_y, xs, ys, raw, offset, np.clip(raw + offset, 0.0, 1.0), inside)

    def mended(self, flow: np.ndarray, where: np.ndarray, y: np.ndarray) -> Neighbour:
        """This neighbour with the flow replaced by `flow` where `where` is set (the flow is
        unchanged elsewhere, so only those pixels are sampled again)."""
        rows, cols = np.nonzero(where)
        xs, ys, raw = self.xs.copy(), self.ys.copy(), self.raw.copy()
        xs[rows, cols] = cols + flow[rows, cols, 0]
        ys[rows, cols] = rows + flow[rows, cols, 1]
        raw[rows, cols] = sample(self.source_y, xs[rows, cols], ys[rows, cols])
        return self._matched(self.source, self.source_y, xs, ys, raw, y)

    def rgb_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(N, 3) the warped neighbour's colour at the pixels (rows, cols), brightness matched."""
        rgb = sample(self.source, self.xs[rows, cols], self.ys[rows, cols])
        return np.clip(rgb + self.offset[rows, cols, None], 0.0, 1.0)


def spike_index(y: np.ndarray, p: np.ndarray, n: np.ndarray, reach: int = 1) -> np.ndarray:
    """How far each pixel lies beyond both aligned neighbours in the same direction (0 if not):
    SDIa for `reach` 0, and with `reach` r beyond every pixel of their (2r+1)^2 neighbourhoods (ROD)."""
    if reach:
        k = np.ones((2 * reach + 1,) * 2, np.uint8)
        hi, lo = np.maximum(cv2.dilate(p, k), cv2.dilate(n, k)), np.minimum(cv2.erode(p, k), cv2.erode(n, k))
    else:
        hi, lo = np.maximum(p, n), np.minimum(p, n)
    return np.maximum(np.maximum(y - hi, lo - y), 0.0)


def noise_sigma(y: np.ndarray, p: np.ndarray, n: np.ndarray) -> float:
    """Robust spread (1.4826 MAD) of the frame against the mean of its aligned neighbours, on every
    other row and column (a quarter of the pixels is plenty for a median)."""
    r = (y - 0.5 * (p + n))[::2, ::2]
    return max(float(1.4826 * np.median(np.abs(r - np.median(r)))), _MIN_SIGMA)


def detect_blotches(y: np.ndarray, prev: Neighbour, nxt: Neighbour, low: float = 4.0, high: float = 8.0,
                    min_area: int = 2, confirm: bool = False,
                    tests: tuple[float, float] = (_SYMMETRY, _AGREE_SHARE), sigma: float | None = None) -> np.ndarray:
    """Bool mask of blotch pixels in a frame of luma `y` (the module docstring gives the tests).

    Args:
        y: the frame's luma.
        prev, nxt: the two neighbours warped onto it.
        low, high: hysteresis thresholds in units of the frame's noise sigma.
        min_area: smallest region kept, in pixels.
        confirm: apply the region tests (False: every candidate region, to mend the flow over).
        tests: the symmetry and the neighbours' agreement (share of the spike) the region tests ask.
        sigma: the frame's noise (None: measured here, `noise_sigma`).
    """
    s = spike_index(y, prev.y, nxt.y, reach=0)
    strong = spike_index(y, prev.y, nxt.y, reach=1)
    sigma = noise_sigma(y, prev.y, nxt.y) if sigma is None else sigma
    weak = (s > low * sigma).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    if count <= 1:
        return np.zeros(y.shape, bool)
    peak = np.zeros(count, np.float32)
    on = weak > 0
    np.maximum.at(peak, labels[on], strong[on])
    agree = np.abs(prev.y - nxt.y)
    apart = np.maximum(np.abs(y - prev.y), np.abs(y - nxt.y))
    inside = prev.inside & nxt.inside
    keep = np.zeros(count, bool)
    h, w = y.shape
    ring_kernel = np.ones((2 * _RING_PX + 1,) * 2, np.uint8)
    for i in np.flatnonzero(peak > high * sigma):
        if i == 0 or stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        if not confirm:
            keep[i] = True
            continue
        x0, y0, bw, bh = stats[i, :4]
        ya, yb = max(y0 - _RING_PX, 0), min(y0 + bh + _RING_PX, h)
        xa, xb = max(x0 - _RING_PX, 0), min(x0 + bw + _RING_PX, w)
        region = labels[ya:yb, xa:xb] == i
        ring = (cv2.dilate(region.astype(np.uint8), ring_kernel) > 0) & ~region & inside[ya:yb, xa:xb]
        box = agree[ya:yb, xa:xb]
        spike = np.median(s[ya:yb, xa:xb][region])
        if spike < _BODY * sigma:
            continue
        symmetry, share = tests
        symmetric = s[ya:yb, xa:xb][region].mean() >= symmetry * apart[ya:yb, xa:xb][region].mean()
        keep[i] = (symmetric and ring.any() and np.median(box[ring]) <= max(low * sigma, share * spike)
                   and np.median(box[region]) <= share * spike)
    return keep[labels]


def tone_offset(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The local brightness difference y - p of a frame and an aligned neighbour (film flicker is
    local as well as global): averaged over 16x16 blocks, median-filtered over 5x5 blocks so that
    neither a blotch nor a motion failure moves it, and interpolated back to full size."""
    h, w = y.shape
    small = cv2.resize(y - p, (max(w // _TONE_BLOCK, 1), max(h // _TONE_BLOCK, 1)), interpolation=cv2.INTER_AREA)
    if min(small.shape) >= 5:
        small = cv2.medianBlur(small, 5)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def mend_flow(flows: list[np.ndarray], hole: np.ndarray, sigma: float = _MEND_SIGMA) -> list[np.ndarray]:
    """The flows (each (H, W, 2)) inside `hole` replaced by the normalised Gaussian average of the
    flow around it (normalised convolution, Knutsson & Westin 1993): a blotch drags the flow
    estimated over it towards whatever it resembles, the scene around it does not. Computed per
    part of the hole on its box grown by the kernel's reach, which gives the full frame's result
    inside the hole."""
    if not hole.any():
        return flows
    reach = (int(round(8 * sigma + 1)) | 1) // 2        # OpenCV's Gaussian kernel radius for float images
    h, w = hole.shape
    out = [f.copy() for f in flows]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    for i in range(1, count):
        x0, y0, bw, bh = stats[i, :4]
        ya, yb, xa, xb = max(y0 - reach, 0), min(y0 + bh + reach, h), max(x0 - reach, 0), min(x0 + bw + reach, w)
        weight = (~hole[ya:yb, xa:xb]).astype(np.float32)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        num = cv2.GaussianBlur(np.dstack([f[ya:yb, xa:xb] for f in flows]) * weight[..., None], (0, 0), sigma)
        num = num.reshape(*weight.shape, -1) / np.maximum(den, 1e-6)[..., None]
        fill = (labels[ya:yb, xa:xb] == i) & (den > 1e-3)
        for k, f in enumerate(out):
            f[ya:yb, xa:xb][fill] = num[..., 2 * k:2 * k + 2][fill]
    return out


def inpaint(rgb: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """`rgb` with `mask` filled by Telea's inpainting (`cv2.inpaint`), run on each part of the mask
    in its box grown by `radius` + 2 px (the pixels the fill reads) rather than on the whole frame.
    It runs on 8-bit colour: OpenCV's Telea on float images overshoots wildly (values of -1.3 to
    2.2 inside blotches of a [0, 1] frame), and 8-bit rounding is far below the fill's own error."""
    out = rgb.copy()
    h, w = mask.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    m = radius + 2
    for i in range(1, count):
        x0, y0, bw, bh = stats[i, :4]
        ya, yb, xa, xb = max(y0 - m, 0), min(y0 + bh + m, h), max(x0 - m, 0), min(x0 + bw + m, w)
        box = cv2.convertScaleAbs(rgb[ya:yb, xa:xb], alpha=255.0)
        filled = cv2.inpaint(box, mask[ya:yb, xa:xb].astype(np.uint8), radius, cv2.INPAINT_TELEA)
        part = labels[ya:yb, xa:xb] == i
        out[ya:yb, xa:xb][part] = filled[part] / np.float32(255.0)
    return out


def repair(rgb: np.ndarray, mask: np.ndarray, neighbours: list[Neighbour]) -> np.ndarray:
    """`rgb` with `mask` replaced by the median of the aligned neighbours that are inside the frame
    there and the spatial inpainting (Telea) of the frame: with both neighbours the median of
    three values, so one neighbour the flow got wrong is outvoted; with none, the inpainting."""
    if not mask.any():
        return rgb
    out = inpaint(rgb, mask)
    ys, xs = np.nonzero(mask)
    vals = np.stack([out[ys, xs]] + [nb.rgb_at(ys, xs) for nb in neighbours])
    ok = np.stack([np.ones(len(ys), bool)] + [nb.inside[ys, xs] for nb in neighbours])
    count = ok.sum(axis=0)
    vals[~ok] = np.nan
    three = count == 3
    out[ys[three], xs[three]] = np.median(vals[:, three], axis=0)
    two = count == 2            # one neighbour: it alone (a median of two would average the spatial guess in)
    out[ys[two], xs[two]] = np.nansum(vals[1:, two], axis=0)
    return out                  # with none, the inpainting


class DustRemoval(Stage):
    """Windowed stage `dust` (`vidrestore restore -s dust`): blotch detection and repair.

    Args:
        low, high: hysteresis thresholds of the spike index in units of the frame's noise sigma.
        min_area: smallest blotch kept, in pixels.
        grow: pixels the detected regions are grown by before repair (blotch edges are soft).
        flow_preset: DIS preset of the flows between neighbouring frames.
        masks: a folder to write each frame's repaired mask into (dust/NNNNNN.png); empty for none.
        share: where to leave the (mended) flows to the neighbours for the `scratches` stage.
    """

    name = "dust"
    radius = 2

    def __init__(self, low: float = 4.0, high: float = 8.0, min_area: int = 2, grow: int = 2,
                 flow_preset: str = "medium", masks: str = "", share: SharedFlows | None = None):
        if not 0 < low <= high or min_area < 1 or grow < 0:
            raise VidrestoreError(f"dust needs 0 < low <= high, min_area >= 1 and grow >= 0 (got {low}, {high}, {min_area}, {grow})")
        self.low, self.high, self.min_area, self.grow = float(low), float(high), int(min_area), int(grow)
        self.flow_preset = flow_preset
        self.flow = create_flow("dis", preset=flow_preset)
        self.masks = Path(masks) / "dust" if masks else None
        if self.masks is not None:
            self.masks.mkdir(parents=True, exist_ok=True)
        self._prepared: dict[int, np.ndarray] = {}
        self._lumas: dict[int, np.ndarray] = {}
        self.share = share

    def config(self) -> dict:
        return {"low": self.low, "high": self.high, "min_area": self.min_area, "grow": self.grow, "flow": self.flow.config()}

    def _flow(self, a: int, b: int, frames: dict[int, np.ndarray]) -> np.ndarray:
        """Flow from frame a to frame b; each frame is prepared for the flow once (kept while in the window)."""
        for i in (a, b):
            if i not in self._prepared:
                self._prepared[i] = self.flow.prepare(frames[i])
        return self.flow.flow_prepared(self._prepared[a], self._prepared[b], frames[a].shape[:2])

    def _luma(self, i: int, frames: dict[int, np.ndarray]) -> np.ndarray:
        """Frame i's luma, computed once while it is in the window."""
        if i not in self._lumas:
            self._lumas[i] = luma(frames[i])
        return self._lumas[i]

    def detect(self, window: Window) -> tuple[np.ndarray, list[Neighbour]]:
        """The frame's repair mask (grown detections) and its two aligned neighbours."""
        t = window.index
        frames = {f.index: f.rgb for f in window.frames}
        others = sorted((j for j in frames if j != t), key=lambda j: (abs(j - t), j))
        before, after = [j for j in others if j < t], [j for j in others if j > t]
        pair = [before[0], after[0]] if before and after else others[:2]
        if len(pair) < 2:
            return np.zeros(window.frame.rgb.shape[:2], bool), []
        flows = [self._flow(t, j, frames) for j in pair]
        y = self._luma(t, frames)
        nbs = [Neighbour.warp(frames[j], self._luma(j, frames), f, y) for j, f in zip(pair, flows)]
        sigma = noise_sigma(y, nbs[0].y, nbs[1].y)      # measured once: mending moves the neighbours in the holes only
        candidates = detect_blotches(y, nbs[0], nbs[1], self.low, self.high, self.min_area, sigma=sigma)
        mask = candidates
        if candidates.any():
            hole = cv2.dilate(candidates.astype(np.uint8), _disc(_MEND_PX)) > 0
            flows = mend_flow(flows, hole)
            nbs = [nb.mended(f, hole, y) for f, nb in zip(flows, nbs)]
            tests = (_SYMMETRY, _AGREE_SHARE) if before and after else _ONE_SIDED
            mask = detect_blotches(y, nbs[0], nbs[1], self.low, self.high, self.min_area, confirm=True, tests=tests,
                                   sigma=sigma)
        if self.share is not None:
            for j, f in zip(pair, flows):
                self.share.put(t, j, f)
        if self.grow and mask.any():
            mask = cv2.dilate(mask.astype(np.uint8), _disc(self.grow)) > 0
        for cache in (self._prepared, self._lumas):
            for i in [i for i in cache if i < t - self.radius]:
                del cache[i]
        return mask, nbs

    def process(self, window: Window) -> np.ndarray:
        mask, nbs = self.detect(window)
        if self.masks is not None:
            cv2.imwrite(str(self.masks / f"{window.index:06d}.png"), mask.astype(np.uint8) * 255)
        return repair(window.frame.rgb, mask, nbs) if nbs else window.frame.rgb


@register_stage("dust")
def _dust(low: float = 4.0, high: float = 8.0, min_area: int = 2, grow: int = 2, flow_preset: str = "medium",
          masks: str = "") -> DustRemoval:
    return DustRemoval(low, high, min_area, grow, flow_preset, masks)
