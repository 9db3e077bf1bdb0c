"""The ``function:``, ``params:`` and ``outputs:`` settings of a job: where its function comes
from, and which fields it writes.

A function source is one of: an expression, a list of expressions (a vector field), a built-in
(``{builtin: NAME}``), a user callable (``{callable: 'package.module:function'}``, imported only
when the job runs), a data landscape or a network landscape (:mod:`.landscape`). Expressions are
parsed here, without torch, so a bad one fails before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ..builtins import BUILTINS
from ..errors import ConfigError, ExpressionError
from .axes import NAME, Axis, Grid
from .checks import number, show
from .expression import ARITY, CONSTANTS, parse_expression
from .landscape import DataLandscapeSource, NetworkSource, check_landscape_grid, parse_landscape, parse_network

__all__ = [
    "ExpressionSource",
    "VectorSource",
    "BuiltinSource",
    "CallableSource",
    "FunctionSource",
    "Output",
    "SCALAR_OUTPUTS",
    "VECTOR_OUTPUTS",
    "DEFAULT_SCALAR_OUTPUTS",
    "DEFAULT_VECTOR_OUTPUTS",
    "parse_function",
    "parse_params",
    "check_param_names",
    "check_function",
    "builtin_grid",
    "parse_outputs",
    "check_outputs",
]


class Output(str, Enum):
    """Fields a job can write. Scalar functions: value, gradient, magnitude, check.
    Vector fields: components, divergence, curl, magnitude, check."""

    VALUE = "value"
    GRADIENT = "gradient"
    MAGNITUDE = "magnitude"
    CHECK = "check"
    COMPONENTS = "components"
    DIVERGENCE = "divergence"
    CURL = "curl"


SCALAR_OUTPUTS = (Output.VALUE, Output.GRADIENT, Output.MAGNITUDE, Output.CHECK)
VECTOR_OUTPUTS = (Output.COMPONENTS, Output.DIVERGENCE, Output.CURL, Output.MAGNITUDE, Output.CHECK)
DEFAULT_SCALAR_OUTPUTS = (Output.VALUE, Output.GRADIENT)
DEFAULT_VECTOR_OUTPUTS = (Output.COMPONENTS, Output.DIVERGENCE, Output.CURL)


@dataclass(frozen=True)
class ExpressionSource:
    text: str


@dataclass(frozen=True)
class VectorSource:
    texts: tuple[str, ...]


@dataclass(frozen=True)
class BuiltinSource:
    name: str


@dataclass(frozen=True)
class CallableSource:
    ref: str
    base_dir: Path | None = None


FunctionSource = ExpressionSource | VectorSource | BuiltinSource | CallableSource | DataLandscapeSource | NetworkSource


def parse_params(raw: Any, where: str) -> dict[str, float]:
    """``params:``: named constants of the expressions."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of name: number, got {show(raw)}")
    out: dict[str, float] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not NAME.fullmatch(k):
            raise ConfigError(f"{where}: parameter names must be identifiers, got {show(k)}")
        out[k] = number(v, f"{where}.{k}")
    return out


def check_param_names(params: Mapping[str, float], where: str) -> None:
    """A parameter may not hide a function or constant of the expression language."""
    for p in params:
        if p in ARITY or p in CONSTANTS:
            raise ConfigError(f"{where}.{p}: {p!r} is a built-in function or constant name")


