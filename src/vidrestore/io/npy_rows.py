"""An .npy file read and written one item (one frame, one flow) at a time through pread/pwrite.

Long jobs keep per-frame arrays on disk (SelfHVD's analysis: frames, luma, flows). Memory-mapped,
every page a job touches stays counted in its resident memory until the kernel reclaims it, so
the job's memory grew with the video's length. Read and written through the file descriptor, the
same data passes through the kernel's page cache, which is not the process's memory.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class NpyRows:
    """An .npy array on disk indexed by its first axis: `a[i]`, `a[i, y0:y1, ...]`, `a[i] = x`.

    Items come back as fresh, read-only arrays (as from a read-only memory map).
    """

    def __init__(self, path: str | os.PathLike, writable: bool = False):
        self.path = Path(path)
        self._file = open(self.path, "r+b" if writable else "rb")
        version = np.lib.format.read_magic(self._file)
        if version not in HEADER_READERS:
            raise ValueError(f"{self.path}: .npy format version {version} is not supported")
        shape, fortran, dtype = HEADER_READERS[version](self._file)
        if fortran:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._offset = self._file.tell()
        self._item = self.shape[1:]
        self._row = int(np.prod(self.shape[2:], dtype=np.int64)) * self.dtype.itemsize
        self._stride = int(np.prod(self._item, dtype=np.int64)) * self.dtype.itemsize

    @classmethod
    def create(cls, path: str | os.PathLike, shape: tuple[int, ...], dtype: np.dtype | type) -> NpyRows:
        """A new file of `shape` (zeros), open for writing, its space reserved on disk
        (`os.posix_fallocate`): a disk that cannot hold it refuses it now (the OSError of a full disk,
        and no file left), not partway through the job that fills it. Where the file system cannot
        reserve space, the file is sparse."""
        dtype = np.dtype(dtype)
        with open(path, "wb") as f:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(f, header)
            size = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            try:
                os.posix_fallocate(f.fileno(), 0, size)
            except OSError as err:
                if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    f.close()
                    Path(path).unlink(missing_ok=True)
                    raise
            f.truncate(size)
        return cls(path, writable=True)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _index(self, i: int) -> int:
        i = int(i)
        if not -self.shape[0] <= i < self.shape[0]:
            raise IndexError(f"index {i} is out of bounds for {self.path.name} of {self.shape[0]} items")
        return i % self.shape[0]

    def _read(self, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape, self.dtype)
        got = os.preadv(self._file.fileno(), [memoryview(out).cast("B")], offset)
        if got != out.nbytes:
            raise OSError(f"{self.path}: short read ({got} of {out.nbytes} bytes): the file is truncated")
        out.flags.writeable = False
        return out

    def __getitem__(self, key: int | tuple) -> np.ndarray:
        i, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        start = self._offset + self._index(i) * self._stride
        if not rest or not isinstance(rest[0], slice) or rest[0].step not in (None, 1) or self.ndim < 2:
            return self._read(start, self._item)[rest] if rest else self._read(start, self._item)
        r0, r1, _ = rest[0].indices(self.shape[1])
        rows = self._read(start + r0 * self._row, (max(0, r1 - r0), *self.shape[2:]))
        return rows[(slice(None), *rest[1:])] if len(rest) > 1 else rows

    def item(self, i: int) -> ItemRows:
        """Item i as an array-like that reads only the rows it is sliced to (`item(i)[y0:y1]`)."""
        return ItemRows(self, self._index(i))

    def __setitem__(self, i: int, value: np.ndarray | float) -> None:
        data = np.ascontiguousarray(np.broadcast_to(np.asarray(value, self.dtype), self._item))
        offset = self._offset + self._index(i) * self._stride
        if os.pwrite(self._file.fileno(), memoryview(data).cast("B"), offset) != data.nbytes:
            raise OSError(f"{self.path}: short write (disk full?)")

    def close(self) -> None:
        self._file.close()


class ItemRows:
    """One item of an `NpyRows` file, read when sliced: `v[y0:y1]`, `v[y0:y1, x0:x1]`, `np.asarray(v)`.

    A training crop needs a few rows of a frame or a flow; reading only those instead of the
    whole item is what makes a crop's cost independent of the frame's size.
    """

    def __init__(self, rows: NpyRows, i: int):
        self._rows, self._i = rows, i
        self.shape, self.dtype, self.ndim = rows._item, rows.dtype, rows.ndim - 1

    def __getitem__(self, key: slice | tuple) -> np.ndarray:
        return self._rows[(self._i, *(key if isinstance(key, tuple) else (key,)))]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = self._rows[self._i]
        return a if dtype is None else a.astype(dtype)
