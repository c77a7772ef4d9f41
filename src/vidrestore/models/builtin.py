"""The models vidrestore ships, registered by importing their modules (an explicit list, no scan)."""

from . import basicvsrpp, recurrent, unet  # noqa: F401
