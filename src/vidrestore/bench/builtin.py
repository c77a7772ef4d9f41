"""The methods the benchmark knows, registered by importing their modules (an explicit list, no scan)."""

from . import classical  # noqa: F401
