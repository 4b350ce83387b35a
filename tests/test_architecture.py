"""The package's layers: data flows one way, and subpackages import each other without cycles.

Layers, lowest first (a module may import its own layer and the layers below it, never one above):

====  ==================================================================================================
rank  modules
====  ==================================================================================================
0     ``constants``, ``errors``, ``io``, ``raster``, ``vector``, ``terrain``, ``distributed``, ``lazy``, ``visualisation`` (base)
1     ``transforms``, ``metrics``, ``calibration`` (pure functions of arrays and tensors)
2     ``datasets`` (scene folders and every other reader: the IO)
3     ``synthetic``, ``prepare`` (scene folders written: the embedded worlds, the user's own imagery)
4     ``models`` (``nn.Module`` s, no Lightning)
5     ``inference`` (sliding-window mapping, writers)
6     ``baselines`` (the band-ratio rule, a model like any other)
7     ``datamodules``
8     ``callbacks``
9     ``tasks`` (LightningModules)
10    ``inventory``
11    ``evaluation`` (the ``evaluate`` application)
12    ``commands``, ``cli``, ``__main__`` (the command line)
====  ==================================================================================================

Imports are read from the source (every ``import`` statement, including those inside functions and under
``TYPE_CHECKING``), so a lazy import is a dependency too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import glaciermap

PACKAGE = Path(glaciermap.__file__).resolve().parent

RANKS: dict[str, int] = {
    "__init__": 0,
    "constants": 0,
    "errors": 0,
    "io": 0,
    "raster": 0,
    "vector": 0,
    "distributed": 0,
    "lazy": 0,
    "terrain": 0,
    "visualisation": 0,
    "transforms": 1,
    "metrics": 1,
    "calibration": 1,
    "datasets": 2,
    "synthetic": 3,
    "prepare": 3,
    "models": 4,
    "inference": 5,
    "baselines": 6,
    "datamodules": 7,
    "callbacks": 8,
    "tasks": 9,
    "inventory": 10,
    "evaluation": 11,
    "labelling": 11,
    "commands": 12,
    "cli": 12,
    "__main__": 12,
}


def _component(module: str) -> str | None:
    """``glaciermap.models.glavitu`` -> ``models``; ``glaciermap`` -> ``__init__``; others -> None."""
    parts = module.split(".")
    if parts[0] != "glaciermap":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, set[tuple[str, str]]]:
    """Component -> {(imported component, "file:line")} over every module of the package."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        module = ".".join(("glaciermap", *rel.with_suffix("").parts))
        source = (
            _component(module.removesuffix(".__init__")) if rel.name == "__init__.py" else _component(module)
        )
        if source is None:
            continue
        package = module.rsplit(".", 1)[0] if rel.name != "__init__.py" else module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    names = [".".join([*base, node.module] if node.module else base)]
                elif node.module:
                    names = [node.module]
                    if node.module == "glaciermap":  # "from glaciermap import x": a submodule or a name
                        names = [
                            f"glaciermap.{a.name}" if a.name in RANKS else "glaciermap" for a in node.names
                        ]
            for name in names:
                target = _component(name)
                if target is not None and target != source:
                    found[source].add((target, f"{rel}:{getattr(node, 'lineno', 0)}"))
    return found


def test_every_component_has_a_rank() -> None:
    components = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    components.discard("__init__")
    assert components - set(RANKS) == set(), (
        "add the new module or subpackage to RANKS (and to docs/index.md)"
    )


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = sorted(
        f"{where}: {source} (layer {RANKS[source]}) imports {target} (layer {RANKS[target]})"
        for source, targets in _imports().items()
        for target, where in targets
        if RANKS[target] > RANKS[source]
    )
    assert wrong == []


def test_no_import_cycle_between_subpackages() -> None:
    graph = {source: {t for t, _ in targets} for source, targets in _imports().items()}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                cycles.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest member
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


def test_the_checker_sees_imports_of_every_form() -> None:
    """Known edges are found: top-level, lazy (inside a function) and relative-free package imports."""
    edges = {(s, t) for s, targets in _imports().items() for t, _ in targets}
    assert ("evaluation", "metrics") in edges  # top-level import
    assert ("commands", "synthetic") in edges  # import inside a function
    assert ("inventory", "datasets") in edges  # lazy import of the scene-folder reader
    assert _component("glaciermap") == "__init__" and _component("numpy") is None


def test_no_test_imports_another_test_package() -> None:
    """Tests share data generators through ``tests.data`` only, never through each other's modules."""
    root = Path(__file__).resolve().parent
    wrong = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] == "data":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = (
                [module] if module else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )
            for name in names:
                if name and name.startswith("tests") and not name.startswith("tests.data"):
                    wrong.append(f"{rel}:{node.lineno} imports {name}")
    assert wrong == []
