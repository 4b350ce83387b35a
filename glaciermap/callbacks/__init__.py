"""Lightning callbacks: training throughput, bias optimisation for ``glaciermap predict``.

:class:`BiasOptimisation` is imported on first use (it pulls in the scene-mapping code, which training does
not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glaciermap.callbacks.throughput import Throughput

if TYPE_CHECKING:
    from glaciermap.callbacks.bias_optimisation import BiasOptimisation

__all__ = ["BiasOptimisation", "Throughput"]


def __getattr__(name: str) -> Any:
    if name == "BiasOptimisation":
        from glaciermap.callbacks.bias_optimisation import BiasOptimisation

        return BiasOptimisation
    raise AttributeError(f"module 'glaciermap.callbacks' has no attribute {name!r}")
