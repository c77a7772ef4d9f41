"""Many videos, one command: `run_batch` runs a restoring job over a set of videos on an engine
(a local process pool, or a Ray cluster), resumably, with one progress view and a summary."""

from .engines import INSTALL_RAY, Engine, LocalEngine, RayEngine, WorkerLost, create_engine, list_engines, register_engine
from .inputs import expand_inputs, output_paths
from .jobs import CallJob, RestoreJob, Task, TaskResult, execute
from .runner import BatchResult, VideoOutcome, run_batch

__all__ = [
    "INSTALL_RAY",
    "BatchResult",
    "CallJob",
    "Engine",
    "LocalEngine",
    "RayEngine",
    "RestoreJob",
    "Task",
    "TaskResult",
    "VideoOutcome",
    "WorkerLost",
    "create_engine",
    "execute",
    "expand_inputs",
    "list_engines",
    "output_paths",
    "register_engine",
    "run_batch",
]
