"""The report as one self-contained HTML file: every picture and plot embedded as base64, no
network (a Content-Security-Policy forbids any request), a few lines of inline script for the
before/after sliders."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

import cv2
import numpy as np

from ..errors import VidrestoreError
from ..io.paths import atomic_write_text
from . import plots
from .collect import ReportData, collect
from .record import JobRecord

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1000px;padding:16px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}img{max-width:100%}.note{color:#a50}.plot{display:block;margin:8px 0}
.ba{position:relative;display:inline-block;max-width:100%;line-height:0}
.ba .after{position:absolute;left:0;top:0;width:100%;height:100%}
.ba .line{position:absolute;top:0;bottom:0;width:2px;background:#ff0;pointer-events:none}
.ba input{position:absolute;left:0;bottom:4px;width:100%;margin:0}
.crops{display:flex;gap:8px;flex-wrap:wrap}.crops figure{margin:0}figcaption{font-size:12px;color:#555}
.bar{background:#69c;height:10px}
"""
_SCRIPT = """
document.querySelectorAll('.ba').forEach(function (box) {
  var range = box.querySelector('input'), after = box.querySelector('.after'), line = box.querySelector('.line');
  function show() { after.style.clipPath = 'inset(0 0 0 ' + range.value + '%)'; line.style.left = range.value + '%'; }
  range.addEventListener('input', show);
  show();
});
"""


def _img(data: bytes, mime: str, alt: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} alt="{escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _png(rgb: np.ndarray, alt: str, cls: str = "") -> str:
    _, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return _img(buf.tobytes(), "image/png", alt, cls)


def _jpeg(rgb: np.ndarray, alt: str, cls: str = "") -> str:
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return _img(buf.tobytes(), "image/jpeg", alt, cls)


def _plot(png: bytes, alt: str) -> str:
    return _img(png, "image/png", alt, "plot")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value))
    return escape(str(value))


