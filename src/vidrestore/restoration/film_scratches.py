"""Line scratches on film: narrow near-vertical lines that persist over frames, found per frame
and filled from the neighbouring columns and the aligned neighbouring frames.

A scratch runs along the film, so in the picture it is a line a few pixels wide, lighter or
darker than both sides, that crosses most of the frame's height and stays at about the same
place for many frames, whatever the scene does. Detection, per frame (Kokaram's line model:
the horizontal profile of a scratch is a narrow ridge, constant down the frame):

* a horizontally high-passed luma: the white and black top-hats with a 1 x `width` structuring
  element (a ridge narrower than `width` px survives, a step edge does not);
* its column profile in horizontal bands of rows (the median down each column of each band), so
  that a column counts only where the ridge is present along the band; a band's column is a
  candidate where the profile exceeds `threshold` times its robust spread (1.4826 MAD) and
  `min_contrast`;
* a line is a straight near-vertical path through the candidates of one sign (a Hough transform
  over column and lean) that covers at least `min_length` of the bands; the candidates must be
  lone ridges, as the repeated ridges of facades and grids are not scratches;
* confirmed over frames: a neighbouring frame has a line of the same sign within `reach` px
  of it; and against the scene's own thin vertical lines (poles, ropes), which move with the
  flow: where the scene beside the line moves horizontally by more than 1.5 px between the
  frames, the neighbour's line must lie nearer the same place in the picture than where the
  flow would carry the scene.

Repair: the line's columns (grown by `grow` px) are replaced by the median of the flow-aligned
neighbours where their own scratches do not cover the place, and the row-wise interpolation
between the columns either side: with two such neighbours a median of three, with one that
neighbour, with none (the camera is still, so the neighbours' scratch lies in the same place)
the spatial fill.

References:
    Kokaram, "Detection and removal of line scratches in motion picture films", CVPR 1996.
    Kokaram, "Motion Picture Restoration", Springer 1998 (ch. 9, line scratches).
    Joyeux, Buisson, Besserer, Boukir, "Detection and removal of line scratches in motion
    picture films", CVPR 1999 (tracking over frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from scipy.ndimage import maximum_filter

from ..errors import VidrestoreError
from ..flow import create_flow
from ..io.colour import luma
from ..pipeline import Stage, Window, register_stage
from .film_dust import SharedFlows, sample

_BAND_ROWS = 32       # rows per band of the column profile
_EDGE = 0.025         # columns this close to the frame's sides (share of its width) are not searched: the gate's edges are lines too
_STRIP = (6, 20)      # the scene beside a line: columns this many px either side, whose flow says how it moves
_MOVING_PX = 1.5      # horizontal motion beside a line above which the motion test applies
_LOCAL_PX = 16        # half-width (columns) of the surroundings a line must stand out from
_LEAN = 0.03          # a line may lean by this many px per row


@dataclass
class Line:
    """A detected line: its sign (+1 light, -1 dark) and, per band, its columns (empty where absent)."""

    sign: int
    columns: list[np.ndarray]

    @property
    def x(self) -> float:
        """Mean column."""
        return float(np.mean(np.concatenate([c for c in self.columns if c.size])))

    def rows(self) -> np.ndarray:
        """Indices of the bands where the line is present."""
        return np.array([b for b, c in enumerate(self.columns) if c.size])


def ridge_response(y: np.ndarray, width: int = 7) -> np.ndarray:
    """Signed horizontal ridge strength: the white top-hat minus the black top-hat of luma `y` with a
    1 x `width` element (positive on light lines, negative on dark ones narrower than `width`)."""
    k = np.ones((1, width), np.uint8)
    return cv2.morphologyEx(y, cv2.MORPH_TOPHAT, k) - cv2.morphologyEx(y, cv2.MORPH_BLACKHAT, k)


def band_profile(r: np.ndarray) -> np.ndarray:
    """(bands, W) median of the ridge response down each column of each band of `_BAND_ROWS` rows."""
    h = r.shape[0]
    bands = max(h // _BAND_ROWS, 1)
    rows = h // bands
    return np.median(r[:bands * rows].reshape(bands, rows, -1), axis=1)


def _band_slices(h: int, bands: int) -> list[slice]:
    rows = h // bands
    return [slice(b * rows, h if b == bands - 1 else (b + 1) * rows) for b in range(bands)]


def _widths(row: np.ndarray, peaks: np.ndarray, half: int) -> np.ndarray:
    """The columns of the ridges peaking at `peaks` of a band's signed profile `row`: each peak and its
    neighbours up to `half` px either side that keep at least half the peak's height."""
    cols = np.clip(peaks[None, :] + np.arange(-half, half + 1)[:, None], 0, row.size - 1)
    keep = row[cols] >= 0.5 * row[peaks][None, :]
    keep[half] = True                 # the peaks themselves (in a gap of a line, its path's columns, whatever their height)
    return np.unique(cols[keep])


