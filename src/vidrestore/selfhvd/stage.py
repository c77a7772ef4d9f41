"""`deblur` as a stage of `restore -s` (`-s denoise -s deblur`): SelfHVD on what the stages before it output.

Its analysis pass runs SelfHVD's analysis (`analysis.analyze_frames`) on the frames it receives,
the previous stage's output in a chain, and trains on them (`deblur.deblur_stage`, as
`vidrestore deblur` does for a file), all under the pass's cache folder: an interrupted run
resumes its training, a finished one is not trained again. The render pass then runs the
network (`infer.DeblurStage`), fidelity fusion, or the fallback when the video has too few
sharp frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import VidrestoreError
from ..io.paths import content_hash
from ..io.probe import VideoInfo
from ..io.reader import Frame
from ..models import load_checkpoint
from ..models.tiling import DEFAULT_MARGIN, DEFAULT_TILE
from ..pipeline import Stage, Window, register_stage
from .analysis import MAX_DOWNSCALE, AnalysisSettings, VideoAnalysis, analyze_frames
from .deblur import DEFAULT_BUDGET, analysis_settings, check_options, deblur_stage
from .fidelity import RADIUS
from .train import Budget, TrainSettings, resolve_device

log = logging.getLogger(__name__)
STAGE_VERSION = 1  # bump when the cached analysis and model change meaning


class Deblur(Stage):
    """Two-pass windowed stage of SelfHVD deblurring (`restore -s deblur`, `-s deblur:budget=1000`).

    Args:
        budget: training steps on the frames (0 applies `model` as it is).
        fidelity: no network: observed pixels only (`vidrestore.selfhvd.fidelity`).
        model: a trained model (.safetensors) or the SelfHVD authors' checkpoint (.pth) to start
            from; None trains one from scratch.
        seed: the training's random seed.
        arch: the network trained from scratch (`vidrestore.models.create_model`).
        crop, batch: the training crops' side in pixels and crops per step.
        device: "auto", "cpu" or "cuda".
        tile: inference tile size in pixels (0: whole frames).
        max_downscale: the largest factor by which the network learns and deblurs at a smaller size
            than the frames' (`AnalysisSettings.max_downscale`; 1: full resolution).
    """

    name = "deblur"
    two_pass = True

    def __init__(self, budget: int = DEFAULT_BUDGET.steps, fidelity: bool = False, model: str | None = None,
                 seed: int = 0, arch: str = "unet", crop: int = 128, batch: int = 8, device: str = "auto",
                 tile: int = DEFAULT_TILE, max_downscale: int = MAX_DOWNSCALE):
        if budget < 0 or tile < 0 or max_downscale < 1:
            raise VidrestoreError(f"{self.name} needs budget >= 0 steps, tile >= 0 and max_downscale >= 1 "
                                  f"(got {budget}, {tile}, {max_downscale})")
        self.budget, self.fidelity, self.tile = Budget(steps=int(budget)), bool(fidelity), int(tile)
        check_options(model, self.budget, self.fidelity)
        self.model = Path(model) if model is not None else None
        if self.model is not None and not self.model.is_file():
            raise VidrestoreError("model file not found", self.model)
        self.model_key = content_hash(self.model) if self.model is not None else None
        self.settings = TrainSettings(model=arch, seed=int(seed), crop=int(crop), batch=int(batch))
        self.settings.check()
        self.analysis = analysis_settings(AnalysisSettings(max_downscale=int(max_downscale)), self.fidelity, self.model)
        self.device_name = device
        self.radius = RADIUS  # the default network's and fidelity's; the trained model's once loaded
        self.inner: Stage | None = None

    def config(self) -> dict:
        return {"version": STAGE_VERSION, "budget": str(self.budget), "fidelity": self.fidelity,
                "model": self.model_key, "train": asdict(self.settings), "analysis": asdict(self.analysis),
                "tile": self.tile}

    def inputs(self) -> list[Path]:
        return [self.model] if self.model is not None else []

    def _build(self, a: VideoAnalysis, cache_dir: Path) -> tuple[Stage, str | None]:
        """The stage `deblur_stage` picks for the analysis, training (or reusing) its model under cache_dir,
        and the fallback it took."""
        device = resolve_device(self.device_name)
        given = load_checkpoint(self.model, device) if self.model is not None else None
        stage, _, fallback = deblur_stage(a, given, self.model.name if self.model else None, self.budget, self.settings,
                                          fidelity=self.fidelity, device=device, tile=self.tile, margin=DEFAULT_MARGIN,
                                          work_dir=cache_dir, progress=False)
        return stage, fallback

    def analyze(self, frames: Iterator[Frame], info: VideoInfo, cache_dir: Path) -> None:
        """SelfHVD's analysis of the frames, then the training (both cached in cache_dir)."""
        self._build(analyze_frames(frames, info, cache_dir / "selfhvd", self.analysis, progress=False), cache_dir)

    def load(self, cache_dir: Path) -> None:
        a = VideoAnalysis(cache_dir / "selfhvd")
        self.inner, fallback = self._build(a, cache_dir)
        if fallback:
            log.warning("%s: %s", a.meta["source"], fallback)
        self.radius = self.inner.radius

    def process(self, window: Window) -> np.ndarray:
        if self.inner is None:
            raise VidrestoreError(f"{self.name}: the analysis pass (analyze, load) trains the network first")
        return self.inner.process(window)


@register_stage("deblur")
def _deblur(budget: int = DEFAULT_BUDGET.steps, fidelity: bool = False, model: str | None = None, seed: int = 0,
            arch: str = "unet", crop: int = 128, batch: int = 8, device: str = "auto", tile: int = DEFAULT_TILE,
            max_downscale: int = MAX_DOWNSCALE) -> Deblur:
    return Deblur(budget, fidelity, model, seed, arch, crop, batch, device, tile, max_downscale)
