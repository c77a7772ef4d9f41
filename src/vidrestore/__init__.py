"""vidrestore: restore real video by learning from the footage itself.

The Python API the `vidrestore` command is a thin shell over::

    import vidrestore
    info = vidrestore.probe("clip.mp4")
    for frame in vidrestore.read_frames("clip.mp4"):
        ...                                   # frame.rgb: float32 (H, W, 3) in [0, 1]
    vidrestore.restore("clip.mp4", "out.mkv")  # faithful, resumable re-encode
"""

from .errors import VidrestoreError
from .io import CODECS, EncodeSettings, Frame, VideoInfo, VideoReader, describe, probe, read_frames, write_video
from .pipeline import RestoreResult, Stage, Window, create_stage, list_stages, register_stage, restore
from . import restoration  # noqa: F401 - makes the built-in stages available by name

__version__ = "0.1.0"

__all__ = [
    "CODECS",
    "EncodeSettings",
    "Frame",
    "RestoreResult",
    "Stage",
    "VideoInfo",
    "VideoReader",
    "VidrestoreError",
    "Window",
    "create_stage",
    "describe",
    "list_stages",
    "probe",
    "read_frames",
    "register_stage",
    "restore",
    "write_video",
]
