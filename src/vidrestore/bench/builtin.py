"""The methods the benchmark knows, registered by importing their modules (an explicit list, no scan)."""

from . import classical, selfhvd  # noqa: F401
