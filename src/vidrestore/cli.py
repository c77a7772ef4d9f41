"""The `vidrestore` command: argument parsing only; every subcommand calls the Python API."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import VidrestoreError, disk_full
from .pipeline.runner import DEFAULT_SEGMENT_FRAMES, default_work_dir

if TYPE_CHECKING:
    from .pipeline import RestoreResult

log = logging.getLogger("vidrestore")

# Each subcommand is one function that adds its parser and sets `handler`; listed in --help order.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _subcommand(fn: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    SUBCOMMANDS.append(fn)
    return fn


def _fraction(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a frame rate: {text!r} (use e.g. 25 or 30000/1001)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("frame rate must be positive")
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the command."""

    def error(self, message: str) -> None:
        self.exit(2, f"vidrestore: error: {self.prog}: {message} (see `{self.prog} --help`)\n")


_NEGATIVE = re.compile(r"-\d[\w.]*")


def _attach_negative_values(argv: list[str]) -> list[str]:
    """Join `--opt -5m` into `--opt=-5m`, so a negative value reaches its option (and is refused there
    with a clear message) instead of being taken for an unknown option."""
    out: list[str] = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE.fullmatch(tok):
            out[-1] += "=" + tok
        else:
            out.append(tok)
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def _output_options(p: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options of every command that writes a video (`batch`: without -o, which the batch gives per video)."""
    from .io.encode import CODECS

    if not batch:
        p.add_argument("-o", "--output", required=True, type=Path, help="output video file, or a folder for a PNG sequence")
    p.add_argument("--codec", help=f"output codec: {', '.join(CODECS)} (default h264, or AV1 in .webm)")
    lossy = {name: spec for name, spec in CODECS.items() if spec.crf is not None}
    p.add_argument("--crf", type=int, help=f"quality for {'/'.join(lossy)} (lower is better; defaults "
                                          f"{'/'.join(str(spec.crf) for spec in lossy.values())})")
    p.add_argument("--preset", help="encoder speed preset (x264/x265: ultrafast..veryslow; av1: 0-13)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--work-dir", type=Path, help="where resumable work is kept (default ~/.cache/vidrestore)")
    p.add_argument("--segment-frames", type=_int_at_least(1), default=DEFAULT_SEGMENT_FRAMES,
                   help=f"frames per resumable segment (default {DEFAULT_SEGMENT_FRAMES})")
    p.add_argument("--drop-subtitles", action="store_true", help="leave out subtitle tracks the output container cannot hold")
    p.add_argument("--fps", type=_fraction, help="frame rate of an image-folder input (default 25)")
    if not batch:
        p.add_argument("--report", type=Path, metavar="PATH.html",
                       help="also write a self-contained HTML report of the job (later: `vidrestore report OUTPUT`)")


def _check_report(args: argparse.Namespace) -> None:
    """Refuse a bad --report path before any work."""
    if args.report is not None:
        from .report import check_report_path

        check_report_path(args.report, [args.input, args.output])


def _keep_record(args: argparse.Namespace, record) -> None:
    """Keep the finished job's record for `vidrestore report`, and write its report when --report asks."""
    from .report import save_record, write_report

    save_record(record, args.work_dir)
    if args.report is not None:
        write_report(record, args.report, progress=not args.quiet)
        print(f"wrote report {args.report}")


def _stage_record(args: argparse.Namespace, command: str, stages: list, result):
    """The record of a command that ran `stages` through `restore`."""
    from .report import restore_record

    settings = {"stages": [{"name": s.name, **s.config()} for s in stages], "codec": args.codec, "crf": args.crf,
                "preset": args.preset, "segment_frames": args.segment_frames}
    return restore_record(command, args.input, result, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vidrestore",
        description="Restore real video by learning from the footage itself.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="run `vidrestore COMMAND --help` for each command's options and an example.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _add(sub: argparse._SubParsersAction, name: str, help: str, examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand parser whose --help ends with examples."""
    return sub.add_parser(name, help=help, description=help, formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))


def _encode_settings(args: argparse.Namespace):
    """The encoding settings, checked against the output before any work (a note if the codec was chosen for it)."""
    from .io.encode import EncodeSettings
    from .io.mux import resolve_output

    settings, note = resolve_output(args.output, EncodeSettings(args.codec, args.crf, args.preset))
    if note:
        log.warning("note: %s", note)
    return settings


def _restore_and_report(args: argparse.Namespace, stages: list) -> RestoreResult:
    """Run `stages` over args.input into args.output with the command's output options, and print the summary."""
    from .pipeline import restore

    result = restore(
        args.input, args.output, stages, _encode_settings(args),
        overwrite=args.overwrite, work_dir=args.work_dir, segment_frames=args.segment_frames,
        progress=not args.quiet, drop_subtitles=args.drop_subtitles, image_fps=args.fps,
    )
    _report(result)
    return result


def _report(result) -> None:
    reused = f"; {result.segments_reused} of {result.segments} segments reused from an interrupted run" if result.segments_reused else ""
    print(f"wrote {result.output}: {result.frames} frames, {result.plan}, {result.seconds:.1f} s{reused}")
    for note in result.notes:
        log.warning("note: %s", note)


@_subcommand
def _probe_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "probe", "show streams, size, frame rate, frame count, colour and rotation of a video",
             ["vidrestore probe clip.mp4", "vidrestore probe frames/ --json"])
    p.add_argument("input", type=Path, help="video file or folder of images")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--fps", type=_fraction, help="frame rate of an image-folder input (default 25)")
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .io.probe import describe, probe

        info = probe(args.input, args.fps)
        print(info.to_json() if args.json else describe(info))
        return 0

    p.set_defaults(handler=run)


def _selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--block", type=_int_at_least(1), default=20, help="frames per sharp-frame selection block (default 20, as in SelfHVD)")
    p.add_argument("--measure", choices=["laplacian", "relative"], default="laplacian",
                   help="sharpness the selection runs on: SelfHVD's Laplacian variance (default) or relative to the neighbours "
                        "(more accurate on synthesized clips, keeps fewer frames of low-frame-rate footage)")
    p.add_argument("--max-downscale", type=_int_at_least(1),  # None: AnalysisSettings' default (importing it costs 1 s)
                   help="the network learns and deblurs at up to this factor below the video's size (default 2), "
                        "where the footage holds no finer detail than that size (measured on its sharpest early frame); "
                        "the network's change is upscaled onto the full frames. 1: always full resolution")


def _analysis_settings(args: argparse.Namespace):
    from .selfhvd import AnalysisSettings

    given = {} if args.max_downscale is None else {"max_downscale": args.max_downscale}
    return AnalysisSettings(block=args.block, sharpness_measure=args.measure, **given)


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where the network runs (default auto: CUDA if present)")


