"""Independent pieces of work on worker threads, as many as OpenCV may use.

OpenCV and NumPy release the GIL while they work, and on two cores much of a frame's
preparation (NumPy arithmetic, one-pass OpenCV calls) leaves the second core idle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import threading

import cv2

PREFIX = "vidrestore-work"
T = TypeVar("T")
R = TypeVar("R")


def workers_for(n: int) -> int:
    """Worker threads for `n` pieces: `cv2.getNumThreads()` (the cores unless set lower), at most `n`, at least 1."""
    return max(1, min(n, cv2.getNumThreads()))


def thread_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`[fn(x) for x in items]`, computed on `workers_for(len(items))` threads; results in the items' order, the
    first exception re-raised. In the caller's thread when that is 1 or when the caller is itself one of these
    workers: pools within pools only compete for the same cores (README, "Speed": training crops built a
    sample per thread, and each sample's frames on threads too)."""
    workers = workers_for(len(items))
    if workers == 1 or threading.current_thread().name.startswith(PREFIX):
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers, thread_name_prefix=PREFIX) as pool:
        return list(pool.map(fn, items))
