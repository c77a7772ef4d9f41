"""The L1-optimal camera path LP and the Gaussian path: hand-checkable cases and the fallback."""

from __future__ import annotations

import numpy as np
import pytest

from vidrestore.errors import VidrestoreError
from vidrestore.restoration.camera_path import (
    camera_path, centred, compose, fit_window, gaussian_path, invert, l1_optimal_path, to_matrix, uncentred,
)

W, H = 201, 101          # centred half extents 100 x 50
CROP = 0.1               # window half extents 90 x 45: the window may move 10 px sideways, 5 px up/down


def _shifts(n: int, at: int, dx: float) -> np.ndarray:
    """Motions of a camera that holds still, then jumps by dx pixels between frames at-1 and at."""
    m = np.tile(np.eye(2, 3), (n, 1, 1))
    m[at, 0, 2] = dx
    return m


def _stabilized_x(motions: np.ndarray, updates: np.ndarray) -> np.ndarray:
    """Horizontal position of the stabilized path P_t = C_t B_t."""
    return compose(camera_path(motions, W, H), updates)[:, 2]


def test_similarity_algebra_round_trips():
    rng = np.random.default_rng(0)
    p = np.stack([1 + rng.normal(0, 0.05, 5), rng.normal(0, 0.05, 5), rng.normal(0, 9, 5), rng.normal(0, 9, 5)], -1)
    assert np.allclose(compose(p, invert(p)), [1, 0, 0, 0])
    assert np.allclose(centred(uncentred(p, W, H), W, H), p)
    m = uncentred(p, W, H)  # the frame centre maps as the centred shift says
    centre = np.array([(W - 1) / 2, (H - 1) / 2, 1])
    assert np.allclose(m @ centre - centre[:2], p[:, 2:])
    assert np.allclose(to_matrix(p)[:, 0, 0], p[:, 0])


def test_step_larger_than_the_window_keeps_the_minimal_jump_at_first_derivative_weight():
    """Hand-checkable: a 30 px step with 10 px of room each side. Minimising only the path's
    first derivative (its total travel), the path holds still, jumps by 30 - 2 x 10 = 10 px at
    the step and holds still again: B = +10 px before (window pushed to one edge), -10 px after."""
    m = _shifts(40, 20, 30.0)
    path = l1_optimal_path(m, W, H, CROP, weights=(1.0, 0.0, 0.0))
    assert path.solver == "l1"
    assert np.allclose(path.updates[:20, 2], 10, atol=1e-6) and np.allclose(path.updates[20:, 2], -10, atol=1e-6)
    x = _stabilized_x(m, path.updates)
    assert np.allclose(x[:20], 10, atol=1e-6) and np.allclose(x[20:], 20, atol=1e-6)
    assert np.allclose(path.updates[:, [0, 1]], [1, 0], atol=1e-9)


def test_step_inside_the_window_gives_a_still_path():
    """A 12 px step fits in 2 x 10 px of room: the optimal path is constant (zero cost), every
    frame's window inside the frame, with default weights."""
    m = _shifts(40, 20, 12.0)
    path = l1_optimal_path(m, W, H, CROP)
    x = _stabilized_x(m, path.updates)
    assert np.ptp(x) < 1e-6
    assert np.all(np.abs(path.updates[:, 2]) <= 10 + 1e-6)


def test_step_with_default_weights_is_constant_parabolic_constant():
    """With Grundmann's weights (third derivative weighted most) the 30 px step is spread into
    a smooth transition: constant, then pieces of constant acceleration, then constant again;
    the window never leaves the frame, and the path moves in one direction only."""
    m = _shifts(60, 30, 30.0)
    path = l1_optimal_path(m, W, H, CROP)
    x = _stabilized_x(m, path.updates)
    assert np.all(np.abs(path.updates[:, 2]) <= 10 + 1e-6)
    assert np.all(np.diff(x) >= -1e-6)
    third = np.abs(np.diff(x, 3)) > 1e-6
    assert third.sum() <= 4                              # a few kinks of the acceleration only
    assert np.ptp(x[:15]) < 1e-6 and np.ptp(x[-15:]) < 1e-6


def test_windows_cost_about_what_one_lp_costs():
    """300 frames of random-walk shake: two 240-frame windows (the default) against one LP."""
    rng = np.random.default_rng(3)
    m = np.tile(np.eye(2, 3), (300, 1, 1))
    m[:, :, 2] += rng.normal(0, 2, (300, 2))
    windowed = l1_optimal_path(m, 640, 360)
    whole = l1_optimal_path(m, 640, 360, window=1000)
    assert windowed.solver == whole.solver == "l1"

    def cost(updates: np.ndarray) -> float:
        p = compose(camera_path(m, 640, 360), updates) * np.array([100, 100, 1, 1])
        return sum(w * np.abs(np.diff(p, k, axis=0)).sum() for w, k in ((10, 1), (1, 2), (100, 3)))

    assert cost(windowed.updates) < 1.05 * cost(whole.updates)
    assert cost(whole.updates) < 0.2 * cost(np.tile([1.0, 0, 0, 0], (300, 1)))


def test_infeasible_lp_falls_back_to_the_gaussian_path():
    """Proximity bounds that contradict the crop window (scale >= 1.2 cannot fit a 0.9 window)."""
    m = _shifts(30, 15, 30.0)
    path = l1_optimal_path(m, W, H, CROP, min_scale=1.2, max_scale=1.3)
    assert path.solver == "gauss" and "not solved" in path.note and "nfeasible" in path.note
    assert path.updates.shape == (30, 4) and np.all(np.isfinite(path.updates))
    assert np.all(np.abs(path.updates[:, 2]) <= 10 + 1e-6)    # the fallback still fits the window
    short = l1_optimal_path(m[:3], W, H, CROP)
    assert short.solver == "gauss" and "too few" in short.note


def test_gaussian_path_smooths_and_fits_the_window():
    rng = np.random.default_rng(1)
    m = np.tile(np.eye(2, 3), (120, 1, 1))
    m[:, 0, 2] += rng.normal(0, 3, 120)
    path = gaussian_path(m, W, H, CROP, sigma=10)
    x = _stabilized_x(m, path.updates)
    raw = camera_path(m, W, H)[:, 2]
    assert np.abs(np.diff(x, 2)).mean() < 0.2 * np.abs(np.diff(raw, 2)).mean()
    assert np.all(np.abs(path.updates[:, 2]) <= 10 + 1e-6)


def test_fit_window_pulls_updates_back_inside():
    big = np.array([[1.0, 0.0, 30.0, 0.0], [0.98, 0.0, 0.0, 0.0], [1.0, 0.0, 5.0, 2.0]])
    fitted = fit_window(big, W, H, CROP)
    assert fitted[0, 2] == pytest.approx(10)
    assert fitted[1, 0] == pytest.approx(1.0)               # never shrinks the window below the budget
    assert np.allclose(fitted[2], big[2])


def test_bad_input():
    with pytest.raises(VidrestoreError, match="crop"):
        l1_optimal_path(_shifts(10, 5, 1.0), W, H, crop=1.0)
    bad = _shifts(10, 5, 1.0)
    bad[3, 0, 0] = np.nan
    with pytest.raises(VidrestoreError, match="non-finite"):
        gaussian_path(bad, W, H)
