"""Training samples: random crops of a video's frames, their inputs, labels and masks.

A sample is centred on a frame i that has a label. Its window holds frames i-k..i+k (repeated at
the video's ends); for a window model they are warped onto frame i's grid with the cached
consecutive flows and come with the fusion prior (`vidrestore.selfhvd.window`), for a
recurrent model they stay in place and come with their flows. Labels come from
`VideoAnalysis.label` (the aligned sharp frame and its mask).

Random Sharp Clues Removal (RSCR, SelfHVD's SEVD): each sharp frame of the window is replaced,
with probability `rscr_prob`, by its nearest non-sharp neighbour (within `RSCR_REACH` frames)
warped onto it, so the network must deblur rather than copy the sharp frames around it; labels
stay those of the original frames. The un-degraded input is kept too, for the frozen models.

Ren et al.'s recipe ("fitting to test data") instead centres samples on sharp frames and blurs
every input frame with its own random motion kernel (`vidrestore.synth.kernels`); the label is
the sharp frame itself; the fusion prior compares the blurred crops' own sharpness.

A GPU trains faster than one process draws crops, so batches can be drawn by background
processes instead (`loader_batches`), each with its own random stream.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..metrics.blur import laplacian_variance
from ..synth.kernels import random_motion_kernel
from ..util.threads import thread_map
from .analysis import VideoAnalysis
from .window import fusion_prior, warp_onto, window_input

RSCR_REACH = 3
FEEDER_WAIT = 5.0   # seconds a loader process waits at its exit for its last batch to leave


@dataclass
class Batch:
    """Arrays of one batch (float32, channels first; tensors when drawn by `loader_batches`).

    Attributes:
        inputs: (B, T, 3, h, w) network input (after RSCR when asked for).
        clean: (B, T, 3, h, w) the same without RSCR (None when no RSCR was applied).
        next_flow, prev_flow: (B, T-1, 2, h, w) consecutive flows (recurrent models), else None.
        prior, clean_prior: (B, T, h, w) fusion log-weights of `inputs` and `clean` (window models), else None.
        label: (B, T_out, 3, h, w); mask: (B, T_out, 1, h, w); coverage: (B, T_out) share of the
            whole frame its label covers (SIS's distortion test).
    """

    inputs: np.ndarray
    clean: np.ndarray | None
    next_flow: np.ndarray | None
    prev_flow: np.ndarray | None
    prior: np.ndarray | None
    clean_prior: np.ndarray | None
    label: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray


@dataclass(frozen=True)
class Draw:
    """One sample's random choices: the video, the centre frame, the crop's box (y0, y1, x0, x1), the
    window's frames, what each position shows after RSCR, and Ren et al.'s blur kernel of each position."""

    video: int
    centre: int
    box: tuple[int, int, int, int]
    window: list[int]
    sources: list[int]
    kernels: list[np.ndarray]


def window_indices(i: int, radius: int, count: int) -> list[int]:
    """Frames i-radius..i+radius, clamped to the video (the pipeline's convention)."""
    return [min(max(i + d, 0), count - 1) for d in range(-radius, radius + 1)]


def _blurry_neighbour(a: VideoAnalysis, t: int) -> int | None:
    for d in range(1, RSCR_REACH + 1):
        for u in (t - d, t + d):
            if 0 <= u < a.count and not a.selection.sharp[u]:
                return u
    return None


class Sampler:
    """Draws batches from one or several analysed videos.

    Args:
        analyses: the videos (each sampled in proportion to its number of labelled frames).
        radius, aligned_input, outputs: the model's (see `vidrestore.models.registry`).
        crop: side of the square crops (cut to the smallest video and to a multiple of 8).
        recipe: "selfhvd" (aligned sharp labels) or "ren" (synthetic blur of sharp frames).
        rng: the random generator (its state is part of a training checkpoint).
    """

    def __init__(self, analyses: list[VideoAnalysis], radius: int, aligned_input: bool, outputs: str, crop: int,
                 recipe: str, rng: np.random.Generator, kernel_length: float = 15.0):
        self.analyses, self.radius, self.aligned_input, self.outputs = analyses, radius, aligned_input, outputs
        self.crop, self.recipe, self.rng, self.kernel_length = crop, recipe, rng, kernel_length
        if recipe == "ren":
            self.centres = [np.flatnonzero(a.selection.sharp) for a in analyses]
        else:
            self.centres = [np.flatnonzero(a.partner >= 0) for a in analyses]
        weights = np.array([len(c) for c in self.centres], np.float64)
        if weights.sum() == 0:
            raise ValueError("no labelled frames to train on")
        self.weights = weights / weights.sum()
        self.crop_h = min([crop] + [a.height for a in analyses]) // 8 * 8
        self.crop_w = min([crop] + [a.width for a in analyses]) // 8 * 8

    def _box(self, a: VideoAnalysis) -> tuple[int, int, int, int]:
        ch, cw = self.crop_h, self.crop_w
        y0 = int(self.rng.integers(0, a.height - ch + 1))
        x0 = int(self.rng.integers(0, a.width - cw + 1))
        return y0, y0 + ch, x0, x0 + cw

    def _rscr(self, a: VideoAnalysis, idx: list[int], rscr_prob: float) -> list[int]:
        """The window's sources after Random Sharp Clues Removal."""
        sources = list(idx)
        for n, t in enumerate(idx):
            if a.selection.sharp[t] and self.rng.random() < rscr_prob:
                u = _blurry_neighbour(a, t)
                if u is not None:
                    sources[n] = u
        return sources

    def _inputs(self, a: VideoAnalysis, i: int, idx: list[int], sources: list[int], box) -> tuple[np.ndarray, np.ndarray | None]:
        """The network input for a window whose positions show `sources` (and the fusion prior, window models)."""
        if self.aligned_input:
            return window_input(a, i, sources, self.radius, box, a.frames.item)
        return np.stack([warp_onto(a, t, u, a.frames.item(u), box) for t, u in zip(idx, sources)]), None

    def draw(self, rscr_prob: float = 0.0) -> Draw:
        """The random choices of one sample, drawn from the sampler's generator in a fixed order."""
        v = int(self.rng.choice(len(self.analyses), p=self.weights))
        a = self.analyses[v]
        i = int(self.rng.choice(self.centres[v]))
        box = self._box(a)
        idx = window_indices(i, self.radius, a.count)
        kernels, sources = [], idx
        if self.recipe == "ren":
            kernels = [random_motion_kernel(self.rng, self.kernel_length) for _ in idx]
        elif rscr_prob > 0:
            sources = self._rscr(a, idx, rscr_prob)
        return Draw(v, i, box, idx, sources, kernels)

    def build(self, d: Draw) -> dict:
        """The arrays of the sample `d` describes (no randomness: samples can be built on any thread)."""
        a, i, box, idx = self.analyses[d.video], d.centre, d.box, d.window
        clean, clean_prior = self._inputs(a, i, idx, idx, box)
        inputs, prior, degraded = clean, clean_prior, False
        if self.recipe == "ren":
            inputs = np.stack([cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT) for x, k in zip(clean, d.kernels)])
            if self.aligned_input:
                sharpness = {t: laplacian_variance(x) for t, x in zip(idx, inputs)}
                prior = fusion_prior(a, i, idx, self.radius, box, list(inputs), sharpness)
        elif d.sources != idx:
            inputs, prior = self._inputs(a, i, idx, d.sources, box)
            degraded = True
        targets = [i] if self.outputs == "centre" else idx
        labels, masks, cover = [], [], []
        for t in targets:
            if self.recipe == "ren":
                labels.append(clean[idx.index(t)] if self.outputs == "all" else clean[self.radius])
                masks.append(np.full((box[1] - box[0], box[3] - box[2]), float(a.selection.sharp[t]), np.float32))
            else:
                lab, m = a.label(t, box)
                labels.append(lab)
                masks.append(m)
            cover.append(1.0 if a.partner[t] == t else a.label_coverage(t))
        out = {"inputs": inputs, "clean": clean if degraded else None, "prior": prior,
               "clean_prior": clean_prior if degraded else None,
               "label": np.stack(labels), "mask": np.stack(masks)[:, None], "coverage": np.array(cover, np.float32)}
        if not self.aligned_input:
            out["next_flow"], out["prev_flow"] = a.consecutive_flows(box, idx)
        return out

    def sample(self, rscr_prob: float = 0.0) -> dict:
        return self.build(self.draw(rscr_prob))

    def batch(self, size: int, rscr_prob: float = 0.0) -> Batch:
        draws = [self.draw(rscr_prob) for _ in range(size)]
        samples = thread_map(self.build, draws)  # NumPy and OpenCV on small crops: most of it one core's work
        chw = lambda x: np.ascontiguousarray(np.moveaxis(x, -1, -3))  # noqa: E731 - (..., h, w, c) -> (..., c, h, w)
        stack = lambda k: chw(np.stack([s[k] for s in samples]))  # noqa: E731
        clean = clean_prior = None
        if any(s["clean"] is not None for s in samples):
            clean = chw(np.stack([s["clean"] if s["clean"] is not None else s["inputs"] for s in samples]))
            if self.aligned_input:
                clean_prior = np.stack([s["clean_prior"] if s["clean"] is not None else s["prior"] for s in samples])
        flows = (stack("next_flow"), stack("prev_flow")) if not self.aligned_input else (None, None)
        prior = np.stack([s["prior"] for s in samples]) if self.aligned_input else None
        return Batch(stack("inputs"), clean, flows[0], flows[1], prior, clean_prior, stack("label"),
                     np.ascontiguousarray(np.stack([s["mask"] for s in samples])),
                     np.stack([s["coverage"] for s in samples]))


class _Batches(torch.utils.data.IterableDataset):
    """Endless batches drawn in a DataLoader worker from the analyses in `folders` (opened there)."""

    def __init__(self, folders: list, options: dict, size: int, seed: list[int], rscr_prob):
        super().__init__()
        self.folders, self.options, self.size, self.seed, self.rscr_prob = folders, options, size, seed, rscr_prob

    def __iter__(self) -> Iterator[Batch]:
        from .analysis import VideoAnalysis

        cv2.setNumThreads(1)
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([*self.seed, worker.id if worker is not None else 0])
        sampler = Sampler([VideoAnalysis(f) for f in self.folders], rng=rng, **self.options)
        while True:
            batch = sampler.batch(self.size, self.rscr_prob.value)
            # as tensors, which reach the training process through shared memory; arrays would be
            # pickled through a pipe, which for batches of tens of megabytes bounds the step rate
            yield Batch(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in vars(batch).items()})


