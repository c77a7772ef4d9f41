"""Every metric over a whole video, frame by frame: per-frame rows, a summary, CSV and JSON.

`evaluate(output_frames, reference_frames)` streams both sequences in step. The reference is
either the ground truth (`gt=True`: fidelity metrics PSNR/SSIM/LPIPS are computed) or the
unrestored input of a real clip without ground truth (`gt=False`: only drift against it, the
warping error with its flow, and the no-reference blur measures of the output).

Per-frame columns (None where not computed):

    index, label            frame number; "sharp"/"blurry" when labels are given
    psnr_rgb, psnr_y        dB (Y = BT.601 luma), after the border crop
    ssim_rgb, ssim_y        Gaussian-window SSIM, after the border crop
    lpips                   when an LPIPS model is given
    drift_px, drift_dx, drift_dy   global drift of the output against the reference
    warp_error, warp_error_ref     Lai et al. warping error of the pair (t-1, t) of the output
                                   and of the reference, flow from the reference (None at t = 0)
    blur_effect, lap_var    no-reference blur of the output (Crete et al.; Laplacian variance)
    agree_in, agree_out     sharp-frame agreement (`vidrestore.metrics.agreement`) of the
                            reference and of the output, on frames not flagged sharp, when the
                            reference's sharp frames are given (real footage without ground truth)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import VidrestoreError
from ..flow import FlowEstimator, create_flow
from ..io.paths import atomic_write_text
from .agreement import AgreementStream
from .blur import blur_effect, laplacian_variance
from .drift import drift
from .fidelity import SSIM_MIN_SIDE, psnr, ssim
from .temporal import WarpingErrorStream

if TYPE_CHECKING:  # torch is imported only when LPIPS is used
    from .lpips import LPIPS

COLUMNS = ["index", "label", "psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y", "lpips", "drift_px", "drift_dx", "drift_dy",
           "warp_error", "warp_error_ref", "blur_effect", "lap_var", "agree_in", "agree_out"]
METRICS = COLUMNS[2:]
PSNRS = ("psnr_rgb", "psnr_y")


@dataclass
class MetricsReport:
    """Per-frame rows (dicts keyed by COLUMNS) and their summary."""

    rows: list[dict]

    def summary(self) -> dict:
        """Means of every metric over all frames, and over frames labelled sharp / blurry.

        Keys: "frames", "all", "sharp", "blurry" (the last two only with labels). Each group maps
        a metric to its mean over the frames where it was computed -- PSNR over the frames that
        differ from the reference, with "identical" counting the others (inf only when every frame
        is identical: a mean with one identical frame in it would be inf whatever the rest, as
        `vidrestore metrics OUT IN` gave for a deblurred video whose sharp frames pass through
        unchanged) -- plus "warp_excess" = mean
        warp_error - mean warp_error_ref (the temporal inconsistency the output adds) and, with
        sharp-frame agreement, "agree_gain" = mean agree_out - mean agree_in (dB; > 0: the output
        is closer to the video's sharp frames than its input).
        """
        groups = {"all": self.rows}
        labels = {r["label"] for r in self.rows if r["label"]}
        for lab in ("sharp", "blurry"):
            if lab in labels:
                groups[lab] = [r for r in self.rows if r["label"] == lab]
        out: dict = {"frames": len(self.rows)}
        for name, rows in groups.items():
            means = {}
            for m in METRICS:
                vals = [r[m] for r in rows if r[m] is not None]
                if m in PSNRS and any(math.isfinite(v) for v in vals):
                    vals = [v for v in vals if math.isfinite(v)]
                means[m] = float(np.mean(vals)) if vals else None
            if means["psnr_rgb"] is not None:
                means["identical"] = sum(1 for r in rows if r["psnr_rgb"] == math.inf)
            if means["warp_error"] is not None:
                means["warp_excess"] = means["warp_error"] - means["warp_error_ref"]
            if means["agree_out"] is not None:
                means["agree_gain"] = means["agree_out"] - means["agree_in"]
            out[name] = {**means, "frames": len(rows)}
        return out

    def write_csv(self, path: str | os.PathLike) -> None:
        """Per-frame metrics as CSV (written whole or not at all)."""
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=COLUMNS)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if v is None else round(v, 6) if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_text(Path(path), buf.getvalue())

    def write_json(self, path: str | os.PathLike) -> None:
        """The summary as JSON (written whole or not at all)."""
        atomic_write_text(Path(path), json.dumps(_finite(self.summary()), indent=1))


def _finite(x):
    """JSON has no inf: identical frames' PSNR becomes the string "inf"."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def evaluate(
    output: Iterable[np.ndarray],
    reference: Iterable[np.ndarray],
    *,
    gt: bool = True,
    labels: Sequence[bool] | None = None,
    crop: int = 0,
    lpips: LPIPS | None = None,
    flow: FlowEstimator | None = None,
    sharp: Sequence[bool] | None = None,
    on_frame=None,
) -> MetricsReport:
    """Compute every metric frame by frame (see the module docstring).

    Args:
        output, reference: float RGB frames (H, W, 3) in [0, 1], the same number of each.
        gt: the reference is ground truth (fidelity metrics) rather than the degraded input.
        labels: per-frame "is sharp" flags (from synth's labels.json) for per-label means.
        crop: border pixels left out of PSNR/SSIM.
        lpips: an LPIPS model (`load_lpips`), or None to skip LPIPS.
        flow: flow estimator for drift and warping error (default DIS medium).
        sharp: per-frame "is sharp" flags of the reference: adds sharp-frame agreement.
        on_frame: called after each frame (progress).
    """
    flow = flow or create_flow("dis")
    temporal = WarpingErrorStream(flow)
    agreement = AgreementStream(sharp) if sharp is not None else None
    rows = []
    ref_it = iter(reference)
    for i, out in enumerate(output):
        ref = next(ref_it, None)
        if ref is None:
            raise VidrestoreError(f"the reference has only {i} frames; the output has more")
        if out.shape != ref.shape:
            raise VidrestoreError(f"frame {i}: output is {out.shape[1]}x{out.shape[0]}, reference {ref.shape[1]}x{ref.shape[0]}")
        row = dict.fromkeys(COLUMNS)
        row["index"] = i
        if labels is not None:
            if i >= len(labels):
                raise VidrestoreError(f"labels cover {len(labels)} frames; the video has more")
            row["label"] = "sharp" if labels[i] else "blurry"
        if gt:
            row["psnr_rgb"], row["psnr_y"] = psnr(out, ref, crop), psnr(out, ref, crop, "y")
            row["ssim_rgb"], row["ssim_y"] = ssim(out, ref, crop), ssim(out, ref, crop, "y")
            if lpips is not None:
                row["lpips"] = lpips.distance(out, ref)
        d = drift(out, ref, flow)
        row["drift_px"], row["drift_dx"], row["drift_dy"] = d.magnitude, d.dx, d.dy
        pair = temporal.update(out, ref)
        if pair is not None:
            row["warp_error"], row["warp_error_ref"] = pair
        row["blur_effect"], row["lap_var"] = blur_effect(out), laplacian_variance(out)
        rows.append(row)
        for a in agreement.update(out, ref) if agreement is not None else []:
            rows[a.index]["agree_in"], rows[a.index]["agree_out"] = a.input_psnr, a.output_psnr
        if on_frame is not None:
            on_frame()
    if next(ref_it, None) is not None:
        raise VidrestoreError(f"the reference has more frames than the output ({len(rows)})")
    if agreement is not None:
        agreement.finish()
    if labels is not None and len(labels) != len(rows):
        raise VidrestoreError(f"labels cover {len(labels)} frames; the video has {len(rows)}")
    return MetricsReport(rows)


