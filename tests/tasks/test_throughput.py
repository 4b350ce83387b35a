"""The throughput callback logs steps/s and patches/s from real batch timings."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from glaciermap.callbacks import Throughput


class _Module:
    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs: Any) -> None:
        self.logged[name] = value


def test_rates_follow_the_batch_times() -> None:
    cb = Throughput(smoothing=1.0)
    trainer = SimpleNamespace(world_size=2)
    module = _Module()
    batch = {"mask": torch.zeros(4, 8, 8)}
    cb.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
    cb.on_train_batch_end(trainer, module, None, batch, 0)  # type: ignore[arg-type]
    assert module.logged == {}  # no interval yet
    time.sleep(0.05)
    cb.on_train_batch_end(trainer, module, None, batch, 1)  # type: ignore[arg-type]
    steps = module.logged["steps_per_s"]
    assert 5.0 < steps < 20.5
    assert module.logged["patches_per_s"] == pytest.approx(steps * 8)  # 4 patches x 2 ranks per step


def test_invalid_smoothing() -> None:
    with pytest.raises(ValueError, match="smoothing"):
        Throughput(smoothing=0.0)
