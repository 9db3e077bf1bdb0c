"""The ``grid:`` and ``tile:`` settings of a job: axes, their bounds, and tile sides.

Every check here runs before anything is computed: an axis whose name would collide with a
dataset of the output file, bounds a dtype cannot hold, neighbours it cannot tell apart, or a
grid or tile far beyond any sensible job (a typo's extra zeros) are refused with one line.
"""

from __future__ import annotations

import difflib
import math
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from .checks import bad_character, is_int, number, per_axis, show

__all__ = [
    "Axis",
    "Grid",
    "MAX_GRID_POINTS",
    "MAX_AXIS_POINTS",
    "MAX_TILE_POINTS",
    "MAX_LABEL_CHARS",
    "GRID_TEXT_KEYS",
    "parse_grid",
    "parse_tile",
    "check_axis_names",
    "check_bounds",
]

# Resource limits: far beyond any sensible job, they stop a typo (an extra 0 or two) from
# starting something that cannot finish. Each message says the limit.
MAX_GRID_POINTS = 1 << 48
"""Most points in one job's grid (2^48: about a petabyte per float32 field)."""
MAX_AXIS_POINTS = 1 << 32
MAX_TILE_POINTS = 1 << 26
"""Most points in one tile (2^26: a few GB of autograd memory)."""
MAX_LABEL_CHARS = 100
"""Longest axis label or unit (what fits beside an axis of a figure)."""
GRID_TEXT_KEYS = ("labels", "units")
"""Keys of ``grid:`` that name the axes for pictures instead of being axes."""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # always .fullmatch: '$' would let a final newline through
# Names in a job's HDF5 group beside the axes' coordinate datasets (docs/format.md): an axis of
# one of these names would collide with a field or group only when the file is written.
_STORE_NAMES = (
    "value",
    "magnitude",
    "divergence",
    "curl",
    "paths",
    "basins",
    "streamlines",
    "levels",
    "landscape",
    "_tiles",
)
_FIELD_PREFIXES = ("grad_", "v_", "curl_")  # + another axis's name
_BASINS_NAMES = ("label", "steps", "stop_reason", "minima")  # in /<job>/basins beside its coordinates


@dataclass(frozen=True)
class Axis:
    """One grid axis: ``points`` evenly spaced values from ``start`` to ``stop`` inclusive;
    ``label`` and ``unit`` name it for pictures ("" where the job gives none)."""

    name: str
    start: float
    stop: float
    points: int
    label: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Grid:
    """1 to 3 axes in the order the job gives them (the function's argument order).

    Arrays are stored with the axes reversed (``(y, x)``, ``(z, y, x)``), as netCDF/CF and
    image tools expect: the first axis varies fastest.
    """

    axes: tuple[Axis, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def size(self) -> int:
        n = 1
        for a in self.axes:
            n *= a.points
        return n


def parse_grid(raw: Any, where: str, default: Grid | None = None) -> Grid:
    """``{name: [min, max, points], ...}``, 1 to 3 axes, and optionally ``labels:`` and
    ``units:`` (``{axis: text}``). ``default``: the grid when only labels or units are given
    (a built-in's own domain); a missing grid is the caller's to fill."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of 1 to 3 axes, name: [min, max, points], got {show(raw)}")
    axes_raw = {k: v for k, v in raw.items() if k not in GRID_TEXT_KEYS}
    if not axes_raw and default is not None:
        grid = default
    else:
        grid = _parse_axes(axes_raw, where)
    return _with_text(grid, raw, where)


def _parse_axes(raw: dict[Any, Any], where: str) -> Grid:
    if not 1 <= len(raw) <= 3:
        raise ConfigError(f"{where}: expected a mapping of 1 to 3 axes, name: [min, max, points], got {show(raw)}")
    axes = []
    for name, spec in raw.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"{where}: axis names must be identifiers, got {show(name)}")
        if not isinstance(spec, list) or len(spec) != 3:
            raise ConfigError(f"{at}: expected [min, max, points], got {show(spec)}")
        lo, hi = number(spec[0], f"{at}[0]"), number(spec[1], f"{at}[1]")
        pts = spec[2]
        if not is_int(pts) or pts < 2:
            raise ConfigError(f"{at}[2]: expected a positive integer of at least 2, got {show(pts)}")
        if not lo < hi:
            raise ConfigError(f"{at}: expected min < max, got min {lo:g} and max {hi:g}")
        axes.append(Axis(name, lo, hi, pts))
    return Grid(tuple(axes))


def _with_text(grid: Grid, raw: dict[Any, Any], where: str) -> Grid:
    """``grid`` with the ``labels:`` and ``units:`` of ``raw`` (checked) on its axes."""
    given: dict[str, dict[str, str]] = {}
    for key in GRID_TEXT_KEYS:
        if key not in raw:
            continue
        at = f"{where}.{key}"
        texts = raw[key]
        if not isinstance(texts, dict):
            raise ConfigError(
                f"{at}: expected a mapping of axis names to text, e.g. {{x: 'slope m'}}, got {show(texts)}"
            )
        unknown = [k for k in texts if k not in grid.names]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), grid.names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{at}: {show(unknown[0])} is not an axis of the grid; axes: {', '.join(grid.names)}{hint}"
            )
        for name, text in texts.items():
            given.setdefault(name, {})[key] = _text(text, f"{at}.{name}")
    return Grid(
        tuple(
            replace(a, label=given.get(a.name, {}).get("labels", ""), unit=given.get(a.name, {}).get("units", ""))
            for a in grid.axes
        )
    )


def _text(text: Any, where: str) -> str:
    """One line of plain text for a figure: no control characters, at most MAX_LABEL_CHARS."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected text (quote numbers: '1'), got {show(text)}")
    bad = bad_character(text)
    if bad:
        raise ConfigError(f"{where}: expected one line of plain text; it holds {bad}")
    if len(text) > MAX_LABEL_CHARS:
        raise ConfigError(f"{where}: {len(text)} characters; at most {MAX_LABEL_CHARS} are allowed")
    return text


