"""Lazy public names of a subpackage (PEP 562), so importing it does not import every submodule.

A subpackage lists ``{submodule: (names, ...)}`` and gets its module-level ``__getattr__`` and ``__dir__``::

    __getattr__, __dir__ = lazy_exports(__name__, {"pixel": ("pixel_metrics",)}, globals())

The first access to a name imports its submodule and caches the value in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose public names live in submodules.

    Args:
        package: The package's ``__name__``.
        modules: Submodule name (or an absolute module name starting with ``glaciermap.``, for names a
            package re-exports from elsewhere) -> the public names it defines.
        namespace: The package's ``globals()`` (values are cached there on first use).

    Returns:
        ``(__getattr__, __dir__)``.
    """
    where = {name: module for module, names in modules.items() for name in names}

    def getattr_(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        absolute = module if module.startswith("glaciermap.") else f"{package}.{module}"
        value = getattr(importlib.import_module(absolute), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(where) | set(namespace.get("__all__", ())))

    return getattr_, dir_
