"""The seam score on maps with a known seam, none, labels and class probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from glaciermap.errors import InputError
from glaciermap.metrics import seam_score


def test_known_step_at_a_border_column() -> None:
    """A ramp of slope 0.001 per column with a step of 0.2 at column 32: the border jump is 0.201."""
    h, w = 40, 64
    x = np.arange(w, dtype=np.float64)
    values = np.broadcast_to(0.001 * x + 0.2 * (x >= 32), (h, w))
    score = seam_score(values, row_borders=[], col_borders=[32])
    assert score.border_pairs == h
    assert score.border == pytest.approx(0.201)
    # off-border pairs: h * (w - 2) horizontal ones of 0.001, (h - 1) * w vertical ones of 0
    interior_pairs = h * (w - 2) + (h - 1) * w
    assert score.interior_pairs == interior_pairs
    assert score.interior == pytest.approx(h * (w - 2) * 0.001 / interior_pairs)
    assert score.ratio == pytest.approx(score.border / score.interior)
    assert score.excess == pytest.approx(score.border - score.interior)
    assert score.ratio > 100


def test_no_seam_gives_a_ratio_of_one() -> None:
    values = np.full((30, 30), 0.7, dtype=np.float32)
    score = seam_score(values, row_borders=[10, 20], col_borders=[15])
    assert (score.border, score.interior, score.ratio, score.excess) == (0.0, 0.0, 1.0, 0.0)
    ramp = np.add.outer(np.arange(30.0), np.arange(30.0)) * 0.01  # the same jump everywhere
    assert seam_score(ramp, [10], [15]).ratio == pytest.approx(1.0)


def test_class_changes_and_probability_stacks() -> None:
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[:, 5:] = 2  # a class change on every pair across column 5, none elsewhere
    score = seam_score(labels, row_borders=[], col_borders=[5])
    assert (score.border, score.interior, score.ratio) == (1.0, 0.0, float("inf"))
    probs = np.zeros((3, 10, 10))
    probs[0] = 1.0
    probs[:, :, 4:] = np.array([0.5, 0.3, 0.2])[:, None, None]  # total variation distance 0.5 across column 4
    score = seam_score(probs, row_borders=[5], col_borders=[4])
    assert score.border == pytest.approx(10 * 0.5 / (10 + 10))  # 10 jumps of 0.5 among 20 border pairs
    assert score.interior == 0.0


def test_invalid_pixels_are_left_out() -> None:
    values = np.zeros((8, 8))
    values[:, 4:] = 1.0
    valid = np.ones((8, 8), dtype=bool)
    valid[:, 3] = False  # every border pair touches an invalid pixel
    with pytest.raises(InputError, match="on a window border"):
        seam_score(values, [], [4], valid)
    valid[:4, 3] = True
    score = seam_score(values, [], [4], valid)
    assert score.border_pairs == 4 and score.border == 1.0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((1, 8)), [], [3]), "expected"),
        ((np.zeros((8, 8)), [], [8]), "border at 8"),
        ((np.zeros((8, 8)), [0], []), "border at 0"),
        ((np.zeros((8, 8)), [], []), "on a window border"),
    ],
)
def test_bad_inputs(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        seam_score(*args)  # type: ignore[arg-type]


def test_valid_mask_shape_is_checked() -> None:
    with pytest.raises(InputError, match="valid mask"):
        seam_score(np.zeros((8, 8)), [], [3], np.ones((8, 7), dtype=bool))
