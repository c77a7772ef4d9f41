"""Running stages over videos: the stage protocol, its registry, and the resumable runner."""

from .runner import RestoreResult, default_work_dir, restore
from .stage import Stage, Window, apply_stage, apply_stages, build_stage, create_stage, list_stages, register_stage

__all__ = [
    "RestoreResult",
    "Stage",
    "Window",
    "apply_stage",
    "apply_stages",
    "build_stage",
    "create_stage",
    "default_work_dir",
    "list_stages",
    "register_stage",
    "restore",
]
