"""Output-path safety (never overwrite the input, never clobber without --overwrite) and content keys."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import VidrestoreError

_SAMPLE = 1 << 20  # bytes read from each sampled spot of a large file
PNG_FRAME = re.compile(r"\d{6}\.png")  # the names of a PNG-sequence output's frames


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


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies somewhere below it (links resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def _as_list(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """One path or several, as a list of paths."""
    if isinstance(inputs, (str, os.PathLike)):
        return [Path(inputs)]
    return [Path(i) for i in inputs]


def check_output(inputs: str | os.PathLike | Sequence[str | os.PathLike], output: Path, overwrite: bool,
                 *, folder: bool = False) -> None:
    """Refuse outputs that would destroy something the user did not name as the output.

    Refused: an output that is one of `inputs` (the input, a guide, a reference), an existing
    output without `overwrite`, an existing folder where a file is wanted, and, for a PNG-sequence
    output (`folder=True`), an existing folder that holds anything but vidrestore's own frames
    (an input, unrelated files, the current folder). Also checks, by creating and removing a
    probe file, that the output folder is writable, so a long job does not fail at its very end.
    """
    given, output = output, Path(os.path.abspath(output))
    ins = _as_list(inputs)
    for i in ins:
        if _same(i, output):
            what = "the input file" if i == ins[0] else f"an input of this command ({i})"
            raise VidrestoreError(f"output is {what}; choose another output path (inputs are never overwritten)", given)
    if output.is_dir():
        if not folder:
            raise VidrestoreError("output is an existing folder, not a file; name a file to write", given)
        if _inside(Path.cwd(), output):
            raise VidrestoreError("output is the current folder (or holds it); name a new folder for the frames", given)
        for i in ins:
            if _inside(i, output):
                raise VidrestoreError(f"output folder holds the input {i}; choose another folder", given)
        entries = list(output.iterdir())
        foreign = [e.name for e in entries if not (e.is_file() and PNG_FRAME.fullmatch(e.name))]
        if foreign:
            raise VidrestoreError(f"output folder holds {len(foreign)} entries that are not vidrestore frames (e.g. "
                                  f"{sorted(foreign)[0]!r}); vidrestore replaces only a folder of its own PNG frames: "
                                  "choose a new or empty folder", given)
        if entries and not overwrite:
            raise VidrestoreError("output folder already holds frames; pass --overwrite to replace them", given)
    elif output.exists() and not overwrite:
        raise VidrestoreError("output already exists; pass --overwrite to replace it", given)
    parent = output.parent
    if not parent.is_dir():
        raise VidrestoreError(f"output folder {parent} does not exist", given)
    _check_writable(parent, given)


def _check_writable(folder: Path, given: str | os.PathLike) -> None:
    """Create and remove a probe file in `folder`, so a long job does not fail at its very end."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidrestore-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise VidrestoreError(f"cannot write to folder {folder} ({err.strerror or err})", given) from None


def check_output_folder(folder: str | os.PathLike) -> None:
    """Refuse, before any work, an output folder that is a file or that cannot be created or written."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        what = "it is a file" if existing == Path(os.path.abspath(folder)) else f"{existing} is a file"
        raise VidrestoreError(f"{what}; the output must be a folder", folder)
    _check_writable(existing, folder)


@contextmanager
def output_lock(output: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `output` while a run writes it: a second run that wants it refuses.

    The lock is a hidden file beside the output, removed when the run ends (a killed run's lock
    file is harmless: the kernel drops its lock with the process).
    """
    out = Path(os.path.abspath(output))
    lock = out.with_name(f".{out.name}.vidrestore-lock")
    while True:
        try:
            fh = open(lock, "a")
        except OSError as err:
            raise VidrestoreError(f"cannot write to folder {out.parent} ({err.strerror or err})", out) from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise VidrestoreError("another vidrestore run is writing this output right now", out) from None
        try:
            current = os.stat(lock).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:  # not a lock file the previous holder removed while this run opened it
            break
        fh.close()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        fh.close()


def fsync_file(path: Path) -> None:
    """Force a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
