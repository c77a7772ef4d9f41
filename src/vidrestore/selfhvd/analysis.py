"""One cached pass over a video that prepares what self-supervised training reads.

`analyze_video(path)` decodes the video once, streaming, and writes into a folder of the work
directory, keyed by the input's content hash and the settings (so training, a resumed run and
`vidrestore analyze` share it, and a re-run skips the work):

* ``frames.npy``   (T, H, W, 3) uint8 RGB at the working size (`AnalysisSettings.max_downscale`):
  the training input, read by crops;
* ``grey.npy``     (T, h, w) uint8 luma at the label flow's working scale;
* ``next.npy``, ``prev.npy`` (T-1, h', w', 2) float16: flow t -> t+1 and t+1 -> t between
  consecutive frames at the alignment scale (half size by default), and ``next{k}.npy``,
  ``prev{k}.npy`` (T-k, h', w', 2), flow t -> t+k and t+k -> t, for k = 2..``align_reach``
  (4 by default), which align a frame's neighbours onto it (`VideoAnalysis.flow_to`);
* ``label_flow.npy`` (T, h, w, 2) float16: flow i -> j(i) to the sharp frame supervising i;
* ``label_mask.npy`` (T, h, w) uint8: validity x occlusion x uncertainty of that label, 0-255;
* ``analysis.json``: sharpness (the selection's measure and the Laplacian variance), the
  selection, partners j(i), the settings, the video's size.

Flows and masks stay at their working scale and are resized for the crops that training reads
(`vidrestore.flow.resize_field`): for a 10 s 720p clip about 0.8 GB of frames, 0.55 GB of
alignment flows per offset (2.2 GB with the default reach of 4 frames) and 0.4 GB of label
flows, masks and luma. Sizes below name DIS's input; the MEDIUM preset estimates down to half
of it and upsamples. Label flows are computed at half size: against the ground truth of
synthesized clips, sharp frames warped with flow at a quarter of the size (as the SelfHVD
authors do with SEA-RAFT) lost 2-3 dB to flow at half size with DIS, and flow at full size
gained nothing after training (35.18 against 35.23 dB on blurry frames, 2-minute budget, the
SelfHVD suite's clips, radius-2 network). The flows that align the network's input and its
fusion prior come from full-size luma: with consecutive flows from half-size luma the trained
result lost 0.5 dB on blurry frames (34.72 dB) and from a quarter 1.2 dB (33.98 dB). As the
preset stops at half size, they are estimated on half-size luma down to DIS's finest level and
stored as estimated (the same field within 1e-4 px as the preset's upsampled one, a quarter of
the data). They are most of the analysis' time. Everything is written with numpy's .npy
format and read a frame (or a crop's rows) at a time through the file (`io.npy_rows`), so the
job's memory does not grow with the video's length as it did memory-mapped.

Which sharp frame supervises a blurry frame: the nearest selected frame in time, the sharper
one on a tie. Sharp frames label themselves (zero
flow, full mask); frames of a video without sharp frames have no label (partner -1, mask 0).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import FlowEstimator, backward_warp, create_flow, remap, resize_field
from ..io import Frame, VideoInfo, VideoReader, probe
from ..io.cache import cache_ready, mark_complete
from ..io.colour import luma
from ..io.npy_rows import NpyRows
from ..io.paths import atomic_write_text, config_key, content_hash
from ..pipeline import default_work_dir
from ..util.prefetch import prefetch
from ..util.progress import progress_bar
from .labels import label_mask
from .selection import DEFAULT_BLOCK, DEFAULT_MAX_SPREAD, DEFAULT_MIN_RATIO, SHARPNESS_SCALE, Selection, SharpnessMeter, select_sharp

ANALYSIS_VERSION = 4
MAX_DOWNSCALE = 2   # see AnalysisSettings.max_downscale
DETAIL_DB = 42.0    # PSNR-Y of a downscaling round trip above which a frame holds no detail the smaller size loses
DETAIL_FRAMES = 20  # the frames (from the first) among which the sharpest decides the working size


def detail_factor(frames: Iterable[np.ndarray], max_factor: int) -> int:
    """The largest factor f <= `max_factor` by which the sharpest of `frames` (float RGB; the
    Laplacian variance of its luma) can be downscaled (area) and upscaled back (bicubic) within
    `DETAIL_DB` dB PSNR-Y: the footage holds no more than 1/f of its pixels' resolution in detail.
    1 when every factor loses more."""
    y = max(map(luma, frames), key=lambda g: cv2.Laplacian(g, cv2.CV_32F).var())
    h, w = y.shape
    best = 1
    for f in range(2, max_factor + 1):
        down = cv2.resize(y, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
        back = cv2.resize(down, (w, h), interpolation=cv2.INTER_CUBIC)
        m = 8 if min(h, w) > 32 else 0  # leave out the border, where bicubic extrapolates
        mse = float(np.mean((back - y)[m:h - m, m:w - m] ** 2))
        if mse > 10 ** (-DETAIL_DB / 10):
            break
        best = f
    return best


@functools.lru_cache(maxsize=4)
def pixel_grid(box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every pixel of `box` = (y0, y1, x0, x1), float32 and read-only: rendering a frame
    follows each of its neighbours from the same grid."""
    ys, xs = np.mgrid[box[0]:box[1], box[2]:box[3]].astype(np.float32)
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


