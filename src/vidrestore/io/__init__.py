"""Video in and out: probing, streaming decode to float RGB, encoding, muxing, resumable segments."""

from .encode import CODECS, EncodeSettings
from .probe import VideoInfo, describe, probe
from .reader import Frame, VideoReader, read_frames
from .writer import write_video

__all__ = ["CODECS", "EncodeSettings", "Frame", "VideoInfo", "VideoReader", "describe", "probe", "read_frames", "write_video"]
