"""A job killed with SIGKILL and started again continues and gives the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import ROOT, decoded_times, stream_packets
from vidrestore import read_frames

SCRIPT = """
import json, os, sys, time
import numpy as np
from vidrestore import EncodeSettings, Stage, restore

class Slow(Stage):
    name = "slow-tone"
    radius = 1
    def process(self, window):
        time.sleep(float(os.environ.get("SLOW", "0")))
        return np.mean([f.rgb for f in window.frames], axis=0) * 0.8 + 0.1

r = restore(sys.argv[1], sys.argv[2], [Slow()], EncodeSettings("h264", crf=20, preset="veryfast"),
            segment_frames=6, progress=False)
print(json.dumps({"reused": r.segments_reused, "segments": r.segments, "frames": r.frames}))
"""


def _run(script, src, out, env, slow: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(src), str(out)], env={**env, "SLOW": str(slow)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_rerun_matches_uninterrupted(clip_factory, tmp_path):
    src, spec, _ = clip_factory("resume_vfr.mkv", frames=40, vfr=True, audio=True, subtitles=True)
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), VIDRESTORE_WORK_DIR=str(work))

    reference = tmp_path / "reference.mkv"
    proc = _run(script, src, reference, env, slow=0)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()

    out = tmp_path / "out.mkv"
    proc = _run(script, src, out, env, slow=0.15)
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:
        manifests = list((work / "jobs").glob("*/manifest.json"))
        done = max([json.loads(m.read_text())["segments"] for m in manifests] or [0])
        if done >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "job finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()

    proc = _run(script, src, out, env, slow=0)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    report = json.loads(proc.stdout.read().strip().splitlines()[-1])
    assert report["frames"] == spec.frames
    assert 2 <= report["reused"] < report["segments"] == 7  # finished segments were not redone

    assert decoded_times(out) == decoded_times(reference)
    assert stream_packets(out, "audio") == stream_packets(reference, "audio") == stream_packets(src, "audio")
    assert stream_packets(out, "subtitle") == stream_packets(src, "subtitle")
    differing = [a.index for a, b in zip(read_frames(out), read_frames(reference), strict=True) if not np.array_equal(a.rgb, b.rgb)]
    assert not differing, f"frames {differing} differ from the uninterrupted run ({report['reused']} segments reused)"
    assert not list((work / "jobs").glob("*/manifest.json")), "finished jobs clean up their work directory"
