"""Every subpackage declares its public names in ``__all__`` and every one of them resolves."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "glaciermap"
# glaciermap.synthetic has no __init__ yet (a namespace package owned by another change).
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))


def test_packages_found() -> None:
    assert {"datasets", "transforms", "models", "inference", "tasks", "datamodules"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(f"glaciermap.{name}")
    assert isinstance(module.__all__, list)
    assert len(set(module.__all__)) == len(module.__all__)
    for public in module.__all__:
        assert getattr(module, public) is not None, f"glaciermap.{name}.{public}"
    if name != "commands":  # the sub-command modules have no library API
        assert module.__all__, f"glaciermap.{name} exports nothing"


def test_datasets_and_transforms_export_their_main_classes() -> None:
    from glaciermap.datasets import SceneDataset, inspect_scene
    from glaciermap.datasets.scene import SceneDataset as direct
    from glaciermap.transforms import GeometricAugmentation, NormStats

    assert SceneDataset is direct
    assert callable(inspect_scene) and callable(GeometricAugmentation) and callable(NormStats)
