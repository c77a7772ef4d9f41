"""Process-wide memory settings for long CPU jobs."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def reuse_freed_memory() -> bool:
    """Let glibc keep freed memory for the next allocation instead of returning it to the kernel.

    A network run over tiles allocates and frees activations of tens of MB per layer (38 MB at 512 px),
    a training step several MB per layer and its gradients. Above glibc's mmap threshold (32 MB at
    most) each one is a fresh mapping whose pages the kernel faults in and zeroes on first touch, for
    every layer of every tile or step; served from the heap, the next reuses the same pages. Returns
    whether the setting applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
