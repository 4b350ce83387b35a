"""Test-time augmentation: the eight dihedral transforms of a square window.

The GlaViTU authors' reference implementation offers this for deployment (the paper does not use it).

Each window is predicted as is and after a rotation by 90, 180 and 270 degrees (counter-clockwise), a
horizontal flip, a vertical flip, and a rotation by 90 degrees followed by a horizontal or a vertical flip.
Every prediction is mapped back with the inverse transform and the eight probability maps are averaged,
before blending (the reference blends each with the same window weight, which is the same thing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

_H, _W = -2, -1


def _rot(k: int) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        return torch.rot90(x, k, dims=(_H, _W))

    return f


def _flip(dim: int) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        return torch.flip(x, dims=(dim,))

    return f


def _compose(*fs: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        for g in fs:
            x = g(x)
        return x

    return f


@dataclass(frozen=True)
class Dihedral:
    """One dihedral transform of the last two (spatial) axes and its inverse.

    Attributes:
        name: Short name (``"rot90"``, ``"hflip"``, ...).
        forward: The transform.
        inverse: Its inverse.
    """

    name: str
    forward: Callable[[Tensor], Tensor]
    inverse: Callable[[Tensor], Tensor]


DIHEDRAL: tuple[Dihedral, ...] = (
    Dihedral("identity", lambda x: x, lambda x: x),
    Dihedral("rot90", _rot(1), _rot(-1)),
    Dihedral("rot180", _rot(2), _rot(-2)),
    Dihedral("rot270", _rot(3), _rot(-3)),
    Dihedral("hflip", _flip(_W), _flip(_W)),
    Dihedral("vflip", _flip(_H), _flip(_H)),
    Dihedral("rot90_hflip", _compose(_rot(1), _flip(_W)), _compose(_flip(_W), _rot(-1))),
    Dihedral("rot90_vflip", _compose(_rot(1), _flip(_H)), _compose(_flip(_H), _rot(-1))),
)
"""The eight dihedral transforms, identity first, in the order of the GlaViTU authors' code."""


def tta_predict(predict: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Average ``predict`` over the eight dihedral transforms of ``x``.

    Args:
        predict: Maps a window batch ``(B, C, S, S)`` to per-pixel class probabilities ``(B, K, S, S)``.
        x: Square windows ``(B, C, S, S)``.

    Returns:
        ``(1/8) sum_t t^-1(predict(t(x)))``, shape ``(B, K, S, S)``, float32.

    Raises:
        ValueError: If the windows are not square.
    """
    if x.shape[_H] != x.shape[_W]:
        raise ValueError(f"test-time augmentation needs square windows, got {tuple(x.shape)}")
    total: Tensor | None = None
    for t in DIHEDRAL:
        p = t.inverse(predict(t.forward(x))).float()
        total = p if total is None else total + p
    assert total is not None
    return total / len(DIHEDRAL)
