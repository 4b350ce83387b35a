"""The GlaViTU authors' three shipped confidence calibrators, as plain numbers.

The authors ship pickled ``sklearn.kernel_ridge.KernelRidge`` models (``confidence_calibration_models/*.pickle``);
we never unpickle them. Their parameters (support points ``X_fit``, dual coefficients ``dual_coef``, the fit-time
penalties ``alpha``; ``gamma = 1``) were extracted once into ``glavitu_calibrators.json`` next to this module
(the GlaViTU authors' reference implementation), and :func:`get_calibrator` serves them as
:class:`~glaciermap.calibration.kernel_ridge.KernelRidgeCalibrator`::

    f(c) = clip(sum_i a_i exp(-|c - x_i|), 0, 1)

All three calibrate the single-pass softmax confidence (GlaViTU paper Eq. 3, ``C = 2``) of the authors' weights;
they are specific to those weights (the authors' reference implementation item 16).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from glaciermap.calibration.kernel_ridge import KernelRidgeCalibrator
from glaciermap.constants import CLASS_NAMES
from glaciermap.errors import ConfigError

AuthorsCalibrator = Literal["glavitu_global", "glavitu_global_insar", "glavitu_regionencoding"]
"""Names of the shipped calibrators (``glavitu_<key in the JSON file>``)."""

DATA_FILE = Path(__file__).resolve().parent / "glavitu_calibrators.json"
"""The authors' calibrator parameters (copied from the reference notes)."""

AUTHORS_CALIBRATORS: tuple[str, ...] = ("glavitu_global", "glavitu_global_insar", "glavitu_regionencoding")
"""Names accepted by :func:`get_calibrator`."""


@cache
def _data() -> dict[str, Any]:
    with DATA_FILE.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def get_calibrator(name: AuthorsCalibrator | str) -> KernelRidgeCalibrator:
    """One of the authors' shipped kernel-ridge calibrators, by name.

    Args:
        name: ``"glavitu_global"`` (Optical+DEM), ``"glavitu_global_insar"`` (Optical+DEM+InSAR) or
            ``"glavitu_regionencoding"``.

    Returns:
        The calibrator (binary classes ``background, glacier``); call it on raw confidence.

    Raises:
        ConfigError: If the name is unknown.
    """
    if name not in AUTHORS_CALIBRATORS:
        raise ConfigError(f"calibrator {name!r} is unknown; expected one of {', '.join(AUTHORS_CALIBRATORS)}")
    entry = _data()[name.removeprefix("glavitu_")]
    if entry.get("kernel") != "laplacian":
        raise ConfigError(
            f"{DATA_FILE}: calibrator {name!r} has kernel {entry.get('kernel')!r}; expected 'laplacian'"
        )
    return KernelRidgeCalibrator(
        entry["X_fit"],
        entry["dual_coef"],
        float(entry["gamma"]),
        entry["alpha"],
        num_classes=2,
        class_names=CLASS_NAMES[2],
    )
