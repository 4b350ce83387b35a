"""Lightning callbacks: training throughput, confidence calibration, bias optimisation for ``glaciermap predict``.

:class:`BiasOptimisation` is imported on first use (it pulls in the scene-mapping code, which training does
not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glaciermap.callbacks.calibration import CalibrationCallback
from glaciermap.callbacks.throughput import Throughput

if TYPE_CHECKING:
    from glaciermap.callbacks.bias_optimisation import BiasOptimisation

__all__ = ["BiasOptimisation", "CalibrationCallback", "Throughput"]


def __getattr__(name: str) -> Any:
    """Import :class:`BiasOptimisation` on first use (PEP 562)."""
    if name == "BiasOptimisation":
        from glaciermap.callbacks.bias_optimisation import BiasOptimisation

        return BiasOptimisation
    raise AttributeError(f"module 'glaciermap.callbacks' has no attribute {name!r}")
