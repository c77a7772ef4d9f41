"""Self-supervised training: SelfHVD's stages (L_rec, SEVD, SCSCM) and Ren et al.'s recipe.

SelfHVD (Xu et al., CVPR 2026) as implemented here:

* Stage 1, L_rec (Eq. 6): masked L1 between the output for frame i and S_j warped onto i,
  averaged over the mask (the notes say L1; the released config's Charbonnier is BasicVSR++'s
  stock supervised loss).
* Stage 2, SEVD (Eq. 7): RSCR degrades the input window (`vidrestore.selfhvd.sampling`); SIS
  picks each target's label between the aligned sharp frame and sg(D(B)), the current model's
  output on the un-degraded window (the "frozen copy" refreshed every step, the cheapest exact
  reading of the paper's "parameters copy", digest sec. 8 q. 7): the sharp frame where its
  label covers more than `sis_coverage` of the whole frame (our distortion test: the share the
  validity, occlusion and uncertainty masks keep; the authors' code measures the largest
  connected box of the mask) and it is sharper (Laplacian variance inside the mask) than
  sg(D(B)); its holes filled from sg(D(B)) as label = M S + (1 - M) sg(D(B)); otherwise
  sg(D(B)). L_rec is not applied again in stage 2: SIS already keeps the sharp labels where
  they are good.
* SCSCM (Eq. 10): L1 between the output on the degraded window and sg(D_e(B)), D_e frozen at
  the end of stage 1 (digest sec. 8 q. 6, 10), weight `scscm_weight`.

Choices the paper leaves open: stage 1 takes `stage1_share` of the budget; AdamW, learning rate
warmed up over the first tenth of the budget to `lr` (2e-4; the paper's config has 1e-4 over
200k iterations) and decayed by a cosine to lr/100; crops of 128 px, batch 8, random flips and
transposes of every batch (the released config's augmentation; flows follow); RSCR probability 0.5.

Ren et al., "Video deblurring by fitting to test data" (arXiv 2012.05228), as a baseline on the
same backbone: the video's sharp frames (the same selection) blurred with random motion kernels
are the input, the sharp frames the label, plain L1, the whole budget.

A budget is a number of steps (reproducible for a seed on CPU) or minutes (the schedule then
follows the elapsed time). Training saves its state every `CHECKPOINT_S` seconds to a folder; a
run started again with the same folder continues from there.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VidrestoreError
from ..models import create_model
from ..util.memory import reuse_freed_memory
from ..util.progress import progress_bar
from . import ddp
from .analysis import VideoAnalysis
from .sampling import Batch, Sampler, loader_batches

CHECKPOINT_S = 30.0
_STATE_KEYS = {"model", "opt", "rng", "step", "elapsed", "stage1_steps", "loss_ema", "anchor"}
log = logging.getLogger(__name__)
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class TrainSettings:
    """How to train (part of the cache key of a trained model; stored in its checkpoint).

    Attributes:
        model, model_config: the network (`vidrestore.models.create_model`).
        recipe: "selfhvd" or "ren".
        sevd, scscm: switch SelfHVD's stage-2 parts (both off: stage 1 over the whole budget).
        stage1_share: share of the budget spent in stage 1 when stage 2 is on.
        scscm_weight: weight of L_scscm.
        rscr_prob: probability that RSCR replaces a sharp frame of the window.
        sis_coverage: least label coverage for SIS to keep an aligned sharp label.
        crop, batch, lr, seed: crops per step and their side, peak learning rate, random seed.
        processes: data-parallel processes that train together, each on batch / processes crops
            a step (`vidrestore.selfhvd.ddp`); 1: this process alone.
        loaders: background processes that draw the batches (`sampling.loader_batches`), so that
            a GPU does not wait for crops; 0: drawn in the training loop, from the seed's stream
            alone (a step budget then reproduces exactly on the CPU, also across a resume).
    """

    model: str = "unet"
    model_config: dict = field(default_factory=dict)
    recipe: str = "selfhvd"
    sevd: bool = True
    scscm: bool = True
    stage1_share: float = 0.4
    scscm_weight: float = 1.0
    rscr_prob: float = 0.5
    sis_coverage: float = 0.5
    crop: int = 128
    batch: int = 8
    lr: float = 2e-4
    seed: int = 0
    processes: int = 1
    loaders: int = 0

    def check(self) -> None:
        if self.recipe not in ("selfhvd", "ren"):
            raise VidrestoreError(f"unknown training recipe {self.recipe!r}; choose selfhvd or ren")
        if not 0 < self.stage1_share <= 1 or not 0 <= self.rscr_prob <= 1 or self.crop < 16 or self.batch < 1:
            raise VidrestoreError("training needs 0 < stage1_share <= 1, 0 <= rscr_prob <= 1, crop >= 16, batch >= 1")
        if self.processes < 1 or self.batch % self.processes:
            raise VidrestoreError(f"a batch of {self.batch} crops cannot be shared evenly by {self.processes} processes")
        if self.loaders < 0:
            raise VidrestoreError("loaders must be 0 or more")

    @property
    def two_stages(self) -> bool:
        return self.recipe == "selfhvd" and (self.sevd or self.scscm)


@dataclass(frozen=True)
class Budget:
    """How long to train: `steps` or `minutes` (exactly one)."""

    steps: int | None = None
    minutes: float | None = None

    @staticmethod
    def parse(text: str) -> Budget:
        """"800" or "800steps" (steps; "0": no training), "5m"/"5min", "90s", "1.5h" (time)."""
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(steps?|s|sec|m|min|h)?\s*", str(text))
        if not m:
            raise VidrestoreError(f"not a training budget: {text!r} (use e.g. 5m, 90s, 1h or 800 for steps)")
        value, unit = float(m.group(1)), m.group(2) or "steps"
        if value < 0 or (value == 0 and not unit.startswith("step")):
            raise VidrestoreError(f"training budget must be positive (or 0 steps), not {text!r}")
        if unit.startswith("step"):
            return Budget(steps=int(value))
        return Budget(minutes=value * {"s": 1 / 60, "sec": 1 / 60, "m": 1, "min": 1, "h": 60}[unit])

    def fraction(self, step: int, seconds: float) -> float:
        if self.steps is not None:
            return step / self.steps
        return seconds / (self.minutes * 60)

    def __str__(self) -> str:
        return f"{self.steps} steps" if self.steps is not None else f"{self.minutes:g} min"


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" (CUDA when present, else CPU), "cpu" or "cuda"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VidrestoreError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise VidrestoreError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


WARMUP = 0.1


def learning_rate(peak: float, frac: float) -> float:
    """Linear warm-up over the first `WARMUP` of the budget, then cosine decay to peak/100.

    Without the warm-up, Adam's first steps (each moving every weight by about the learning
    rate, whatever its gradient) throw the network far from its starting point, the classical
    fusion, and a budget of minutes is spent coming back.
    """
    if frac < WARMUP:
        return peak * (frac + 1e-3) / WARMUP
    t = (frac - WARMUP) / (1 - WARMUP)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def masked_l1(out: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of |out - label| over the mask (mask broadcast over channels)."""
    return (mask * (out - label).abs()).sum() / (mask.sum() * out.shape[-3] + 1e-6)


