"""``glaciermap.metrics`` imports its submodules on first use, so outline work does not load torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import glaciermap.metrics as metrics


def test_inventory_and_object_metrics_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import glaciermap.inventory\n"
        "from glaciermap.metrics import match_glaciers, polis\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_resolve_and_unknown_names_fail() -> None:
    from glaciermap.metrics.pixel import ConfusionMatrix

    assert metrics.ConfusionMatrix is ConfusionMatrix
    assert set(metrics.__all__) <= set(dir(metrics))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        metrics.nope  # noqa: B018


def test_the_command_line_parser_does_not_import_torch() -> None:
    """Every command registers its arguments without loading torch, so ``glaciermap --help`` stays fast."""
    code = "import sys\nimport glaciermap.cli as cli\ncli.build_parser()\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scene_writing_modules_do_not_import_torch() -> None:
    """``glaciermap prepare`` and the scene-folder helpers load neither torch nor torchgeo (0.9 GiB of RSS)."""
    code = (
        "import sys\n"
        "import glaciermap.commands.prepare, glaciermap.prepare, glaciermap.prepare.scene\n"
        "import glaciermap.datasets.outline_labels, glaciermap.datasets.scene_folder\n"
        "from glaciermap.transforms import NormStats, RunningStats, merge_stats\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchgeo', 'lightning', 'kornia'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from glaciermap.transforms.normalisation import NormStats as reexported
    from glaciermap.transforms.stats import NormStats

    assert reexported is NormStats  # one class, two import paths
