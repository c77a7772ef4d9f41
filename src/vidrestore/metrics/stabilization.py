"""Stabilization metrics: stability score, path jitter, cropping ratio, distortion, ITF.

The camera path of a video is read from its frames (`vidrestore.flow.motion`: the similarity
between consecutive frames, chained), so the same measures apply to any stabilizer's output and
to its input.

* stability score (Liu et al. 2013): the share of the camera path's spectral energy in its
  lowest frequencies (FFT bins 1-5 of the path's translation magnitude and of its rotation
  angle, DC left out, over the half spectrum), averaged over translation and rotation, as the
  evaluation code of later papers computes it (e.g. DIFRINT, DUT). 1 = all motion is slow;
  paths are taken about the frame centre;
* path jitter: the energy of the camera path above `cutoff_hz` (1 Hz: hand tremor and walking
  bounce lie above, deliberate pans and zooms below), the mean squared displacement in pixels
  of a 4th-order zero-phase Butterworth high-pass of shift x, y, and of rotation and log-scale
  times the frame's half diagonal (how far they move its corners); `jitter_rms` is its square root;
* cropping ratio (Liu et al.): per frame, 1 / scale of the homography from input to output frame
  (ORB matches, RANSAC), averaged and capped at 1; 1 = nothing cropped. Its complement is the
  share of each side lost (15 % crop = ratio 0.85);
* distortion (Liu et al.): per frame, the ratio of the smaller to the larger eigenvalue of that
  homography's linear part; the worst frame's value (1 = shapes kept);
* ITF, inter-frame transformation fidelity: mean PSNR (luma) between consecutive frames; a
  steadier video has consecutive frames that agree more.

Temporal consistency (flicker, per-frame processing) is the warping error of
`vidrestore.metrics.temporal`.

References:
    Liu, Yuan, Tan, Sun, "Bundled camera paths for video stabilization", SIGGRAPH 2013.
    Morimoto, Chellappa, "Evaluation of image stabilization algorithms", ICASSP 1998 (ITF).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow.estimators import to_grey_u8
from ..flow.motion import frame_motions
from .fidelity import psnr
from .temporal import highpass

DEFAULT_CUTOFF_HZ = 1.0
MIN_FRAMES = 12   # the path filters need this many frames
MIN_SIDE = 16     # smaller frames hold no features or flow to match


def _homogeneous(m: np.ndarray) -> np.ndarray:
    out = np.zeros((*m.shape[:-2], 3, 3))
    out[..., :2, :] = m
    out[..., 2, 2] = 1.0
    return out


def path_parameters(motions: np.ndarray, width: int, height: int) -> np.ndarray:
    """The camera path C_t = F_1 ... F_t (motions: (N, 2, 3), frame t -> t-1) as (N, 4).

    Columns: x, y (pixels: where the frame centre of frame t lies in frame 0), rotation angle
    (radians) and log-scale.
    """
    c = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    path = np.eye(3)
    out = np.empty((len(motions), 4))
    for t, m in enumerate(_homogeneous(np.asarray(motions, dtype=np.float64))):
        if t:
            path = path @ m
        centre = path @ c
        out[t] = (centre[0] - c[0], centre[1] - c[1], np.arctan2(path[1, 0], path[0, 0]),
                  np.log(np.hypot(path[0, 0], path[1, 0])))
    out[:, 2] = np.unwrap(out[:, 2])
    return out


def stability_score(params: np.ndarray) -> tuple[float, float, float]:
    """(mean, translation, rotation) low-frequency energy shares of a path (see the module docstring)."""
    def share(signal: np.ndarray) -> float:
        energy = np.abs(np.fft.fft(signal)) ** 2
        energy = energy[1:][: (len(energy) - 1) // 2]
        total = energy.sum()
        return float(energy[:5].sum() / total) if total > 0 else 1.0

    if len(params) < 12:
        raise VidrestoreError(f"a stability score needs at least 12 frames, not {len(params)}")
    s_t, s_r = share(np.hypot(params[:, 0], params[:, 1])), share(np.degrees(params[:, 2]))
    return (s_t + s_r) / 2, s_t, s_r


def path_jitter(params: np.ndarray, fps: float, width: int, height: int, cutoff_hz: float = DEFAULT_CUTOFF_HZ) -> float:
    """Mean squared high-frequency displacement (pixels^2) of a camera path (see the module docstring)."""
    radius = np.hypot(width, height) / 2
    high = highpass(params * np.array([1.0, 1.0, radius, radius]), fps, cutoff_hz)
    return float(np.mean(np.sum(high ** 2, axis=1)))


def _input_to_output(orb: cv2.ORB, matcher: cv2.BFMatcher, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    ka, da = orb.detectAndCompute(a, None)
    kb, db = orb.detectAndCompute(b, None)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return None
    good = [m for m, n in (p for p in matcher.knnMatch(da, db, k=2) if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < 8:
        return None
    src = np.float32([ka[m.queryIdx].pt for m in good])
    dst = np.float32([kb[m.trainIdx].pt for m in good])
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    return h


def crop_and_distortion(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> tuple[float, float, float]:
    """(mean cropping ratio, worst frame's cropping ratio, worst distortion) of outputs against their inputs."""
    orb = cv2.ORB_create(2000, edgeThreshold=15, patchSize=15)  # the default 31 px border leaves small frames few points
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    crops, distortions = [], []
    for a, b in zip(inputs, outputs):
        h = _input_to_output(orb, matcher, to_grey_u8(a), to_grey_u8(b))
        if h is None:
            continue
        crops.append(min(1.0, 1.0 / float(np.hypot(h[0, 0], h[0, 1]))))
        ev = np.sort(np.abs(np.linalg.eigvals(h[:2, :2])))
        distortions.append(float(ev[0] / ev[1]) if ev[1] > 0 else 0.0)
    if not crops:
        raise VidrestoreError("no frame of the output could be matched to its input (cropping ratio, distortion)")
    return float(np.mean(crops)), float(np.min(crops)), float(np.min(distortions))


def _pair_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return min(psnr(a, b, channel="y"), 100.0)  # identical frames (film's repeated frames) count as 100 dB


def itf(frames: Iterable[np.ndarray]) -> float:
    """Inter-frame transformation fidelity: mean luma PSNR (dB) of consecutive frames."""
    values, prev = [], None
    for f in frames:
        if prev is not None:
            values.append(_pair_psnr(prev, f))
        prev = f
    if not values:
        raise VidrestoreError("ITF needs at least two frames")
    return float(np.mean(values))


@dataclass(frozen=True)
class PathScores:
    """Stability, jitter and ITF of one video."""

    stability: float
    stability_translation: float
    stability_rotation: float
    jitter: float
    jitter_rms: float
    itf: float


@dataclass(frozen=True)
class StabilizationReport:
    """A stabilized video against its input."""

    output: PathScores
    input: PathScores
    cropping_ratio: float
    cropping_ratio_min: float
    distortion: float
    cutoff_hz: float

    @property
    def jitter_reduction(self) -> float:
        """1 - jitter(output) / jitter(input): the share of high-frequency path energy removed."""
        return 1.0 - self.output.jitter / self.input.jitter if self.input.jitter > 0 else 0.0

    @property
    def crop(self) -> float:
        """Share of each side cropped on average, 1 - cropping ratio."""
        return 1.0 - self.cropping_ratio

    def to_dict(self) -> dict:
        return {**asdict(self), "jitter_reduction": self.jitter_reduction, "crop": self.crop}


def path_scores(frames: Iterable[np.ndarray], fps: float, cutoff_hz: float = DEFAULT_CUTOFF_HZ) -> PathScores:
    """Stability, jitter and ITF of a frame sequence (float RGB), in one streamed pass."""
    size: list[int] = []
    itf_values: list[float] = []
    prev = None

    def watched() -> Iterable[np.ndarray]:
        nonlocal prev
        for f in frames:
            if not size:
                size.extend(f.shape[1::-1])
            if prev is not None:
                itf_values.append(_pair_psnr(prev, f))
            prev = f
            yield f

    motions, _ = frame_motions(watched())
    if len(motions) < MIN_FRAMES:
        raise VidrestoreError(f"stabilization metrics need at least {MIN_FRAMES} frames, not {len(motions)}")
    params = path_parameters(motions, *size)
    jitter = path_jitter(params, fps, *size, cutoff_hz)
    return PathScores(*stability_score(params), jitter, float(np.sqrt(jitter)), float(np.mean(itf_values)))


def evaluate_stabilization(output: str | os.PathLike, input: str | os.PathLike,
                           cutoff_hz: float = DEFAULT_CUTOFF_HZ) -> StabilizationReport:
    """Every stabilization metric of a stabilized video `output` against the `input` it came from."""
    from ..io import VideoReader, probe

    out_info, in_info = probe(output), probe(input)
    for path, info in ((output, out_info), (input, in_info)):
        if min(info.width, info.height) < MIN_SIDE or info.frame_count < MIN_FRAMES:
            raise VidrestoreError(f"stabilization metrics need at least {MIN_FRAMES} frames of at least {MIN_SIDE}x{MIN_SIDE} "
                                  f"pixels; this video has {info.frame_count} of {info.width}x{info.height}", path)
    if out_info.frame_count != in_info.frame_count:
        raise VidrestoreError(f"{out_info.frame_count} frames here but {in_info.frame_count} in the input {input}", output)
    fps = float(in_info.fps or 25)
    scores = [path_scores((f.rgb for f in VideoReader(p, info).frames()), fps, cutoff_hz)
              for p, info in ((output, out_info), (input, in_info))]
    crop = crop_and_distortion((f.rgb for f in VideoReader(input, in_info).frames()),
                               (f.rgb for f in VideoReader(output, out_info).frames()))
    return StabilizationReport(scores[0], scores[1], *crop, cutoff_hz)
