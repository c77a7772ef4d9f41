"""Independent pieces of work on worker threads, as many as OpenCV may use.

OpenCV and NumPy release the GIL while they work, and on two cores much of a frame's
preparation (NumPy arithmetic, one-pass OpenCV calls) leaves the second core idle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import cv2

T = TypeVar("T")
R = TypeVar("R")


def workers_for(n: int) -> int:
    """Worker threads for `n` pieces: `cv2.getNumThreads()` (the cores unless set lower), at most `n`, at least 1."""
    return max(1, min(n, cv2.getNumThreads()))


def thread_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[fn(x) for x in items]`, computed on `workers_for(len(items))` threads (in the caller's thread when that
    is 1); results in the items' order, the first exception re-raised."""
    workers = workers_for(len(items))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="vidrestore-work") as pool:
        return list(pool.map(fn, items))
