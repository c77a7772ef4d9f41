"""The one exception type the CLI turns into a single clear line (no traceback)."""

from __future__ import annotations

import errno
import os

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class VidrestoreError(Exception):
    """A problem the user can act on: bad input, unwritable output, impossible option.

    Args:
        message: what is wrong, in words a user understands.
        path: the file or folder concerned; the CLI prints it first.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.path = os.fspath(path) if path is not None else None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def disk_full(err: BaseException) -> bool:
    """Whether `err` is a write refused for lack of space (a full disk, a quota, a file-size limit)."""
    return isinstance(err, OSError) and getattr(err, "errno", None) in _DISK_FULL
