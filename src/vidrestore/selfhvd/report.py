"""What `vidrestore analyze` shows: the sharpness timeline (PNG, CSV, JSON) and label panels.

* `sharpness_timeline(video)`: per-frame sharpness, streamed (bounded memory), and its selection;
* `write_timeline(selection, out_dir)`: ``sharpness.png`` (the timeline with the selected frames
  marked, block bounds and per-block thresholds), ``sharpness.csv`` and ``analysis.json``;
* `label_panel(analysis, i)`: a picture of the supervision frame i gets: the blurry frame, its
  sharp source, the source warped onto it, the occlusion and uncertainty masks and the final
  mask over the label.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io import VideoReader, probe
from ..util.prefetch import prefetch
from ..util.progress import progress_bar
from .analysis import AnalysisSettings, VideoAnalysis, to_u8
from .labels import label_masks
from .selection import Selection, SharpnessMeter, select_sharp


def sharpness_timeline(video: str | os.PathLike, settings: AnalysisSettings = AnalysisSettings(),
                       progress: bool = True) -> Selection:
    """Sharpness of every frame of `video` (streamed) and the sharp-frame selection."""
    info = probe(video)
    bar = progress_bar(info.frame_count, "sharpness", progress)
    meter = SharpnessMeter(settings.sharpness_measure, settings.sharpness_scale)
    try:
        for f in prefetch(VideoReader(video, info).frames()):
            meter.add(f.rgb)
            bar.update(1)
    finally:
        bar.close()
    selection = select_sharp(meter.values(), settings.block, settings.min_ratio, settings.max_spread)
    selection.params["measure"] = settings.sharpness_measure
    return selection


def write_timeline(selection: Selection, out_dir: str | os.PathLike, title: str = "") -> dict[str, Path]:
    """Write sharpness.png, sharpness.csv and analysis.json into `out_dir`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"plot": out / "sharpness.png", "csv": out / "sharpness.csv", "json": out / "analysis.json"}
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "sharpness", "sharp"])
        for i, (v, s) in enumerate(zip(selection.sharpness, selection.sharp)):
            w.writerow([i, f"{v:.3f}", int(s)])
    paths["json"].write_text(json.dumps(selection.to_dict(), indent=1))
    n = selection.frames
    x = np.arange(n)
    fig, ax = plt.subplots(figsize=(min(16, 6 + n / 40), 3.6), dpi=100)
    relative = selection.params.get("measure") == "relative"
    what = "relative sharpness (worst direction, vs sharpest)" if relative else "Laplacian variance"
    ax.plot(x, selection.sharpness, color="0.35", lw=1, label=f"sharpness ({what})")
    ax.scatter(x[selection.sharp], selection.sharpness[selection.sharp], s=14, color="tab:green", zorder=3,
               label=f"selected sharp ({selection.count})")
    ax.scatter(x[~selection.sharp], selection.sharpness[~selection.sharp], s=6, color="tab:red", zorder=2, label="blurry")
    for b, (start, thr) in enumerate(zip(range(0, n, selection.block), selection.thresholds)):
        end = min(n, start + selection.block) if b < len(selection.thresholds) - 1 else n
        ax.axvline(start - 0.5, color="0.85", lw=0.8, zorder=0)
        if thr is not None:
            ax.hlines(thr, start - 0.5, end - 0.5, colors="tab:blue", lw=1, linestyles="dashed")
    ax.set_yscale("log")
    ax.set_xlabel("frame")
    ax.set_ylabel("sharpness")
    s = selection.summary()
    ax.set_title(f"{title}  {s['sharp_frames']}/{s['frames']} sharp ({s['sharp_share']:.0%}), "
                 f"longest run without one: {s['longest_gap']} frames" + (f"\n{s['problem']}" if s["problem"] else ""),
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(paths["plot"])
    plt.close(fig)
    return paths


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img)
    cv2.rectangle(img, (0, 0), (min(img.shape[1], 9 * len(text) + 8), 22), (0, 0, 0), -1)
    cv2.putText(img, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def label_panel(analysis: VideoAnalysis, i: int, path: str | os.PathLike, max_width: int = 640) -> Path:
    """Write a PNG panel of the supervision of frame i (module docstring); returns its path."""
    if not 0 <= i < analysis.count:
        raise VidrestoreError(f"frame {i} is outside the video's {analysis.count} frames", analysis.meta["source"])
    j = int(analysis.partner[i])
    s = analysis.settings
    blurry = analysis.frame(i)
    label, mask = analysis.label(i)
    size = analysis.size
    if 0 <= j != i:
        gi, gj = np.asarray(analysis.grey[i]), np.asarray(analysis.grey[j])
        flow = s.flow(s.label_scale)
        occ, unc = label_masks(gi, gj, analysis.label_flow[i].astype(np.float32), flow.flow_prepared(gj, gi),
                               s.occlusion_slope, s.uncertainty_threshold)
        up = lambda m: cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)  # noqa: E731
        occ, unc = up(occ), up(unc)
        source = analysis.frame(j)
    else:
        occ = unc = mask
        source = blurry
    grey = lambda m: np.repeat(m[..., None], 3, axis=-1)  # noqa: E731
    masked = label * mask[..., None] + np.array([0.5, 0.0, 0.5], np.float32) * (1 - mask[..., None])
    kind = "sharp: labels itself" if j == i else ("no sharp frame" if j < 0 else f"supervised by frame {j}")
    tiles = [
        (blurry, f"frame {i} ({kind})"), (source, f"sharp source {j}" if j >= 0 else "no source"),
        (label, "source warped onto frame"), (grey(occ), "occlusion mask"), (grey(unc), "uncertainty mask"),
        (masked, f"label x final mask ({mask.mean():.0%} kept)"),
    ]
    scale = min(1.0, max_width / size[1])
    cells = [_caption(cv2.resize(to_u8(t), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), c) for t, c in tiles]
    panel = np.vstack([np.hstack(cells[:3]), np.hstack(cells[3:])])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return out
