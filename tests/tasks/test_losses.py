"""Losses: hand-computed values, ignore_index masking, deep supervision weighting."""

from __future__ import annotations

import math

import pytest
import torch

from glaciermap.tasks.losses import CrossEntropyLoss, DeepSupervisionLoss, DiceLoss, FocalLoss, build_loss


def _logits(p_glacier: float) -> torch.Tensor:
    """(1, 2, 1, 1) logits whose softmax is [1 - p, p]."""
    return torch.tensor([0.0, math.log(p_glacier / (1 - p_glacier))]).view(1, 2, 1, 1)


def test_focal_loss_matches_hand_computation() -> None:
    target = torch.ones(1, 1, 1, dtype=torch.long)
    plain = FocalLoss(gamma=2.0)(_logits(0.75), target)
    assert plain.item() == pytest.approx(0.25**2 * -math.log(0.75), rel=1e-5)
    smoothed = FocalLoss(gamma=2.0, label_smoothing=0.1)(_logits(0.75), target)
    expected = -(0.75**2 * 0.05 * math.log(0.25) + 0.25**2 * 0.95 * math.log(0.75))
    assert smoothed.item() == pytest.approx(expected, rel=1e-5)


def test_focal_with_smoothing_is_minimised_near_075() -> None:
    """Spec 3.1: focal (gamma 2) with targets 0.95 / 0.05 is minimised at p ~ 0.75, not near 1."""
    target = torch.ones(1, 1, 1, dtype=torch.long)
    loss = FocalLoss(gamma=2.0, label_smoothing=0.1)
    ps = torch.linspace(0.5, 0.99, 491)
    values = torch.stack([loss(_logits(float(p)), target) for p in ps])
    p_best = float(ps[values.argmin()])
    assert 0.70 < p_best < 0.80


@pytest.mark.parametrize("name", ["focal", "dice", "ce"])
def test_ignored_pixels_do_not_contribute(name: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    loss = build_loss(name)
    base = loss(logits, target)
    noisy = logits.clone()
    masked = target.clone()
    masked[:, 0, :] = 255
    noisy[:, :, 0, :] = 100.0 * torch.randn(2, 3, 4)  # arbitrary logits where the target is ignored
    ref = loss(logits[:, :, 1:, :], target[:, 1:, :])
    assert loss(noisy, masked).item() == pytest.approx(ref.item(), rel=1e-5)
    assert base.item() != pytest.approx(ref.item(), rel=1e-3)


def test_all_ignored_gives_zero_loss_and_finite_gradient() -> None:
    logits = torch.randn(1, 2, 3, 3, requires_grad=True)
    target = torch.full((1, 3, 3), 255)
    for loss in (FocalLoss(), DiceLoss(), CrossEntropyLoss()):
        value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value) and value.item() == pytest.approx(0.0)
        assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_dice_loss_perfect_and_wrong() -> None:
    target = torch.tensor([[[0, 1], [1, 1]]])
    perfect = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 50.0
    assert DiceLoss()(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = torch.nn.functional.one_hot(1 - target, 2).permute(0, 3, 1, 2).float() * 50.0
    # Eq. 3 with smoothing 1 per class: class 0: 1 - 1/(1+3+1) = 0.8, class 1: 1 - 1/(3+1+1) = 0.8
    assert DiceLoss(smooth=1.0)(wrong, target).item() == pytest.approx(0.8, abs=1e-5)


def test_deep_supervision_weights() -> None:
    torch.manual_seed(1)
    main, aux = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    target = torch.randint(0, 2, (1, 4, 4))
    focal = FocalLoss()
    total = DeepSupervisionLoss(focal, main_weight=1.0, aux_weight=0.5)(main, target, aux)
    assert total.item() == pytest.approx(
        focal(main, target).item() + 0.5 * focal(aux, target).item(), rel=1e-6
    )
    assert DeepSupervisionLoss(focal)(main, target, None).item() == pytest.approx(focal(main, target).item())


def test_unknown_loss_name() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("hinge")  # type: ignore[arg-type]