@_subcommand
def _analyze_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "analyze", "find the sharp frames of a handheld video: sharpness timeline (PNG, CSV), summary", [
        "vidrestore analyze clip.mp4                       # writes clip-analysis/sharpness.png, .csv, analysis.json",
        "vidrestore analyze clip.mp4 --json                # per-frame sharpness and selection on stdout",
        "vidrestore analyze clip.mp4 --panel 12 --panel 40 # also: what supervision frames 12 and 40 would get",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images")
    p.add_argument("-o", "--output", type=Path, help="folder for the plot, CSV and JSON (default ./NAME-analysis)")
    p.add_argument("--json", action="store_true", help="print the per-frame sharpness and selection as JSON")
    _selection_options(p)
    p.add_argument("--panel", type=_int_at_least(0), action="append", default=[], metavar="FRAME",
                   help="write a PNG of the label and masks of this frame (repeatable; builds the labels)")
    p.add_argument("--work-dir", type=Path, help="where the analysis is cached (default ~/.cache/vidrestore)")
    _common(p)

    def run(args: argparse.Namespace) -> int:
        import json

        from .selfhvd import analyze_video
        from .selfhvd.report import label_panel, sharpness_timeline, write_timeline

        from .io.paths import check_output_folder

        settings = _analysis_settings(args)
        out = args.output or Path(f"{args.input.stem}-analysis")
        check_output_folder(out)
        if args.panel:
            analysis = analyze_video(args.input, settings, work_dir=args.work_dir, progress=not args.quiet)
            selection = analysis.selection
            panels = [label_panel(analysis, i, out / f"panel_{i:05d}.png") for i in args.panel]
        else:
            selection, panels = sharpness_timeline(args.input, settings, progress=not args.quiet), []
        paths = write_timeline(selection, out, args.input.name)
        if args.json:
            print(json.dumps(selection.to_dict(), indent=1))
            return 0
        s = selection.summary()
        print(f"{args.input}: {s['sharp_frames']} of {s['frames']} frames sharp ({s['sharp_share']:.0%}); "
              f"longest run without a sharp frame: {s['longest_gap']} frames; "
              f"{s['blocks_standing_out']} of {s['blocks']} blocks of {args.block} frames hold clearly sharp frames")
        if s["problem"]:
            print(f"warning: {s['problem']}: SelfHVD cannot supervise this video with itself")
        print(f"wrote {paths['plot']}, {paths['csv'].name}, {paths['json'].name}" + "".join(f", {p.name}" for p in panels))
        return 0

    p.set_defaults(handler=run)


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="unet", help="network: unet (default, CPU-friendly) or recurrent")
    p.add_argument("--recipe", choices=["selfhvd", "ren"], default="selfhvd", help="selfhvd (default) or ren (Ren et al. baseline)")
    p.add_argument("--no-sevd", action="store_true", help="ablation: leave out SEVD (RSCR + SIS)")
    p.add_argument("--no-scscm", action="store_true", help="ablation: leave out SCSCM")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _selection_options(p)
    _device_option(p)


def _train_settings(args: argparse.Namespace):
    from .selfhvd.train import TrainSettings

    return TrainSettings(model=args.arch, recipe=args.recipe, sevd=not args.no_sevd, scscm=not args.no_scscm, seed=args.seed)


@_subcommand
def _deblur_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "deblur", "deblur a handheld video by training on its own sharp frames (SelfHVD), or with a trained model", [
        "vidrestore deblur shaky.mp4 -o sharp.mp4                      # train on the video itself (300 steps), then deblur",
        "vidrestore deblur shaky.mp4 -o sharp.mp4 --budget 1000        # more training steps",
        "vidrestore deblur shaky.mp4 -o sharp.mp4 --budget 10m         # as many steps as 10 minutes allow (varies with load)",
        "vidrestore deblur shaky.mp4 -o sharp.mp4 --model phone.safetensors --budget 0   # your model, as it is",
        "vidrestore deblur shaky.mp4 -o sharp.mp4 --model pretrain.pth --device cuda   # the SelfHVD authors' network",
        "vidrestore deblur shaky.mp4 -o sharp.mp4 --fidelity --report sharp.html   # observed pixels only, sources listed",
        "(audio, subtitles, timestamps and colour are kept; an interrupted run resumes when run again)",
    ])
    p.add_argument("input", type=Path, help="the blurry video")
    _deblur_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .report import deblur_record
        from .selfhvd import analyze_video
        from .selfhvd.deblur import analysis_settings, deblur
        from .selfhvd.fidelity import frame_sources

        _check_report(args)
        settings = _deblur_settings(args, _encode_settings(args))
        report = deblur(args.input, args.output, progress=not args.quiet, **settings)
        analysis = analyze_video(args.input, analysis_settings(settings["analysis"], args.fidelity, settings["model"]),
                                 work_dir=args.work_dir, progress=False)  # the cached analysis deblur used
        s = report.selection
        print(f"{args.input}: {s['sharp_frames']} of {s['frames']} frames sharp ({s['sharp_share']:.0%})")
        if analysis.meta["downscale"] > 1:
            print(f"worked at {analysis.width}x{analysis.height}: the footage holds no finer detail (its sharpest early "
                  "frame survives downscaling), and the network's change was upscaled onto the full frames")
        if report.training:
            t = report.training
            print(f"trained {t['steps']} steps in {t['train_seconds']:.0f} s on {t['device']}")
        if report.sources is not None:
            fused = sum(len(x) > 1 for x in report.sources)
            passed = sum(len(x) == 1 and len(frame_sources(analysis, i)) > 1 for i, x in enumerate(report.sources))
            print(f"fidelity mode: {fused} frames fused from their sharper aligned neighbours, {passed} passed through "
                  "(their fusion would be less sharp: the neighbours do not align closely enough), the others kept as they are")
        _report(report.result)
        _keep_record(args, deblur_record(args.input, report, settings, analysis.dir))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _deblur_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", help="training on the input: steps (800; default 300 steps: the same output on any machine, "
                                    "idle or busy; 0: apply the model as it is) or a time (5m, 90s, 1h: as many steps as fit, "
                                    "so the output depends on the machine and its load)")
    p.add_argument("--model", default="scratch", help="the network training starts from: scratch (default: a fresh network), "
                                                      "a trained model (.safetensors), or the SelfHVD authors' BasicVSR++ "
                                                      "checkpoint (.pth)")
    p.add_argument("--tile", type=_int_at_least(0), default=768,  # models.tiling.DEFAULT_TILE (not imported: torch)
                   help="largest inference tile in pixels (0: whole frames; default 768)")
    p.add_argument("--fidelity", action="store_true",
                   help="no network: every output pixel a convex combination of the video's own frames aligned onto "
                        "each other (the report lists each frame's sources and weights); nothing is trained")
    _training_options(p)


def _deblur_settings(args: argparse.Namespace, encode) -> dict:
    """`deblur`'s keyword arguments but input, output and progress."""
    from .selfhvd.deblur import DEFAULT_BUDGET
    from .selfhvd.train import Budget

    return dict(model=None if args.model == "scratch" else args.model,
                budget=Budget.parse(args.budget) if args.budget else DEFAULT_BUDGET,
                settings=_train_settings(args), analysis=_analysis_settings(args), encode=encode, device=args.device,
                tile=args.tile, overwrite=args.overwrite, work_dir=args.work_dir, segment_frames=args.segment_frames,
                drop_subtitles=args.drop_subtitles, image_fps=args.fps, fidelity=args.fidelity)


