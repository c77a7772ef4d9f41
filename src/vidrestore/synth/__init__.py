"""Synthetic clips and degradations for tests, benchmarks and self-supervision.

* `handheld`: OIS-aware handheld-shake clips from sharp footage (blurry.mkv, gt.mkv, labels.json);
  `shake` holds its camera/stabilizer model, `sensor` linear light and sensor noise, `source`
  the part of a video to use at a chosen scale;
* `clips`: small synthetic test clips with known content.
"""

from .handheld import HandheldResult, load_labels, synth_handheld
from .shake import ShakeSettings

__all__ = ["HandheldResult", "ShakeSettings", "load_labels", "synth_handheld"]
