"""Handheld camera shake with optical image stabilization (OIS): trajectory, residual, blur extent.

The model (all angles in radians internally, rotation vectors about the camera's x = pitch,
y = yaw and z = roll axes) is sampled at `samples_per_frame` points per frame interval:

* hand motion = body/walking sway (gait at 1.4-2.0 Hz: yaw and roll at half the step
  frequency, pitch at the step frequency with a harmonic, amplitudes slowly modulated)
  + physiological tremor (band-limited noise at 8-12 Hz, in bursts) + slow framing drift
  (low-pass noise under 0.2 Hz) + a small image-plane translation from the walking bob;
* the stabilizer, a gyro-driven loop seen as a black box: it treats motion below 0.02 Hz as
  intentional (a 2nd-order high-pass recentres the actuator), tracks the rest with a
  first-order actuator bandwidth of 200 Hz and a gain `ois_strength`, and clamps the
  correction vector to its stroke limit. Translation is not sensed (gyro only);
* residual = hand rotation - correction. Within the stroke the residual is small and smooth
  (sharp frames); when the hand swings past the stroke the excess moves at the hand's speed
  (blurry frames), so sharp and blurry frames interleave as in real OIS footage
  (SelfHVD, Xu et al. 2025, Fig. 1a).

The stroke limit is not a user setting: it is calibrated per clip by bisection so that the
requested share of frames comes out sharp (blur extent under `sharp_threshold_px`). The share of
sharp frames is monotone in the stroke, because the clamped excess is a radial soft threshold,
which shrinks as the stroke grows.

Geometry: output pixel p_out = T(t) K_out R(t) K_src^-1 p_src, with K a pinhole camera of
horizontal field of view `hfov_deg`, R the residual rotation, T the residual translation, and
K_out = K_src zoomed by `zoom` about the centre so the shaken view stays inside the source
(at most 1.3x; beyond that the renderer mirrors the source at its borders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt
from scipy.spatial.transform import Rotation

from ..errors import VidrestoreError

WARMUP_S = 4.0  # simulated before the first frame so the filters have settled
OIS_RECENTRE_HZ = 0.02
OIS_BANDWIDTH_HZ = 200.0
MAX_ZOOM = 1.3


@dataclass(frozen=True)
class ShakeSettings:
    """Camera shake, stabilizer and exposure.

    Attributes:
        exposure: exposure time as a fraction of the frame interval (0.5 = 1/60 s at 30 fps).
        ois_strength: share of the in-stroke hand rotation the stabilizer cancels (0-1).
        sharp_share: requested share of sharp frames; the OIS stroke is calibrated to reach it.
        blur_strength: scale of the hand motion (1 = brisk handheld walking).
        sharp_threshold_px: blur extent (output pixels) under which a frame is labelled sharp
            (the README's "Measured design choices" says why 0.4 px).
        hfov_deg: horizontal field of view of the camera (a phone main camera: about 70 degrees).
        samples_per_frame: trajectory samples per frame interval (at least 16).
        seed: random seed; the same seed and settings give the same trajectory.
    """

    exposure: float = 0.6
    ois_strength: float = 0.99
    sharp_share: float = 0.35
    blur_strength: float = 1.0
    sharp_threshold_px: float = 0.4
    hfov_deg: float = 70.0
    samples_per_frame: int = 32
    seed: int = 0

    def check(self) -> None:
        if not 0 < self.exposure <= 1:
            raise VidrestoreError(f"exposure must be in (0, 1] of the frame interval, not {self.exposure}")
        if not 0 <= self.ois_strength <= 1:
            raise VidrestoreError(f"OIS strength must be in [0, 1], not {self.ois_strength}")
        if not 0 <= self.sharp_share <= 1:
            raise VidrestoreError(f"sharp share must be in [0, 1], not {self.sharp_share}")
        if self.blur_strength <= 0:
            raise VidrestoreError(f"blur strength must be positive, not {self.blur_strength}")
        if self.samples_per_frame < 16:
            raise VidrestoreError(f"need at least 16 trajectory samples per frame interval, not {self.samples_per_frame}")
        if not 10 <= self.hfov_deg <= 150:
            raise VidrestoreError(f"field of view must be 10-150 degrees, not {self.hfov_deg}")


@dataclass
class HandMotion:
    """Hand motion and the stabilizer's command, sampled uniformly from t0 at rate fs.

    Attributes:
        t: sample times in seconds (frame i spans [i/fps, (i+1)/fps)).
        rotation: (N, 3) hand rotation vector (pitch, yaw, roll) in radians.
        command: (N, 3) stabilizer command before the stroke clamp, radians.
        translation: (N, 2) image-plane translation of the walking bob, in source pixels.
    """

    t: np.ndarray
    rotation: np.ndarray
    command: np.ndarray
    translation: np.ndarray


def _lowpass_noise(rng: np.random.Generator, n: int, fs: float, cutoff: float, dims: int) -> np.ndarray:
    """White noise low-passed (4th-order Butterworth) and scaled to unit RMS per column."""
    x = sosfilt(butter(4, cutoff, "lowpass", fs=fs, output="sos"), rng.standard_normal((n, dims)), axis=0)
    return x / (x.std(axis=0, keepdims=True) + 1e-12)


def hand_motion(n_frames: int, fps: float, focal_px: float, s: ShakeSettings) -> HandMotion:
    """Simulate the hand's rotation and translation and the stabilizer's command (seeded)."""
    rng = np.random.default_rng([s.seed, 0x5AE])
    fs = fps * s.samples_per_frame
    n0 = int(round(WARMUP_S * fs))
    n = n0 + (n_frames + 1) * s.samples_per_frame + 1
    t = (np.arange(n) - n0) / fs
    deg = np.pi / 180 * s.blur_strength

    # Walking: one gait frequency, phase jitter, slowly varying amplitude per axis.
    gait = rng.uniform(1.4, 2.0)
    phase = 2 * np.pi * gait * t + 0.6 * _lowpass_noise(rng, n, fs, 0.2, 1)[:, 0]
    env = 1 + 0.35 * _lowpass_noise(rng, n, fs, 0.3, 3)
    p = rng.uniform(0, 2 * np.pi, 6)
    walk = np.stack([
        3.2 * (np.sin(phase + p[0]) + 0.3 * np.sin(2 * phase + p[1])),   # pitch: bob per step
        2.4 * np.sin(phase / 2 + p[2]),                                   # yaw: sway per stride
        0.7 * np.sin(phase / 2 + p[3]),                                   # roll
    ], axis=1) * env
    # Tremor: 8-12 Hz band, in bursts.
    band = sosfilt(butter(2, (8.0, 12.0), "bandpass", fs=fs, output="sos"), rng.standard_normal((n, 3)), axis=0)
    band /= band.std(axis=0, keepdims=True) + 1e-12
    bursts = np.clip(1 + 0.6 * _lowpass_noise(rng, n, fs, 0.5, 1), 0.2, None)
    tremor = band * bursts * np.array([0.12, 0.12, 0.06])
    drift = _lowpass_noise(rng, n, fs, 0.2, 3) * np.array([0.6, 0.6, 0.2])
    rotation = (walk + tremor + drift) * deg

    bob = 0.002 * focal_px * s.blur_strength
    translation = np.stack([bob * np.sin(phase / 2 + p[4]), bob * np.sin(phase + p[5])], axis=1)

    recentred = sosfilt(butter(2, OIS_RECENTRE_HZ, "highpass", fs=fs, output="sos"), rotation, axis=0)
    command = s.ois_strength * sosfilt(butter(1, OIS_BANDWIDTH_HZ, "lowpass", fs=fs, output="sos"), recentred, axis=0)
    keep = slice(n0, None)
    return HandMotion(t[keep], rotation[keep], command[keep], translation[keep])


def residual(motion: HandMotion, stroke: float) -> tuple[np.ndarray, np.ndarray]:
    """Residual rotation (N, 3) after the stroke-limited correction, and translation (N, 2)."""
    norm = np.linalg.norm(motion.command, axis=1, keepdims=True)
    correction = motion.command * np.minimum(1.0, stroke / np.maximum(norm, 1e-12))
    return motion.rotation - correction, motion.translation


def residual_at(motion: HandMotion, stroke: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residual rotation (..., 3) and translation (..., 2) at times `t` (linear interpolation of the samples)."""
    rot, trans = residual(motion, stroke)
    r = np.stack([np.interp(t, motion.t, rot[:, k]) for k in range(3)], axis=-1)
    tr = np.stack([np.interp(t, motion.t, trans[:, k]) for k in range(2)], axis=-1)
    return r, tr


def exposure_times(n_frames: int, fps: float, exposure: float, samples: int) -> np.ndarray:
    """(n_frames, samples) times at the centres of `samples` equal parts of each exposure.

    The exposure of frame i is centred on the middle of its frame interval, (i + 0.5) / fps.
    """
    mid = (np.arange(n_frames) + 0.5) / fps
    offs = ((np.arange(samples) + 0.5) / samples - 0.5) * exposure / fps
    return mid[:, None] + offs[None, :]


def camera(width: int, height: int, hfov_deg: float, zoom: float = 1.0) -> np.ndarray:
    """Pinhole intrinsics (3, 3) for a frame of this size, zoomed about the centre."""
    f = zoom * (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


def homographies(rot: np.ndarray, trans: np.ndarray, k_src: np.ndarray, k_out: np.ndarray) -> np.ndarray:
    """(..., 3, 3) maps source pixel -> output pixel for residual rotations (..., 3) and shifts (..., 2)."""
    shape = rot.shape[:-1]
    r = Rotation.from_rotvec(rot.reshape(-1, 3)).as_matrix()
    h = k_out @ r @ np.linalg.inv(k_src)
    h[:, :2, :] += trans.reshape(-1, 2)[:, :, None] * h[:, 2:3, :]
    return h.reshape(*shape, 3, 3)


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply homographies (..., 3, 3) to points (P, 2) -> (..., P, 2)."""
    ph = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
    q = np.einsum("...ij,pj->...pi", h, ph)
    return q[..., :2] / q[..., 2:3]


def probe_points(width: int, height: int) -> np.ndarray:
    """A 3x3 grid over the frame (corners, edge midpoints, centre): where blur extent is measured."""
    xs, ys = np.meshgrid([0, (width - 1) / 2, width - 1], [0, (height - 1) / 2, height - 1])
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def blur_paths(h_exp: np.ndarray, h_mid: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Where the scene point seen at `pts` in the mid-exposure output lies at each exposure sample.

    h_exp (F, S, 3, 3) and h_mid (F, 3, 3) are source -> output maps; returns (F, S, P, 2).
    """
    rel = h_exp @ np.linalg.inv(h_mid)[:, None]
    return _apply(rel, pts)


def blur_extent(paths: np.ndarray) -> np.ndarray:
    """Per frame, the longest blur streak in pixels: max over points of the path's diameter."""
    q = np.ascontiguousarray(paths.transpose(0, 2, 1, 3))  # (F, P, S, 2)
    x, y = q[..., 0], q[..., 1]
    d2 = (x[..., :, None] - x[..., None, :]) ** 2 + (y[..., :, None] - y[..., None, :]) ** 2
    return np.sqrt(d2.reshape(len(q), -1).max(axis=1))


@dataclass
class ShakePlan:
    """Everything the renderer needs: per-frame exposure and mid-exposure homographies, labels."""

    fps: float
    width: int
    height: int
    zoom: float
    stroke_rad: float
    focal_px: float
    times: np.ndarray          # (F, S) exposure sample times
    h_exp: np.ndarray          # (F, S, 3, 3) source -> output at each exposure sample
    h_mid: np.ndarray          # (F, 3, 3) source -> output at mid-exposure
    rot_exp: np.ndarray        # (F, S, 3) residual rotation, radians
    trans_exp: np.ndarray      # (F, S, 2) residual translation, output pixels
    extent: np.ndarray         # (F,) blur extent, output pixels
    sharp: np.ndarray          # (F,) bool
    motion: HandMotion
    settings: ShakeSettings

    def render_times(self, index: int, max_gap_px: float = 0.5) -> np.ndarray:
        """Exposure sample times for frame `index`, dense enough that the streak has no gap over max_gap_px."""
        n = max(self.times.shape[1], int(np.ceil(self.extent[index] / max_gap_px)) + 1)
        return exposure_times(1, self.fps, self.settings.exposure, n)[0] + index / self.fps

    def homographies_at(self, t: np.ndarray) -> np.ndarray:
        """Source -> output maps at arbitrary times (linear interpolation of the residual)."""
        return homographies(*residual_at(self.motion, self.stroke_rad, t), self.k_src, self.k_out)

    @property
    def k_src(self) -> np.ndarray:
        return camera(self.width, self.height, self.settings.hfov_deg)

    @property
    def k_out(self) -> np.ndarray:
        return camera(self.width, self.height, self.settings.hfov_deg, self.zoom)


def _evaluate(motion: HandMotion, stroke: float, times: np.ndarray, mids: np.ndarray,
              k_src: np.ndarray, k_out: np.ndarray, pts: np.ndarray):
    """Exposure and mid-exposure homographies, residual motion and blur extent for a stroke."""
    r_exp, t_exp = residual_at(motion, stroke, times)
    h_exp = homographies(r_exp, t_exp, k_src, k_out)
    h_mid = homographies(*residual_at(motion, stroke, mids), k_src, k_out)
    return h_exp, h_mid, r_exp, t_exp, blur_extent(blur_paths(h_exp, h_mid, pts))


def zoom_needed(h_exp: np.ndarray, width: int, height: int, zoom: float) -> float:
    """Smallest zoom (>= 1) keeping every exposure sample's view inside the source frame."""
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=float)
    src = _apply(np.linalg.inv(h_exp), corners).reshape(-1, 2)
    c = np.array([(width - 1) / 2, (height - 1) / 2])
    # Mapping output corners back with zoom z shrinks their offsets from the centre by z / zoom.
    reach = np.abs(src - c) / c
    return float(max(1.0, zoom * reach.max()))


def plan_shake(n_frames: int, fps: float, width: int, height: int, s: ShakeSettings) -> ShakePlan:
    """Simulate the shake, calibrate the OIS stroke to the requested sharp share, and label frames.

    Raises VidrestoreError when the requested share cannot be reached within 10 points (for
    example a sharp share of 0.9 with `ois_strength` 0: nothing stabilizes the tremor).
    """
    s.check()
    if n_frames < 1:
        raise VidrestoreError("need at least one frame")
    k_src = camera(width, height, s.hfov_deg)
    motion = hand_motion(n_frames, fps, float(k_src[0, 0]), s)
    n_exp = max(16, int(np.ceil(s.samples_per_frame * s.exposure)) + 1)
    times = exposure_times(n_frames, fps, s.exposure, n_exp)
    mids = (np.arange(n_frames) + 0.5) / fps
    pts = probe_points(width, height)
    top = float(np.linalg.norm(motion.command, axis=1).max()) * 1.001 + 1e-9

    def calibrate(zoom: float) -> float:
        """The stroke (radians) whose sharp share is closest to the target, at this zoom."""
        k_out = camera(width, height, s.hfov_deg, zoom)

        def share(stroke: float) -> float:
            return float(np.mean(_evaluate(motion, stroke, times, mids, k_src, k_out, pts)[4] < s.sharp_threshold_px))

        lo, hi = 0.0, top
        if share(hi) < s.sharp_share:
            return hi
        for _ in range(30):  # smallest stroke whose share reaches the target
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if share(mid) >= s.sharp_share else (mid, hi)
        return hi if abs(share(hi) - s.sharp_share) <= abs(share(lo) - s.sharp_share) else lo

    zoom = 1.0
    for _ in range(4):  # zoom and stroke depend on each other: grow the zoom until the view fits
        stroke = calibrate(zoom)
        h_exp = _evaluate(motion, stroke, times, mids, k_src, camera(width, height, s.hfov_deg, zoom), pts)[0]
        needed = min(MAX_ZOOM, 1.005 * zoom_needed(h_exp, width, height, zoom))
        if needed <= zoom + 1e-3:
            break
        zoom = needed
    else:
        stroke = calibrate(zoom)
    k_out = camera(width, height, s.hfov_deg, zoom)
    h_exp, h_mid, r_exp, t_exp, extent = _evaluate(motion, stroke, times, mids, k_src, k_out, pts)
    sharp = extent < s.sharp_threshold_px
    if abs(sharp.mean() - s.sharp_share) > 0.1:
        raise VidrestoreError(
            f"cannot reach a sharp share of {s.sharp_share:.2f} with these settings (got {sharp.mean():.2f}); "
            "raise the OIS strength or lower the blur strength / exposure for more sharp frames, or the reverse"
        )
    return ShakePlan(fps, width, height, zoom, stroke, float(k_out[0, 0]), times, h_exp, h_mid, r_exp,
                     t_exp, extent, sharp, motion, s)