@_subcommand
def _train_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "train", "self-supervised training on your own unlabelled handheld videos; writes a model file", [
        "vidrestore train clips/*.mp4 -o phone.safetensors --budget 2h",
        "vidrestore deblur new.mp4 -o new_sharp.mp4 --model phone.safetensors --budget 200",
        "vidrestore train clips/*.mp4 -o phone.safetensors --budget 5000 --nproc 2       # data-parallel, 2 processes",
        "torchrun --nproc-per-node 4 --no-python vidrestore train clips/*.mp4 -o phone.safetensors --device cuda",
    ])
    p.add_argument("videos", type=Path, nargs="+", help="handheld videos (each needs some sharp frames)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.safetensors)")
    p.add_argument("--budget", default="30m", help="training budget: minutes (30m), hours (2h) or steps (5000); default 30m")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.add_argument("--work-dir", type=Path, help="where analyses and training state are kept (default ~/.cache/vidrestore)")
    p.add_argument("--nproc", type=_int_at_least(1), default=1,
                   help="data-parallel processes (torch.distributed: gloo on the CPU, NCCL with one GPU each); the batch is "
                        "shared among them (default 1; under torchrun, the processes it started)")
    p.add_argument("--loaders", type=_int_at_least(0), default=0,
                   help="background processes that draw the training crops, so that a GPU does not wait for them "
                        "(default 0: the training loop draws them; on a GPU machine about one per CPU core)")
    _training_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from dataclasses import replace

        from .selfhvd.ddp import train_parallel
        from .selfhvd.train import Budget

        settings = replace(_train_settings(args), loaders=args.loaders)
        info = train_parallel(args.videos, args.output, args.nproc, budget=Budget.parse(args.budget), settings=settings,
                              analysis=_analysis_settings(args), device=args.device, overwrite=args.overwrite,
                              work_dir=args.work_dir, progress=not args.quiet)
        if info is None:  # a rank of several but the first: the first reports
            return 0
        print(f"wrote {args.output}: {info['steps']} steps in {info['train_seconds']:.0f} s on {info['device']}")
        return 0

    p.set_defaults(handler=run, resumes=True)


@_subcommand
def _demo_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "demo", "the built-in demo: shake a photograph into a blurry clip, deblur it with SelfHVD, score it", [
        "vidrestore demo                      # about 3 minutes on 2 CPU cores; writes vidrestore-demo/",
        "vidrestore demo -o /tmp/demo --budget 5m --device cuda",
    ])
    p.add_argument("-o", "--output", type=Path, default=Path("vidrestore-demo"), help="folder for the videos (default vidrestore-demo)")
    p.add_argument("--budget", help="training budget: steps or a time as for deblur (default 150 steps: the same result on "
                                    "any machine)")
    p.add_argument("--seed", type=int, default=0, help="seed of the camera shake (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier demo in the folder")
    p.add_argument("--work-dir", type=Path, help="where analyses and training state are kept (default ~/.cache/vidrestore)")
    _device_option(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .selfhvd.demo import DEMO_BUDGET, run_demo
        from .selfhvd.train import Budget

        r = run_demo(args.output, budget=Budget.parse(args.budget) if args.budget else DEMO_BUDGET, device=args.device, seed=args.seed,
                     overwrite=args.overwrite, work_dir=args.work_dir, progress=not args.quiet)
        print(f"SelfHVD demo: {r.frames} frames, {r.sharp_frames} sharp; trained on the clip itself, {r.seconds:.0f} s in all")
        print(f"PSNR-Y against ground truth, all frames:    input {r.psnr_input:.2f} dB -> output {r.psnr_output:.2f} dB "
              f"({r.psnr_output - r.psnr_input:+.2f})")
        print(f"PSNR-Y against ground truth, blurry frames: input {r.psnr_input_blurry:.2f} dB -> output {r.psnr_output_blurry:.2f} dB "
              f"({r.psnr_output_blurry - r.psnr_input_blurry:+.2f})")
        print(f"wrote {r.folder}/blurry.mkv (input), deblurred.mkv (output), gt.mkv (ground truth), "
              "side_by_side.mp4 (input | output | ground truth)")
        from .report import deblur_record, save_record, write_report
        from .selfhvd import analyze_video

        blurry = r.folder / "blurry.mkv"
        analysis = analyze_video(blurry, work_dir=args.work_dir, progress=False)
        record = deblur_record(blurry, r.deblur, {"budget": args.budget or str(DEMO_BUDGET), "seed": args.seed,
                                                  "device": args.device, "crop": 4}, analysis.dir,
                               command="demo", ground_truth=r.folder / "gt.mkv")
        save_record(record, args.work_dir)
        report = write_report(record, r.folder / "report.html", progress=not args.quiet)
        print(f"wrote the report {report}: open it in a browser (it works offline)")
        return 0

    p.set_defaults(handler=run)


def _restore_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--stage", action="append", default=[], metavar="NAME[:K=V,...]",
                   help="a stage to apply (repeatable, applied in order); `vidrestore stages` lists them")


def _restore_stages(args: argparse.Namespace) -> list:
    from .pipeline import create_stage

    return [create_stage(spec) for spec in args.stage]


@_subcommand
def _restore_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "restore", "run a list of stages over a video (no stages: a faithful re-encode)", [
        "vidrestore restore clip.mp4 -o copy.mkv                  # faithful re-encode, audio and subtitles kept",
        "vidrestore restore clip.mp4 -o lossless.mkv --codec ffv1",
        "vidrestore restore clip.mp4 -o frames/                   # PNG sequence",
        "vidrestore restore clip.mp4 -o out.mp4 -s unsharp:amount=0.8",
        "(an interrupted run resumes when the same command is run again)",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images")
    _restore_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        stages = _restore_stages(args)
        result = _restore_and_report(args, stages)
        _keep_record(args, _stage_record(args, "restore", stages, result))
        return 0

    p.set_defaults(handler=run, resumes=True)


@_subcommand
def _stages_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "stages", "list the stages `restore -s` accepts", ["vidrestore stages"])
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .pipeline import list_stages

        print("\n".join(list_stages()) or "(no stages registered yet)")
        return 0

    p.set_defaults(handler=run)


@_subcommand
def _stabilize_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "stabilize", "remove camera shake: L1-optimal camera path (Grundmann et al. 2011) within a crop budget", [
        "vidrestore stabilize shaky.mp4 -o steady.mp4                 # crop 15 % and zoom back to full size",
        "vidrestore stabilize shaky.mp4 -o steady.mp4 --crop 0.1 --smoother gauss --sigma 20",
        "vidrestore stabilize shaky.mp4 -o steady.mkv --border black  # original scale; black where the frame moved away",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images")
    _stabilize_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        [stage] = _stabilize_stages(args)
        result = _restore_and_report(args, [stage])
        if stage.summary.get("note"):
            log.warning("note: camera path from the Gaussian smoother: %s", stage.summary["note"])
        _keep_record(args, _stage_record(args, "stabilize", [stage], result))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _stabilize_stages(args: argparse.Namespace) -> list:
    from .restoration.stabilize import Stabilize

    return [Stabilize(args.crop, args.smoother, args.border, args.sigma)]


def _stabilize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crop", type=float, default=0.15,
                   help="crop budget: share of each side the picture may lose (default 0.15, vid.stab's default zoom)")
    p.add_argument("--smoother", choices=["l1", "gauss"], default="l1",
                   help="camera path: l1 = L1-optimal (LP, still/pan/smooth pieces), gauss = Gaussian low-pass (default l1)")
    p.add_argument("--border", choices=["crop", "black", "reflect"], default="crop",
                   help="crop = crop and zoom to full size (no border); black/reflect = keep the original scale (default crop)")
    p.add_argument("--sigma", type=float, default=15.0, help="Gaussian path sigma in frames (gauss, and the L1 fallback; default 15)")


