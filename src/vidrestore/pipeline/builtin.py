"""The stages vidrestore ships, registered by importing their modules (an explicit list, no scan)."""

from ..restore import identity, lucky, unsharp  # noqa: F401
