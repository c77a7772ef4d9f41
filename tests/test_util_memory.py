"""`util.memory.reuse_freed_memory`: large tensors reuse freed pages instead of faulting in new ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import torch
from vidrestore.util.memory import reuse_freed_memory
if sys.argv[1] == "on":
    assert reuse_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = torch.ones(16 << 20); del a
before = faults()
for _ in range(5):
    a = torch.ones(16 << 20); del a   # 64 MB, above glibc's largest mmap threshold
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux only)")
def test_freed_tensors_are_reused_without_page_faults():
    run = lambda mode: int(subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,  # noqa: E731
                                          check=True).stdout)
    off, on = run("off"), run("on")
    assert off > 5 * 16000, "each fresh 64 MB mapping faults in its 16384 pages"
    assert on < off / 4