def parse_function(raw: Any, where: str, base_dir: Path | None) -> FunctionSource:
    """The source a ``function:`` value names (its settings checked; expressions not yet parsed)."""
    if isinstance(raw, str):
        return ExpressionSource(raw)
    if isinstance(raw, list):
        if not raw or not all(isinstance(t, str) for t in raw):
            raise ConfigError(f"{where}: a vector field is a list of expression strings, one per axis; got {show(raw)}")
        return VectorSource(tuple(raw))
    if isinstance(raw, dict) and len(raw) == 1:
        ((kind, value),) = raw.items()
        if kind == "builtin":
            if not isinstance(value, str) or value not in BUILTINS:
                raise ConfigError(
                    f"{where}.builtin: unknown built-in {show(value)}; allowed: {', '.join(sorted(BUILTINS))}"
                )
            return BuiltinSource(value)
        if kind == "callable":
            if not isinstance(value, str) or value.count(":") != 1:
                raise ConfigError(f"{where}.callable: expected 'package.module:function', got {show(value)}")
            return CallableSource(value, base_dir)
        if kind == "expression":
            return parse_function(value, where + ".expression", base_dir)
        if kind == "landscape":
            return parse_landscape(value, where + ".landscape", base_dir)
        if kind == "network":
            return parse_network(value, where + ".network", base_dir)
    raise ConfigError(
        f"{where}: expected an expression string, a list of expressions, {{builtin: NAME}}, "
        f"{{callable: 'package.module:function'}}, {{landscape: ...}} or {{network: ...}}, got {show(raw)}"
    )


def builtin_grid(source: BuiltinSource) -> Grid:
    """The grid a built-in job gets when it gives none: the function's usual domain."""
    b = BUILTINS[source.name]
    n = b.dims[0] if len(b.dims) == 1 else 2
    _, names = b.template(n)
    return Grid(tuple(Axis(nm, lo, hi, 512 if n < 3 else 64) for nm, (lo, hi) in zip(names, b.domain(n))))


def check_function(function: FunctionSource, grid: Grid, params: Mapping[str, float], where: str) -> None:
    """Parse expressions now (without torch), so a bad one fails before anything runs; check
    that a built-in or a landscape suits the grid."""
    try:
        if isinstance(function, ExpressionSource):
            parse_expression(function.text, grid.names, params)
        elif isinstance(function, VectorSource):
            if len(function.texts) != grid.ndim:
                raise ConfigError(
                    f"{where}: a vector field needs one expression per axis "
                    f"({grid.ndim}: {', '.join(grid.names)}), got {len(function.texts)}"
                )
            for i, t in enumerate(function.texts):
                try:
                    parse_expression(t, grid.names, params)
                except ExpressionError as exc:
                    raise ExpressionError(f"[{i}]: {exc}") from None
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from None
    if isinstance(function, (DataLandscapeSource, NetworkSource)):
        check_landscape_grid(
            function,
            grid.ndim,
            where + (".landscape" if isinstance(function, DataLandscapeSource) else ".network"),
            grid.size,
        )
    if isinstance(function, BuiltinSource):
        b = BUILTINS[function.name]
        if grid.ndim not in b.dims:
            raise ConfigError(
                f"{where}.builtin: {b.name} takes {' or '.join(map(str, b.dims))} "
                f"axes, the grid has {grid.ndim} ({', '.join(grid.names)})"
            )


def parse_outputs(raw: Any, where: str, function: FunctionSource, grid: Grid) -> tuple[Output, ...] | None:
    """``outputs:``; None: the default for the function's kind (decided when it is probed)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: expected a list of outputs, got {show(raw)}")
    out: list[Output] = []
    for i, v in enumerate(raw):
        try:
            o = Output(v)
        except ValueError:
            raise ConfigError(
                f"{where}[{i}]: unknown output {show(v)}; allowed: {', '.join(o.value for o in Output)}"
            ) from None
        if o not in out:
            out.append(o)
    kind = (
        "vector" if isinstance(function, VectorSource) else None if isinstance(function, CallableSource) else "scalar"
    )
    if kind is not None:
        check_outputs(tuple(out), kind, grid.ndim, where)
    return tuple(out)


def check_outputs(outputs: Sequence[Output], kind: str, ndim: int, where: str) -> None:
    """Raise ConfigError if ``outputs`` do not suit a ``kind`` ('scalar'/'vector') function."""
    allowed = SCALAR_OUTPUTS if kind == "scalar" else VECTOR_OUTPUTS
    for o in outputs:
        if o not in allowed:
            raise ConfigError(
                f"{where}: {o.value!r} is not an output of a {kind} function; "
                f"allowed: {', '.join(a.value for a in allowed)}"
            )
        if o is Output.CURL and ndim == 1:
            raise ConfigError(f"{where}: curl needs a 2D or 3D grid")
