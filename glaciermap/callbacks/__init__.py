"""Lightning callbacks: training throughput, confidence calibration (bias optimisation arrives later)."""

from glaciermap.callbacks.calibration import CalibrationCallback
from glaciermap.callbacks.throughput import Throughput

__all__ = ["CalibrationCallback", "Throughput"]