def laplacian_variance_t(x: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian of the luma of (..., 3, h, w) images, per image."""
    shape = x.shape[:-3]
    y = (x.reshape(-1, 3, *x.shape[-2:]) * _LUMA.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True)
    lap = F.conv2d(y, _LAPLACE.to(x).view(1, 1, 3, 3))
    return lap.flatten(1).var(1).reshape(shape)


def sis(label: torch.Tensor, mask: torch.Tensor, coverage: torch.Tensor, own: torch.Tensor,
        min_coverage: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervision Information Selection: per target, the aligned sharp label or the model's own output.

    Args:
        label, mask: aligned sharp labels (B, T, 3, h, w) and masks (B, T, 1, h, w).
        coverage: (B, T) share of the whole frame the label covers.
        own: sg(D(B)) (B, T, 3, h, w).
    Returns the label and mask to use (the mask is all ones: holes are filled from `own`).
    """
    sharper = laplacian_variance_t(label * mask) > laplacian_variance_t(own * mask)
    use = (sharper & (coverage > min_coverage))[..., None, None, None]
    chosen = torch.where(use, mask * label + (1 - mask) * own, own)
    return chosen, torch.ones_like(mask)


def _tensors(batch: Batch, device: torch.device, rng: np.random.Generator) -> dict[str, torch.Tensor | None]:
    """The batch on `device`, randomly flipped horizontally/vertically and transposed (flows too)."""
    hflip, vflip, transpose = (bool(b) for b in rng.integers(0, 2, 3))
    out = {}
    for k in ("inputs", "clean", "next_flow", "prev_flow", "prior", "clean_prior", "label", "mask"):
        x = getattr(batch, k)
        if x is None:
            out[k] = None
            continue
        x = torch.as_tensor(x)
        if hflip:
            x = x.flip(-1)
        if vflip:
            x = x.flip(-2)
        if transpose:
            x = x.transpose(-1, -2)
        if k.endswith("flow"):
            sign = torch.tensor([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0]).view(2, 1, 1)
            x = x * sign
            if transpose:
                x = x.flip(-3)
        out[k] = x.contiguous().to(device)
    out["coverage"] = torch.as_tensor(batch.coverage).to(device)
    return out


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_state(path: Path, device: torch.device) -> dict | None:
    """A saved training state, read without running code (tensors and plain values only); None,
    with a warning, when it is unreadable or holds anything else (training then starts afresh)."""
    try:
        st = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(st, dict) or not _STATE_KEYS <= st.keys():
            raise ValueError("not a training state")
    except Exception as err:  # noqa: BLE001 - whatever is wrong with the file, it is discarded
        why = (str(err).splitlines() or [type(err).__name__])[0][:120]
        log.warning("%s: unreadable training state discarded (%s); training starts afresh", path, why)
        path.unlink(missing_ok=True)
        return None
    return st


def train(analyses: list[VideoAnalysis], settings: TrainSettings = TrainSettings(), budget: Budget = Budget(minutes=5), *,
          device: torch.device | str = "cpu", state_dir: str | os.PathLike | None = None, init: nn.Module | None = None,
          progress: bool = True) -> tuple[nn.Module, dict]:
    """Train a deblurring network on `analyses` (see the module docstring); returns (model in eval mode, info).

    Args:
        analyses: analysed videos (`analyze_video`), each with usable sharp frames.
        settings: the recipe.
        budget: steps or minutes.
        device: torch device.
        state_dir: folder for the resumable training state (none: no resume).
        init: start from this model (fine-tuning) instead of a fresh one; it is also the
            SCSCM anchor if training starts in stage 2.
        progress: progress bar.
    """
    settings.check()
    if budget.steps == 0:
        raise VidrestoreError("training needs a budget above 0 steps")
    if settings.processes != ddp.world():
        raise VidrestoreError(f"training set for {settings.processes} processes runs in {ddp.world()} "
                              "(start it with `vidrestore train --nproc N` or under torchrun)")
    device = torch.device(device)
    if device.type == "cpu":  # a step's activations and gradients: stop faulting in fresh pages for each (util.memory)
        reuse_freed_memory()
    torch.manual_seed(settings.seed)
    model = copy.deepcopy(init) if init is not None else create_model(settings.model, **settings.model_config)
    model.to(device, memory_format=torch.channels_last).train()  # about 20 % faster per step on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    rng = np.random.default_rng(settings.seed if ddp.rank() == 0 else [settings.seed, ddp.rank()])
    net = nn.parallel.DistributedDataParallel(model) if ddp.active() else model
    curve = [[0.0, 0] for _ in range(10)]  # sum and count of the loss over each tenth of the budget
    sampler = Sampler(analyses, model.radius, model.aligned_input, model.outputs, settings.crop, settings.recipe, rng)
    anchor: nn.Module | None = None
    step, elapsed, stage1_steps, loss_ema = 0, 0.0, 0, None
    state_path = Path(state_dir) / "train_state.pt" if state_dir is not None else None
    st = _load_state(state_path, device) if ddp.rank() == 0 and state_path is not None and state_path.exists() else None
    st = ddp.broadcast(st)
    if st is not None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        rng.bit_generator.state = st["rng"][ddp.rank()] if ddp.active() else st["rng"]
        step, elapsed, stage1_steps, loss_ema = st["step"], st["elapsed"], st["stage1_steps"], st["loss_ema"]
        curve = st.get("curve", curve)
        if st["anchor"] is not None:
            anchor = copy.deepcopy(model)
            anchor.load_state_dict(st["anchor"])
    if anchor is not None:
        anchor.to(device).eval().requires_grad_(False)
    total = budget.steps if budget.steps is not None else int(budget.minutes * 60)
    crops = settings.batch // settings.processes
    batches, loader_rscr = loader_batches(sampler, crops, settings.loaders, [settings.seed, ddp.rank(), step]) if settings.loaders else (None, None)
    bar = progress_bar(total, f"train ({settings.recipe}, {budget})", progress, initial=min(total, step if budget.steps else int(elapsed)),
                       unit="step" if budget.steps is not None else "s")
    last_save = time.perf_counter()

    def save() -> None:
        rngs = ddp.gather(rng.bit_generator.state) if ddp.active() else rng.bit_generator.state
        if state_path is not None and ddp.rank() == 0:
            _save_state(state_path, {"model": model.state_dict(), "opt": opt.state_dict(), "rng": rngs,
                                     "step": step, "elapsed": elapsed, "stage1_steps": stage1_steps, "loss_ema": loss_ema,
                                     "anchor": anchor.state_dict() if anchor is not None else None, "curve": curve})

    try:
        while True:
            frac = budget.fraction(step, elapsed)
            if frac >= 1:
                break
            t0 = time.perf_counter()
            stage2 = settings.two_stages and frac >= settings.stage1_share
            if stage2 and settings.scscm and anchor is None:
                anchor = copy.deepcopy(model).eval().requires_grad_(False)
                save()
            for g in opt.param_groups:
                g["lr"] = learning_rate(settings.lr, frac)
            rscr_prob = settings.rscr_prob if (stage2 and settings.sevd) else 0.0
            if batches is None:
                drawn = sampler.batch(crops, rscr_prob)
            else:
                loader_rscr.value = rscr_prob
                drawn = next(batches)
            batch = _tensors(drawn, device, rng)
            x, nf, pf, prior = batch["inputs"], batch["next_flow"], batch["prev_flow"], batch["prior"]
            if not stage2:
                loss = masked_l1(net(x, nf, pf, prior), batch["label"], batch["mask"])
                stage1_steps += 1
            else:
                clean = batch["clean"] if batch["clean"] is not None else x
                clean_prior = batch["clean_prior"] if batch["clean"] is not None else prior
                out = net(x, nf, pf, prior)
                if settings.sevd:
                    with torch.no_grad():
                        own = model(clean, nf, pf, clean_prior)
                    label, mask = sis(batch["label"], batch["mask"], batch["coverage"], own, settings.sis_coverage)
                    loss = masked_l1(out, label, mask)
                else:
                    loss = masked_l1(out, batch["label"], batch["mask"])
                if settings.scscm:
                    with torch.no_grad():
                        ref = anchor(clean, nf, pf, clean_prior)
                    loss = loss + settings.scscm_weight * (out - ref).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            dt = ddp.maximum(time.perf_counter() - t0)
            elapsed += dt
            value = ddp.mean(loss.item())
            curve[min(9, int(frac * 10))][0] += value
            curve[min(9, int(frac * 10))][1] += 1
            loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
            bar.update(1 if budget.steps is not None else min(dt, max(0.0, total - bar.n)))
            bar.set_postfix(loss=f"{loss_ema:.4f}", stage=2 if stage2 else 1)
            if ddp.agree(time.perf_counter() - last_save > CHECKPOINT_S):
                save()
                last_save = time.perf_counter()
    finally:
        bar.close()
        del batches  # ends the loader's processes
    ddp.check_in_step(model)
    save()
    info = {"recipe": asdict(settings), "budget": str(budget), "steps": step, "stage1_steps": stage1_steps,
            "train_seconds": round(elapsed, 1), "loss": loss_ema, "device": str(device),
            "loss_curve": [total / n if n else None for total, n in curve]}
    return model.eval(), info

