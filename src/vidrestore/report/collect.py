"""Everything a report shows, gathered from a finished job's record, its videos and its cached analyses.

`collect(record)` decodes the input and the output once, side by side (and the ground truth when
the record names one), measuring per frame what the report plots (frame-mean luma; PSNR-Y and
SSIM-Y against the ground truth; for deblur, the drift of the output against the input) and
keeping the frames the before/after viewer shows. It then reads what the job's analyses left
in the work directory: SelfHVD's sharpness, selection, supervision partners, label coverage and
masks; stabilize's camera path; the noise denoise measured.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..flow import create_flow
from ..io import VideoReader, probe
from ..metrics.drift import drift_flow, global_drift
from ..metrics.fidelity import psnr, rgb_to_y, ssim
from .record import JobRecord

PREVIEW_WIDTH = 960  # the viewer's pictures are downscaled to this width (4K: by 4)
CROP = 256  # side of the full-resolution crops
PICKS = 4  # frames the viewer shows when none are chosen


@dataclass
class Pick:
    """One frame of the before/after viewer: downscaled previews and a full-resolution crop of each side."""

    index: int
    before: np.ndarray
    after: np.ndarray
    crop_box: tuple[int, int, int, int]  # x, y, width, height in full-resolution pixels
    crop_before: np.ndarray
    crop_after: np.ndarray


@dataclass
class ReportData:
    """What `render` draws (see the module docstring); per-frame arrays are indexed by frame."""

    record: JobRecord
    probes: dict[str, dict]
    fps: float
    luma_in: np.ndarray
    luma_out: np.ndarray
    picks: list[Pick]
    quality: dict[str, np.ndarray] = field(default_factory=dict)  # "psnr_y in", "psnr_y out", "ssim_y in", "ssim_y out"
    drift: np.ndarray | None = None
    selfhvd: dict | None = None
    camera: dict[str, np.ndarray] | None = None
    noise: dict | None = None  # denoise's measured noise (`vidrestore.restoration.noise_level`)


def _u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _preview(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= PREVIEW_WIDTH:
        return _u8(rgb)
    return _u8(cv2.resize(rgb, (PREVIEW_WIDTH, round(h * PREVIEW_WIDTH / w)), interpolation=cv2.INTER_AREA))


def _crop_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    """The CROP x CROP window (on a grid of CROP/4) where the output differs most from the input."""
    h, w = before.shape[:2]
    cw, ch = min(CROP, w), min(CROP, h)
    if after.shape != before.shape:
        return (w - cw) // 2, (h - ch) // 2, cw, ch
    diff = np.abs(rgb_to_y(after) - rgb_to_y(before))
    step = max(1, CROP // 4)
    best, box = -1.0, ((w - cw) // 2, (h - ch) // 2)
    for y in range(0, h - ch + 1, step):
        for x in range(0, w - cw + 1, step):
            score = float(diff[y:y + ch, x:x + cw].mean())
            if score > best:
                best, box = score, (x, y)
    return box[0], box[1], cw, ch


def _pick(index: int, before: np.ndarray, after: np.ndarray) -> Pick:
    x, y, cw, ch = _crop_box(before, after)
    return Pick(index, _preview(before), _preview(after), (x, y, cw, ch), _u8(before[y:y + ch, x:x + cw]),
                _u8(after[y:y + ch, x:x + cw]))


def default_picks(frames: int, blurry: Sequence[bool] | None = None, count: int = PICKS) -> list[int]:
    """`count` frames spread evenly over the video (over its blurry frames when they are known)."""
    candidates = [i for i in range(frames) if blurry is None or blurry[i]] or list(range(frames))
    if len(candidates) <= count:
        return candidates
    return [candidates[round(k)] for k in np.linspace(0, len(candidates) - 1, count)]


def _selfhvd(folder: Path, picks: Sequence[int]) -> dict:
    """SelfHVD's analysis of the input: sharpness, selection, partners, label coverage, mask panels of picked frames."""
    from ..selfhvd.analysis import VideoAnalysis
    from ..selfhvd.report import label_panel

    if not (folder / "analysis.json").is_file():
        raise VidrestoreError("the job's SelfHVD analysis is no longer in the work directory; run the job again", folder)
    a = VideoAnalysis(folder)
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in [i for i in picks if a.partner[i] != i][:2]:
            panel = cv2.imread(str(label_panel(a, i, Path(tmp) / f"{i}.png", max_width=320)))
            panels.append((i, int(a.partner[i]), cv2.cvtColor(panel, cv2.COLOR_BGR2RGB)))
    return {"sharpness": np.asarray(a.selection.sharpness), "sharp": np.asarray(a.selection.sharp),
            "partner": np.asarray(a.partner), "coverage": np.array([a.label_coverage(i) for i in range(a.count)]),
            "summary": a.selection.summary(), "measure": a.settings.sharpness_measure, "panels": panels}


