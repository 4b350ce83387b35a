"""Lightning callbacks: training throughput, a retained heap on CPUs, confidence calibration, bias optimisation.

:class:`BiasOptimisation` is imported on first use (it pulls in the scene-mapping code, which training does
not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glaciermap.callbacks.calibration import CalibrationCallback
from glaciermap.callbacks.heap import RetainedHeap
from glaciermap.callbacks.throughput import Throughput

if TYPE_CHECKING:
    from glaciermap.callbacks.bias_optimisation import BiasOptimisation

__all__ = ["BiasOptimisation", "CalibrationCallback", "RetainedHeap", "Throughput"]


def __getattr__(name: str) -> Any:
    """Import :class:`BiasOptimisation` on first use (PEP 562)."""
    if name == "BiasOptimisation":
        from glaciermap.callbacks.bias_optimisation import BiasOptimisation

        return BiasOptimisation
    raise AttributeError(f"module 'glaciermap.callbacks' has no attribute {name!r}")
