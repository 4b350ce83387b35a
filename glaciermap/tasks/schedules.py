"""Learning-rate schedules of the GlaViTU paper, stepped every batch.

GlaViTU paper, Methods, "GlaViTU" (after Loshchilov and Hutter 2017); stepped every batch as in the authors'
reference implementation.

* ``"warm_restarts"`` (training from scratch): cosine annealing with warm restarts, cycles of 10, 20, 40, 80
  epochs (T0 = 10 epochs, T_mult = 2), minimum 0; ``lr(s) = 0.5 * lr0 * (1 + cos(pi * (s - b_i) / (b_{i+1} - b_i)))``
  inside cycle i.
* ``"cosine"`` (fine-tuning): one cosine decay from the peak to 0 over ``cycle_epochs`` epochs (80 in the reference).
* ``"constant"``: no schedule.
* ``"plateau"`` (Karakoram U-Net+CBAM): the paper's learning rate of 1e-4 "was automatically adjusted during
  training" (Karakoram paper Sec. 3.3.1) without further detail; read as reduce-on-plateau with the framework
  defaults (divide by 10 after 10 epochs without a lower ``val/loss``), stepped every epoch
  (:func:`build_plateau`).
"""

from __future__ import annotations

from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LambdaLR,
    LRScheduler,
    ReduceLROnPlateau,
)

ScheduleName = Literal["warm_restarts", "cosine", "constant", "plateau"]

PLATEAU_MONITOR = "val/loss"
"""Metric watched by the ``"plateau"`` schedule."""


def build_schedule(
    optimizer: Optimizer,
    name: ScheduleName,
    steps_per_epoch: int,
    cycle_epochs: int = 10,
    cycle_mult: int = 2,
) -> LRScheduler:
    """Build a per-step learning-rate scheduler.

    Args:
        optimizer: The optimiser whose learning rate is scheduled (its lr is the peak lr).
        name: ``"warm_restarts"``, ``"cosine"`` or ``"constant"``.
        steps_per_epoch: Optimiser steps per epoch (S in the formula above).
        cycle_epochs: First cycle length in epochs (``warm_restarts``) or the decay length (``cosine``).
        cycle_mult: Growth factor of successive cycles (``warm_restarts``).

    Returns:
        A scheduler to step after every optimiser step.
    """
    s = max(1, int(steps_per_epoch))
    if name == "warm_restarts":
        return CosineAnnealingWarmRestarts(optimizer, T_0=cycle_epochs * s, T_mult=cycle_mult, eta_min=0.0)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=cycle_epochs * s, eta_min=0.0)
    if name == "constant":
        return LambdaLR(optimizer, lambda _: 1.0)
    if name == "plateau":
        raise ValueError(
            "the 'plateau' schedule is stepped per epoch on a metric; build it with build_plateau"
        )
    raise ValueError(f"unknown schedule {name!r}; expected 'warm_restarts', 'cosine' or 'constant'")


def build_plateau(optimizer: Optimizer, factor: float = 0.1, patience: int = 10) -> ReduceLROnPlateau:
    """Reduce-on-plateau schedule of the Karakoram recipe (Karakoram paper Sec. 3.3.1, "automatically adjusted").

    Args:
        optimizer: The optimiser (its lr is the initial lr, 1e-4 in the paper).
        factor: Multiplier applied at each reduction (0.1, the framework default; the paper gives none).
        patience: Epochs without improvement of ``val/loss`` before a reduction (10, the framework default).

    Returns:
        The scheduler; step it once per epoch with the monitored value.
    """
    return ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience)