def _rival(q: np.ndarray, width: int) -> np.ndarray:
    """(bands, W) the highest of `q` from `width` to `_LOCAL_PX` columns either side of each column."""
    half = max((_LOCAL_PX - width) // 2, 0)
    m = maximum_filter(q, size=(1, 2 * half + 1), mode="constant", cval=0.0)
    shift = width + half
    out = np.zeros_like(q)
    out[:, shift:] = m[:, :-shift]
    out[:, :-shift] = np.maximum(out[:, :-shift], m[:, shift:])
    return out


def _trace(peak: np.ndarray, height: int, min_length: float) -> list[list[np.ndarray]]:
    """Straight near-vertical lines through a (bands, W) map of ridge peaks (a Hough transform over
    column and lean): the path of most bands with a peak within a column of it, taken out of the
    map, and again, while one covers `min_length` of the bands. Each line: per band, its peaks
    (in a band between two with peaks but without one itself, the path's column and its neighbours)."""
    bands, w = peak.shape
    rows = height // bands
    centre = (np.arange(bands) + 0.5) * rows - height / 2
    steps = int(np.ceil(_LEAN * height))
    slopes = np.arange(-steps, steps + 1) / max(height, 1)
    shifts = np.rint(slopes[:, None] * centre[None, :]).astype(int)      # (slopes, bands)
    cols = np.arange(w)
    at = np.clip(cols[None, None, :] + shifts[..., None], 0, w - 1)     # (slopes, bands, W): path's column per band
    inside = (cols[None, None, :] + shifts[..., None] >= 0) & (cols[None, None, :] + shifts[..., None] < w)
    need = max(min_length * bands, 2)
    reach = np.ones((1, 2 * steps + 3), np.uint8)           # a path's column per band lies within steps + 1 of x
    open_cols = np.flatnonzero((cv2.dilate(peak.astype(np.uint8), reach) > 0).sum(axis=0) >= need)
    at, inside = at[..., open_cols], inside[..., open_cols]  # only there can a path gather enough votes
    left = peak.copy()
    out = []
    while open_cols.size:
        near = cv2.dilate(left.astype(np.uint8), np.ones((1, 3), np.uint8)) > 0
        votes = (near[np.arange(bands)[None, :, None], at] & inside).sum(axis=1)
        k, x = np.unravel_index(np.argmax(votes), votes.shape)
        if votes[k, x] < need:
            return out
        found = []
        for b in range(bands):
            c = at[k, b, x]
            lo, hi = max(c - 1, 0), min(c + 2, w)
            found.append(lo + np.flatnonzero(left[b, lo:hi]))
            left[b, lo:hi] = False
        present = [b for b in range(bands) if found[b].size]
        for b in range(present[0] + 1, present[-1]):     # a gap in the line (it crossed something of its own shade): its path
            if not found[b].size:
                found[b] = np.arange(max(at[k, b, x] - 1, 0), min(at[k, b, x] + 2, w))
        out.append(found)
    return out


def find_lines(y: np.ndarray, width: int = 7, threshold: float = 5.0, min_contrast: float = 0.015,
               min_length: float = 0.6, isolation: float = 0.5) -> list[Line]:
    """The frame's candidate lines (see the module docstring), before confirmation over frames.

    A band's column is a candidate where the signed profile peaks (the largest within 2 px), exceeds
    `threshold` times the profile's robust spread and `min_contrast`, and is a lone ridge: no ridge
    of the same sign `isolation` of its height or more lies `width` to `_LOCAL_PX` px away (the
    repeated ridges of facades, fences and grids are not scratches). Candidates of consecutive bands join
    into straight lines (`_trace`) that lean by at most `_LEAN` px per row and cover `min_length`
    of the bands."""
    p = band_profile(ridge_response(y, width))
    spread = max(float(1.4826 * np.median(np.abs(p - np.median(p)))), 1e-4)
    limit = max(threshold * spread, min_contrast)
    lines = []
    for sign in (1, -1):
        q = sign * p
        peak = (q >= maximum_filter(q, size=(1, 5), mode="nearest")) & (q > limit) & (_rival(q, width) < isolation * q)
        edge = max(3, round(_EDGE * q.shape[1]))
        peak[:, :edge] = False
        peak[:, -edge:] = False
        lines += [Line(sign, [_widths(q[b], cols, width // 2) for b, cols in enumerate(found)])
                  for found in _trace(peak, y.shape[0], min_length)]
    return lines


def line_mask(lines: list[Line], shape: tuple[int, int], grow: int = 1) -> np.ndarray:
    """Bool (H, W) mask of the lines' columns in their bands, grown by `grow` px sideways."""
    h, w = shape
    mask = np.zeros(shape, bool)
    if not lines:
        return mask
    slices = _band_slices(h, len(lines[0].columns))
    spread = np.arange(-grow, grow + 1)
    for line in lines:
        for b, cols in enumerate(line.columns):
            if cols.size:
                mask[slices[b], np.clip((cols[:, None] + spread).ravel(), 0, w - 1)] = True
    return mask


def _near(line: Line, others: list[Line], x: float, reach: float) -> Line | None:
    """The line of `others` of the same sign nearest to column `x`, if within `reach` px."""
    best = [o for o in others if o.sign == line.sign and abs(o.x - x) <= reach]
    return min(best, key=lambda o: abs(o.x - x)) if best else None


def scene_motion(flow: np.ndarray, line: Line) -> float:
    """Median horizontal flow of the scene beside the line (strips `_STRIP` px either side)."""
    h, w = flow.shape[:2]
    x = int(round(line.x))
    cols = [c for d in range(*_STRIP) for c in (x - d, x + d) if 0 <= c < w]
    return float(np.median(flow[:, cols, 0]))


def confirm(line: Line, neighbours: list[tuple[list[Line], np.ndarray]], reach: float = 3.0) -> bool:
    """A line is a scratch when a neighbouring frame has one of the same sign near the same place
    and, where the scene beside it moves sideways, the neighbour's line did not move with it
    (`neighbours`: each neighbour's lines and the flow from this frame to it)."""
    for lines, flow in neighbours:
        u = scene_motion(flow, line)
        moving = abs(u) > _MOVING_PX
        match = _near(line, lines, line.x, reach)
        if match is None:
            continue
        if not moving or abs(match.x - line.x) < abs(match.x - (line.x + u)):
            return True
    return False


def fill_rows(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`rgb` with `mask` filled along each row by linear interpolation between the nearest unmasked
    columns left and right (the nearer one alone at the frame's sides)."""
    cols = mask.any(axis=0).astype(np.int8)
    if not cols.any():
        return rgb
    edges = np.diff(np.concatenate([[0], cols, [0]]))
    out = rgb.copy()
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):   # each run of masked columns
        a, b = max(start - 1, 0), min(stop + 1, mask.shape[1])       # with the unmasked column either side
        out[:, a:b] = _fill_box(rgb[:, a:b], mask[:, a:b])
    return out


def _fill_box(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`fill_rows` on a box whose outer columns hold the anchors."""
    h, w = mask.shape
    cols = np.broadcast_to(np.arange(w), (h, w))
    left = np.maximum.accumulate(np.where(mask, -1, cols), axis=1)
    right = np.minimum.accumulate(np.where(mask, w, cols)[:, ::-1], axis=1)[:, ::-1]
    left_ok, right_ok = left >= 0, right < w
    lc, rc = np.where(left_ok, left, right), np.where(right_ok, right, left)
    span = np.maximum(rc - lc, 1)
    t = np.where(left_ok & right_ok, (cols - lc) / span, 0.0).astype(np.float32)[..., None]
    rows = np.arange(h)[:, None]
    lc, rc = np.clip(lc, 0, w - 1), np.clip(rc, 0, w - 1)
    filled = (1 - t) * rgb[rows, lc] + t * rgb[rows, rc]
    return np.where(mask[..., None], filled, rgb)


def repair(rgb: np.ndarray, mask: np.ndarray, aligned: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """`rgb` with `mask` replaced by the median of the aligned neighbours valid there and the
    spatial fill from the columns either side (`fill_rows`); `aligned`: per neighbour, its colour
    warped onto the frame at the mask's pixels (in `np.nonzero(mask)` order, (N, 3)) and where it
    is valid there (inside the frame, off its own scratches)."""
    if not mask.any():
        return rgb
    spatial = fill_rows(rgb, mask)
    ys, xs = np.nonzero(mask)
    vals = np.stack([spatial[ys, xs]] + [a for a, _ in aligned])
    ok = np.stack([np.ones(len(ys), bool)] + [v for _, v in aligned])
    count = ok.sum(axis=0)
    out = rgb.copy()
    if len(aligned) == 2:
        three = count == 3
        out[ys[three], xs[three]] = np.median(vals[:, three], axis=0)
    one = count == 2
    if one.any():
        vals[~ok] = 0
        out[ys[one], xs[one]] = vals[1:, one].sum(axis=0)
    spatial_only = count == 1
    out[ys[spatial_only], xs[spatial_only]] = spatial[ys[spatial_only], xs[spatial_only]]
    return out


class ScratchRemoval(Stage):
    """Windowed stage `scratches` (`vidrestore restore -s scratches`): line scratch detection and repair.

    Args:
        width: widest scratch found, in pixels (the top-hat's element).
        threshold: a band's column is a candidate above this many times the profile's noise.
        min_contrast: and above this luma contrast (0-1 scale).
        min_length: share of the frame's height a line must cover.
        grow: pixels the lines are grown by sideways before repair.
        masks: a folder to write each frame's repaired mask into (scratches/NNNNNN.png); empty for none.
        share: the flows the `dust` stage before it left (the same pairs of frames); without them,
            or where it left none, the flows are computed here, at half size.
    """

    name = "scratches"
    radius = 1

    def __init__(self, width: int = 7, threshold: float = 5.0, min_contrast: float = 0.015, min_length: float = 0.6,
                 grow: int = 1, masks: str = "", share: SharedFlows | None = None):
        if width < 3 or threshold <= 0 or min_contrast < 0 or not 0 < min_length <= 1 or grow < 0:
            raise VidrestoreError("scratches needs width >= 3, threshold > 0, min_contrast >= 0, 0 < min_length <= 1 "
                                  f"and grow >= 0 (got {width}, {threshold}, {min_contrast}, {min_length}, {grow})")
        self.width, self.threshold, self.min_contrast = int(width), float(threshold), float(min_contrast)
        self.min_length, self.grow = float(min_length), int(grow)
        self.flow = create_flow("dis", preset="medium", scale=0.5)   # half size: 3x faster; a 1-3 px fill aligns as well
        self.masks = Path(masks) / "scratches" if masks else None
        if self.masks is not None:
            self.masks.mkdir(parents=True, exist_ok=True)
        self._lines: dict[int, list[Line]] = {}
        self.share = share

    def config(self) -> dict:
        return {"width": self.width, "threshold": self.threshold, "min_contrast": self.min_contrast,
                "min_length": self.min_length, "grow": self.grow, "flow": self.flow.config()}

    def _find(self, index: int, rgb: np.ndarray) -> list[Line]:
        if index not in self._lines:
            self._lines[index] = find_lines(luma(rgb), self.width, self.threshold, self.min_contrast, self.min_length)
        return self._lines[index]

    def _flows(self, t: int, rgb: np.ndarray, frames: dict[int, np.ndarray], others: list[int]) -> dict[int, np.ndarray]:
        """The flows from frame t to each of `others`: the `dust` stage's when it left them, else computed here."""
        flows = {j: self.share.get(t, j) for j in others} if self.share is not None else {}
        missing = [j for j in others if flows.get(j) is None]
        if missing:
            grey = self.flow.prepare(rgb)
            for j in missing:
                flows[j] = self.flow.flow_prepared(grey, self.flow.prepare(frames[j]), rgb.shape[:2])
        return flows

    def detect(self, window: Window) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The frame's repair mask and, per neighbour, its colour aligned onto the mask's pixels
        and where it is valid there (what `repair` takes)."""
        t, rgb = window.index, window.frame.rgb
        frames = {f.index: f.rgb for f in window.frames}
        for i in [i for i in self._lines if i < t - self.radius]:
            del self._lines[i]
        lines = self._find(t, rgb)
        others = [j for j in sorted(frames) if j != t]
        if not lines or not others:
            return np.zeros(rgb.shape[:2], bool), []
        flows = self._flows(t, rgb, frames, others)
        near = [(self._find(j, frames[j]), flows[j]) for j in others]
        kept = [line for line in lines if confirm(line, near)]
        mask = line_mask(kept, rgb.shape[:2], self.grow)
        rows, cols = np.nonzero(mask)
        h, w = mask.shape
        aligned = []
        for j in others:
            xs, ys = cols + flows[j][rows, cols, 0], rows + flows[j][rows, cols, 1]
            own = line_mask(self._find(j, frames[j]), rgb.shape[:2], self.grow + 1).astype(np.float32)
            covered = sample(own, xs, ys, cv2.INTER_NEAREST)
            inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
            aligned.append((sample(frames[j], xs, ys), inside & (covered < 0.5)))
        return mask, aligned

    def process(self, window: Window) -> np.ndarray:
        mask, aligned = self.detect(window)
        if self.masks is not None:
            cv2.imwrite(str(self.masks / f"{window.index:06d}.png"), mask.astype(np.uint8) * 255)
        return repair(window.frame.rgb, mask, aligned)


@register_stage("scratches")
def _scratches(width: int = 7, threshold: float = 5.0, min_contrast: float = 0.015, min_length: float = 0.6,
               grow: int = 1, masks: str = "") -> ScratchRemoval:
    return ScratchRemoval(width, threshold, min_contrast, min_length, grow, masks)
