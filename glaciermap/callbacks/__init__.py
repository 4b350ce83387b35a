"""Lightning callbacks: training throughput (more arrive with calibration and bias optimisation)."""

from glaciermap.callbacks.throughput import Throughput

__all__ = ["Throughput"]
