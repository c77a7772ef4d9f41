"""Output-path safety (never overwrite the input, never clobber without --overwrite) and content keys."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ..errors import VidrestoreError

_SAMPLE = 1 << 20  # bytes read from each sampled spot of a large file


def content_hash(path: str | os.PathLike) -> str:
    """A key for the input's content, cheap for large files.

    Files up to 64 MB are hashed whole; larger ones by their size plus 1 MB at 33 evenly spaced
    offsets (start and end included). A folder is keyed by its files' names and content keys.
    """
    p = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if p.is_dir():
        for f in sorted(x for x in p.iterdir() if x.is_file()):
            h.update(f.name.encode())
            h.update(content_hash(f).encode())
        return h.hexdigest()
    size = p.stat().st_size
    h.update(str(size).encode())
    with open(p, "rb") as fh:
        if size <= 64 * _SAMPLE:
            for chunk in iter(lambda: fh.read(_SAMPLE), b""):
                h.update(chunk)
        else:
            for k in range(33):
                fh.seek((size - _SAMPLE) * k // 32)
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()


def config_key(*parts: object) -> str:
    """Stable short hash of JSON-serialisable parts (parameters, hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=10).hexdigest()


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(input_path: Path, output: Path, overwrite: bool) -> None:
    """Refuse outputs that would destroy something: the input itself, or an existing file without overwrite.

    Also checks, by creating and removing a probe file, that the output folder is writable, so a
    long job does not fail at its very end.
    """
    if _same(input_path, output):
        raise VidrestoreError("output is the input file; choose another output path (the input is never overwritten)", output)
    if output.exists() and not overwrite:
        raise VidrestoreError("output already exists; pass --overwrite to replace it", output)
    parent = output.absolute().parent
    if not parent.is_dir():
        raise VidrestoreError(f"output folder {parent} does not exist", output)
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidrestore-write-test-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise VidrestoreError(f"cannot write to folder {parent} ({err.strerror or err})", output) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file so that a crash leaves either the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_versioned_json(path: str | os.PathLike, filename: str, version: int, made_by: str) -> dict:
    """Read a JSON file written by vidrestore (or `filename` inside the folder `path`) of a known version.

    Raises VidrestoreError naming the file when it is missing (saying `made_by` makes one), is not
    JSON, or has another version.
    """
    p = Path(path)
    if p.is_dir():
        p = p / filename
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise VidrestoreError(f"no {filename} here (make one with {made_by})", p) from None
    except json.JSONDecodeError as err:
        raise VidrestoreError(f"{filename} is not valid JSON ({err})", p) from None
    if data.get("version") != version:
        raise VidrestoreError(f"{filename} version {data.get('version')!r} is not {version}", p)
    return data