def _table(rows: Sequence[Sequence[object]], head: Sequence[str] = ()) -> str:
    h = "<tr>" + "".join(f"<th>{escape(x)}</th>" for x in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{h}{body}</table>"


def _probe_rows(probes: dict[str, dict]) -> list[list[object]]:
    keys = [k for k in next(iter(probes.values())) if k not in ("path",)]
    rows = []
    for k in keys:
        values = []
        for p in probes.values():
            v = p.get(k, "")
            if k == "colour" and isinstance(v, dict):
                v = ", ".join(f"{n}: {v[n + '_name']}" for n in ("range", "primaries", "transfer", "matrix"))
            elif k == "tracks":
                v = ", ".join(f"{t.get('kind', '')} {t.get('codec', '')}".strip() for t in v) or "none"
            values.append(v)
        rows.append([k, *values])
    return rows


def _phases(phases: dict[str, float]) -> str:
    total = sum(phases.values()) or 1.0
    rows = [[name, f"{s:.1f} s", f'<div class="bar" style="width:{300 * s / total:.0f}px"></div>'] for name, s in phases.items()]
    body = "".join(f"<tr><td>{escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return f"<table><tr><th>phase</th><th>time</th><th></th></tr>{body}</table>"


def _viewer(data: ReportData) -> str:
    left = "reference" if data.record.command == "metrics" else "input"
    parts = []
    for p in data.picks:
        x, y, w, h = p.crop_box
        scaled = "" if p.before.shape[1] == data.probes["input"]["width"] else f" (downscaled to {p.before.shape[1]} px wide)"
        parts.append(
            f'<h3>frame {p.index}</h3><p>Drag the slider: {left} on the left, output on the right{scaled}.</p>'
            f'<div class="ba" id="viewer-{p.index}">{_jpeg(p.before, f"{left} frame {p.index}", "before")}'
            f'{_jpeg(p.after, f"output frame {p.index}", "after")}<div class="line"></div>'
            f'<input type="range" min="0" max="100" value="50" aria-label="before/after position, frame {p.index}"></div>'
            f'<div class="crops"><figure>{_png(p.crop_before, f"{left} crop, frame {p.index}")}<figcaption>{left}, full '
            f"resolution, {w}x{h} at ({x}, {y})</figcaption></figure><figure>{_png(p.crop_after, f'output crop, frame {p.index}')}"
            f"<figcaption>output, same pixels</figcaption></figure></div>")
    return "".join(parts)


def _selfhvd(data: ReportData) -> str:
    s, t = data.selfhvd, data.record.training
    summary = s["summary"]
    out = [f"<h2>SelfHVD: sharp frames and supervision</h2><p>{summary['sharp_frames']} of {summary['frames']} frames "
           f"selected as sharp ({summary['sharp_share']:.0%}); longest run without one: {summary['longest_gap']} frames."
           + (f' <span class="note">{escape(summary["problem"])}</span>' if summary.get("problem") else "") + "</p>",
           _plot(plots.sharpness_plot(s["sharpness"], s["sharp"], s["measure"]), "sharpness and selection per frame"),
           "<p>Which sharp frame supervised each blurry frame (its label is that frame warped onto it), and the share "
           "of the label the validity, occlusion and uncertainty masks kept:</p>",
           _plot(plots.supervision_plot(s["partner"], s["sharp"], s["coverage"]), "supervision timeline")]
    for i, j, panel in s["panels"]:
        out.append(f"<h3>masks of frame {i} (supervised by frame {j})</h3>{_jpeg(panel, f'label and masks of frame {i}')}")
    if t and t.get("loss_curve"):
        out.append(f"<h2>Training</h2><p>{t['steps']} steps in {t['train_seconds']:.0f} s on {escape(str(t['device']))} "
                   f"(budget {escape(str(t['budget']))}).</p>")
        out.append(_plot(plots.training_plot(t["loss_curve"], t["steps"], t.get("stage1_steps", 0)), "training loss curve"))
    if data.drift is not None:
        out.append(f"<h2>Drift</h2><p>Global drift of each output frame against its input frame (median optical flow, "
                   f"pixels); mean {data.drift.mean():.3f} px, largest {data.drift.max():.3f} px.</p>")
        out.append(_plot(plots.drift_plot(data.drift), "drift per frame"))
    return "".join(out)


def _fidelity(sources: list[list[list[float]]]) -> str:
    """Fidelity mode: the sources and weights of every output frame, as a table and as JSON (`id="fidelity-sources"`)."""
    fused = sum(len(s) > 1 for s in sources)
    rows = [[i, ", ".join(f"{int(t)}: {w:.4g}" for t, w in s), "kept as it is" if len(s) == 1 else "fused"]
            for i, s in enumerate(sources)]
    listing = json.dumps([{"frame": i, "sources": [int(t) for t, _ in s], "weights": [w for _, w in s]}
                          for i, s in enumerate(sources)])
    return ("<h2>Fidelity mode: where every output pixel comes from</h2><p>No network made any pixel of this output. "
            "A frame selected as sharp is kept as it is; every other frame i is a convex combination of itself and the "
            "sharper frames t of its window, warped onto it along the analysis' optical flow: out(p) = Σ w_t τ_t(p) "
            "x_t→i(p) / Σ w_t τ_t(p), with the per-frame weights w_t below (w_i = 1) and a per-pixel trust τ_t(p) in "
            "[0, 1] (visible by the forward-backward round trip, times agreement with frame i once both are low-passed; "
            f"τ_i = 1). {fused} of {len(sources)} frames were fused.</p>"
            + _table(rows, ["output frame", "source frame: weight (first: the frame itself)", ""])
            + f'<script type="application/json" id="fidelity-sources">{escape(listing, quote=False)}</script>')


def _stage_fidelity(stages: list[dict], frames: int) -> str:
    """Stages run in fidelity mode (upscale): which input frames each output frame took its samples from."""
    parts = []
    for st in stages:
        r = int(st.get("radius", 0))
        rows = [[i, f"{max(0, i - r)}-{min(frames - 1, i + r)}"] for i in range(frames)]
        parts.append(f"<h2>Fidelity mode: {escape(st['name'])} used observed samples only</h2><p>No network made any pixel "
                     f"of this stage's output. Each output frame fuses the samples of the input frames within {r} of it, "
                     "aligned by optical flow, onto the finer grid; each sample's weight is per pixel (a Gaussian kernel of "
                     "its distance to the output pixel times a robustness term that drops samples where the motion cannot "
                     "be trusted), so the weights are not listed per frame.</p>" + _table(rows, ["output frame", "source frames"]))
    return "".join(parts)


def render(data: ReportData) -> str:
    """The report of `data` as one HTML document."""
    r = data.record
    fidelity_stages = [st for st in r.settings.get("stages", []) if isinstance(st, dict) and st.get("fidelity")]
    mode = " (fidelity mode)" if r.sources is not None or fidelity_stages else ""
    title = f"vidrestore {r.command}{mode}: {Path(r.input).name} → {Path(r.output).name}"
    body = [f"<h1>{escape(title)}</h1><p>Finished {escape(r.finished)}.</p>"]
    body += [f'<p class="note">note: {escape(n)}</p>' for n in r.notes]
    names = {"input": "reference", "output": "judged"} if r.command == "metrics" else {}
    body.append("<h2>Input and output</h2>" + _table(_probe_rows(data.probes), ["", *(names.get(k, k) for k in data.probes)]))
    body.append("<h2>Before / after</h2>" + _viewer(data))
    if data.quality:
        body.append("<h2>Against the ground truth</h2>" + _plot(plots.quality_plot(data.quality), "PSNR-Y and SSIM-Y per frame"))
    if r.sources is not None:
        body.append(_fidelity(r.sources))
    if fidelity_stages:
        body.append(_stage_fidelity(fidelity_stages, len(data.luma_out)))
    if data.selfhvd is not None:
        body.append(_selfhvd(data))
    if data.camera is not None:
        body.append("<h2>Camera path</h2>" + _plot(plots.camera_plot(data.camera), "camera path before and after"))
    if data.noise is not None:
        levels = "; ".join(f"{float(y):.0%}: {' / '.join(f'{v:.1f}' for v in rgb)}" for y, rgb in data.noise["sigma_8bit_at"].items())
        body.append("<h2>Noise</h2><p>The noise the denoise stage measured on the input and removed: its standard deviation "
                    f"(8-bit scale) against intensity, per channel (R / G / B at {escape(levels)}).</p>"
                    + _plot(plots.noise_plot(data.noise["intensity"], data.noise["sigma_8bit"]), "noise level against intensity"))
    if r.command == "deflicker":
        body.append("<h2>Flicker</h2>" + _plot(plots.flicker_plot(data.luma_in, data.luma_out, data.fps), "frame-mean luma"))
    body.append("<h2>Time per phase</h2>" + _phases(r.phases))
    body.append("<h2>Settings</h2>" + _table(sorted(r.settings.items())))
    body.append("<h2>Versions</h2>" + _table(sorted(r.versions.items())))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}"><link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{''.join(body)}"
            f"<script>{_SCRIPT}</script></body></html>")


def check_report_path(path: str | os.PathLike, videos: Sequence[str | os.PathLike]) -> Path:
    """Refuse a report path that is not .html, lies in a missing folder or names one of the job's `videos`."""
    out = Path(path)
    if out.suffix.lower() not in (".html", ".htm"):
        raise VidrestoreError("a report is an HTML file: give a name ending in .html", out)
    if not out.absolute().parent.is_dir():
        raise VidrestoreError(f"output folder {out.absolute().parent} does not exist", out)
    if out.absolute() in {Path(v).absolute() for v in videos}:
        raise VidrestoreError("the report would overwrite a video of the job", out)
    return out


def write_report(record: JobRecord, path: str | os.PathLike, picks: Sequence[int] | None = None,
                 progress: bool = False) -> Path:
    """Collect and render the report of `record` into the HTML file `path` (written whole or not at all)."""
    out = check_report_path(path, [v for v in (record.input, record.output, record.ground_truth) if v])
    atomic_write_text(out, render(collect(record, picks, progress)))
    return out
