"""Flow estimators (OpenCV DIS and Farneback) behind one interface, built by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io.colour import luma
from ..util.threads import thread_map, workers_for
from .warp import resize_field


def to_grey_u8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] (or grey) to 8-bit BT.601 luma, the input OpenCV's flow needs."""
    return cv2.convertScaleAbs(luma(rgb), alpha=255.0)


MIN_SIDE = 16  # smallest side OpenCV's DIS accepts is 12 or more, depending on the other side
MATCH_TOLERANCE = 1.05  # `match_blur` leaves a pair whose gradient energies are within this ratio as it is
MATCH_MAX_SIGMA = 6.0   # the widest Gaussian `match_blur` applies (working-scale pixels)
MATCH_STEPS = 10        # bisection steps for its sigma
MATCH_SMOOTHING = 1.0   # then both images are smoothed by this times that sigma (README, "Deblurring")


def gradient_energy(grey: np.ndarray) -> float:
    """Mean squared Sobel gradient of an image: the detail blur takes away."""
    g = np.asarray(grey, np.float32)
    return float(np.mean(cv2.Sobel(g, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_32F, 0, 1) ** 2))


def match_blur(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair with its sharper image blurred by the Gaussian that brings its gradient energy down to
    the other's (bisection on the Gaussian's sigma), then both smoothed by `MATCH_SMOOTHING` times
    that sigma.

    Flow from a motion-blurred frame to a sharp one compares a smeared edge with a crisp one, and
    the estimate is off where they differ in shape; a Gaussian is symmetric, so it moves no edge
    while it makes the two alike. The blurrier the pair, the coarser the detail the flow can
    match, hence the smoothing that grows with it (README, "Deblurring": the window's alignment).
    """
    ea, eb = gradient_energy(a), gradient_energy(b)
    if max(ea, eb) <= MATCH_TOLERANCE * min(ea, eb):
        return a, b
    sharp, target = (a, eb) if ea > eb else (b, ea)
    lo, hi = 0.0, MATCH_MAX_SIGMA
    for _ in range(MATCH_STEPS):
        mid = (lo + hi) / 2
        if gradient_energy(cv2.GaussianBlur(sharp, (0, 0), mid)) > target:
            lo = mid
        else:
            hi = mid
    blurred = cv2.GaussianBlur(sharp, (0, 0), hi)
    a, b = (blurred, b) if ea > eb else (a, blurred)
    return cv2.GaussianBlur(a, (0, 0), MATCH_SMOOTHING * hi), cv2.GaussianBlur(b, (0, 0), MATCH_SMOOTHING * hi)


@dataclass
class FlowEstimator:
    """Computes dense flow between two frames at a working scale, returned at full resolution.

    Attributes:
        name: registry name.
        scale: working scale (0.5 computes flow at half size; the result is upsampled and its
            vectors multiplied by 1/scale).
        params: estimator settings (see each factory).
        match_blur: blur the sharper image of each pair to the other's sharpness first (`match_blur`).
    """

    name: str
    scale: float = 1.0
    params: dict = field(default_factory=dict)
    _fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    _clones: list[FlowEstimator] = field(default_factory=list, repr=False, compare=False)
    match_blur: bool = False

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """The estimator's input for a frame (grey 8-bit at the working scale); reuse it across pairs."""
        grey = to_grey_u8(rgb)
        if self.scale != 1.0:
            h, w = grey.shape
            grey = cv2.resize(grey, (max(8, round(w * self.scale)), max(8, round(h * self.scale))), interpolation=cv2.INTER_AREA)
        return grey

    def flow_prepared(self, a: np.ndarray, b: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Flow a -> b from prepared inputs, at working scale, or resized to `size` = (H, W) when given.

        Inputs smaller than `MIN_SIDE` on a side (which OpenCV's estimators refuse) are padded by
        repeating their edges, and the flow is cropped back.
        """
        if self.match_blur:
            a, b = match_blur(a, b)
        h, w = a.shape[:2]
        if min(h, w) < MIN_SIDE:
            pad = lambda x: cv2.copyMakeBorder(x, 0, max(0, MIN_SIDE - h), 0, max(0, MIN_SIDE - w), cv2.BORDER_REPLICATE)  # noqa: E731
            flow = np.ascontiguousarray(self._fn(pad(a), pad(b))[:h, :w])
        else:
            flow = self._fn(a, b)
        if size is not None and flow.shape[:2] != size:
            flow = resize_field(flow, size, is_flow=True)
        return flow

    def flow_pairs(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """`flow_prepared` of each (a, b) pair, computed by worker threads, one per thread OpenCV may use
        (`cv2.getNumThreads()`: the cores unless set lower) up to the number of pairs, each with its own
        copy of the estimator (OpenCV's estimators keep per-call state and release the GIL while they
        work). The flows are those computed one at a time; on two cores DIS's own parallelism leaves
        room that a second pair at once fills."""
        workers = workers_for(len(pairs))
        while len(self._clones) < workers - 1:
            self._clones.append(_from_config(self.config()))
        estimators = [self, *self._clones[:workers - 1]]

        def work(w: int) -> list[np.ndarray]:
            return [estimators[w].flow_prepared(a, b, size) for a, b in pairs[w::workers]]

        parts = thread_map(work, range(workers))
        return [parts[n % workers][n // workers] for n in range(len(pairs))]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow a -> b (H, W, 2) in full-resolution pixels, for float RGB frames a and b."""
        return self.flow_prepared(self.prepare(a), self.prepare(b), a.shape[:2])

    def config(self) -> dict:
        return {"name": self.name, "scale": self.scale, **self.params, **({"match_blur": True} if self.match_blur else {})}

    def __reduce__(self):
        """Pickled as its settings and rebuilt by the registry in the receiving process (the OpenCV estimator it
        holds cannot be pickled): stages holding one travel to `batch`'s worker processes."""
        return _from_config, (self.config(),)


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _dis(scale: float = 1.0, preset: str = "medium", finest_level: int | None = None) -> FlowEstimator:
    """OpenCV DIS (Kroeger et al., ECCV 2016): fast and, at MEDIUM, accurate to ~0.2-0.5 px.

    `finest_level` is the pyramid level DIS estimates down to. The presets stop above their
    input and upsample the field bilinearly (MEDIUM at level 1, half the working size; FAST and
    ULTRAFAST at level 2), so MEDIUM at scale 1 gives the field of `finest_level=0` at scale 0.5,
    upsampled, within 1e-4 px: 0 keeps the field at the size it is estimated at.
    """
    if preset not in _DIS_PRESETS:
        raise VidrestoreError(f"unknown DIS preset {preset!r}; choose one of {', '.join(_DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    params: dict = {"preset": preset}
    if finest_level is not None:
        dis.setFinestScale(finest_level)
        params["finest_level"] = finest_level

    def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return dis.calc(a, b, None)

    return FlowEstimator("dis", scale, params, fn)


def _farneback(scale: float = 1.0, levels: int = 5, winsize: int = 15, iterations: int = 3) -> FlowEstimator:
    """OpenCV Farneback polynomial-expansion flow (Farneback, SCIA 2003): the classical reference."""

    def fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, levels, winsize, iterations, 5, 1.1, 0)

    return FlowEstimator("farneback", scale, {"levels": levels, "winsize": winsize, "iterations": iterations}, fn)


_FLOWS: dict[str, Callable[..., FlowEstimator]] = {"dis": _dis, "farneback": _farneback}
# Learned estimators (the SelfHVD authors used SEA-RAFT) would be registered here as factories
# taking `weights`, a local file (vidrestore downloads nothing), and returning a FlowEstimator
# whose function runs the network; none is implemented yet, and asking for one says so.
LEARNED = ("raft", "sea-raft")


def list_flows() -> list[str]:
    return sorted(_FLOWS)


def create_flow(name: str = "dis", match_blur: bool = False, **cfg) -> FlowEstimator:
    """Build a flow estimator by name ("dis" default, "farneback") with its settings; `match_blur`
    blurs the sharper image of each pair to the other's sharpness first (`match_blur`).

    Raises VidrestoreError for unknown names, bad settings, and the learned estimators of
    `LEARNED`, which are not implemented in this version.
    """
    if name in LEARNED:
        raise VidrestoreError(
            f"learned flow estimator {name!r} is not implemented in this version; it will take a local "
            f"weights file (create_flow({name!r}, weights='PATH')); use 'dis' (default) or 'farneback'"
        )
    if name not in _FLOWS:
        raise VidrestoreError(f"unknown flow estimator {name!r}; choose one of {', '.join(_FLOWS)}")
    try:
        estimator = _FLOWS[name](**cfg)
    except TypeError as err:
        raise VidrestoreError(f"bad settings for flow {name!r}: {err}") from None
    estimator.match_blur = bool(match_blur)
    return estimator


def _from_config(config: dict) -> FlowEstimator:
    """The estimator `FlowEstimator.config` describes."""
    settings = dict(config)
    return create_flow(settings.pop("name"), **settings)
