"""Cache entries in the work directory: a folder whose completion marker records a version and a
checksum of every file, so a damaged entry is noticed, discarded and rebuilt instead of read."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .paths import atomic_write_text, content_hash

MARKER = ".complete"
log = logging.getLogger(__name__)


def _files(folder: Path) -> list[Path]:
    """The entry's files (hidden ones, such as the marker, left out)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def mark_complete(folder: Path, version: int | str) -> None:
    """Record that `folder` is finished: its version and the checksum of each of its files."""
    files = {p.name: content_hash(p) for p in _files(folder)}
    atomic_write_text(folder / MARKER, json.dumps({"version": version, "files": files}))


def cache_ready(folder: Path, version: int | str) -> bool:
    """Whether `folder` is a finished entry of `version` whose files are exactly as they were written.

    A folder without a marker is unfinished (maybe resumable) and left as it is. One whose marker
    is unreadable, of another version, or whose files changed, vanished or were truncated is
    damaged (or of an older vidrestore): it is removed, with one warning line naming it, so the
    caller builds it again.
    """
    marker = folder / MARKER
    if not marker.exists():
        return False
    try:
        data = json.loads(marker.read_text())
        ok = data["version"] == version and all(content_hash(folder / name) == digest for name, digest in data["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        log.warning("%s: cache entry damaged or of another version: discarded, building it again", folder)
        shutil.rmtree(folder, ignore_errors=True)
    return ok
