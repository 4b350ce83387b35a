"""The band-ratio glacier baseline of the GlaViTU paper.

A pixel is glacier when ``red / swir1 > th1`` and ``blue > th2`` (GlaViTU paper, "Baselines"; the paper's
thresholds are 3.2 and 0.17 on top-of-atmosphere reflectance). Clean ice and snow are bright in the visible
and dark in the short-wave infrared; debris-covered ice is not, which is the rule's known blind spot.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from glaciermap.constants import BANDS
from glaciermap.errors import InputError

PAPER_RATIO_THRESHOLD: float = 3.2
"""th1 of the GlaViTU paper (red / swir1)."""
PAPER_BLUE_THRESHOLD: float = 0.17
"""th2 of the GlaViTU paper (blue reflectance)."""


def band_ratio_mask(
    optical: npt.ArrayLike,
    ratio_threshold: float = PAPER_RATIO_THRESHOLD,
    blue_threshold: float = PAPER_BLUE_THRESHOLD,
) -> npt.NDArray[np.bool_]:
    """Apply the band-ratio rule to top-of-atmosphere reflectance.

    Args:
        optical: Reflectance, shape (6, H, W) in the canonical band order
            ``blue, green, red, nir, swir1, swir2`` (unitless, 0-1).
        ratio_threshold: th1, the red / swir1 ratio above which a pixel may be glacier.
        blue_threshold: th2, the blue reflectance above which a pixel may be glacier.

    Returns:
        Boolean glacier mask, shape (H, W). Non-finite pixels are False.

    Raises:
        InputError: If ``optical`` does not have the six optical bands first.
    """
    arr = np.asarray(optical, dtype=np.float32)
    n = len(BANDS["optical"])
    if arr.ndim != 3 or arr.shape[0] != n:
        raise InputError(f"band ratio: expected optical reflectance of shape ({n}, H, W), got {arr.shape}")
    blue = arr[BANDS["optical"].index("blue")]
    red = arr[BANDS["optical"].index("red")]
    swir1 = arr[BANDS["optical"].index("swir1")]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = red / swir1
    mask: npt.NDArray[np.bool_] = (ratio > ratio_threshold) & (blue > blue_threshold)
    return mask & np.isfinite(ratio) & np.isfinite(blue)
