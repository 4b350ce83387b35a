"""bf16 on a CPU in training, validation, testing and prediction: no convolution computed wrongly.

The oneDNN in torch 2.14.1 computes some bf16 convolution shapes wrongly on CPUs with AMX
(:mod:`glaciermap.models.cpu_bf16`; small GlaViTU's patch embedding among them). A task trained with
``--trainer.precision bf16-mixed`` on such a CPU would learn around the wrong forward pass and exit 0, so the tasks
call :func:`guard_trainer_bf16` in ``setup``: under ``bf16-mixed`` on a CPU the wrong convolutions run in float32
(weights, checkpoints and the rest of the network unchanged); under ``bf16-true``, where the weights themselves are
bf16, a network with such a convolution is refused.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from glaciermap.errors import ConfigError
from glaciermap.models.cpu_bf16 import guard_cpu_bf16, wrong_bf16_convolutions

__all__ = ["guard_trainer_bf16"]


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
