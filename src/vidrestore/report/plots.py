"""The report's plots: matplotlib figures rendered to PNG bytes (embedded in the HTML as base64)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from ..metrics.temporal import luminance_flicker

BEFORE, AFTER, TRUTH = "tab:red", "tab:blue", "0.3"


def _figure(draw: Callable, rows: int = 1, height: float = 2.8) -> bytes:
    """Call `draw(axes)` on a new figure of `rows` stacked axes; the figure as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=(9, height * rows), dpi=100, squeeze=False, sharex=True)
    try:
        draw(axes[:, 0] if rows > 1 else axes[0, 0])
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def sharpness_plot(sharpness: np.ndarray, sharp: np.ndarray, measure: str) -> bytes:
    """Per-frame sharpness, the frames selected as sharp marked."""
    x = np.arange(len(sharpness))

    def draw(ax):
        ax.plot(x, sharpness, color="0.4", lw=1, label=f"sharpness ({measure})")
        ax.scatter(x[sharp], sharpness[sharp], s=16, color="tab:green", zorder=3, label=f"selected sharp ({int(sharp.sum())})")
        ax.scatter(x[~sharp], sharpness[~sharp], s=8, color=BEFORE, zorder=2, label="blurry")
        if np.all(sharpness > 0):
            ax.set_yscale("log")
        ax.set_xlabel("frame")
        ax.set_ylabel("sharpness")
        ax.legend(fontsize=8, loc="best")

    return _figure(draw)


def supervision_plot(partner: np.ndarray, sharp: np.ndarray, coverage: np.ndarray) -> bytes:
    """Which sharp frame supervised each frame, and the share of its label the masks kept."""
    x = np.arange(len(partner))
    has = partner >= 0

    def draw(axes):
        ax, cov = axes
        ax.vlines(x[has & ~sharp], np.minimum(x, partner)[has & ~sharp], np.maximum(x, partner)[has & ~sharp],
                  color="0.75", lw=1)
        ax.scatter(x[has & ~sharp], partner[has & ~sharp], s=14, color=AFTER, zorder=3, label="blurry frame: its sharp source")
        ax.scatter(x[sharp], partner[sharp], s=14, color="tab:green", zorder=3, label="sharp frame (labels itself)")
        ax.set_ylabel("supervising frame")
        ax.legend(fontsize=8, loc="upper left")
        cov_x = x[~sharp]
        cov.bar(cov_x, coverage[~sharp] * 100, color=AFTER, width=0.8)
        cov.set_ylim(0, 100)
        cov.set_ylabel("label kept (%)")
        cov.set_xlabel("frame")

    return _figure(draw, rows=2, height=2.4)


def training_plot(loss_curve: list, steps: int, stage1_steps: int) -> bytes:
    """Mean training loss over each tenth of the budget; the end of stage 1 (L_rec) marked."""
    tenths = np.arange(len(loss_curve))
    values = np.array([np.nan if v is None else v for v in loss_curve], dtype=float)

    def draw(ax):
        ax.plot((tenths + 0.5) * steps / len(loss_curve), values, marker="o", color=AFTER, label="mean loss per tenth")
        if 0 < stage1_steps < steps:
            ax.axvline(stage1_steps, color="0.5", ls="--", lw=1, label="stage 1 (L_rec) ends, SEVD begins")
        ax.set_xlabel("training step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)

    return _figure(draw)


def drift_plot(drift: np.ndarray) -> bytes:
    """Per-frame global drift of the output against the input (pixels)."""

    def draw(ax):
        ax.plot(np.arange(len(drift)), drift, color=AFTER, marker=".", lw=1)
        ax.set_xlabel("frame")
        ax.set_ylabel("drift (px)")
        ax.set_ylim(bottom=0)

    return _figure(draw)


def quality_plot(quality: dict[str, np.ndarray]) -> bytes:
    """Per-frame PSNR-Y and SSIM-Y against the ground truth, of the input (when judged) and the output."""

    def draw(axes):
        for ax, metric in zip(axes, ("psnr_y", "ssim_y")):
            for side, colour, label in (("in", BEFORE, "input"), ("out", AFTER, "output")):
                values = quality.get(f"{metric} {side}")
                if values is not None:
                    finite = np.where(np.isfinite(values), values, np.nan)
                    ax.plot(np.arange(len(values)), finite, marker=".", lw=1, color=colour,
                            label=f"{label} (mean {np.nanmean(finite):.4g})")
            ax.set_ylabel(metric.replace("_y", "-Y").upper() + (" (dB)" if metric == "psnr_y" else ""))
            ax.legend(fontsize=8)
        axes[-1].set_xlabel("frame")

    return _figure(draw, rows=2, height=2.4)


def flicker_plot(luma_in: np.ndarray, luma_out: np.ndarray, fps: float) -> bytes:
    """Frame-mean luma of input and output; the RMS of its variation above 1 Hz in the legend."""
    x = np.arange(len(luma_in))

    def draw(ax):
        for values, colour, label in ((luma_in, BEFORE, "input"), (luma_out, AFTER, "output")):
            ax.plot(x, values, color=colour, lw=1, label=f"{label} (flicker above 1 Hz: {luminance_flicker(values, fps):.4f})")
        ax.set_xlabel("frame")
        ax.set_ylabel("frame-mean luma")
        ax.legend(fontsize=8)

    return _figure(draw)


def camera_plot(camera: dict[str, np.ndarray]) -> bytes:
    """Camera path before and after stabilization: x, y (pixels) and rotation (degrees) per frame."""

    def draw(axes):
        for ax, what, unit in zip(axes, ("x", "y", "rotation"), ("px", "px", "deg")):
            before, after = camera[f"{what} before"], camera[f"{what} after"]
            ax.plot(np.arange(len(before)), before, color=BEFORE, lw=1, label="camera (input)")
            ax.plot(np.arange(len(after)), after, color=AFTER, lw=1.5, label="stabilized")
            ax.set_ylabel(f"{what} ({unit})")
            ax.legend(fontsize=8)
        axes[-1].set_xlabel("frame")

    return _figure(draw, rows=3, height=2.0)


def noise_plot(intensity: list, sigma: list) -> bytes:
    """The noise measured by `denoise`: sigma (8-bit scale) against intensity, per channel (bins x R, G, B)."""
    x = np.array([[np.nan if v is None else v for v in row] for row in intensity], float)
    y = np.array([[np.nan if v is None else v for v in row] for row in sigma], float)

    def draw(ax):
        for c, (name, colour) in enumerate((("R", "tab:red"), ("G", "tab:green"), ("B", "tab:blue"))):
            ax.plot(x[:, c], y[:, c], "o-", ms=3, color=colour, label=name)
        ax.set_xlabel("intensity (0-1)")
        ax.set_ylabel("noise sigma (8-bit)")
        ax.legend(fontsize=8)

    return _figure(draw)
