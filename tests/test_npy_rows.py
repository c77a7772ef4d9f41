"""`io.npy_rows`: per-frame arrays on disk, read and written without memory-mapping them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidrestore.flow import backward_warp, remap, resize_field
from vidrestore.io.npy_rows import NpyRows


def test_a_file_the_disk_cannot_hold_is_refused_when_created(tmp_path, monkeypatch):
    """Its space is reserved at creation: a full disk says so then (the OSError the CLI reports as a full
    disk), and no file is left behind. A file that fits has its blocks allocated, not sparse."""
    import errno
    import os

    from vidrestore.errors import disk_full

    made = NpyRows.create(tmp_path / "fits.npy", (4, 256, 256), np.float32)
    made.close()
    with open(tmp_path / "probe", "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, 4096)
            reserves = True
        except OSError:  # a file system that cannot reserve space: the file is sparse there
            reserves = False
    assert not reserves or os.stat(tmp_path / "fits.npy").st_blocks * 512 >= 4 * 256 * 256 * 4

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError) as err:
        NpyRows.create(tmp_path / "big.npy", (300, 1080, 1920, 3), np.uint8)
    assert disk_full(err.value) and not (tmp_path / "big.npy").exists()


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


class _CountingItem:
    """An `NpyRows.item` that records the rows it is asked for."""

    def __init__(self, item):
        self.item, self.shape, self.rows = item, item.shape, []

    def __getitem__(self, key):
        self.rows.append((key.start, key.stop))
        return self.item[key]


def test_an_item_read_by_rows_warps_exactly_as_the_whole_item(tmp_path):
    rng = np.random.default_rng(1)
    frames = NpyRows.create(tmp_path / "f.npy", (2, 300, 200, 3), np.uint8)
    frames[0] = rng.integers(0, 256, (300, 200, 3))
    frames[1] = np.where(np.arange(200) % 6 < 3, 252, 253)[None, :, None]  # steps a bicubic sample halves
    flows = NpyRows.create(tmp_path / "w.npy", (2, 150, 100, 2), np.float16)
    flows[1] = rng.normal(0, 3, (150, 100, 2))
    box = (120, 184, 40, 104)
    ys, xs = np.mgrid[box[0]:box[1], box[2]:box[3]].astype(np.float32)
    cases = [(0, rng.normal(0, 2, (2, 64, 64)) + [[[5.0]], [[0.0]]], 64 + 24),   # inside: the crop, its motion, the taps
             (0, rng.normal(0, 2, (2, 64, 64)) + [[[5.0]], [[30.0]]], 300),  # reaching the bottom edge: all of it
             # samples far below a few rows round differently in OpenCV's bicubic: the whole item is read
             (1, np.stack([6 * (np.arange(64) % 30)[None, :] + 2.5 - xs, np.full((64, 64), 370 + 7 / 32) - ys]), 300)]
    for k, flow, most_rows in cases:
        flow = (flow.transpose(1, 2, 0) + np.stack([xs - np.arange(64), ys - np.arange(64)[:, None]], -1)).astype(np.float32)
        for interpolation in (cv2.INTER_LINEAR, cv2.INTER_CUBIC):
            item = _CountingItem(frames.item(k))
            got, valid = backward_warp(item, flow, interpolation=interpolation)
            want, want_valid = backward_warp(np.asarray(frames.item(k)), flow, interpolation=interpolation)
            assert np.array_equal(got, want) and np.array_equal(valid, want_valid), (k, most_rows, interpolation)
            r0, r1 = item.rows[0]
            assert r1 - r0 <= most_rows, item.rows
    field = _CountingItem(flows.item(1))
    got = resize_field(field, (300, 200), box, is_flow=True)
    assert np.array_equal(got, resize_field(np.asarray(flows.item(1)), (300, 200), box, is_flow=True))
    assert field.rows[0][1] - field.rows[0][0] <= 32 + 8
    assert np.array_equal(remap(flows.item(1), xs / 2, ys / 2, dtype=np.float32),
                          cv2.remap(np.asarray(flows.item(1), np.float32), xs / 2, ys / 2, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE))


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
