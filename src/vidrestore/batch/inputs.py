"""The videos a batch runs over: files, folders, glob patterns and text files that list paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import VidrestoreError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg",
                            ".wmv", ".flv", ".3gp", ".mxf", ".ogv"})
LIST_SUFFIXES = frozenset({".txt", ".lst"})
_GLOB = set("*?[")


def _expand(item: str, base: Path | None) -> list[Path]:
    path = Path(item) if base is None or os.path.isabs(item) else base / item
    if _GLOB & set(item) and not path.exists():
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise VidrestoreError("no file matches this pattern", item)
        return [p for m in matches for p in _expand(m, None)]
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise VidrestoreError(f"folder holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})", path)
        return videos
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [p for line in lines if line and not line.startswith("#") for p in _expand(line, path.parent)]
    if not path.exists():
        raise VidrestoreError("no such file or folder", path)
    return [path]


def expand_inputs(items: Sequence[str | os.PathLike]) -> list[Path]:
    """The video files named by `items`, in order, each once.

    An item is a video file; a folder (the video files directly in it, by extension); a glob
    pattern (`clips/*.mp4`, `**` for subfolders); or a `.txt`/`.lst` file listing such items one
    a line (blank lines and lines starting with `#` skipped; relative paths from the list's folder).
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        for p in _expand(os.fspath(item), None):
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    if not out:
        raise VidrestoreError("no input videos given")
    return out


def output_paths(videos: Sequence[Path], outdir: Path) -> list[Path]:
    """OUTDIR/NAME for each video; two videos of the same name are refused before any work."""
    first: dict[str, Path] = {}
    for v in videos:
        if v.name in first:
            raise VidrestoreError(f"two inputs are named {v.name} ({first[v.name]} and {v}); their outputs would collide "
                                  f"in {outdir}", v)
        first[v.name] = v
    return [outdir / v.name for v in videos]