@_subcommand
def _deflicker_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "deflicker", "remove flicker: film exposure flicker, or (with --guide) flicker a per-frame process added", [
        "vidrestore deflicker old_film.mp4 -o steady.mp4               # global tone flicker, robust to scene cuts",
        "vidrestore deflicker filtered.mp4 --guide original.mp4 -o consistent.mp4   # blind temporal consistency",
        "vidrestore deflicker filtered.mp4 --guide original.mp4 -o out.mkv --radius 5",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images (with --guide: the processed video)")
    _deflicker_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        stages = _deflicker_stages(args)
        result = _restore_and_report(args, stages)
        _keep_record(args, _stage_record(args, "deflicker", stages, result))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _deflicker_stages(args: argparse.Namespace) -> list:
    from .restoration.deflicker import Deflicker, GuidedDeflicker

    return [Deflicker(args.window) if args.guide is None else GuidedDeflicker(args.guide, args.radius)]


def _deflicker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--guide", type=Path,
                   help="the original the input was processed from, frame for frame: remove the flicker the processing added")
    p.add_argument("--window", type=float, default=1.0, help="without --guide: seconds of the reference tone's running median (default 1)")
    p.add_argument("--radius", type=_int_at_least(1), default=3, help="with --guide: frames each side averaged along the motion (default 3)")


@_subcommand
def _denoise_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "denoise", "remove sensor noise: flow-aligned temporal non-local means, then DCT shrinkage; the noise is measured", [
        "vidrestore denoise noisy.mp4 -o clean.mp4",
        "vidrestore denoise noisy.mp4 -o softer.mp4 --strength 0.7     # 70 % of the way from the input to the result",
        "vidrestore denoise noisy.mp4 -o clean.mkv --radius 3 --codec ffv1",
        "vidrestore denoise noisy.mp4 -o quick.mp4 --fast             # about 6x faster, up to 2.3 dB lower",
        "vidrestore denoise noisy.mp4 -o out.mp4 --learned           # a CNN trained on the video (Noise2Noise): not better yet",
        "(an interrupted run resumes when the same command is run again)",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images")
    _denoise_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        [stage] = _denoise_stages(args)
        result = _restore_and_report(args, [stage])
        levels = ", ".join(f"{'/'.join(f'{v:.1f}' for v in rgb)} at {float(y):.0%}" for y, rgb in stage.summary.items())
        print(f"noise measured (sigma R/G/B, 8-bit scale, by intensity): {levels}")
        _keep_record(args, _stage_record(args, "denoise", [stage], result))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _denoise_stages(args: argparse.Namespace) -> list:
    from .restoration.denoise import Denoise

    return [Denoise(args.radius, args.strength, device=args.device, fast=args.fast, learned=args.learned, steps=args.steps)]


def _denoise_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strength", type=float, default=1.0, help="blend of input (0) and full result (1) (default 1)")
    p.add_argument("--radius", type=_int_at_least(0), default=None,
                   help="frames each side averaged along the motion (default 4; 2 with --fast)")
    p.add_argument("--fast", action="store_true",
                   help="the fast path: flow and chroma at half size, two DCT grids (about 6x faster, up to 2.3 dB lower)")
    p.add_argument("--learned", action="store_true",
                   help="the learned path: a small CNN trained on the video (Noise2Noise across aligned frames) refines the full path "
                        "(measured no better than it so far: README)")
    p.add_argument("--steps", type=_int_at_least(1), default=1000, help="with --learned: training steps (default 1000)")
    _device_option(p)


@_subcommand
def _deblock_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "deblock", "remove H.264 blocking and ringing, guided by the quantiser the bitstream states", [
        "vidrestore deblock lowbitrate.mp4 -o clean.mp4",
        "vidrestore deblock lowbitrate.mp4 -o clean.mkv --strength 0.8 --codec ffv1",
        "vidrestore deblock lowbitrate.mp4 -o clean.mp4 --learned    # a network trained on the video, coded again, back to itself",
        "vidrestore restore lowbitrate.mp4 -o out.mp4 -s deblock -s denoise   # deblock reads its input's quantiser: first",
    ])
    p.add_argument("input", type=Path, help="an H.264 video")
    _deblock_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        [stage] = _deblock_stages(args)
        result = _restore_and_report(args, [stage])
        print(f"quantiser read from the bitstream: mean QP {stage.summary['mean_qp']}")
        _keep_record(args, _stage_record(args, "deblock", [stage], result))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _deblock_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strength", type=float, default=1.0, help="blend of input (0) and full result (1) (default 1)")
    p.add_argument("--radius", type=_int_at_least(0), default=2, help="frames each side averaged along the motion (default 2)")
    p.add_argument("--learned", action="store_true",
                   help="the learned path: a small CNN trained to map the input, coded again at its own QP, back to the input")
    p.add_argument("--steps", type=_int_at_least(1), default=1500, help="with --learned: training steps (default 1500)")
    _device_option(p)


def _deblock_stages(args: argparse.Namespace) -> list:
    from .restoration.deblock import Deblock

    return [Deblock(args.radius, args.strength, args.device, args.learned, args.steps)]


@_subcommand
def _upscale_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "upscale", "super-resolution by 2, 3 or 4: the luma fused from the neighbouring frames' samples and refined by a network trained on the video itself, chroma bicubic", [
        "vidrestore upscale small.mp4 -o big.mp4 --scale 2",
        "vidrestore upscale small.mp4 -o big.mkv --scale 4 --codec ffv1",
        "vidrestore upscale evidence.mp4 -o big.mp4 --fidelity      # observed samples only, nothing learned",
        "vidrestore upscale vid4_lr.mkv -o big.mkv --scale 4 --grid corner   # input made as blur(x)[::4, ::4]",
        "vidrestore restore noisy_small.mp4 -o out.mp4 -s denoise -s upscale:scale=2",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images")
    _upscale_options(p)
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        [stage] = _upscale_stages(args)
        result = _restore_and_report(args, [stage])
        _keep_record(args, _stage_record(args, "upscale", [stage], result))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _upscale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="output size over input size (default 2)")
    p.add_argument("--radius", type=_int_at_least(0), default=3, help="neighbours each side whose samples are fused (default 3)")
    p.add_argument("--fidelity", action="store_true",
                   help="the multi-frame fusion alone (observed samples only), without the refinement learned from the video")
    p.add_argument("--grid", choices=("centre", "corner"), default="centre",
                   help="where each input pixel lies in its block of output pixels: centre (area, bicubic, Lanczos "
                        "downscaling; default) or corner (blur then every scale-th pixel from the top-left, Vid4's BD)")


def _upscale_stages(args: argparse.Namespace) -> list:
    from .restoration.upscale import Upscale

    return [Upscale(args.scale, args.radius, grid=args.grid, fidelity=args.fidelity)]


def _stage_job(name: str, stages: Callable[[argparse.Namespace], list]) -> Callable[[argparse.Namespace], object]:
    """A batch job builder for a command that runs stages through `restore`."""

    def make(args: argparse.Namespace) -> object:
        from .batch import RestoreJob
        from .io.encode import EncodeSettings

        return RestoreJob(name, tuple(stages(args)), EncodeSettings(args.codec, args.crf, args.preset), args.overwrite,
                          args.work_dir, args.segment_frames, args.drop_subtitles, args.fps)

    return make


def _deblur_job(args: argparse.Namespace) -> object:
    from .batch import CallJob
    from .io.encode import EncodeSettings
    from .selfhvd.deblur import deblur

    return CallJob("deblur", deblur, _deblur_settings(args, EncodeSettings(args.codec, args.crf, args.preset)))


