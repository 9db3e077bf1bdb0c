"""The one error tree of gradbatch.

Every error a user can cause is a :class:`GradbatchError`; the CLI prints it as
``Name: message`` and exits non-zero. Anything else escaping is a bug.

::

    GradbatchError
     ├── ConfigError        a job file or option is invalid (names the YAML path and value)
     │    └── ExpressionError   an expression is rejected (names the token and its column)
     ├── FunctionError      a user's function or callable failed or returned the wrong thing
     ├── DeviceError        the requested device is not available
     ├── EngineError        computation failed (compile, out of memory at the smallest tile)
     └── StoreError         an HDF5 file is missing, not ours, damaged, or would be overwritten
"""

from __future__ import annotations

__all__ = [
    "GradbatchError",
    "ConfigError",
    "ExpressionError",
    "FunctionError",
    "DeviceError",
    "EngineError",
    "StoreError",
    "ViewerError",
    "ClusterError",
]


class GradbatchError(Exception):
    """Base class of every error gradbatch raises on purpose."""


class ConfigError(GradbatchError, ValueError):
    """A job configuration or option is invalid."""


class ExpressionError(ConfigError):
    """An expression string is not in the allowed language.

    ``column`` is the 1-based column of the offending token in the text the user wrote; the
    message names it (``... at column 7``) and stays one line, as every error does.
    """

    def __init__(self, message: str, *, text: str = "", column: int | None = None) -> None:
        self.text = text
        self.column = column
        super().__init__(message)  # one line: the message names the token and its column


class FunctionError(GradbatchError):
    """A function (expression, built-in or user callable) failed when evaluated."""


class DeviceError(GradbatchError):
    """The requested device cannot be used."""


class EngineError(GradbatchError):
    """The engine could not compute a tile."""


class StoreError(GradbatchError):
    """An HDF5 store is missing, foreign, damaged, or would overwrite data."""


class ViewerError(GradbatchError):
    """The viewer cannot draw what was asked (bad options), or cannot run here (no vispy, no
    OpenGL, no display)."""


class ClusterError(GradbatchError):
    """A Dask cluster cannot be started or reached, or a tile's task killed every worker it ran on."""
