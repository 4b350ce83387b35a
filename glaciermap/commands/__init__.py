"""The sub-commands of ``glaciermap`` (:mod:`glaciermap.cli`), one module per command.

Each module parses its arguments, calls the library and prints; none holds logic of its own, so there is no
public API here: use the library packages (``glaciermap.inference``, ``glaciermap.inventory``, ...) instead.
"""

__all__: list[str] = []
