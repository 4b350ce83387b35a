"""Load a script of ``benchmarks/`` as a module, for the tests of its plans and tables."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
"""The repository's ``benchmarks/`` folder (the scripts are not part of the package)."""


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` afresh and register it in ``sys.modules`` under ``name``.

    Registering it matters: a dataclass defined in the script looks its module up while it is defined.
    """
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
