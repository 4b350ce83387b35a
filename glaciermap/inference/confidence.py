"""Per-pixel confidence from class probabilities (GlaViTU paper, Eq. 3).

``conf(p) = 1 + sum_i p_i log_C(p_i)`` with ``C`` the number of classes: one minus the Shannon entropy in
units of ``log C``, so 1 for a one-hot ``p`` and 0 for the uniform distribution. As in the authors' reference
implementation the probabilities are clipped to ``[1e-6, 1 - 1e-6]`` first, so a one-hot ``p``
gives ``1 - 2.1e-5`` for ``C = 2`` rather than exactly 1.

Calibrated confidence (GlaViTU paper, Eq. 4) is a map ``R: [0, 1] -> [0, 1]`` applied to this value; see
:class:`glaciermap.models.pretrained.Calibrator`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from glaciermap.calibration.base import raw_confidence
from glaciermap.errors import InputError


def entropy_confidence(probabilities: npt.ArrayLike, axis: int = 0) -> npt.NDArray[np.float32]:
    """Confidence of GlaViTU paper Eq. 3, ``1 + sum_i p_i log_C(p_i)``.

    Args:
        probabilities: Class probabilities with the ``C`` classes along ``axis`` (e.g. ``(C, H, W)``),
            summing to one; clipped to ``[1e-6, 1 - 1e-6]`` (:data:`PROBABILITY_CLIP`).
        axis: The class axis.

    Returns:
        float32 confidence with ``axis`` removed (e.g. ``(H, W)``), in ``[0, 1]``.

    Raises:
        InputError: If there are fewer than two classes along ``axis``.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    classes = p.shape[axis] if p.ndim else 0
    if classes < 2:
        raise InputError(f"confidence: expected at least 2 classes along axis {axis}, got shape {p.shape}")
    return raw_confidence(p, axis=axis)  # the one implementation of Eq. 3