def to_size(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`rgb` resized by area to `size` = (height, width); the array itself when it already has that size."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that changes an analysis (part of its cache key).

    Attributes:
        block, min_ratio, max_spread: sharp-frame selection (`select_sharp`).
        sharpness_measure: what the selection runs on: "laplacian" (SelfHVD's) or "relative" (`SharpnessMeter`).
        sharpness_scale: scale at which the Laplacian variance is measured.
        flow_preset: OpenCV DIS preset of every flow.
        label_scale: working scale of the label flows and masks.
        align_scale: working scale of the flows that align the window, which DIS estimates
            down to that scale itself (pyramid level 0): 0.5 holds the field that the MEDIUM
            preset gives at full size, where it stops at half size and upsamples (`flow.create_flow`).
        align_match_blur: that flow is estimated with the sharper frame of each pair blurred to the
            other's sharpness (`flow.match_blur`): a blurry frame's neighbours then land where it is.
        align_reach: frames each way to which that flow is computed directly; further ones are
            reached by chaining (`VideoAnalysis.follow`). 4 matches the default window network's
            radius (`vidrestore.models.unet`), so its whole window is aligned directly.
        occlusion_slope: soft occlusion mask slope per working-scale pixel of round-trip error.
        uncertainty_threshold: threshold on the per-frame normalised uncertainty.
        max_downscale: the largest factor by which the frames the analysis stores, the network
            trains on and `deblur` runs at are smaller than the video's (1: full resolution). The
            factor is chosen from the video (`detail_factor`): the largest one that loses no detail
            its sharpest early frame holds. Phone footage often holds less detail than its pixel
            count (upscaled, denoised, compressed: the HVD clips survive halving within 44-47 dB),
            and there the network's reach doubles at half size, its crops cover four times the
            scene and its flows are estimated on a quarter of the pixels; the network's change is
            then upscaled onto the full frame (`infer.DeblurStage`). Sharpness is measured on the
            full frames, so the selection does not depend on it.
    """

    block: int = DEFAULT_BLOCK
    min_ratio: float = DEFAULT_MIN_RATIO
    max_spread: float = DEFAULT_MAX_SPREAD
    sharpness_measure: str = "laplacian"
    sharpness_scale: float = SHARPNESS_SCALE
    flow_preset: str = "medium"
    label_scale: float = 0.5
    align_scale: float = 0.5
    align_match_blur: bool = True
    align_reach: int = 4
    occlusion_slope: float = 0.8
    uncertainty_threshold: float = 0.5
    max_downscale: int = MAX_DOWNSCALE

    def flow(self, scale: float, finest_level: int | None = None, match_blur: bool = False) -> FlowEstimator:
        return create_flow("dis", match_blur, scale=scale, preset=self.flow_preset, finest_level=finest_level)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


class VideoAnalysis:
    """A finished analysis, read from its folder a frame at a time (see the module docstring)."""

    def __init__(self, folder: Path):
        self.dir = Path(folder)
        meta = json.loads((self.dir / "analysis.json").read_text())
        self.meta = meta
        self.settings = AnalysisSettings(**meta["settings"])
        self.width, self.height, self.count = meta["width"], meta["height"], meta["frames"]
        load = lambda name: NpyRows(self.dir / name)  # noqa: E731
        self.frames = load("frames.npy")
        self.grey = load("grey.npy")
        self.next_flow = load("next.npy")
        self.prev_flow = load("prev.npy")
        self.reach = min(self.settings.align_reach, self.count - 1)
        self._next = {1: self.next_flow, **{k: load(f"next{k}.npy") for k in range(2, self.reach + 1)}}
        self._prev = {1: self.prev_flow, **{k: load(f"prev{k}.npy") for k in range(2, self.reach + 1)}}
        self.label_flow = load("label_flow.npy")
        self.label_mask = load("label_mask.npy")
        sel = meta["selection"]
        self.selection = Selection(np.array(meta["sharpness"], np.float32), np.array(meta["sharp"], bool), sel["block"],
                                   sel["thresholds"], sel["standing_out"], sel["params"])
        self.partner = np.array(meta["partner"], np.int64)
        self.laplacian = np.array(meta["laplacian"], np.float32)

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def frame(self, i: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Frame i (or its `box` = (y0, y1, x0, x1)) as float32 RGB in [0, 1]."""
        y0, y1, x0, x1 = box or (0, self.height, 0, self.width)
        return self.frames[i, y0:y1, x0:x1].astype(np.float32) * (1 / 255.0)

    def _warp(self, j: int, flow: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Frame j sampled (bicubic) at the box's pixels displaced by `flow`; float32 RGB and validity."""
        flow = flow.copy()
        flow[..., 0] += box[2]
        flow[..., 1] += box[0]
        warped, valid = backward_warp(self.frames.item(j), flow, interpolation=cv2.INTER_CUBIC)
        return warped.astype(np.float32) * (1 / 255.0), valid

    def label(self, i: int, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The aligned sharp label of frame i and its mask (float32, full resolution, within `box`).

        The sharp frame j(i) is backward-warped (bicubic) by the label flow resized to full
        resolution; the mask is the stored working-scale mask, resized, times the full-resolution
        validity of the warp. A frame without a partner gets its own frame and a zero mask.
        """
        box = box or (0, self.height, 0, self.width)
        y0, y1, x0, x1 = box
        j = int(self.partner[i])
        if j < 0:
            return self.frame(i, box), np.zeros((y1 - y0, x1 - x0), np.float32)
        if j == i:
            return self.frame(i, box), np.ones((y1 - y0, x1 - x0), np.float32)
        warped, valid = self._warp(j, resize_field(self.label_flow.item(i), self.size, box, is_flow=True), box)
        mask = resize_field(self.label_mask[i].astype(np.float32) * (1 / 255.0), self.size, box)
        return warped, mask * valid

    def label_coverage(self, i: int) -> float:
        """Share of frame i that its label covers (mean of the working-scale mask)."""
        return float(np.asarray(self.label_mask[i]).mean() / 255.0)

    def follow(self, px: np.ndarray, py: np.ndarray, i: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Move points (px, py) of frame i to where they lie in frame t, along the cached flows.

        In steps of the longest stored offset (`align_reach` frames, 4 by default) that does not
        pass t: p <- p + f_{k->k+s}(p) (or f_{k->k-s} going back), each flow sampled bilinearly at
        the current point; so f_{i->t}(p) = f_{i->i+s}(p) + f_{i+s->t}(p + f_{i->i+s}(p)). Within
        the reach that is the direct flow i -> t: across blurry frames a chain adds up each
        step's error (the untrained window network, i.e. its fusion prior, on the SelfHVD suite's
        clips at radius 2: 35.07 dB on blurry frames with direct flows, 34.87 chained).
        """
        h, w = self.next_flow.shape[1:3]
        rx, ry = w / self.width, h / self.height
        px, py = px.astype(np.float32), py.astype(np.float32)
        k = i
        while k != t:
            s = min(self.reach, abs(t - k))
            field = self._next[s].item(k) if t > k else self._prev[s].item(k - s)
            k = k + s if t > k else k - s
            lx, ly = (px + 0.5) * rx - 0.5, (py + 0.5) * ry - 0.5
            f = remap(field, lx, ly, dtype=np.float32)
            px = px + f[..., 0] / rx
            py = py + f[..., 1] / ry
        return px, py

    def positions(self, i: int, t: int, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where the box's pixels of frame i lie in frame t (`follow` from the pixel grid): what `flow_to`
        and `round_trip_error` start from, computed once when a caller needs both."""
        box = box or (0, self.height, 0, self.width)
        ys, xs = pixel_grid(box)
        return self.follow(xs, ys, i, t)

    def flow_to(self, i: int, t: int, box: tuple[int, int, int, int] | None = None,
                there: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Flow i -> t at full resolution within `box`, composed from consecutive flows (`follow`);
        `there`: its `positions`, when already computed."""
        box = box or (0, self.height, 0, self.width)
        ys, xs = pixel_grid(box)
        px, py = there if there is not None else self.follow(xs, ys, i, t)
        return np.stack([px - xs, py - ys], axis=-1)

    def round_trip_error(self, i: int, t: int, box: tuple[int, int, int, int] | None = None,
                         there: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """||p - back(forth(p))|| in pixels for the box's pixels of frame i, going to frame t and back; inf out of
        view. `there`: forth(p), the `positions` of the box's pixels in frame t, when already computed."""
        box = box or (0, self.height, 0, self.width)
        ys, xs = pixel_grid(box)
        qx, qy = there if there is not None else self.follow(xs, ys, i, t)
        rx, ry = self.follow(qx, qy, t, i)
        err = np.hypot(rx - xs, ry - ys)
        out = (qx < 0) | (qy < 0) | (qx > self.width - 1) | (qy > self.height - 1)
        return np.where(out, np.inf, err).astype(np.float32)

    def consecutive_flows(self, box: tuple[int, int, int, int], indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Flows t -> t+1 and t+1 -> t between the frames `indices` (consecutive or repeated), full resolution in `box`."""
        nxt, prv = [], []
        for a, b in zip(indices, indices[1:]):
            if b == a + 1:
                nxt.append(resize_field(self.next_flow.item(a), self.size, box, is_flow=True))
                prv.append(resize_field(self.prev_flow.item(a), self.size, box, is_flow=True))
            else:  # a frame repeated at the video's end: no motion
                zero = np.zeros((box[1] - box[0], box[3] - box[2], 2), np.float32)
                nxt.append(zero)
                prv.append(zero)
        return np.stack(nxt), np.stack(prv)


def analysis_key(path: Path, settings: AnalysisSettings) -> str:
    return config_key("selfhvd-analysis", ANALYSIS_VERSION, content_hash(path), asdict(settings))


def analyze_video(path: str | os.PathLike, settings: AnalysisSettings = AnalysisSettings(), *,
                  work_dir: str | os.PathLike | None = None, progress: bool = True) -> VideoAnalysis:
    """Analyse `path` (or reuse the cached analysis): frames, sharpness, selection, flows, labels."""
    src = Path(path)
    info = probe(src)
    root = Path(work_dir) if work_dir is not None else default_work_dir()
    folder = root / "cache" / f"selfhvd-{analysis_key(src, settings)}"
    return analyze_frames(prefetch(VideoReader(src, info).frames()), info, folder, settings, progress)


def analyze_frames(frames: Iterable[Frame], info: VideoInfo, folder: Path, settings: AnalysisSettings = AnalysisSettings(),
                   progress: bool = True) -> VideoAnalysis:
    """Analyse the frames of the video `info` describes (or what stages made of them: their size is read
    from the frames) into `folder`, or reuse the finished analysis there. `analyze_video` gives it a file's
    frames; the `deblur` stage those the stages before it output."""
    if cache_ready(folder, ANALYSIS_VERSION):
        return VideoAnalysis(folder)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.mkdir(parents=True)
    except OSError as err:
        raise VidrestoreError(f"cannot use work directory ({err.strerror or err})", folder.parent) from None
    t0 = time.perf_counter()
    _decode_pass(frames, info, settings, folder, progress)
    meta = json.loads((folder / "analysis.json").read_text())
    selection = select_sharp(np.array(meta["sharpness"]), settings.block, settings.min_ratio, settings.max_spread)
    selection.params["measure"] = settings.sharpness_measure
    partner = selection.nearest_sharp()
    t_labels = time.perf_counter()
    _label_pass(folder, partner, settings, progress)
    meta["timing"]["labels_s"] = time.perf_counter() - t_labels
    meta.update({"sharp": selection.sharp.tolist(), "partner": partner.tolist(),
                 "selection": {k: v for k, v in selection.to_dict().items() if k != "per_frame"},
                 "seconds": time.perf_counter() - t0})
    atomic_write_text(folder / "analysis.json", json.dumps(meta))
    mark_complete(folder, ANALYSIS_VERSION)
    return VideoAnalysis(folder)


def _decode_pass(frames: Iterable[Frame], info: VideoInfo, settings: AnalysisSettings, folder: Path, progress: bool) -> None:
    """Read the frames once: frames, sharpness, working-scale luma and the flows to the neighbours within the reach."""
    label_flow, align_flow = settings.flow(settings.label_scale), settings.flow(settings.align_scale, 0, settings.align_match_blur)
    src, n = Path(info.path), info.frame_count
    if n < 2:
        raise VidrestoreError(f"self-supervised training needs at least 2 frames, not {n}", src)
    if settings.align_reach < 1:
        raise VidrestoreError(f"align_reach must be at least 1 frame, not {settings.align_reach}", src)
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise VidrestoreError("the video holds no frames", src)
    if settings.max_downscale < 1:
        raise VidrestoreError(f"max_downscale must be at least 1, not {settings.max_downscale}", src)
    head = [first, *itertools.islice(stream, DETAIL_FRAMES - 1 if settings.max_downscale > 1 else 0)]
    factor = detail_factor([f.rgb for f in head], settings.max_downscale)
    full = first.rgb.shape[:2]
    height, width = max(1, round(full[0] / factor)), max(1, round(full[1] / factor))
    blank = np.zeros((height, width, 3), np.float32)
    h, w = label_flow.prepare(blank).shape
    ha, wa = align_flow.prepare(blank).shape
    mm = lambda name, shape, dtype: NpyRows.create(folder / name, shape, dtype)  # noqa: E731
    stored = mm("frames.npy", (n, height, width, 3), np.uint8)
    grey = mm("grey.npy", (n, h, w), np.uint8)
    reach = range(1, min(settings.align_reach, n - 1) + 1)
    nxt = {k: mm("next.npy" if k == 1 else f"next{k}.npy", (n - k, ha, wa, 2), np.float16) for k in reach}
    prv = {k: mm("prev.npy" if k == 1 else f"prev{k}.npy", (n - k, ha, wa, 2), np.float16) for k in reach}
    meter = SharpnessMeter(settings.sharpness_measure, settings.sharpness_scale)
    recent: deque[np.ndarray] = deque(maxlen=len(reach))  # the last frames at the alignment scale, newest first
    t_start, align_s = time.perf_counter(), 0.0
    bar = progress_bar(n, "analyse (frames, sharpness, flow)", progress)
    try:
        for f in itertools.chain(_drain(head), stream):
            i = f.index
            if i >= n:
                raise VidrestoreError(f"the video holds more frames than the {n} its container declares", src)
            rgb = to_size(f.rgb, (height, width))
            stored[i] = to_u8(rgb)
            meter.add(f.rgb)
            grey[i] = label_flow.prepare(rgb)
            t0 = time.perf_counter()
            luma = grey[i] if align_flow.scale == label_flow.scale else align_flow.prepare(rgb)
            flows = align_flow.flow_pairs([pair for earlier in recent for pair in ((earlier, luma), (luma, earlier))])
            for k in range(1, len(recent) + 1):
                nxt[k][i - k], prv[k][i - k] = flows[2 * k - 2], flows[2 * k - 1]
            recent.appendleft(luma)
            align_s += time.perf_counter() - t0
            bar.update(1)
    finally:
        bar.close()
    for a in (stored, grey, *nxt.values(), *prv.values()):
        a.close()
    meta = {"version": ANALYSIS_VERSION, "source": str(src.absolute()), "frames": n, "width": width,
            "height": height, "full_width": full[1], "full_height": full[0], "downscale": factor,
            "fps": float(info.fps or 25), "settings": asdict(settings),
            "sharpness": meter.values().tolist(), "laplacian": meter.laplacian,
            "timing": {"decode_sharpness_s": time.perf_counter() - t_start - align_s, "align_flows_s": align_s}}
    atomic_write_text(folder / "analysis.json", json.dumps(meta))


def _drain(frames: list[Frame]) -> Iterator[Frame]:
    """The list's frames, in order, each dropped from it as it is given (so none is held after its turn)."""
    while frames:
        yield frames.pop(0)


def _label_pass(folder: Path, partner: np.ndarray, settings: AnalysisSettings, progress: bool) -> None:
    """Flow and mask of each frame's label (from the working-scale luma written by the decode pass)."""
    flow = settings.flow(settings.label_scale)
    grey = NpyRows(folder / "grey.npy")
    n, h, w = grey.shape
    lf = NpyRows.create(folder / "label_flow.npy", (n, h, w, 2), np.float16)
    lm = NpyRows.create(folder / "label_mask.npy", (n, h, w), np.uint8)
    bar = progress_bar(n, "analyse (labels)", progress)
    try:
        for i, j in enumerate(partner):
            if j == i:
                lm[i] = 255
            elif j >= 0:
                gi, gj = np.asarray(grey[i]), np.asarray(grey[j])
                f_ij, f_ji = flow.flow_pairs([(gi, gj), (gj, gi)])
                lf[i] = f_ij
                lm[i] = to_u8(label_mask(gi, gj, f_ij, f_ji, settings.occlusion_slope, settings.uncertainty_threshold))
            bar.update(1)
    finally:
        bar.close()
    for a in (grey, lf, lm):
        a.close()
