"""bf16 on a CPU in training, validation, testing and prediction: no convolution computed wrongly.

The oneDNN in torch 2.14.1 computes some bf16 convolution shapes wrongly on CPUs with AMX
(:mod:`glaciermap.models.cpu_bf16`; small GlaViTU's patch embedding among them). A task trained with
``--trainer.precision bf16-mixed`` on such a CPU would learn around the wrong forward pass and exit 0, so the tasks
call :func:`guard_trainer_bf16` in ``setup``: under ``bf16-mixed`` on a CPU the wrong convolutions run in float32
(weights, checkpoints and the rest of the network unchanged); under ``bf16-true``, where the weights themselves are
bf16, a network with such a convolution is refused.

bf16 on a CPU is also only worth it where the CPU computes it natively: where it is emulated (no AMX or AVX-512
BF16, or a virtual machine whose kernels do not use them) a GlaViTU forward pass measured 9x slower than in
float32 (issue 20's AVX2 runner), while with AMX a training step of the GlaViTU global recipe ran 1.6x faster in
``bf16-mixed`` (24.0 against 38.5 s, 2 cores, ``benchmarks/training_benchmark.py --phases step``). So the same
``setup`` warns, once per process, when a short probe (:func:`~glaciermap.inference.predictor.cpu_bf16_is_faster`
with contiguous tensors, as training runs) finds bf16 no faster than float32 on this CPU.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from glaciermap.errors import ConfigError
from glaciermap.models.cpu_bf16 import guard_cpu_bf16, wrong_bf16_convolutions

__all__ = ["guard_trainer_bf16", "warn_if_bf16_is_slow"]


def warn_if_bf16_is_slow(precision: str) -> bool:
    """Warn when bf16 is no faster than float32 on this CPU (module docstring); the probe runs once per process.

    Args:
        precision: The trainer's precision, for the message.

    Returns:
        Whether it warned.
    """
    from glaciermap.inference.predictor import cpu_bf16_is_faster

    if cpu_bf16_is_faster(channels_last=False, min_speedup=1.0):
        return False
    rank_zero_warn(
        f"trainer.precision is {precision} on a CPU where a short probe found bf16 no faster than float32 "
        "(emulated bf16 measured up to 9x slower); expected 32-true for speed on this CPU"
    )
    return True


def guard_trainer_bf16(trainer: Any, net: nn.Module) -> list[str]:
    """Guard ``net`` for the trainer's precision when it is bf16 on a CPU (module docstring).

    Args:
        trainer: The Lightning trainer the task is attached to, or ``None``.
        net: The task's network; modified in place under ``bf16-mixed`` on a CPU.

    Returns:
        The modules run in float32 (empty elsewhere).

    Raises:
        ConfigError: Under ``bf16-true`` on a CPU whose bf16 kernel is wrong for a convolution of ``net``.
    """
    if trainer is None:
        return []
    precision = str(getattr(trainer, "precision", "32"))
    if not precision.startswith("bf16") or trainer.strategy.root_device.type != "cpu":
        return []
    warn_if_bf16_is_slow(precision)
    if precision != "bf16-mixed":
        wrong = wrong_bf16_convolutions(net)
        if wrong:
            raise ConfigError(
                f"trainer.precision is {precision}, but this CPU computes {', '.join(wrong)} wrongly in bf16; "
                "expected bf16-mixed (those layers then run in float32) or 32"
            )
        return []
    guarded = guard_cpu_bf16(net)
    if guarded:
        rank_zero_warn(
            f"bf16-mixed on this CPU: {', '.join(guarded)} run in float32 (their bf16 kernel is wrong here)"
        )
    return guarded
