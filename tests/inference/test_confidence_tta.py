"""Confidence (GlaViTU Eq. 3) and the eight dihedral test-time transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glaciermap.errors import InputError
from glaciermap.inference.confidence import entropy_confidence
from glaciermap.inference.tta import DIHEDRAL, tta_predict


def test_confidence_of_known_distributions() -> None:
    p = np.array([[0.5, 0.9, 1.0], [0.5, 0.1, 0.0]], dtype=np.float32)  # (K=2, 3 pixels)
    c = entropy_confidence(p, axis=0)
    expected_09 = 1 + 0.9 * math.log2(0.9) + 0.1 * math.log2(0.1)
    eps = 1e-6
    expected_one_hot = 1 + (1 - eps) * math.log2(1 - eps) + eps * math.log2(eps)  # clipped as the reference
    np.testing.assert_allclose(c, [0.0, expected_09, expected_one_hot], atol=1e-6)
    assert c.dtype == np.float32


def test_confidence_uses_log_base_c() -> None:
    p = np.array([0.7, 0.2, 0.1], dtype=np.float32)[:, None]
    expected = 1 + sum(q * math.log(q, 3) for q in (0.7, 0.2, 0.1))
    assert entropy_confidence(p)[0] == pytest.approx(expected, abs=1e-6)
    assert entropy_confidence(np.full((3, 1), 1 / 3, dtype=np.float32))[0] == pytest.approx(0.0, abs=1e-6)


def test_confidence_needs_two_classes() -> None:
    with pytest.raises(InputError, match="at least 2 classes"):
        entropy_confidence(np.ones((1, 4, 4)))


def test_dihedral_transforms_are_distinct_and_inverted() -> None:
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    images = []
    for t in DIHEDRAL:
        y = t.forward(x)
        assert torch.equal(t.inverse(y), x), t.name
        images.append(y)
    assert len(DIHEDRAL) == 8
    assert len({tuple(y.flatten().tolist()) for y in images}) == 8


def test_tta_of_an_equivariant_model_equals_no_tta() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 3, 1)
    x = torch.randn(2, 4, 8, 8)

    def predict(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(conv(batch), dim=1)

    with torch.no_grad():
        torch.testing.assert_close(tta_predict(predict, x), predict(x), atol=1e-6, rtol=1e-6)


def test_tta_averages_the_inverse_transformed_predictions() -> None:
    ramp = torch.linspace(0, 1, 6)

    def predict(batch: torch.Tensor) -> torch.Tensor:  # not equivariant: adds a fixed column ramp
        logits = torch.stack([batch[:, 0] + ramp, -batch[:, 0]], dim=1)
        return torch.softmax(logits, dim=1)

    x = torch.randn(1, 1, 6, 6)
    expected = sum(t.inverse(predict(t.forward(x))) for t in DIHEDRAL) / 8
    out = tta_predict(predict, x)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, predict(x), atol=1e-3)


def test_tta_needs_square_windows() -> None:
    with pytest.raises(ValueError, match="square"):
        tta_predict(lambda b: b, torch.zeros(1, 1, 4, 6))
