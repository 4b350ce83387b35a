"""Learning-rate schedules against the values of GlaViTU spec section 10."""

from __future__ import annotations

import pytest
import torch

from glaciermap.tasks.schedules import build_schedule


def _lrs(name: str, steps: int, s: int, **kw: int) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=5e-4, eps=1e-7)
    sched = build_schedule(opt, name, steps_per_epoch=s, **kw)  # type: ignore[arg-type]
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warm_restarts_match_the_reference() -> None:
    s = 4
    lrs = _lrs("warm_restarts", 150 * s, s)
    for boundary in (0, 10 * s, 30 * s, 70 * s):
        assert lrs[boundary] == pytest.approx(5e-4)
    assert lrs[5 * s] == pytest.approx(2.5e-4)
    assert lrs[10 * s - 1] < 2e-5  # end of the first cycle close to 0
    assert lrs[30 * s + 20 * s] == pytest.approx(2.5e-4)  # middle of the 40-epoch cycle


def test_finetuning_cosine() -> None:
    s = 2
    lrs = _lrs("cosine", 80 * s, s, cycle_epochs=80)
    assert lrs[0] == pytest.approx(5e-4)
    assert lrs[40 * s] == pytest.approx(2.5e-4)
    assert lrs[-1] < 1e-6


def test_constant_and_unknown() -> None:
    assert set(_lrs("constant", 10, 1)) == {5e-4}
    with pytest.raises(ValueError, match="unknown schedule"):
        _lrs("step", 1, 1)
