"""Quality metrics: fidelity to a reference, temporal consistency, drift, no-reference blur, LPIPS.

Modules: `fidelity` (PSNR, SSIM on RGB or Y), `temporal` (warping error), `drift`, `blur`,
`lpips` (local weights only), `report` (all of them over a video, per frame + summary).
LPIPS needs torch; it is imported only by `vidrestore.metrics.lpips` and `report`.
"""

from .blur import blur_effect, edge_variance, laplacian_variance
from .drift import Drift, drift, local_drift
from .fidelity import psnr, rgb_to_y, ssim
from .temporal import WarpingError, WarpingErrorStream, warping_error, warping_error_pair

__all__ = [
    "Drift",
    "WarpingError",
    "WarpingErrorStream",
    "blur_effect",
    "drift",
    "edge_variance",
    "laplacian_variance",
    "local_drift",
    "psnr",
    "rgb_to_y",
    "ssim",
    "warping_error",
    "warping_error_pair",
]
