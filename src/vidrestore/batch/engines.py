"""Where a batch's tasks run: engines in a registry ("local": a process pool; "ray": a Ray cluster).

An engine takes `Task`s and hands back `TaskResult`s; it knows nothing of videos. A worker that
dies is the engine's business: Ray runs the task again (`retries` times); the local pool cannot
go on without it (Python's process pool breaks), so every video still in flight or waiting is
reported failed with that reason, and running the batch again resumes them.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence

from ..errors import VidrestoreError
from .jobs import Task, TaskResult, execute

_ENGINES: dict[str, Callable[..., Engine]] = {}
INSTALL_RAY = "pip install 'vidrestore[distributed]'"


class WorkerLost(Exception):
    """The process running a task died (and the engine's retries, if any, were used up)."""


class Engine:
    """Runs tasks concurrently; a context manager (`with engine:`) that starts and stops its workers.

    Attributes:
        slots: most tasks in flight at once (None: as many as the cluster's resources take).
    """

    name = ""
    slots: int | None = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, task: Task) -> object:
        """Start `task`; returns a handle."""
        raise NotImplementedError

    def wait(self, handles: Sequence[object], timeout: float) -> list[object]:
        """The handles among `handles` whose tasks have finished (waiting up to `timeout` seconds for one)."""
        raise NotImplementedError

    def result(self, handle: object) -> TaskResult:
        """The finished task's result; raises `WorkerLost` when its worker died."""
        raise NotImplementedError


def register_engine(name: str) -> Callable[[Callable[..., Engine]], Callable[..., Engine]]:
    def deco(factory: Callable[..., Engine]) -> Callable[..., Engine]:
        _ENGINES[name] = factory
        return factory

    return deco


def list_engines() -> list[str]:
    return sorted(_ENGINES)


def create_engine(name: str, **options: object) -> Engine:
    """The engine registered as `name`, built with `options` (those it does not take are refused)."""
    if name not in _ENGINES:
        raise VidrestoreError(f"unknown engine {name!r}; choose {', '.join(list_engines())}")
    return _ENGINES[name](**options)


def _quiet_worker() -> None:
    """Workers keep their notes to themselves: a batch reports one line per video."""
    logging.getLogger("vidrestore").setLevel(logging.ERROR)


@register_engine("local")
class LocalEngine(Engine):
    """A pool of `jobs` processes on this machine (default: one per CPU)."""

    name = "local"

    def __init__(self, jobs: int | None = None):
        if jobs is not None and jobs < 1:
            raise VidrestoreError(f"--jobs must be at least 1, not {jobs}")
        self.slots = jobs or os.cpu_count() or 1
        self._pool: cf.ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalEngine:
        # spawn: the workers start clean (no threads or library state copied from this process)
        self._pool = cf.ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_quiet_worker)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, task: Task) -> cf.Future:
        assert self._pool is not None, "use the engine as a context manager"
        return self._pool.submit(execute, task)

    def wait(self, handles: Sequence[object], timeout: float) -> list[object]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)  # type: ignore[arg-type]
        return list(done)

    def result(self, handle: object) -> TaskResult:
        try:
            return handle.result()  # type: ignore[attr-defined]
        except cf.process.BrokenProcessPool as err:
            raise WorkerLost(f"a worker process died ({err})") from None


@register_engine("ray")
class RayEngine(Engine):
    """Tasks on a Ray cluster: the one `address` names (`ray start --head` prints it), or a local one.

    Args:
        jobs: most tasks in flight (None: as many as the cluster's resources take).
        address: a running cluster ("auto": the one this machine belongs to); None starts one here.
        cpus, gpus: resources each task requests (a task waits until a node has them free).
        retries: times a task is run again when its worker dies (a failing video is not retried).
    """

    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0,
                 retries: int = 3):
        try:
            import ray
        except ImportError:
            raise VidrestoreError(f"--engine ray needs Ray, which is not installed: {INSTALL_RAY}") from None
        if jobs is not None and jobs < 1:
            raise VidrestoreError(f"--jobs must be at least 1, not {jobs}")
        if cpus <= 0 or gpus < 0 or retries < 0:
            raise VidrestoreError("--cpus must be positive, --gpus and --retries at least 0")
        self._ray = ray
        self.slots, self.address, self.cpus, self.gpus, self.retries = jobs, address, cpus, gpus, retries
        self._started = False
        self._remote = None

    def __enter__(self) -> RayEngine:
        ray = self._ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise VidrestoreError(f"cannot start or join {where} ({(str(err).splitlines() or [''])[0]})") from None
            self._started = True
        self._remote = ray.remote(execute).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                                                   retry_exceptions=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False

    def submit(self, task: Task) -> object:
        assert self._remote is not None, "use the engine as a context manager"
        return self._remote.remote(task)

    def wait(self, handles: Sequence[object], timeout: float) -> list[object]:
        ready, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(list(handles), num_returns=len(handles), timeout=0)
        return ready

    def result(self, handle: object) -> TaskResult:
        try:
            return self._ray.get(handle)
        except self._ray.exceptions.RayError as err:
            raise WorkerLost(f"its worker died {self.retries + 1} times ({type(err).__name__})") from None
