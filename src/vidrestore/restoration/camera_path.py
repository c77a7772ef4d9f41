"""Smooth camera paths for stabilization: the L1-optimal path (an LP) and a Gaussian path.

Notation of Grundmann, Kwatra & Essa. F_t is the similarity mapping frame t onto frame t-1 (the
motion `vidrestore.flow.motion` measures), C_t = F_1 ... F_t the camera path, and B_t the update
transform that maps the crop window into frame t; the stabilized path is P_t = C_t B_t and the
output frame t shows frame t sampled at B_t (crop window coordinates). Since
P_{t+1} - P_t = C_t (F_{t+1} B_{t+1} - B_t), the LP minimises the weighted L1 norms of the
residual R_t = F_{t+1} B_{t+1} - B_t and of its first and second differences (the path's first,
second and third derivatives), which gives paths made of constant, linear and parabolic pieces:
a tripod, a steady pan, and smooth transitions between them. Constraints: the crop window's
corners, mapped by B_t, stay inside frame t (so no border ever shows), and B_t's scale stays in
[min_scale, max_scale] and its rotation part under max_rotation (proximity). With min_scale 1
the window never shrinks below the crop budget, so the crop never exceeds it.

Similarities are (a, b, tx, ty) for [[a, -b, tx], [b, a, ty]] in pixel coordinates centred on
the frame, which keeps rotation and translation decoupled and the LP well scaled.

The identity update always satisfies the constraints for valid settings, but HiGHS can still
stop without an optimum (contradictory bounds, numerical trouble); then the Gaussian path, made
to fit the crop window, is used and the result says why. Fewer than four frames have no third
derivative to minimise and use the Gaussian path too.

References:
    Grundmann, Kwatra, Essa, "Auto-directed video stabilization with robust L1 optimal camera
    paths", CVPR 2011.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import linprog

from ..errors import VidrestoreError

# Grundmann et al.'s weights of the first, second and third derivative, and of the rotation and
# scale parameters against translation.
WEIGHTS = (10.0, 1.0, 100.0)
AFFINE_WEIGHT = 100.0


@dataclass(frozen=True)
class CameraPath:
    """Per-frame update transforms and how they were found.

    Attributes:
        updates: (N, 4) similarities (a, b, tx, ty), crop-window -> frame t, centred pixels.
        solver: "l1" or "gauss".
        note: why the Gaussian path was used in place of the L1 one ("" otherwise).
    """

    updates: np.ndarray
    solver: str
    note: str = ""


def to_params(m: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affine matrices -> (..., 4) similarity parameters (the nearest similarity)."""
    return np.stack([(m[..., 0, 0] + m[..., 1, 1]) / 2, (m[..., 1, 0] - m[..., 0, 1]) / 2, m[..., 0, 2], m[..., 1, 2]], -1)


def to_matrix(p: np.ndarray) -> np.ndarray:
    """(..., 4) similarity parameters -> (..., 2, 3) matrices."""
    a, b, tx, ty = np.moveaxis(np.asarray(p, dtype=np.float64), -1, 0)
    return np.stack([np.stack([a, -b, tx], -1), np.stack([b, a, ty], -1)], -2)


