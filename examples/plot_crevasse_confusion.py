"""Draw the confusion matrix of the crevasse results table (docs/crevasses.md) from a training run's results.

Usage::

    python examples/plot_crevasse_confusion.py RESULTS.json OUT.png [--model varionet_eq7]

``RESULTS.json`` is written by ``examples/train_crevasse_model.py``; the figure sums the model's held-out
test confusion matrices over the run's seeds (rows true class, columns predicted, counts in the cells,
colour = fraction of the true class), drawn with :func:`glaciermap.visualisation.save_confusion_figure`.
The figure of ``docs/crevasses.md`` is made with
``python examples/plot_crevasse_confusion.py runs/crevasse/results.json docs/img/crevasse_confusion.png``
(``train_crevasse_model.py --figure`` does the same at the end of training).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glaciermap.datasets.crevasse_classes import CrevasseClassV2
from glaciermap.visualisation import save_confusion_figure


def summed_confusion(results: dict, model: str) -> tuple[np.ndarray, list[int]]:
    """The model's test confusion matrices summed over the seeds of a results file, and those seeds."""
    seeds = [int(s) for s in results["seeds"]]
    total = sum(np.asarray(results[str(s)][model]["confusion"], dtype=np.int64) for s in seeds)
    return np.asarray(total), seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="results.json of examples/train_crevasse_model.py")
    parser.add_argument("out", type=Path, help="output PNG")
    parser.add_argument("--model", default="varionet_eq7", help="model of the results file (default varionet_eq7)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    confusion, seeds = summed_confusion(results, args.model)
    accuracy = np.trace(confusion) / confusion.sum()
    worlds = results.get("worlds", [0])
    title = (
        f"{args.model}: held-out test tiles of synthetic scenes {', '.join(map(str, worlds))}, "
        f"seeds {', '.join(map(str, seeds))} summed ({confusion.sum()} tiles, accuracy {100 * accuracy:.1f} %)"
    )
    names = [c.name.lower() for c in CrevasseClassV2]
    save_confusion_figure(args.out, confusion, names, title)
    print(f"wrote {args.out}: {title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
