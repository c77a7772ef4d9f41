"""Benchmark results as Markdown tables and JSON: per clip, mean over clips, blurry/sharp frames apart."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .runner import ClipResult
from .suite import Suite

# (column title, summary group, metric, format) for clips with ground truth.
GT_COLUMNS = [
    ("PSNR-Y", "all", "psnr_y", "{:.2f}"),
    ("PSNR-Y blurry", "blurry", "psnr_y", "{:.2f}"),
    ("PSNR-Y sharp", "sharp", "psnr_y", "{:.2f}"),
    ("SSIM-Y", "all", "ssim_y", "{:.4f}"),
    ("SSIM-Y blurry", "blurry", "ssim_y", "{:.4f}"),
    ("SSIM-Y sharp", "sharp", "ssim_y", "{:.4f}"),
    ("PSNR-RGB", "all", "psnr_rgb", "{:.2f}"),
    ("LPIPS", "all", "lpips", "{:.4f}"),
    ("drift px", "all", "drift_px", "{:.3f}"),
    ("warp excess x1e3", "all", "warp_excess", "{:.3f}"),
    ("blur effect", "all", "blur_effect", "{:.3f}"),
]
REAL_COLUMNS = [
    ("blur effect", "all", "blur_effect", "{:.3f}"),
    ("Laplacian var", "all", "lap_var", "{:.0f}"),
    ("drift px vs input", "all", "drift_px", "{:.3f}"),
    ("warp excess x1e3", "all", "warp_excess", "{:.3f}"),
]


def _value(summary: dict, group: str, metric: str) -> float | None:
    return summary.get(group, {}).get(metric)


def _fmt(v: float | None, fmt: str, metric: str) -> str:
    if v is None:
        return "–"
    if metric == "warp_excess":
        v *= 1e3
    return "inf" if math.isinf(v) else fmt.format(v)


def mean_over_clips(clips: list[ClipResult], label: str, group: str, metric: str) -> float | None:
    vals = [_value(c.methods[label].summary, group, metric) for c in clips if label in c.methods]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def _columns(columns: list, clips: list[ClipResult]) -> list:
    """Leave out columns with no value anywhere (LPIPS without weights, sharp means without sharp frames)."""
    labels = {lab for c in clips for lab in c.methods}
    return [col for col in columns if any(mean_over_clips(clips, lab, col[1], col[2]) is not None for lab in labels)]


def _method_name(r, trains: bool) -> str:
    return f"{r}†" if trains else r


def markdown(suite: Suite, results: list[ClipResult], total_s: float) -> str:
    gt = [c for c in results if c.has_gt]
    real = [c for c in results if not c.has_gt]
    labels = list(dict.fromkeys(lab for c in results for lab in c.methods))
    trains = {lab: any(c.methods[lab].trains for c in results if lab in c.methods) for lab in labels}
    lines = [f"# Benchmark: {suite.name}", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [
        f"{len(gt)} synthesized clip(s) with ground truth, {len(real)} real clip(s) without; "
        f"PSNR/SSIM on BT.601 luma (Y) and RGB with a {suite.crop}-px border crop; frames labelled blurry/sharp by the "
        "synthesizer are also averaged apart. Drift: norm of the median flow output vs reference. Warp excess: warping "
        "error (Lai et al. 2018) of the output minus that of the reference, same flows and masks. "
        f"Wall time: seconds per clip to run the method (decode, process, lossless encode). Total run: {total_s:.0f} s.",
        "",
    ]
    if any(trains.values()):
        lines += ["† trains on each clip; its wall time includes training.", ""]
    if gt:
        cols = _columns(GT_COLUMNS, gt)
        head = "| method | " + " | ".join(c[0] for c in cols) + " | wall s |"
        sep = "|---|" + "---:|" * (len(cols) + 1)
        lines += [f"## Mean over {len(gt)} synthesized clips", "", head, sep]
        for lab in labels:
            vals = [_fmt(mean_over_clips(gt, lab, g, m), f, m) for _, g, m, f in cols]
            wall = mean_over_clips_wall(gt, lab)
            lines.append(f"| {_method_name(lab, trains[lab])} | " + " | ".join(vals) + f" | {wall:.1f} |")
        lines.append("")
        for c in gt:
            s = c.settings
            lines += [f"### {c.name}", "",
                      f"{Path(c.source).name}, frames {s.get('start', 0)}..{s.get('start', 0) + c.frames - 1} at "
                      f"{c.width}x{c.height}, seed {s.get('seed', 0)}: {c.sharp_frames} of {c.frames} frames sharp.", "",
                      head, sep]
            for lab, r in c.methods.items():
                vals = [_fmt(_value(r.summary, g, m), f, m) for _, g, m, f in cols]
                lines.append(f"| {_method_name(lab, r.trains)} | " + " | ".join(vals) + f" | {r.wall_s:.1f} |")
            lines.append("")
    if real:
        cols = _columns(REAL_COLUMNS, real)
        lines += ["## Real clips (no ground truth)", "", "| clip | method | " + " | ".join(c[0] for c in cols) + " | wall s |",
                  "|---|---|" + "---:|" * (len(cols) + 1)]
        for c in real:
            for lab, r in c.methods.items():
                vals = [_fmt(_value(r.summary, g, m), f, m) for _, g, m, f in cols]
                lines.append(f"| {c.name} ({c.width}x{c.height}, {c.frames} fr) | {_method_name(lab, r.trains)} | "
                             + " | ".join(vals) + f" | {r.wall_s:.1f} |")
        lines.append("")
    return "\n".join(lines)


def mean_over_clips_wall(clips: list[ClipResult], label: str) -> float:
    return float(np.mean([c.methods[label].wall_s for c in clips if label in c.methods]))


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def results_dict(suite: Suite, results: list[ClipResult], total_s: float) -> dict:
    gt = [c for c in results if c.has_gt]
    labels = list(dict.fromkeys(lab for c in results for lab in c.methods))
    groups = ("all", "blurry", "sharp")
    metrics = sorted({m for c in gt for r in c.methods.values() for g in groups for m in r.summary.get(g, {})} - {"frames"})
    mean = {
        lab: {g: {m: mean_over_clips(gt, lab, g, m) for m in metrics} for g in groups} | {"wall_s": mean_over_clips_wall(gt, lab)}
        for lab in labels if gt
    }
    return _jsonable({
        "suite": suite.name,
        "suite_file": str(suite.path),
        "total_wall_s": total_s,
        "crop": suite.crop,
        "mean_over_synthesized_clips": mean,
        "clips": [asdict(c) for c in results],
    })


def write_results(suite: Suite, results: list[ClipResult], out: Path, total_s: float) -> None:
    (out / "results.md").write_text(markdown(suite, results, total_s))
    (out / "results.json").write_text(json.dumps(results_dict(suite, results, total_s), indent=1))
