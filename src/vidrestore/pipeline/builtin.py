"""The stages vidrestore ships, registered by importing their modules (an explicit list, no scan)."""

from ..restoration import identity, lucky, unsharp  # noqa: F401
