"""Data-parallel training with torch.distributed: `vidrestore train --nproc N`, or N processes under `torchrun`.

Each of the N processes (ranks) trains the same network on `batch / N` crops of its own per
step (rank 0 draws from the seed's own stream, rank r from (seed, r)); DDP averages the
gradients, so a step sees the same global batch as single-process training. Collectives: gloo
on the CPU, NCCL on CUDA (one GPU a rank). Rank 0 alone reads and writes files: the resumable
training state (which holds every rank's random state), the cached model and the output; the
other ranks receive the state from it and write only into a private scratch folder.

What is identical to single-process training: the network's initial weights, the recipe and
schedule (warm-up, stages, learning rate by the share of the budget), the global batch and the
checkpoint format. What is only equivalent: the crops drawn (N streams instead of one) and the
loss, which each rank normalises over its own crops' masks before the gradients are averaged;
so the loss curve matches single-process training within sampling noise, not bit for bit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import VidrestoreError
from ..pipeline import default_work_dir

log = logging.getLogger(__name__)


def active() -> bool:
    """Whether this process is one of several ranks of an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def _reduce(value: float, op: dist.ReduceOp) -> float:
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=op)
    return float(t.item())


def mean(value: float) -> float:
    """The mean of `value` over the ranks (the value itself in a single process)."""
    return _reduce(value, dist.ReduceOp.SUM) / world()


def maximum(value: float) -> float:
    """The largest `value` of the ranks, so that every rank follows the slowest one's clock."""
    return _reduce(value, dist.ReduceOp.MAX)


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any (e.g. time to save the state)."""
    return bool(_reduce(float(flag), dist.ReduceOp.MAX))


def broadcast(obj: object) -> object:
    """Rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: object) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def check_in_step(model: torch.nn.Module) -> None:
    """Refuse to go on when the ranks' copies of `model` differ (DDP keeps them equal by averaging gradients)."""
    if active():
        sums = gather(float(sum(p.detach().double().sum() for p in model.parameters())))
        if len(set(sums)) > 1:
            raise VidrestoreError(f"the data-parallel processes' models diverged (weight sums {sums})")


def _scratch_work_dir(work_dir: Path) -> Path:
    """A private work folder for a rank but 0: the shared analyses and finished models linked in, nothing else,
    so that whatever it writes stays its own."""
    scratch = Path(tempfile.mkdtemp(prefix=f"vidrestore-rank{rank()}-"))
    (scratch / "cache").mkdir()
    shared = work_dir / "cache"
    if shared.is_dir():
        for entry in shared.iterdir():
            if not entry.name.startswith("selfhvd-model-") or (entry / ".complete").exists():
                (scratch / "cache" / entry.name).symlink_to(entry.absolute())
    return scratch


def train_rank(videos: Sequence[str | os.PathLike], output: str | os.PathLike, **options) -> dict | None:
    """This rank's part of `train_videos(videos, output, **options)` in an initialised process group;
    rank 0 returns the training record, the others None."""
    from .analysis import AnalysisSettings, analyze_video
    from .deblur import train_videos

    work_dir = Path(options.pop("work_dir", None) or default_work_dir())
    if rank() == 0:  # analyses first, once, where every rank finds them
        for v in videos:
            analyze_video(v, options.get("analysis", AnalysisSettings()), work_dir=work_dir, progress=options.get("progress", True))
    dist.barrier()
    if rank() == 0:
        return train_videos(videos, output, work_dir=work_dir, **options)
    scratch = _scratch_work_dir(work_dir)
    try:
        train_videos(videos, scratch / Path(output).name, work_dir=scratch, **{**options, "overwrite": True, "progress": False})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


def _uses_cuda(device: str) -> bool:
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def init_from_env(device: str) -> None:
    """Join the process group that `torchrun` (or `train_distributed`) describes in the environment."""
    if _uses_cuda(device):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if _uses_cuda(device) else "gloo")


def _rank_main(index: int, nproc: int, port: int, results, videos, output, options: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(index), LOCAL_RANK=str(index),
                      WORLD_SIZE=str(nproc))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    # channels-last weights: DDP's buckets keep a different layout (costs a copy, not a result)
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if index:
        logging.getLogger("vidrestore").setLevel(logging.ERROR)
    init_from_env(options.get("device", "auto"))
    try:
        info = train_rank(videos, output, **options)
        if index == 0:
            results.put(("ok", info))
    except VidrestoreError as err:
        results.put(("error", err))
        raise
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_distributed(videos: Sequence[str | os.PathLike], output: str | os.PathLike, nproc: int, **options) -> dict:
    """`train_videos(videos, output, **options)` data-parallel over `nproc` processes on this machine
    (`options["settings"].processes` must be `nproc`); returns the training record."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise VidrestoreError(f"--nproc must be at least 1, not {nproc}")
    if _uses_cuda(options.get("device", "auto")) and torch.cuda.device_count() < nproc:
        raise VidrestoreError(f"--nproc {nproc} needs {nproc} GPUs; {torch.cuda.device_count()} are visible")
    results = multiprocessing.get_context("spawn").SimpleQueue()
    try:
        mp.start_processes(_rank_main, args=(nproc, _free_port(), results, list(videos), output, options), nprocs=nproc,
                           start_method="spawn")
    except mp.ProcessRaisedException:
        if results.empty():
            raise
    status, value = results.get()
    if status == "error":
        raise value
    return value


def train_parallel(videos: Sequence[str | os.PathLike], output: str | os.PathLike, nproc: int = 1, **options) -> dict | None:
    """`train_videos` data-parallel: under `torchrun` (WORLD_SIZE set) as this process's rank, else over `nproc`
    processes started here (1: this process alone). Returns the training record (None on ranks but 0)."""
    from dataclasses import replace

    from .deblur import train_videos
    from .train import TrainSettings

    settings = options.pop("settings", TrainSettings())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1:
        if nproc not in (1, launched):
            raise VidrestoreError(f"--nproc {nproc} under torchrun, which started {launched} processes: leave --nproc out")
        init_from_env(options.get("device", "auto"))
        try:
            return train_rank(videos, output, settings=replace(settings, processes=launched), **options)
        finally:
            dist.destroy_process_group()
    replace(settings, processes=nproc).check()
    if nproc == 1:
        return train_videos(videos, output, settings=settings, **options)
    return train_distributed(videos, output, nproc, settings=replace(settings, processes=nproc), **options)
