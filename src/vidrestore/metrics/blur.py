"""No-reference blur measures of a single frame.

* `blur_effect`: the perceptual blur metric of Crete et al. (SPIE 2007) as implemented by
  scikit-image: 0 for a sharp image, towards 1 for a very blurry one; compares the image with
  a re-blurred copy of itself, so it is fairly independent of content.
* `laplacian_variance`: variance of the 4-neighbour Laplacian of the luma in 8-bit units
  (Pech-Pacheco et al., ICPR 2000); larger is sharper. It depends on content, so it compares
  frames of one scene (a frame with its ground truth or its neighbours), not different scenes.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.measure import blur_effect as _skimage_blur_effect

from .fidelity import rgb_to_y


def blur_effect(rgb: np.ndarray) -> float:
    """Crete et al. blur of the BT.601 luma (0 sharp .. 1 blurry)."""
    return float(_skimage_blur_effect(rgb_to_y(rgb), h_size=11))


def laplacian_variance(rgb: np.ndarray, scale: float = 1.0) -> float:
    """Variance of the Laplacian of the BT.601 luma, in squared 8-bit levels (larger = sharper).

    `scale` < 1 measures it on the luma shrunk by that factor (area averaging): blur of a pixel
    or more still shows, pixel-level texture, noise and compression artefacts much less.
    """
    y = rgb_to_y(rgb)
    if scale != 1.0:
        h, w = y.shape
        y = cv2.resize(y, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(y * 255.0, cv2.CV_32F, ksize=1).var())


def edge_variance(rgb: np.ndarray, scale: float = 0.5) -> float:
    """`laplacian_variance` at `scale` less what white noise puts there: 20 sigma^2 for the 4-neighbour
    Laplacian, sigma measured as the median absolute Haar diagonal detail of the same luma / 0.6745
    (Donoho's robust estimator; smooth areas hold only noise there). A blend that averages noise away
    lowers the Laplacian variance without blurring an edge; this measure does not fall with it."""
    y = rgb_to_y(rgb) * 255.0
    if scale != 1.0:
        h, w = y.shape
        y = cv2.resize(y, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    d = (y[0:h:2, 0:w:2] - y[0:h:2, 1:w:2] - y[1:h:2, 0:w:2] + y[1:h:2, 1:w:2]) / 2
    sigma = float(np.median(np.abs(d))) / 0.6745 if d.size else 0.0
    return float(cv2.Laplacian(y, cv2.CV_32F, ksize=1).var()) - 20.0 * sigma * sigma
