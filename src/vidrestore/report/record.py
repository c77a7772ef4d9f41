"""What a finished job leaves for its report: a small JSON record in the work directory.

Every restoring command saves one (`save_record`) under ``WORK_DIR/reports/``, keyed by the
output's absolute path, so that `vidrestore report OUTPUT` can make the report later; the
record names the inputs, the settings, the time of each phase and the cached analyses
(stabilize's camera path, SelfHVD's frames, sharpness and labels) the report reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from fractions import Fraction
from importlib import metadata
from pathlib import Path

from ..errors import VidrestoreError
from ..io.paths import atomic_write_text, config_key
from ..pipeline import RestoreResult, default_work_dir

RECORD_VERSION = 1
_NETWORK_SETTINGS = ("model", "budget", "settings", "device", "tile")  # deblur's settings of its network
_PACKAGES = ("vidrestore", "torch", "av", "numpy", "opencv-python-headless", "scipy", "scikit-image", "matplotlib")


@dataclass
class JobRecord:
    """One finished job (see the module docstring).

    Attributes:
        command: "restore", "stabilize", "deflicker", "deblur", "demo" or "metrics".
        input, output: the video read and the video written (for "metrics": the judged video is
            the output, its reference the input).
        settings: the options the job ran with (JSON values).
        phases: seconds per phase, in order.
        versions: Python, the platform, FFmpeg and the packages that shape the result.
        ground_truth: a video of the true frames (the demo's), when known.
        analyses: cached analyses by name: a two-pass stage's folder, or "selfhvd" for SelfHVD's.
        training: the training record of the model that deblurred (loss per tenth of the budget).
        notes: what the job warned about.
        sources: deblur's fidelity mode: for each output frame, its source frames and their
            per-frame weights, [[frame, weight], ...] (`vidrestore.selfhvd.fidelity`).
    """

    command: str
    input: str
    output: str
    settings: dict
    phases: dict[str, float]
    versions: dict[str, str] = field(default_factory=lambda: versions())
    ground_truth: str | None = None
    analyses: dict[str, str] = field(default_factory=dict)
    training: dict | None = None
    notes: list[str] = field(default_factory=list)
    sources: list[list[list[float]]] | None = None
    finished: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    version: int = RECORD_VERSION


def versions() -> dict[str, str]:
    """The versions a report lists: Python, platform, FFmpeg's libraries and the packages that shape results."""
    import av

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["ffmpeg (libavcodec)"] = ".".join(map(str, av.library_versions["libavcodec"]))
    return out


def to_json(value: object) -> object:
    """`value` as plain JSON values: dataclasses as dicts, paths and fractions as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (Path, Fraction)):
        return str(value)
    return str(value)


def restore_record(command: str, input: str | os.PathLike, result: RestoreResult, settings: dict) -> JobRecord:
    """The record of a `restore` run (restore, stabilize, deflicker) from its result."""
    return JobRecord(command, str(Path(input).absolute()), str(Path(result.output).absolute()), to_json(settings),
                     dict(result.phases), analyses=dict(result.analyses), notes=list(result.notes))


def deblur_record(input: str | os.PathLike, report, settings: dict, analysis_dir: str | os.PathLike, *,
                  command: str = "deblur", ground_truth: str | os.PathLike | None = None) -> JobRecord:
    """The record of a `deblur` run from its `DeblurReport` and the folder of its SelfHVD analysis."""
    analysis = json.loads((Path(analysis_dir) / "analysis.json").read_text())
    phases = {"analysis (when cached)": float(analysis.get("seconds", 0.0))}
    if report.training:
        phases["training"] = float(report.training["train_seconds"])
    phases.update({f"render: {k}": v for k, v in report.result.phases.items()})
    if report.sources is not None:  # fidelity mode trains and runs no network: its settings did nothing
        settings = {k: v for k, v in settings.items() if k not in _NETWORK_SETTINGS}
    settings = {**to_json(settings), "selection": to_json(report.selection)}
    if report.fallback:
        settings["fallback"] = report.fallback
    return JobRecord(command, str(Path(input).absolute()), str(Path(report.result.output).absolute()), settings, phases,
                     ground_truth=str(Path(ground_truth).absolute()) if ground_truth else None,
                     analyses={"selfhvd": str(Path(analysis_dir).absolute())}, training=to_json(report.training),
                     notes=list(report.notes), sources=to_json(report.sources))


def _record_path(output: str | os.PathLike, work_dir: str | os.PathLike | None) -> Path:
    root = Path(work_dir) if work_dir is not None else default_work_dir()
    return root / "reports" / f"{config_key('job-record', str(Path(output).absolute()))}.json"


def save_record(record: JobRecord, work_dir: str | os.PathLike | None = None) -> Path:
    """Keep `record` in the work directory (replacing an earlier job's for the same output); returns its path."""
    path = _record_path(record.output, work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(record), indent=1))
    return path


def load_record(output: str | os.PathLike, work_dir: str | os.PathLike | None = None) -> JobRecord:
    """The record of the last finished job that wrote `output` (one clear error when there is none)."""
    path = _record_path(output, work_dir)
    if not path.is_file():
        where = work_dir if work_dir is not None else default_work_dir()
        raise VidrestoreError(f"no finished job that wrote this file is recorded in the work directory {where} "
                              "(give the output of a finished restore, stabilize, deflicker or deblur, and its --work-dir)", output)
    try:
        data = json.loads(path.read_text())
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"record version {data.get('version')}")
        return JobRecord(**data)
    except (ValueError, TypeError) as err:
        raise VidrestoreError(f"the job record is damaged ({err}); run the job again", path) from None
