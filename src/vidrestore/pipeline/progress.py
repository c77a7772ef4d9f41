"""Kept for `vidrestore.selfhvd`'s imports until it imports `vidrestore.util.progress` itself."""

from ..util.progress import progress_bar

__all__ = ["progress_bar"]
