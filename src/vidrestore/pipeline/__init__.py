"""Running stages over videos: the stage protocol, its registry, and the resumable runner."""

from .runner import RestorePlan, RestoreResult, default_work_dir, plan_restore, restore
from .stage import Stage, Window, apply_stage, apply_stages, build_stage, create_stage, list_stages, register_stage

__all__ = [
    "RestorePlan",
    "RestoreResult",
    "Stage",
    "Window",
    "apply_stage",
    "apply_stages",
    "build_stage",
    "create_stage",
    "default_work_dir",
    "list_stages",
    "plan_restore",
    "register_stage",
    "restore",
]