def _join_feeder() -> None:
    for thread in threading.enumerate():
        if thread.name == "QueueFeederThread":   # multiprocessing.Queue's, sending the batches
            thread.join(FEEDER_WAIT)


def _wait_for_feeder_at_exit(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: a loader process, told to stop, leaves its last batch to its queue's
    feeder thread without waiting for it, and the interpreter's shutdown then stops that thread where it
    shares the batch's tensors inside PyTorch's C++ code, which aborts the process ("terminate called
    without an active exception", "DataLoader worker ... killed by signal: Aborted"). So it waits for
    the thread at exit, before the shutdown begins."""
    atexit.register(_join_feeder)


def loader_batches(sampler: Sampler, size: int, workers: int, seed: list[int]) -> tuple[Iterator[Batch], object]:
    """Batches like `sampler.batch(size, p)` drawn ahead by `workers` processes, and the shared
    value p (the RSCR probability: set it to change what the batches drawn from then on get).

    Each worker draws from the stream (*seed, worker number); the batches already drawn ahead
    (four a worker) keep the probability they were drawn with.
    """
    ctx = multiprocessing.get_context("spawn")  # a forked child hangs in OpenCV's inherited thread pool
    rscr_prob = ctx.Value("d", 0.0)
    options = dict(radius=sampler.radius, aligned_input=sampler.aligned_input, outputs=sampler.outputs, crop=sampler.crop,
                   recipe=sampler.recipe, kernel_length=sampler.kernel_length)
    data = _Batches([a.dir for a in sampler.analyses], options, size, seed, rscr_prob)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=workers, prefetch_factor=4,
                                         multiprocessing_context=ctx, persistent_workers=True,
                                         worker_init_fn=_wait_for_feeder_at_exit)
    return iter(loader), rscr_prob
