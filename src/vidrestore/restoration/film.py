"""The archival-film chain of `vidrestore film`: which stages, in which order, and why.

    [grain measured] -> [stabilize] -> deflicker -> colour -> [grain out] -> dust -> scratches -> [grain back or re-made]

* stabilize (only when asked): gate weave and shake first, so that every later stage sees a
  steady frame (its analysis reads the input as it is).
* deflicker: exposure flicker is a global tone change per frame; it goes before everything that
  reads tones across frames (colour's smoothing over time, the spike tests of dust). The chain's
  measures it between aligned consecutive frames (`FilmDeflicker`), so that what comes into view
  as the camera moves is not taken for flicker.
* colour: one linear map per channel, smoothed over the shot. It runs before the repairs,
  although it restores the print's look last in the issue's chain, because the repairs commute
  with it (the median and interpolation of neighbouring pixels of an affinely mapped channel are
  the affinely mapped median and interpolation; the spike thresholds scale with the measured
  noise), and because a two-pass stage's analysis sees the output of every stage before it:
  placed after dust and scratches, its analysis would run both over the whole video a second time.
  Single-frame dust cannot move its black and white points: they are read on the median of three
  frames and smoothed by a robust local linear fit over 2 s.
* dust, then scratches: blotches first, so that a blotch on a scratch does not break the line.
  Both need the flows from each frame to its neighbours: dust computes them (and mends them over
  the blotches) and leaves them to scratches (`SharedFlows`).

Grain (`film_grain`), around the repairs: `keep` (the default: grain is the film's texture)
takes it out with `denoise` before dust and puts the same grain back after the scratches;
`remove` takes it out there for good; `resynth` measures it on the input first, takes it out,
and synthesizes grain of the measured model after the scratches; `off` leaves it in the picture
for the repairs to see. It is taken out after colour, not before, for the reason colour runs
before the repairs: `denoise` is the slowest stage and colour's analysis would run it a second
time; colour's per-channel map commutes with it as with the repairs, and grain, the same on R, G
and B, moves the channels' black and white points alike.
"""

from __future__ import annotations

import os

from ..errors import VidrestoreError
from ..pipeline import Stage
from .denoise import Denoise
from .film_colour import Colour
from .film_deflicker import FilmDeflicker
from .film_dust import DustRemoval, SharedFlows
from .film_grain import GrainMeasure, GrainMerge, GrainSplit, GrainSynth
from .film_scratches import ScratchRemoval
from .stabilize import Stabilize


GRAIN_MODES = ("keep", "remove", "resynth", "off")


def film_stages(*, stabilize: bool = False, deflicker: bool = True, grain: str = "keep", colour: bool = True,
                dust: bool = True, scratches: bool = True, masks: str | os.PathLike | None = None,
                grain_table: bool = False) -> list[Stage]:
    """The stages of the film chain that are switched on, in order; `grain`: one of GRAIN_MODES;
    `masks`: a folder for the dust and scratch stages' per-frame repair masks (masks/dust/,
    masks/scratches/); `grain_table` (with grain "resynth"): the grain is measured and taken out
    but not synthesized into the pixels -- the caller gives the GrainMeasure stage's model to the
    encoder as AV1 film-grain parameters."""
    if grain not in GRAIN_MODES:
        raise VidrestoreError(f"grain must be one of {', '.join(GRAIN_MODES)}, not {grain!r}")
    if grain_table and grain != "resynth":
        raise VidrestoreError(f"a grain table carries re-synthesized grain: use it with grain 'resynth' (--grain resynth), not {grain!r}")
    folder = str(masks) if masks is not None else ""
    measure = GrainMeasure() if grain == "resynth" else None
    flows = SharedFlows() if dust and scratches else None
    split = GrainSplit() if grain == "keep" and (dust or scratches) else None   # keep: nothing to protect it from without repairs
    chosen = [
        (measure is not None, lambda: measure), (stabilize, Stabilize), (deflicker, FilmDeflicker), (colour, Colour),
        (split is not None, lambda: split), (grain in ("remove", "resynth"), Denoise),
        (dust, lambda: DustRemoval(masks=folder, share=flows)), (scratches, lambda: ScratchRemoval(masks=folder, share=flows)),
        (split is not None, lambda: GrainMerge(split)), (measure is not None and not grain_table, lambda: GrainSynth(measure)),
    ]
    return [make() for on, make in chosen if on]
