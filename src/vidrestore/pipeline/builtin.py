"""The stages vidrestore ships, registered by importing their modules (an explicit list, no scan)."""

from ..restoration import identity, lucky, stabilize, unsharp  # noqa: F401
