"""The archival-film chain of `vidrestore film`: which stages, in which order, and why.

    [stabilize] -> deflicker -> colour -> dust -> scratches

* stabilize (only when asked): gate weave and shake first, so that every later stage sees a
  steady frame (its analysis reads the input as it is).
* deflicker: exposure flicker is a global tone change per frame; it goes before everything that
  reads tones across frames (colour's smoothing over time, the spike tests of dust).
* colour: one linear map per channel, smoothed over the shot. It runs before the repairs,
  although it restores the print's look last in the issue's chain, because the repairs commute
  with it (the median and interpolation of neighbouring pixels of an affinely mapped channel are
  the affinely mapped median and interpolation; the spike thresholds scale with the measured
  noise), and because a two-pass stage's analysis sees the output of every stage before it:
  placed after dust and scratches, its analysis would run both over the whole video a second time.
  Single-frame dust cannot move its black and white points: they are smoothed by a running
  median over 2 s.
* dust, then scratches: blotches first, so that a blotch on a scratch does not break the line.

Grain handling (keep, remove, resynthesize) is not part of the chain yet.
"""

from __future__ import annotations

import os

from ..pipeline import Stage
from .deflicker import Deflicker
from .film_colour import Colour
from .film_dust import DustRemoval
from .film_scratches import ScratchRemoval
from .stabilize import Stabilize


def film_stages(*, stabilize: bool = False, deflicker: bool = True, colour: bool = True, dust: bool = True,
                scratches: bool = True, masks: str | os.PathLike | None = None) -> list[Stage]:
    """The stages of the film chain that are switched on, in order; `masks`: a folder for the
    dust and scratch stages' per-frame repair masks (masks/dust/, masks/scratches/)."""
    folder = str(masks) if masks is not None else ""
    chosen = [
        (stabilize, Stabilize), (deflicker, Deflicker), (colour, Colour),
        (dust, lambda: DustRemoval(masks=folder)), (scratches, lambda: ScratchRemoval(masks=folder)),
    ]
    return [make() for on, make in chosen if on]
