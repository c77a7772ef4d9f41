"""Synthetic clips and degradations for tests, benchmarks and self-supervision.

* `handheld`: OIS-aware handheld-shake clips from sharp footage (blurry.mkv, gt.mkv, labels.json);
  `shake` holds its camera/stabilizer model, `sensor` linear light and sensor noise, `source`
  the part of a video to use at a chosen scale;
* `noise`, `compress`: paired clips (gt.mkv, a noisy or compressed copy, settings.json; `paired`);
* `clips`: small synthetic test clips with known content.
"""

from .compress import synth_compress
from .handheld import HandheldResult, load_labels, synth_handheld
from .noise import synth_noise
from .paired import PairedResult, load_settings
from .shake import ShakeSettings

__all__ = ["HandheldResult", "PairedResult", "ShakeSettings", "load_labels", "load_settings", "synth_compress",
           "synth_handheld", "synth_noise"]
