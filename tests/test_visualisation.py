"""Figures: the confusion matrix (TensorBoard and docs/img/crevasse_confusion.png share it)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from glaciermap.visualisation import confusion_figure, save_confusion_figure


def test_confusion_figure_annotates_counts_and_colours_by_row() -> None:
    import matplotlib.pyplot as plt

    counts = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 5]])
    fig = confusion_figure(counts, ["a", "b", "c"], "t")
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["3", "1", "2", "2", "5"])  # zero cells stay empty
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(shown[1], [0.0, 0.5, 0.5])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (4)", "b (4)", "c (5)"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"shape \(3, 3\): expected \(2, 2\)"):
        confusion_figure(counts, ["a", "b"])


def test_save_confusion_figure_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "c.png"
    save_confusion_figure(out, np.eye(4, dtype=int) * 7, ["w", "x", "y", "z"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))


def test_the_docs_confusion_figure_script_sums_the_seeds(tmp_path: Path) -> None:
    """``examples/plot_crevasse_confusion.py`` (which makes docs/img/crevasse_confusion.png) from results.json."""
    from PIL import Image

    rng = np.random.default_rng(0)
    runs = {str(s): {"varionet_eq7": {"confusion": rng.integers(0, 5, (11, 11)).tolist()}} for s in (0, 1)}
    results = {"seeds": [0, 1], "worlds": [0, 1, 2, 3], **runs}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    script = Path(__file__).resolve().parents[1] / "examples" / "plot_crevasse_confusion.py"
    module = runpy.run_path(str(script))
    total, seeds = module["summed_confusion"](results, "varionet_eq7")
    expected = np.add(runs["0"]["varionet_eq7"]["confusion"], runs["1"]["varionet_eq7"]["confusion"])
    assert seeds == [0, 1] and np.array_equal(total, expected)
    out = tmp_path / "figure.png"
    assert module["main"]([str(path), str(out)]) == 0
    with Image.open(out) as img:
        assert img.size[0] > 500 and len(img.convert("L").getcolors(256) or []) > 20
