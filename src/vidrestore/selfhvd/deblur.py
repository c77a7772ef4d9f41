"""The SelfHVD jobs users run: deblur one video (training on it), train on many, apply a model.

* `deblur(IN, OUT)`: analyse IN, train a network on IN alone within a budget, deblur every
  frame of IN through the resumable pipeline (audio, timestamps and colour kept);
* `deblur(IN, OUT, model=PATH)`: start from a trained model instead, adapted to IN for the
  budget (`budget=Budget(steps=0)`: applied as it is);
* `deblur(IN, OUT, fidelity=True)`: no network at all, only convex combinations of IN's frames
  aligned onto each other, with the sources of every frame listed (`vidrestore.selfhvd.fidelity`);
* `train_videos(VIDEOS, OUT_MODEL)`: dataset-level self-supervised training on a user's
  unlabelled videos (the paper's setting).

A trained model is cached in the work directory under a key of its inputs' content and every
setting, with its resumable training state: a job interrupted during training continues where
it stopped, and a finished one is not trained again. When a video has too few sharp frames to
supervise itself (`Selection.problem`), `deblur` says so and falls back to lucky-frame fusion,
or to the given model without adaptation, instead of training on garbage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn

from ..errors import VidrestoreError
from ..io import EncodeSettings
from ..io.cache import cache_ready, mark_complete
from ..io.paths import config_key
from ..models import load_checkpoint, save_checkpoint
from ..models.checkpoint import AUTHORS_SUFFIXES
from ..models.tiling import DEFAULT_MARGIN, DEFAULT_TILE
from ..pipeline import RestoreResult, Stage, build_stage, default_work_dir, plan_restore, restore
from .analysis import AnalysisSettings, VideoAnalysis, analyze_video
from .fidelity import FidelityStage
from .infer import DeblurStage, model_digest
from .train import Budget, TrainSettings, resolve_device, train

log = logging.getLogger(__name__)
DEFAULT_BUDGET = Budget(steps=300)  # steps, not minutes: the same result on any machine, idle or busy
MODEL_CACHE_VERSION = 1  # bump when a cached model's files change meaning


@dataclass
class DeblurReport:
    """What `deblur` did: the render result, the selection summary and the training record."""

    result: RestoreResult
    selection: dict
    training: dict | None
    fallback: str | None
    notes: list[str] = field(default_factory=list)
    sources: list[list[tuple[int, float]]] | None = None  # fidelity mode: each frame's sources and weights


def trained_model(analyses: Sequence[VideoAnalysis], settings: TrainSettings, budget: Budget, *,
                  work_dir: str | os.PathLike | None = None, device: torch.device, init: nn.Module | None = None,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """Train on `analyses` or reuse the model an earlier run trained with the same inputs and settings."""
    root = Path(work_dir) if work_dir is not None else default_work_dir()
    key = config_key("selfhvd-model", [a.dir.name for a in analyses], asdict(settings), str(budget),
                     model_digest(init) if init is not None else None)
    folder = root / "cache" / f"selfhvd-model-{key}"
    done = folder / "model.safetensors"
    if cache_ready(folder, MODEL_CACHE_VERSION):
        model, info = load_checkpoint(done, device)
        return model, info["training"]
    folder.mkdir(parents=True, exist_ok=True)
    model, info = train(list(analyses), settings, budget, device=device, state_dir=folder, init=init, progress=progress)
    save_checkpoint(model, done, training=info, inputs=[a.meta["source"] for a in analyses])
    mark_complete(folder, MODEL_CACHE_VERSION)
    return model, info


def check_options(model: str | os.PathLike | None, budget: Budget, fidelity: bool) -> None:
    """Refuse, before any work, options that contradict each other."""
    if fidelity and model is not None:
        raise VidrestoreError("fidelity mode uses no network: leave out the model")
    if model is None and budget.steps == 0 and not fidelity:
        raise VidrestoreError("training from scratch needs a budget above 0 steps (0 applies a given model as it is)")


def analysis_settings(analysis: AnalysisSettings, fidelity: bool, model: str | os.PathLike | None) -> AnalysisSettings:
    """`analysis`, at full resolution (`max_downscale` 1) for fidelity fusion, whose every output pixel
    must be a convex combination of the input's own, and for the authors' checkpoint (`model`
    a .pth), trained at full resolution."""
    if fidelity or (model is not None and Path(model).suffix in AUTHORS_SUFFIXES):
        return replace(analysis, max_downscale=1)
    return analysis


def deblur_stage(a: VideoAnalysis, given: tuple[nn.Module, dict] | None, given_name: str | None, budget: Budget,
                 settings: TrainSettings, *, fidelity: bool, device: torch.device, tile: int, margin: int,
                 work_dir: str | os.PathLike | None, progress: bool) -> tuple[Stage, dict | None, str | None]:
    """The stage that deblurs the analysed video, with its training record and the fallback taken (or None):
    fidelity fusion; the `given` (model, info) adapted to it for the budget; a network trained on it; or,
    when it has too few sharp frames to supervise itself, the given model as it is or lucky-frame fusion."""
    problem = a.selection.problem
    if fidelity:
        return FidelityStage(a), None, None
    if given is not None:
        net, info = given
        training = fallback = None
        if budget.steps != 0 and problem is None:
            net, training = trained_model([a], TrainSettings(**{**asdict(settings), "model": info["model"],
                                                                "model_config": info["config"]}),
                                          budget, work_dir=work_dir, device=device, init=net, progress=progress)
        elif budget.steps != 0:
            fallback = f"{problem}; applying {given_name} without adapting it"
        return DeblurStage(net, a, device, tile, margin), training, fallback
    if problem is not None:
        fallback = f"{problem}; self-supervised training needs sharp frames, so lucky-frame fusion is used instead"
        return build_stage("lucky"), None, fallback
    net, training = trained_model([a], settings, budget, work_dir=work_dir, device=device, progress=progress)
    return DeblurStage(net, a, device, tile, margin), training, None


def deblur(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    budget: Budget = DEFAULT_BUDGET,
    settings: TrainSettings = TrainSettings(),
    analysis: AnalysisSettings = AnalysisSettings(),
    encode: EncodeSettings = EncodeSettings(),
    device: str = "auto",
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    overwrite: bool = False,
    work_dir: str | os.PathLike | None = None,
    segment_frames: int = 240,
    progress: bool = True,
    drop_subtitles: bool = False,
    image_fps: Fraction | None = None,
    fidelity: bool = False,
) -> DeblurReport:
    """Deblur `input` into `output` (see the module docstring).

    Args:
        input, output: video paths (output: any container/codec `restore` writes).
        model: the network to start from: a trained model (.safetensors from `train_videos` or
            `vidrestore train`) or the SelfHVD authors' checkpoint (.pth); None (the default)
            trains one on `input` from scratch.
        budget: training on `input`: adapting `model` to it, or from scratch (steps by default, so
            that the result does not depend on the machine's speed or load; a time budget trains
            as many steps as fit; 0 steps applies `model` as it is).
        settings: the training recipe.
        analysis: sharp-frame selection and flow settings.
        encode: output codec settings.
        device: "auto", "cpu" or "cuda".
        tile, margin: inference tiling.
        overwrite, work_dir, segment_frames, progress, drop_subtitles, image_fps: as for `vidrestore.restore`.
        fidelity: build the output only from observed pixels (`vidrestore.selfhvd.fidelity`);
            nothing is trained, so `model` must be None and `budget` is not used.
    """
    dev = resolve_device(device)
    check_options(model, budget, fidelity)
    src = Path(input)
    given = load_checkpoint(model, dev) if model is not None else None
    plan_restore(src, output, encode, overwrite=overwrite, drop_subtitles=drop_subtitles, image_fps=image_fps)
    a = analyze_video(src, analysis_settings(analysis, fidelity, model), work_dir=work_dir, progress=progress)
    stage, training, fallback = deblur_stage(a, given, Path(model).name if model else None, budget, settings, fidelity=fidelity,
                                             device=dev, tile=tile, margin=margin, work_dir=work_dir, progress=progress)
    notes: list[str] = []
    if fallback:
        log.warning("%s: %s", src, fallback)
        notes.append(fallback)
    result = restore(src, output, [stage], encode, overwrite=overwrite, work_dir=work_dir,
                     segment_frames=segment_frames, progress=progress, drop_subtitles=drop_subtitles, image_fps=image_fps)
    sources = stage.sources(src) if isinstance(stage, FidelityStage) else None   # after rendering: frames passed through
    return DeblurReport(result, a.selection.summary(), training, fallback, notes + result.notes, sources)


def train_videos(
    videos: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    budget: Budget = Budget(minutes=30),
    settings: TrainSettings = TrainSettings(),
    analysis: AnalysisSettings = AnalysisSettings(),
    device: str = "auto",
    overwrite: bool = False,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Self-supervised training on a set of videos; writes a .safetensors model to `output`.

    Videos without usable sharp frames are left out (with a warning); at least one must remain.
    Returns the training record stored in the model file.
    """
    out = Path(output)
    if out.suffix != ".safetensors":
        raise VidrestoreError("the model file must end in .safetensors", out)
    if out.exists() and not overwrite:
        raise VidrestoreError("output already exists; pass --overwrite to replace it", out)
    if not out.absolute().parent.is_dir():
        raise VidrestoreError(f"output folder {out.absolute().parent} does not exist", out)
    dev = resolve_device(device)
    usable = []
    for v in videos:
        a = analyze_video(v, analysis, work_dir=work_dir, progress=progress)
        if a.selection.problem:
            log.warning("%s: %s; left out of training", v, a.selection.problem)
        else:
            usable.append(a)
    if not usable:
        raise VidrestoreError("none of the videos has usable sharp frames to train on")
    net, info = trained_model(usable, settings, budget, work_dir=work_dir, device=dev, progress=progress)
    save_checkpoint(net, out, training=info, inputs=[a.meta["source"] for a in usable], analysis=asdict(analysis))
    return info
