"""Training throughput in the progress bar: optimiser steps per second and patches per second."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class Throughput(Callback):
    """Log ``steps_per_s`` and ``patches_per_s`` (all ranks together) to the progress bar and the loggers.

    Rates are exponential moving averages over training batches (weight ``smoothing`` on the newest batch),
    measured between consecutive batch ends so data loading is included.

    Args:
        smoothing: Weight of the newest batch in the moving average, in (0, 1].
    """

    def __init__(self, smoothing: float = 0.1) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing is {smoothing}; expected a value in (0, 1]")
        self.smoothing = smoothing
        self._last: float | None = None
        self.steps_per_s: float | None = None
        self.patches_per_s: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restart the clock (validation time between epochs is not training throughput)."""
        self._last = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Update the moving averages and log them."""
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            dt = now - self._last
            patches = int(batch["mask"].shape[0]) * trainer.world_size
            steps, rate = 1.0 / dt, patches / dt
            a = self.smoothing
            self.steps_per_s = steps if self.steps_per_s is None else a * steps + (1 - a) * self.steps_per_s
            self.patches_per_s = (
                rate if self.patches_per_s is None else a * rate + (1 - a) * self.patches_per_s
            )
            b = int(batch["mask"].shape[0])
            pl_module.log("steps_per_s", self.steps_per_s, prog_bar=True, batch_size=b, rank_zero_only=True)
            pl_module.log(
                "patches_per_s", self.patches_per_s, prog_bar=True, batch_size=b, rank_zero_only=True
            )
        self._last = now
