"""Kept for `vidrestore.selfhvd`'s imports until it imports `vidrestore.util.prefetch` itself."""

from ..util.prefetch import prefetch

__all__ = ["prefetch"]
