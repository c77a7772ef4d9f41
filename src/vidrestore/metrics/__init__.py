"""Quality metrics: fidelity to a reference, temporal consistency, stabilization, no-reference blur."""

from .temporal import WarpingError, warping_error, warping_error_pair

__all__ = ["WarpingError", "warping_error", "warping_error_pair"]
