"""Exceptions raised for bad input.

Every error a user can cause (missing bands, wrong CRS, nodata everywhere, a corrupt file, a scene smaller
than a window, a wrong config) is raised as a :class:`GlaciermapError` whose message names the input and
what was expected. The command line turns these into one clear line and exit status 2, never a traceback.
"""

from __future__ import annotations


class GlaciermapError(Exception):
    """Base class of every error caused by the user's input or configuration."""


class InputError(GlaciermapError, ValueError):
    """An input file or array is missing, unreadable or not what was expected."""


class ConfigError(GlaciermapError, ValueError):
    """A configuration value or argument is invalid."""