def compose(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Parameters of p o q (q applied first)."""
    a1, b1, x1, y1 = np.moveaxis(p, -1, 0)
    a2, b2, x2, y2 = np.moveaxis(q, -1, 0)
    return np.stack([a1 * a2 - b1 * b2, a1 * b2 + b1 * a2, a1 * x2 - b1 * y2 + x1, b1 * x2 + a1 * y2 + y1], -1)


def invert(p: np.ndarray) -> np.ndarray:
    a, b, x, y = np.moveaxis(p, -1, 0)
    z = a * a + b * b
    ia, ib = a / z, -b / z
    return np.stack([ia, ib, -(ia * x - ib * y), -(ib * x + ia * y)], -1)


def _centre(width: int, height: int) -> np.ndarray:
    return np.array([(width - 1) / 2, (height - 1) / 2])


def centred(m: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel-coordinate matrices (..., 2, 3) -> parameters (..., 4) in frame-centred coordinates."""
    c = _centre(width, height)
    p = to_params(m)
    shift = np.einsum("...ij,j->...i", to_matrix(p)[..., :2], c) - c
    return np.concatenate([p[..., :2], p[..., 2:] + shift], -1)


def uncentred(p: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frame-centred parameters (..., 4) -> pixel-coordinate matrices (..., 2, 3)."""
    c = _centre(width, height)
    m = to_matrix(p)
    m[..., :, 2] += c - np.einsum("...ij,j->...i", m[..., :2], c)
    return m


def camera_path(motions: np.ndarray, width: int, height: int) -> np.ndarray:
    """C_t = F_1 ... F_t as centred parameters (N, 4), from motions (N, 2, 3) with motions[0] unused."""
    f = centred(motions, width, height)
    path = np.empty_like(f)
    path[0] = (1.0, 0.0, 0.0, 0.0)
    for t in range(1, len(f)):
        path[t] = compose(path[t - 1], f[t])
    return path


def _window(width: int, height: int, crop: float) -> tuple[np.ndarray, float, float]:
    """Corners (4, 2) of the centred crop window, and the frame's half extents."""
    hx, hy = (width - 1) / 2, (height - 1) / 2
    cx, cy = (1 - crop) * hx, (1 - crop) * hy
    return np.array([[-cx, -cy], [cx, -cy], [cx, cy], [-cx, cy]]), hx, hy


def _inclusion_rows(width: int, height: int, crop: float) -> tuple[np.ndarray, np.ndarray]:
    """G (16, 4), h (16,): G @ (a, b, tx, ty) <= h keeps the window's corners inside the frame."""
    corners, hx, hy = _window(width, height, crop)
    rows, rhs = [], []
    for cx, cy in corners:
        for sign in (1.0, -1.0):
            rows.append(sign * np.array([cx, -cy, 1.0, 0.0]))   # x = a cx - b cy + tx
            rhs.append(hx)
            rows.append(sign * np.array([cy, cx, 0.0, 1.0]))    # y = b cx + a cy + ty
            rhs.append(hy)
    return np.array(rows), np.array(rhs)


def _check(motions: np.ndarray, crop: float) -> None:
    if motions.ndim != 3 or motions.shape[1:] != (2, 3) or len(motions) == 0:
        raise VidrestoreError(f"motions must be (N, 2, 3) with N >= 1, not {motions.shape}")
    if not np.all(np.isfinite(motions)):
        raise VidrestoreError("motions hold non-finite values")
    if not 0 <= crop < 1:
        raise VidrestoreError(f"crop must be in [0, 1), not {crop}")


def _residual_ops(f: np.ndarray) -> list[tuple[sparse.csr_matrix, np.ndarray]]:
    """(D_k, c_k), k = 1, 2, 3: the residual's k-1-th difference is D_k @ p + c_k, p = B_0..B_{n-1} stacked.

    R_t = F_{t+1} B_{t+1} - B_t = M_{t+1} p_{t+1} + c_{t+1} - p_t (t = 0..n-2), where M is the
    linear action of F on B's parameters and c F's shift.
    """
    n = len(f)
    fa, fb, fx, fy = f[1:, 0], f[1:, 1], f[1:, 2], f[1:, 3]
    zero = np.zeros_like(fa)
    blocks = np.stack([
        np.stack([fa, -fb, zero, zero], -1), np.stack([fb, fa, zero, zero], -1),
        np.stack([zero, zero, fa, -fb], -1), np.stack([zero, zero, fb, fa], -1),
    ], -2)
    r1 = (sparse.block_diag(list(blocks), format="csr") @ sparse.eye(4 * (n - 1), 4 * n, k=4)
          - sparse.eye(4 * (n - 1), 4 * n))
    ops = [(r1.tocsr(), np.stack([zero, zero, fx, fy], -1).ravel())]
    for order in (2, 3):
        m = n - order + 1
        d = sparse.kron(sparse.eye(m - 1, m, k=1) - sparse.eye(m - 1, m), sparse.eye(4), format="csr")
        ops.append(((d @ ops[-1][0]).tocsr(), d @ ops[-1][1]))
    return ops


def _solve_window(f: np.ndarray, fixed: np.ndarray, g: np.ndarray, h: np.ndarray, weights: tuple[float, float, float],
                  affine_weight: float, bounds_b: np.ndarray):
    """One LP over frames of `f` (centred motions), the first len(fixed) updates held at `fixed`.

    Each residual is split into positive and negative parts, r = u - v with u, v >= 0, so
    |r| = u + v at the optimum and the derivative terms are equality constraints.
    """
    n = len(f)
    ops = _residual_ops(f)
    n_p = 4 * n
    sizes = [op.shape[0] for op, _ in ops]
    n_vars = n_p + 2 * sum(sizes)
    param_w = np.array([affine_weight, affine_weight, 1.0, 1.0])
    cost = np.concatenate([np.zeros(n_p)] + [w * np.tile(param_w, 2 * s // 4) for w, s in zip(weights, sizes)])
    eq, rhs, offset = [], [], n_p
    for (op, c), s in zip(ops, sizes):
        eye = sparse.eye(s)
        eq.append(sparse.hstack([op, sparse.csr_matrix((s, offset - n_p)), -eye, eye,
                                 sparse.csr_matrix((s, n_vars - offset - 2 * s))]))
        rhs.append(-c)
        offset += 2 * s
    inclusion = sparse.hstack([sparse.kron(sparse.eye(n), g), sparse.csr_matrix((len(g) * n, n_vars - n_p))])
    bounds = np.concatenate([np.tile(bounds_b, (n, 1)), np.tile([[0.0, np.inf]], (n_vars - n_p, 1))])
    if len(fixed):
        bounds[: fixed.size] = np.repeat(fixed.ravel()[:, None], 2, axis=1)
    return linprog(cost, A_ub=inclusion.tocsr(), b_ub=np.tile(h, n), A_eq=sparse.vstack(eq, format="csr"),
                   b_eq=np.concatenate(rhs), bounds=bounds, method="highs")


def l1_optimal_path(
    motions: np.ndarray,
    width: int,
    height: int,
    crop: float = 0.15,
    *,
    weights: tuple[float, float, float] = WEIGHTS,
    affine_weight: float = AFFINE_WEIGHT,
    min_scale: float = 1.0,
    max_scale: float = 1.1,
    max_rotation: float = 0.1,
    window: int = 240,
    overlap: int = 60,
    fallback_sigma: float = 15.0,
) -> CameraPath:
    """The L1-optimal update transforms (Grundmann et al. 2011), solved by HiGHS.

    Long videos are solved in windows of `window` frames that overlap by `overlap`: each window
    starts from the three updates the previous one chose there (held fixed), so the path and its
    first three derivatives join without a seam, and the work grows linearly with the length
    (on a random 2000-frame path: one LP took 35 s here, windows of 240 frames 6 s).

    Args:
        motions: (N, 2, 3) frame t -> frame t-1 similarities in pixels (motions[0] unused).
        width, height: frame size.
        crop: share of each side's length the crop window gives up (0.15: a 0.85 x 0.85 window).
        weights: weights of the path's first, second and third derivatives.
        affine_weight: weight of rotation/scale parameters against translation (pixels).
        min_scale, max_scale, max_rotation: proximity bounds on B_t's a and b parameters.
        window, overlap: frames per LP and frames shared by consecutive LPs.
        fallback_sigma: Gaussian sigma (frames) of the path used when an LP has no solution.
    """
    motions = np.asarray(motions, dtype=np.float64)
    _check(motions, crop)
    if overlap < 3 or window < overlap + 4:
        raise VidrestoreError(f"LP windows need overlap >= 3 and window >= overlap + 4 (got {window}, {overlap})")
    n = len(motions)
    if n < 4:
        return gaussian_path(motions, width, height, crop, fallback_sigma, note=f"{n} frames: too few for the LP")
    f = centred(motions, width, height)
    g, h = _inclusion_rows(width, height, crop)
    bounds_b = np.array([[min_scale, max_scale], [-max_rotation, max_rotation], [-np.inf, np.inf], [-np.inf, np.inf]])
    updates = np.empty((n, 4))
    start = 0
    while True:
        stop = min(n, start + window)
        fixed = updates[start:start + 3] if start > 0 else np.empty((0, 4))
        res = _solve_window(f[start:stop], fixed, g, h, weights, affine_weight, bounds_b)
        if res.status != 0 or res.x is None:
            return gaussian_path(motions, width, height, crop, fallback_sigma,
                                 note=f"LP for frames {start}-{stop - 1} not solved: {res.message}")
        updates[start:stop] = res.x[: 4 * (stop - start)].reshape(-1, 4)
        if stop == n:
            return CameraPath(updates, "l1")
        start = stop - overlap


def fit_window(updates: np.ndarray, width: int, height: int, crop: float) -> np.ndarray:
    """Pull each update towards the identity just enough that the crop window stays inside the frame.

    The scale is first raised to at least 1 (the window never shrinks below the crop budget);
    then B = I + s (B - I) with the largest s in [0, 1] that keeps every corner inside.
    """
    u = np.array(updates, dtype=np.float64)
    scale = np.hypot(u[:, 0], u[:, 1])
    u[:, :2] *= (np.maximum(scale, 1.0) / scale)[:, None]
    g, h = _inclusion_rows(width, height, crop)
    ident = np.array([1.0, 0.0, 0.0, 0.0])
    at_ident = g @ ident                          # (16,) all <= h for a window inside the frame
    at_u = u @ g.T                                # (N, 16)
    over = at_u > h
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.where(over, (h - at_ident) / (at_u - at_ident), 1.0)
    s = np.clip(limits.min(axis=1), 0.0, 1.0)
    return ident + s[:, None] * (u - ident)


def gaussian_path(motions: np.ndarray, width: int, height: int, crop: float = 0.15, sigma: float = 15.0,
                  note: str = "") -> CameraPath:
    """The camera path low-passed by a Gaussian of `sigma` frames, fitted into the crop window.

    Shift, rotation angle and log-scale of C_t are smoothed separately (scipy's
    `gaussian_filter1d`, ends held at the nearest value); B_t = C_t^-1 P_t, then `fit_window`.
    """
    motions = np.asarray(motions, dtype=np.float64)
    _check(motions, crop)
    if sigma <= 0:
        raise VidrestoreError(f"Gaussian sigma must be positive, not {sigma}")
    c = camera_path(motions, width, height)
    angle, log_s = np.arctan2(c[:, 1], c[:, 0]), np.log(np.hypot(c[:, 0], c[:, 1]))
    smooth = [gaussian_filter1d(x, sigma, mode="nearest") for x in (np.unwrap(angle), log_s, c[:, 2], c[:, 3])]
    s = np.exp(smooth[1])
    p = np.stack([s * np.cos(smooth[0]), s * np.sin(smooth[0]), smooth[2], smooth[3]], -1)
    return CameraPath(fit_window(compose(invert(c), p), width, height, crop), "gauss", note)
