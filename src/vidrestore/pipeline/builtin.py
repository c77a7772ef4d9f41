"""The stages vidrestore ships, registered by importing their modules (an explicit list, no scan)."""

from ..restoration import deflicker, identity, lucky, stabilize, unsharp  # noqa: F401