def _camera(folder: Path, width: int, height: int) -> dict[str, np.ndarray]:
    """Stabilize's camera path before and after: centre x, y (pixels) and rotation (degrees) per frame."""
    from ..restoration.camera_path import camera_path, compose

    data = np.load(folder / "path.npz")
    before = camera_path(data["motions"], width, height)
    after = compose(before, data["updates"])
    angle = lambda p: np.degrees(np.unwrap(np.arctan2(p[:, 1], p[:, 0])))  # noqa: E731
    return {"x before": before[:, 2], "x after": after[:, 2], "y before": before[:, 3], "y after": after[:, 3],
            "rotation before": angle(before), "rotation after": angle(after)}


def collect(record: JobRecord, picks: Sequence[int] | None = None, progress: bool = False) -> ReportData:
    """Gather what the report of `record` shows (see the module docstring); `picks`: the viewer's frames."""
    from ..util.progress import progress_bar

    paths = {"input": record.input, "output": record.output}
    if record.ground_truth and record.ground_truth != record.input:
        paths["ground truth"] = record.ground_truth
    infos = {}
    for name, p in paths.items():
        if not Path(p).exists():
            raise VidrestoreError(f"the job's {name} is gone; a report needs its videos", p)
        infos[name] = probe(p)
    n = min(i.frame_count for i in infos.values())
    selfhvd_dir = Path(record.analyses["selfhvd"]) if "selfhvd" in record.analyses else None
    if picks is None:
        sharp = json.loads((selfhvd_dir / "analysis.json").read_text())["sharp"] if selfhvd_dir else None
        picks = default_picks(n, [not s for s in sharp] if sharp else None)
    bad = [i for i in picks if not 0 <= i < n]
    if bad:
        raise VidrestoreError(f"frame {bad[0]} is outside the video's {n} frames", record.output)
    wanted = set(picks)
    has_gt = record.ground_truth is not None
    gt_is_input = record.ground_truth == record.input
    crop = int(record.settings.get("crop", 0) or 0)
    drift_on = record.command in ("deblur", "demo")
    flow = create_flow("dis", scale=0.5) if drift_on else None
    luma_in, luma_out, drift, chosen = [], [], [], []
    quality: dict[str, list[float]] = {}
    readers = [VideoReader(p, infos[name]).frames() for name, p in paths.items()]
    bar = progress_bar(n, "report", progress)
    try:
        for frames in zip(*readers):
            f_in, f_out = frames[0].rgb, frames[1].rgb
            gt = f_in if gt_is_input else (frames[2].rgb if has_gt else None)
            luma_in.append(float(rgb_to_y(f_in).mean()))
            luma_out.append(float(rgb_to_y(f_out).mean()))
            if gt is not None:
                sides = [("out", f_out)] if gt_is_input else [("in", f_in), ("out", f_out)]
                for side, f in sides:
                    quality.setdefault(f"psnr_y {side}", []).append(psnr(f, gt, crop, "y"))
                    quality.setdefault(f"ssim_y {side}", []).append(ssim(f, gt, crop, "y"))
            if flow is not None and f_in.shape == f_out.shape:
                drift.append(global_drift(drift_flow(f_out, f_in, flow)).magnitude)
            if frames[0].index in wanted:
                chosen.append(_pick(frames[0].index, f_in, f_out))
            bar.update(1)
    finally:
        bar.close()
    data = ReportData(record, {k: json.loads(v.to_json()) for k, v in infos.items()},
                      float(infos["input"].fps or 25), np.array(luma_in), np.array(luma_out),
                      sorted(chosen, key=lambda p: p.index), {k: np.array(v) for k, v in quality.items()},
                      np.array(drift) if drift else None)
    if selfhvd_dir is not None:
        data.selfhvd = _selfhvd(selfhvd_dir, picks)
    if "denoise" in record.analyses:
        data.noise = json.loads((Path(record.analyses["denoise"]) / "noise.json").read_text())
    if "stabilize" in record.analyses:
        data.camera = _camera(Path(record.analyses["stabilize"]), infos["input"].width, infos["input"].height)
    return data