def check_axis_names(grid: Grid, reserved: Mapping[str, object], basins: bool, where: str) -> None:
    """Axis names become coordinate datasets beside the fields (``grad_x``, ``value``, ...) and
    groups (``paths``, ``levels``) of the job's HDF5 group: refuse a clash now, not mid-write.
    ``reserved``: the expression language's function and constant names and the job's params."""
    for a in grid.axes:
        if a.name in reserved:
            raise ConfigError(
                f"{where}.{a.name}: axis name {a.name!r} clashes with a function, constant or parameter name"
            )
        clash = (
            [a.name]
            if a.name in _STORE_NAMES or (basins and a.name in _BASINS_NAMES)
            else [f"{prefix}{b.name}" for prefix in _FIELD_PREFIXES for b in grid.axes if a.name == f"{prefix}{b.name}"]
        )
        if clash:
            taken = ", ".join(
                _STORE_NAMES + ("grad_<axis>", "v_<axis>", "curl_<axis>") + (_BASINS_NAMES if basins else ())
            )
            raise ConfigError(
                f"{where}.{a.name}: axis name {a.name!r} clashes with a field or group "
                f"the output file holds; choose another (taken: {taken})"
            )


_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT_MAX = {"float32": _FLOAT32_MAX, "float64": sys.float_info.max}


def spacing(value: float, dtype: str) -> float:
    """numpy's ``spacing(dtype(value))`` for ``0 <= value <= max``: the gap from ``value``
    (rounded to ``dtype``) to the next larger number of ``dtype``, without importing numpy."""
    v = value if dtype == "float64" else struct.unpack("f", struct.pack("f", value))[0]  # rounded as numpy would
    if v >= _FLOAT_MAX[dtype]:
        return math.inf  # the next number up is infinity
    if dtype == "float64":
        return math.ulp(v)
    _, exponent = math.frexp(v)  # v = m * 2**exponent, 0.5 <= m < 1
    return math.ldexp(1.0, max(exponent - 24, -149)) if v else math.ldexp(1.0, -149)


def check_bounds(grid: Grid, dtype: str, where: str) -> None:
    """Coordinates are float64 ``linspace`` cast to ``dtype`` (grid.axis_values): each must be
    finite in ``dtype``, and neighbours distinct, or every field is garbage at that axis."""
    largest = _FLOAT_MAX[dtype]
    total = 1
    for a in grid.axes:
        at = f"{where}.{a.name}"
        if a.points > MAX_AXIS_POINTS:
            raise ConfigError(
                f"{at}[2]: {a.points:,} points on one axis; at most {MAX_AXIS_POINTS:,} (2^32) are allowed"
            )
        total *= a.points
        big = max(abs(a.start), abs(a.stop))
        if big > largest or not math.isfinite(a.stop - a.start):
            raise ConfigError(
                f"{at}: bounds {a.start:g} .. {a.stop:g} overflow {dtype} (largest "
                f"{largest:.4g}" + (", or use dtype: float64)" if dtype == "float32" else ")")
            )
        step = (a.stop - a.start) / (a.points - 1)
        ulp = spacing(big, dtype)
        if not step > ulp:
            raise ConfigError(
                f"{at}: {a.points:,} points from {a.start:g} to {a.stop:g} are {step:.3g} apart, "
                f"closer than {dtype} can tell apart there ({ulp:.3g}); widen the range or use "
                "fewer points" + (" or dtype: float64" if dtype == "float32" else "")
            )
    if total > MAX_GRID_POINTS:
        raise ConfigError(f"{where}: {total:.3g} points in all; at most {MAX_GRID_POINTS:,} (2^48) are allowed")


def parse_tile(raw: Any, where: str, grid: Grid) -> tuple[int, ...] | None:
    """Tile sides: one power of two for every axis, or one per axis; None: the engine's default."""
    if raw is None:
        return None
    values = per_axis(raw, where, grid.ndim, f"a power of two, or a list of {grid.ndim} of them (one per axis)")
    for v, at in values:
        if not is_int(v) or v < 1 or v & (v - 1) or v > MAX_TILE_POINTS:
            raise ConfigError(
                f"{at}: expected a power of two (1, 2, 4, ... 512 ...) up to {MAX_TILE_POINTS:,} (2^26), got {show(v)}"
            )
    sides = tuple(v for v, _ in values)
    points = 1
    for v, a in zip(sides, grid.axes):  # a tile side never exceeds the next power of two above its axis
        points *= min(v, 1 << max(a.points - 1, 1).bit_length())
    if points > MAX_TILE_POINTS:
        raise ConfigError(
            f"{where}: tiles of {' x '.join(map(str, sides))} are {points:,} points; at most "
            f"{MAX_TILE_POINTS:,} (2^26) are allowed: each tile is held in memory with its gradients"
        )
    return sides
