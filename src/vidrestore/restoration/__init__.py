"""Restoration stages (pipeline stages a user runs with `vidrestore restore -s NAME`).

Classical baselines live here: `identity`, `unsharp` (unsharp mask) and `lucky` (lucky-frame
fusion), with `stabilize`, `deflicker` and the archival-film stages `dust`, `scratches` and `colour`,
and `upscale` (multi-frame super-resolution). Each module registers its stages (SelfHVD's `deblur`:
`vidrestore.selfhvd.stage`); this package tells the pipeline how to load them when stages are first
looked up (importing `vidrestore` does that).
"""

from ..pipeline.stage import register_stage_loader


def _load_stages() -> None:
    """Import the modules that register the built-in stages."""
    from . import deblock, deflicker, denoise, film_colour, film_dust, film_scratches, identity, lucky, stabilize, unsharp, upscale  # noqa: F401
    from ..selfhvd import stage  # noqa: F401 - `deblur`


register_stage_loader(_load_stages)