# The commands `batch` runs on every video: name -> (its options, the job its options make).
BATCH_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], object]]] = {
    "restore": (_restore_options, _stage_job("restore", _restore_stages)),
    "stabilize": (_stabilize_options, _stage_job("stabilize", _stabilize_stages)),
    "deflicker": (_deflicker_options, _stage_job("deflicker", _deflicker_stages)),
    "denoise": (_denoise_options, _stage_job("denoise", _denoise_stages)),
    "deblock": (_deblock_options, _stage_job("deblock", _deblock_stages)),
    "upscale": (_upscale_options, _stage_job("upscale", _upscale_stages)),
    "deblur": (_deblur_options, _deblur_job),
}


def _batch_command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of COMMAND's options inside `vidrestore batch` (its own options, no input or -o)."""
    p = _Parser(prog=f"vidrestore batch INPUTS... -o OUTDIR {name}", description=f"the options of `{name}`, applied to every video")
    BATCH_COMMANDS[name][0](p)
    _output_options(p, batch=True)
    _common(p)
    return p


@_subcommand
def _batch_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "batch", f"run a restoring command ({', '.join(BATCH_COMMANDS)}) over many videos, locally or on a Ray cluster", [
        "vidrestore batch clips/ -o steady/ stabilize --crop 0.1            # every video in clips/, one per CPU",
        "vidrestore batch 'reel/**/*.mov' list.txt -o out/ --jobs 2 restore -s unsharp",
        "vidrestore batch clips/ -o out/ --engine ray deflicker             # a Ray instance on this machine",
        "vidrestore batch /shared/in/ -o /shared/out/ --engine ray --address head:6379 --gpus 1 deblur --work-dir /shared/work",
        "vidrestore batch night/ -o clean/ --jobs 2 denoise --fast          # also deblock and upscale",
        "vidrestore batch clips/ -o steady/ stabilize --help                # the command's options",
        "(run it again after an interruption: finished videos are kept, the others resume)",
    ])
    p.usage = "vidrestore batch INPUTS... -o OUTDIR [--engine local|ray] [--jobs N] [ray options] COMMAND [command options]"
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="video files, folders (their video files), glob patterns, or .txt/.lst files listing them one a line")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder: OUTDIR/NAME for each input")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: a process pool on this machine (default); ray: a Ray cluster (pip install 'vidrestore[distributed]')")
    p.add_argument("--jobs", type=_int_at_least(1), help="tasks at once (default: local, one per CPU; ray, as the cluster's resources allow)")
    ray = p.add_argument_group("ray options")
    ray.add_argument("--address", help="join this Ray cluster (host:port, or auto) instead of starting Ray on this machine")
    ray.add_argument("--cpus", type=float, help="CPUs each task requests (default 1)")
    ray.add_argument("--gpus", type=float, help="GPUs each task requests (default 0; e.g. 1 for deblur --device cuda)")
    ray.add_argument("--retries", type=_int_at_least(0), help="times a task runs again when its worker dies (default 3)")
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .batch import create_engine, expand_inputs, run_batch

        job = BATCH_COMMANDS[args.batch_command][1](args.command_options)
        ray_options = {k: getattr(args, k) for k in ("address", "cpus", "gpus", "retries") if getattr(args, k) is not None}
        if args.engine != "ray" and ray_options:
            raise VidrestoreError(f"--{', --'.join(ray_options)}: only for --engine ray")
        engine = create_engine(args.engine, jobs=args.jobs, **ray_options)
        result = run_batch(expand_inputs(args.inputs), args.output, job, engine, progress=not args.quiet)
        print(result.table())
        return 1 if result.failed else 0

    p.set_defaults(handler=run, resumes=True)


