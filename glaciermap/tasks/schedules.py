"""Learning-rate schedules of the GlaViTU paper, stepped every batch.

GlaViTU paper, Methods, "GlaViTU" (after Loshchilov and Hutter 2017); stepped every batch as in the authors'
reference implementation.

* ``"warm_restarts"`` (training from scratch): cosine annealing with warm restarts, cycles of 10, 20, 40, 80
  epochs (T0 = 10 epochs, T_mult = 2), minimum 0; ``lr(s) = 0.5 * lr0 * (1 + cos(pi * (s - b_i) / (b_{i+1} - b_i)))``
  inside cycle i.
* ``"cosine"`` (fine-tuning): one cosine decay from the peak to 0 over ``cycle_epochs`` epochs (80 in the reference).
* ``"constant"``: no schedule.
"""

from __future__ import annotations

from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, CosineAnnealingWarmRestarts, LambdaLR, LRScheduler

ScheduleName = Literal["warm_restarts", "cosine", "constant"]


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
    raise ValueError(f"unknown schedule {name!r}; expected 'warm_restarts', 'cosine' or 'constant'")