def evaluate_videos(
    output: str | os.PathLike,
    reference: str | os.PathLike,
    *,
    gt: bool = True,
    labels: Sequence[bool] | None = None,
    crop: int = 0,
    lpips: LPIPS | None = None,
    sharp: Sequence[bool] | None = None,
    progress: bool = True,
) -> MetricsReport:
    """`evaluate` over two video files (streamed), with a progress bar."""
    from ..io import VideoReader, probe
    from ..util.progress import progress_bar

    out_info, ref_info = probe(output), probe(reference)
    if out_info.frame_count != ref_info.frame_count:
        raise VidrestoreError(f"{out_info.frame_count} frames here but {ref_info.frame_count} in the reference {reference}", output)
    if (out_info.width, out_info.height) != (ref_info.width, ref_info.height):
        raise VidrestoreError(
            f"{out_info.width}x{out_info.height} here but {ref_info.width}x{ref_info.height} in the reference {reference}", output)
    if gt and min(out_info.width, out_info.height) - 2 * crop < SSIM_MIN_SIDE:
        raise VidrestoreError(f"SSIM needs frames of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels after the --crop border; "
                              f"this video is {out_info.width}x{out_info.height} (--no-gt scores smaller frames)", output)
    bar = progress_bar(out_info.frame_count, "metrics", progress)
    try:
        return evaluate((f.rgb for f in VideoReader(output, out_info).frames()),
                        (f.rgb for f in VideoReader(reference, ref_info).frames()),
                        gt=gt, labels=labels, crop=crop, lpips=lpips, sharp=sharp, on_frame=lambda: bar.update(1))
    finally:
        bar.close()
