"""`io.npy_rows`: per-frame arrays on disk, read and written without memory-mapping them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidrestore.io.npy_rows import NpyRows


def test_round_trip_and_crops_match_numpy(tmp_path):
    ref = np.random.default_rng(0).random((6, 9, 7, 2)).astype(np.float16)
    out = NpyRows.create(tmp_path / "a.npy", ref.shape, ref.dtype)
    for i in range(len(ref)):
        out[i] = ref[i]
    out[-1] = 2.0
    ref[-1] = 2.0
    out.close()
    assert np.array_equal(np.load(tmp_path / "a.npy"), ref)
    back = NpyRows(tmp_path / "a.npy")
    assert back.shape == ref.shape and back.dtype == ref.dtype
    for key in [(2,), (2, slice(3, 7)), (4, slice(1, 8), slice(2, 5)), (1, slice(None), 3), (0, 5)]:
        assert np.array_equal(back[key], ref[key]), key
    assert not back[3].flags.writeable
    with pytest.raises(IndexError):
        back[6]


def test_a_truncated_file_is_a_clear_error(tmp_path):
    out = NpyRows.create(tmp_path / "t.npy", (4, 100), np.uint8)
    out.close()
    path = tmp_path / "t.npy"
    path.write_bytes(path.read_bytes()[:-150])
    with pytest.raises(OSError, match="short read"):
        NpyRows(path)[3]


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status (not Linux)")


def test_reading_every_item_does_not_grow_resident_memory(tmp_path):
    """A memory map keeps the pages it read resident (they grew the deblur job's RSS with the
    video's length); reading through the file does not."""
    n, item = 32, (1024, 1024)   # 32 MB
    out = NpyRows.create(tmp_path / "big.npy", (n, *item), np.uint8)
    for i in range(n):
        out[i] = i
    out.close()
    before = _rss_file_kb()
    rows = NpyRows(tmp_path / "big.npy")
    total = sum(int(rows[i].sum(dtype=np.int64)) for i in range(n))
    through_file = _rss_file_kb() - before
    mapped = np.load(tmp_path / "big.npy", mmap_mode="r")
    before = _rss_file_kb()
    assert sum(int(np.asarray(mapped[i]).sum(dtype=np.int64)) for i in range(n)) == total
    by_map = _rss_file_kb() - before
    assert by_map > 24_000, "the measure itself should see a memory map's pages"
    assert through_file < 4_000