def _parse_batch(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`batch INPUTS... [options] COMMAND [command options]`: split at the first COMMAND, parse each side."""
    at = next((i for i, tok in enumerate(argv) if i > 1 and tok in BATCH_COMMANDS), None)
    if at is None:
        if len(argv) == 1 or "-h" in argv or "--help" in argv:
            parser.parse_args(["batch", "--help"])
        parser.exit(2, f"vidrestore: error: vidrestore batch: name the COMMAND to run after the inputs and options: "
                       f"{', '.join(BATCH_COMMANDS)} (see `vidrestore batch --help`)\n")
    args = parser.parse_args(argv[:at])
    args.batch_command = argv[at]
    args.command_options = _batch_command_parser(argv[at]).parse_args(argv[at + 1:])
    args.quiet |= args.command_options.quiet
    args.debug |= args.command_options.debug
    return args


def _noise_levels(text: str) -> tuple[float, float]:
    try:
        shot, read = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not SHOT,READ noise levels: {text!r} (e.g. 0.004,0.003)") from None
    if shot < 0 or read < 0:
        raise argparse.ArgumentTypeError("noise levels must be non-negative")
    return shot, read


@_subcommand
def _synth_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "synth", "make benchmark clips with known ground truth from sharp footage", [
        "vidrestore synth handheld sharp.mp4 -o clips/walk",
        "vidrestore synth handheld --help",
        "vidrestore synth noise sharp.mp4 -o clips/noisy25 --sigma 25",
        "vidrestore synth compress sharp.mp4 -o clips/crf35 --crf 35",
    ])
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    _synth_noise_command(kinds)
    _synth_compress_command(kinds)
    _synth_film_command(kinds)
    h = _add(kinds, "handheld", "OIS-aware handheld shake: blurry.mkv (sharp and blurry frames), gt.mkv, labels.json", [
        "vidrestore synth handheld sharp.mp4 -o clips/walk",
        "vidrestore synth handheld sharp.mp4 -o clips/small --scale 0.5 --start 30 --frames 60 --seed 3",
        "vidrestore synth handheld sharp.mp4 -o clips/phone --noise 0.004,0.003 --crf 23   # phone-like",
    ])
    h.add_argument("input", type=Path, help="a sharp video")
    h.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    h.add_argument("--seed", type=int, default=0, help="random seed of the camera shake (default 0)")
    h.add_argument("--start", type=_int_at_least(0), default=0, help="first source frame to use (default 0)")
    h.add_argument("--frames", type=_int_at_least(1), help="number of frames to use (default: all from --start)")
    h.add_argument("--scale", type=float, default=1.0, help="resize the source first, e.g. 0.5 (default 1)")
    h.add_argument("--exposure", type=float, default=0.6, help="exposure time as a fraction of the frame interval (default 0.6)")
    h.add_argument("--ois-strength", type=float, default=0.99, help="share of in-stroke shake the stabilizer cancels (default 0.99)")
    h.add_argument("--sharp-share", type=float, default=0.35, help="share of frames that come out sharp (default 0.35)")
    h.add_argument("--blur-strength", type=float, default=1.0, help="scale of the hand motion (default 1)")
    h.add_argument("--sharp-threshold", type=float, default=0.4, help="blur extent in pixels under which a frame is sharp (default 0.4)")
    h.add_argument("--noise", type=_noise_levels, metavar="SHOT,READ", help="Poisson-Gaussian sensor noise in linear light, e.g. 0.004,0.003")
    h.add_argument("--crf", type=int, help="encode blurry.mkv with H.264 at this CRF (default: lossless FFV1)")
    h.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    _common(h)

    def run(args: argparse.Namespace) -> int:
        from .synth.handheld import synth_handheld
        from .synth.shake import ShakeSettings

        shake = ShakeSettings(exposure=args.exposure, ois_strength=args.ois_strength, sharp_share=args.sharp_share,
                              blur_strength=args.blur_strength, sharp_threshold_px=args.sharp_threshold, seed=args.seed)
        r = synth_handheld(args.input, args.output, shake, start=args.start, frames=args.frames, scale=args.scale,
                           noise=args.noise, crf=args.crf, overwrite=args.overwrite, progress=not args.quiet)
        print(f"wrote {r.dir}: {r.frames} frames, {r.sharp_share:.0%} sharp, {r.seconds:.1f} s "
              f"({r.blurry.name}, {r.gt.name}, {r.labels.name})")
        return 0

    h.set_defaults(handler=run)


def _source_part_options(p: argparse.ArgumentParser) -> None:
    """Input, output folder and the part of the source a paired synth clip uses."""
    p.add_argument("input", type=Path, help="a clean video")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument("--start", type=_int_at_least(0), default=0, help="first source frame to use (default 0)")
    p.add_argument("--frames", type=_int_at_least(1), help="number of frames to use (default: all from --start)")
    p.add_argument("--scale", type=float, default=1.0, help="resize the source first, e.g. 0.5 (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    _common(p)


def _paired_written(r) -> int:
    print(f"wrote {r.dir}: {r.frames} frames, {r.seconds:.1f} s ({r.gt.name}, {r.degraded.name}, {r.settings.name})")
    return 0


def _synth_noise_command(kinds: argparse._SubParsersAction) -> None:
    p = _add(kinds, "noise", "sensor noise: gt.mkv, noisy.mkv (lossless), settings.json", [
        "vidrestore synth noise sharp.mp4 -o clips/noisy25 --sigma 25          # Gaussian, 8-bit scale",
        "vidrestore synth noise sharp.mp4 -o clips/low-light --poisson 0.01,0.005   # Poisson-Gaussian in linear light",
        "vidrestore synth noise sharp.mp4 -o clips/short --sigma 15 --frames 30 --scale 0.5 --seed 2",
    ])
    _source_part_options(p)
    p.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise sigma on the 8-bit scale (default 25)")
    p.add_argument("--poisson", type=_noise_levels, metavar="SHOT,READ",
                   help="Poisson-Gaussian noise in linear light instead (variance SHOT*x + READ^2), e.g. 0.01,0.005")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    def run(args: argparse.Namespace) -> int:
        from .synth.noise import synth_noise

        return _paired_written(synth_noise(args.input, args.output, sigma=args.sigma, poisson=args.poisson, seed=args.seed,
                                           start=args.start, frames=args.frames, scale=args.scale,
                                           overwrite=args.overwrite, progress=not args.quiet))

    p.set_defaults(handler=run)


def _synth_compress_command(kinds: argparse._SubParsersAction) -> None:
    p = _add(kinds, "compress", "compression artefacts: gt.mkv, compressed.mkv (H.264/HEVC at a CRF), settings.json", [
        "vidrestore synth compress sharp.mp4 -o clips/crf35 --crf 35",
        "vidrestore synth compress sharp.mp4 -o clips/hevc40 --codec hevc --crf 40 --frames 60",
    ])
    _source_part_options(p)
    p.add_argument("--codec", choices=["h264", "hevc"], default="h264", help="encoder (default h264)")
    p.add_argument("--crf", type=int, default=35, help="constant rate factor, 0-51 (default 35)")
    p.add_argument("--preset", help="encoder preset (default medium)")

    def run(args: argparse.Namespace) -> int:
        from .synth.compress import synth_compress

        return _paired_written(synth_compress(args.input, args.output, codec=args.codec, crf=args.crf, preset=args.preset,
                                              start=args.start, frames=args.frames, scale=args.scale,
                                              overwrite=args.overwrite, progress=not args.quiet))

    p.set_defaults(handler=run)


@_subcommand
def _metrics_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "metrics", "compare a restored video with its reference: PSNR/SSIM (RGB, Y), LPIPS, drift, warping error, blur", [
        "vidrestore metrics restored.mkv clips/walk/gt.mkv --labels clips/walk/labels.json --crop 8",
        "vidrestore metrics restored.mkv gt.mkv --csv frames.csv --json summary.json --lpips lpips_alex.pth",
        "vidrestore metrics restored.mp4 input.mp4 --no-gt      # real footage: drift, warping error, blur, sharp-frame agreement",
        "vidrestore metrics steady.mp4 shaky.mp4 --stabilization  # stability, jitter, crop, distortion, ITF",
        "vidrestore metrics deflickered.mp4 film.mp4 --flicker    # frame-mean luminance flicker above 1 Hz",
    ])
    p.add_argument("output", type=Path, help="the video to judge")
    p.add_argument("reference", type=Path, help="its ground truth (or, with --no-gt, the unrestored input)")
    p.add_argument("--no-gt", action="store_true",
                   help="the reference is the degraded input, not ground truth: no PSNR/SSIM/LPIPS; instead sharp-frame "
                        "agreement (PSNR-Y of input and output against the input's nearest sharp frame warped onto them)")
    p.add_argument("--labels", type=Path, help="labels.json from `vidrestore synth handheld`: also average over sharp and blurry frames")
    p.add_argument("--crop", type=_int_at_least(0), default=0, help="border pixels left out of PSNR/SSIM (default 0)")
    p.add_argument("--lpips", type=Path, nargs="+", metavar="WEIGHTS",
                   help="local LPIPS weights: an lpips state dict, or torchvision backbone + lpips linear heads")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex", help="LPIPS backbone (default alex)")
    p.add_argument("--csv", type=Path, help="write per-frame metrics here")
    p.add_argument("--json", type=Path, help="write the summary here")
    p.add_argument("--overwrite", action="store_true", help="replace existing --csv / --json files")
    p.add_argument("--report", type=Path, metavar="PATH.html",
                   help="with ground truth: also write an HTML report (per-frame PSNR/SSIM, before/after viewer)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--stabilization", action="store_true",
                      help="the output is a stabilized REFERENCE: stability, path jitter, cropping ratio, distortion, ITF")
    mode.add_argument("--flicker", action="store_true", help="frame-mean luminance flicker (above 1 Hz) of the output and REFERENCE")
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .io.paths import check_output
        from .metrics.report import evaluate_videos

        inputs = [args.output, args.reference, *([args.labels] if args.labels else []), *(args.lpips or [])]
        written = [f for f in (args.csv, args.json) if f is not None]
        if len(written) == 2 and args.csv.absolute() == args.json.absolute():
            raise VidrestoreError("--csv and --json name the same file", args.csv)
        for f in written:
            check_output(inputs, f, args.overwrite)
        if args.report is not None:
            from .report import check_report_path

            if args.no_gt or args.stabilization or args.flicker:
                raise VidrestoreError("--report compares with ground truth: leave out --no-gt, --stabilization and --flicker")
            check_report_path(args.report, inputs)
        if args.stabilization or args.flicker:
            return _temporal_metrics(args)

        lpips = None
        if args.lpips:
            from .metrics.lpips import load_lpips

            lpips = load_lpips(args.lpips, args.lpips_net)
        labels = None
        if args.labels:
            from .synth.handheld import load_labels

            labels = [f["sharp"] for f in load_labels(args.labels)["frames"]]
        sharp = None
        if args.no_gt:
            from .selfhvd.report import sharpness_timeline

            sharp = sharpness_timeline(args.reference, progress=not args.quiet).sharp
        t0 = time.perf_counter()
        report = evaluate_videos(args.output, args.reference, gt=not args.no_gt, labels=labels, crop=args.crop,
                                 lpips=lpips, sharp=sharp, progress=not args.quiet)
        if args.report is not None:
            from .report import JobRecord, write_report

            reference = str(args.reference.absolute())
            record = JobRecord("metrics", reference, str(args.output.absolute()), {"crop": args.crop},
                               {"metrics": time.perf_counter() - t0}, ground_truth=reference)
            write_report(record, args.report, progress=not args.quiet)
            print(f"wrote report {args.report}")
        if args.csv:
            report.write_csv(args.csv)
        if args.json:
            report.write_json(args.json)
        summary = report.summary()
        for group in ("all", "sharp", "blurry"):
            if group in summary:
                g = summary[group]
                shown = ", ".join(f"{k} {v:.4g}" for k, v in g.items() if v is not None and k != "frames")
                print(f"{group} ({g['frames']} frames): {shown}")
        return 0

    p.set_defaults(handler=run)


def _temporal_metrics(args: argparse.Namespace) -> int:
    """`metrics --stabilization` / `--flicker`: print (and with --json write) the scores."""
    import json

    if args.stabilization:
        from .metrics.stabilization import evaluate_stabilization

        r = evaluate_stabilization(args.output, args.reference)
        scores = r.to_dict()
        for name, s in (("output", r.output), ("reference", r.input)):
            print(f"{name}: stability {s.stability:.3f} (translation {s.stability_translation:.3f}, rotation "
                  f"{s.stability_rotation:.3f}), jitter {s.jitter:.3g} px^2 above {r.cutoff_hz:g} Hz (RMS {s.jitter_rms:.3g} px), "
                  f"ITF {s.itf:.2f} dB")
        print(f"jitter reduction {100 * r.jitter_reduction:.1f} %, cropping ratio {r.cropping_ratio:.3f} (min "
              f"{r.cropping_ratio_min:.3f}), distortion {r.distortion:.3f}")
    else:
        from .metrics.temporal import video_flicker

        scores = video_flicker(args.output, args.reference)
        print(f"frame-mean luma flicker above 1 Hz (RMS): output {scores['output']:.5f}, reference {scores['reference']:.5f}, "
              f"reduction {100 * scores['reduction']:.1f} %")
    if args.json:
        from .io.paths import atomic_write_text

        atomic_write_text(args.json, json.dumps(scores, indent=1))
    return 0


@_subcommand
def _report_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "report", "write the HTML report of a finished job from the work directory (self-contained, opens offline)", [
        "vidrestore report sharp.mp4 -o sharp.html           # the job that wrote sharp.mp4",
        "vidrestore report steady.mp4 -o steady.html --frame 10 --frame 200 --work-dir /shared/work",
    ])
    p.add_argument("job", type=Path, metavar="JOB", help="the output video of a finished restore, stabilize, deflicker or deblur")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="PATH.html", help="the report to write")
    p.add_argument("--frame", type=_int_at_least(0), action="append", metavar="N",
                   help="a frame for the before/after viewer (repeatable; default: four spread over the video)")
    p.add_argument("--work-dir", type=Path, help="the job's work directory (default ~/.cache/vidrestore)")
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .report import load_record, write_report

        write_report(load_record(args.job, args.work_dir), args.output, args.frame, progress=not args.quiet)
        print(f"wrote report {args.output}")
        return 0

    p.set_defaults(handler=run)


@_subcommand
def _bench_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "bench", "run a benchmark suite: methods x clips, scored, as Markdown and JSON tables", [
        "vidrestore bench benchmarks/suites/default.toml",
        "vidrestore bench benchmarks/suites/ci.toml -o results/ci --methods identity,lucky",
        "vidrestore bench my-suite.toml --data /footage --keep-videos",
        "vidrestore bench --list                 # the methods a suite can name",
    ])
    p.add_argument("suite", type=Path, nargs="?", help="suite file (TOML)")
    p.add_argument("-o", "--output", type=Path, help="results folder (default bench-results/SUITE_NAME)")
    p.add_argument("--data", type=Path, help="folder that relative clip sources are read from (overrides the suite's `data`)")
    p.add_argument("--methods", help="comma-separated method labels to run (default: all in the suite)")
    p.add_argument("--clips", help="comma-separated clip names to run (default: all in the suite)")
    p.add_argument("--keep-videos", action="store_true", help="keep every method's output video under OUTPUT/videos/")
    p.add_argument("--work-dir", type=Path, help="cache of synthesized clips and scratch space (default ~/.cache/vidrestore)")
    p.add_argument("--list", action="store_true", help="list the registered methods and exit")
    _common(p)

    def run(args: argparse.Namespace) -> int:
        from .bench import list_methods, load_suite, run_suite
        from .bench.methods import get_method

        if args.list:
            for name in list_methods():
                m = get_method(name)
                print(f"{name}{' (trains on the clip)' if m.trains else ''}: {m.description}")
            return 0
        if args.suite is None:
            raise VidrestoreError("give a suite file (see `vidrestore bench --help`)")
        suite = load_suite(args.suite, args.data)
        out = args.output or Path("bench-results") / suite.name
        split = lambda text: [x.strip() for x in text.split(",") if x.strip()] if text else None  # noqa: E731
        t0 = time.perf_counter()
        run_suite(suite, out, work_dir=args.work_dir, methods=split(args.methods), clips=split(args.clips),
                  keep_videos=args.keep_videos, progress=not args.quiet)
        print(f"wrote {out / 'results.md'} and {out / 'results.json'} ({time.perf_counter() - t0:.0f} s)")
        return 0

    p.set_defaults(handler=run)


def _synth_film_command(kinds: argparse._SubParsersAction) -> None:
    f = _add(kinds, "film", "archival-film damage: damaged.mkv, gt.mkv, masks/ of blotches and scratches, params.json", [
        "vidrestore synth film clean.mp4 -o clips/film",
        "vidrestore synth film clean.mp4 -o clips/dust --scratches 0 --grain 0 --fade 0 --flicker 0   # blotches only",
    ])
    f.add_argument("input", type=Path, help="a clean video")
    f.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    f.add_argument("--seed", type=int, default=0, help="random seed of all damage (default 0)")
    f.add_argument("--start", type=_int_at_least(0), default=0, help="first source frame to use (default 0)")
    f.add_argument("--frames", type=_int_at_least(1), help="number of frames to use (default: all from --start)")
    f.add_argument("--scale", type=float, default=1.0, help="resize the source first, e.g. 0.5 (default 1)")
    f.add_argument("--blotches", type=float, default=4.0, help="mean blotches (dirt, dust, hairs) per frame (default 4)")
    f.add_argument("--scratches", type=_int_at_least(0), default=1, help="line scratches, each over a span of frames (default 1)")
    f.add_argument("--grain", type=float, default=0.02, help="grain standard deviation at mid-grey, AV1 model (default 0.02)")
    f.add_argument("--fade", type=float, default=0.5, help="dye fading strength, 0 to 1 (default 0.5)")
    f.add_argument("--flicker", type=float, default=0.04, help="standard deviation of the per-frame exposure gain (default 0.04)")
    f.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    _common(f)

    def run(args: argparse.Namespace) -> int:
        from .synth.film import FilmDamage, synth_film

        damage = FilmDamage(blotches=args.blotches, scratches=args.scratches, grain=args.grain, fade=args.fade,
                            flicker=args.flicker, seed=args.seed)
        r = synth_film(args.input, args.output, damage, start=args.start, frames=args.frames, scale=args.scale,
                       overwrite=args.overwrite, progress=not args.quiet)
        print(f"wrote {r.dir}: {r.frames} frames, {r.blotches} blotches, {r.seconds:.1f} s "
              f"({r.damaged.name}, {r.gt.name}, masks/, {r.params.name})")
        return 0

    f.set_defaults(handler=run)


@_subcommand
def _film_command(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "film", "restore archival film: deflicker, faded colour, dust and dirt, line scratches, grain kept (each switchable)", [
        "vidrestore film old.mp4 -o restored.mp4                      # deflicker -> colour -> dust -> scratches, grain kept",
        "vidrestore film old.mp4 -o restored.mp4 --grain resynth      # grain measured (AV1 model), removed, re-made after",
        "vidrestore film old.mp4 -o restored.mkv --codec av1 --grain resynth --grain-table   # re-made by the AV1 decoder",
        "vidrestore film old.mp4 -o restored.mkv --masks masks/       # also masks/dust/ and masks/scratches/, what was repaired",
        "vidrestore film old.mp4 -o restored.mp4 --stabilize --no-scratches --colour off",
        "(an interrupted run resumes when the same command is run again)",
    ])
    p.add_argument("input", type=Path, help="video file or folder of images")
    p.add_argument("--stabilize", action="store_true", help="first remove gate weave and camera shake (the stabilize command's defaults)")
    p.add_argument("--no-deflicker", action="store_true", help="leave the exposure flicker")
    p.add_argument("--grain", choices=["keep", "remove", "resynth", "off"], default="keep",
                   help="keep = take the grain out for the repairs and put it back (default); remove; resynth = measure it "
                        "(AV1 film-grain model), take it out, synthesize new grain of that model after; off = leave it in for the repairs")
    p.add_argument("--grain-table", action="store_true",
                   help="with --grain resynth and AV1 output: the measured grain goes into the AV1 stream as film-grain "
                        "parameters (the decoder synthesizes it) instead of into the pixels; also written as OUTPUT.grain.tbl "
                        "(aomenc's film-grain table). Encodes with libaom-av1 through the ffmpeg program (--preset: its cpu-used, 0-8)")
    p.add_argument("--colour", choices=["auto", "off"], default="auto",
                   help="auto = restore faded dyes' black and white points where they are off grey (default); off = keep the colour")
    p.add_argument("--no-dust", action="store_true", help="leave dust, dirt and blotches")
    p.add_argument("--no-scratches", action="store_true", help="leave line scratches")
    p.add_argument("--masks", type=Path, metavar="DIR", help="write each frame's repaired pixels to DIR/dust/ and DIR/scratches/ (PNG)")
    _output_options(p)
    _common(p)

    def run(args: argparse.Namespace) -> int:
        _check_report(args)
        stages = _film_stages(args)
        if not stages:
            raise VidrestoreError("every part of the film chain is switched off: nothing to do")
        result = _film_with_grain_table(args, stages) if args.grain_table else _restore_and_report(args, stages)
        if args.masks is not None:
            print(f"wrote the repair masks under {args.masks}")
        _keep_record(args, _stage_record(args, "film", stages, result))
        return 0

    p.set_defaults(handler=run, resumes=True)


def _film_stages(args: argparse.Namespace) -> list:
    """The film chain (restoration/film.py gives the order and why)."""
    from .restoration.film import film_stages

    return film_stages(stabilize=args.stabilize, deflicker=not args.no_deflicker, grain=args.grain, colour=args.colour == "auto",
                       dust=not args.no_dust, scratches=not args.no_scratches, masks=args.masks,
                       grain_table=args.grain_table)


def _film_with_grain_table(args: argparse.Namespace, stages: list) -> RestoreResult:
    """`film --grain-table`: the chain into a lossless intermediate beside the output, the measured
    grain written as an AV1 film-grain table (OUTPUT.grain.tbl), and the output encoded as AV1
    (libaom through ffmpeg) carrying it."""
    from dataclasses import replace

    from .io import EncodeSettings, probe
    from .io.encode import CODECS
    from .io.grain_table import DEFAULT_CPU_USED, check_encoder, encode_with_table, grain_table
    from .pipeline import restore
    from .restoration.film_grain import GrainMeasure

    settings = _encode_settings(args)
    if settings.name != "av1":
        raise VidrestoreError(f"--grain-table writes the grain as AV1 film-grain parameters: the output must be AV1 "
                              f"(--codec av1), not {settings.name}")
    cpu_used = DEFAULT_CPU_USED if settings.preset is None else int(settings.preset) if str(settings.preset).isdigit() else -1
    if not 0 <= cpu_used <= 8:
        raise VidrestoreError(f"with --grain-table, --preset is libaom's cpu-used, 0-8, not {settings.preset!r}")
    check_encoder()
    if args.output.exists() and not args.overwrite:
        raise VidrestoreError("output exists (use --overwrite)", args.output)
    lossless = args.output.with_name(f"{args.output.stem}.grainless.mkv")
    table = args.output.with_name(f"{args.output.stem}.grain.tbl")
    result = restore(args.input, lossless, stages, EncodeSettings("ffv1"), overwrite=True, work_dir=args.work_dir,
                     segment_frames=args.segment_frames, progress=not args.quiet, drop_subtitles=args.drop_subtitles,
                     image_fps=args.fps)
    model = next(s for s in stages if isinstance(s, GrainMeasure)).model
    info = probe(lossless)
    yuv = info.pix_fmt.startswith(("yuv", "gray"))
    table.write_text(grain_table(model, full_range=yuv and info.colour.range == 2))
    encode_with_table(lossless, args.output, table, settings.crf if settings.crf is not None else CODECS["av1"].crf, cpu_used,
                      info.pix_fmt if yuv else "yuv444p")
    lossless.unlink()
    result = replace(result, output=args.output, plan=f"av1 (libaom-av1) carrying the film-grain table {table.name}")
    _report(result)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn every expected failure into one line on stderr."""
    parser = build_parser()
    argv = _attach_negative_values(sys.argv[1:] if argv is None else argv)
    args = _parse_batch(parser, argv) if argv[:1] == ["batch"] else parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(format="vidrestore: %(message)s", level=logging.WARNING if args.quiet else logging.INFO)
    if not args.debug:
        warnings.simplefilter("ignore")  # libraries' warnings (matplotlib, torch) are not the user's business
    try:
        return args.handler(args)
    except VidrestoreError as err:
        if args.debug:
            raise
        print(f"vidrestore: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        then = ("run the same command again to resume" if getattr(args, "resumes", False)
                else "this command does not resume: run it again to start over")
        print(f"vidrestore: interrupted; {then}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one line for the user, traceback with --debug
        if args.debug:
            raise
        if disk_full(err):  # `restore` names the file it was writing itself; the other writers land here
            where = err.filename or f"the work directory ({getattr(args, 'work_dir', None) or default_work_dir()}) or the output"
            print(f"vidrestore: error: disk full while writing {where} ({os.strerror(err.errno)}); free space there "
                  "(or choose another --work-dir) and run the same command again: finished work is kept", file=sys.stderr)
            return 1
        print(f"vidrestore: internal error: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return 1
