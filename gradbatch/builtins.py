"""The built-in test functions: expression text per dimension, domain and known minima.

Plain data (no torch, no numpy): the config checks a job's ``builtin:`` name, dimension and axis
names against this table without importing the engine, and the function sources compile the text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .records import Minimum

__all__ = ["Builtin", "BUILTINS"]


@dataclass(frozen=True)
class Builtin:
    """A named test function. ``template`` maps a dimension to (expression, variable names)."""

    name: str
    dims: tuple[int, ...]
    template: Callable[[int], tuple[str, tuple[str, ...]]]
    domain: Callable[[int], tuple[tuple[float, float], ...]]
    minima: Callable[[int], tuple[Minimum, ...]]
    description: str


def _fixed(text: str, variables: tuple[str, ...]) -> Callable[[int], tuple[str, tuple[str, ...]]]:
    return lambda n: (text, variables)


def _box(lo: float, hi: float) -> Callable[[int], tuple[tuple[float, float], ...]]:
    return lambda n: tuple((lo, hi) for _ in range(n))


def _nvars(n: int) -> tuple[str, ...]:
    return ("x", "y", "z")[:n]


_Spec = tuple[tuple[float, ...], float, bool]  # a minimum's point, value, local


def _records(specs: tuple[_Spec, ...]) -> tuple[Minimum, ...]:
    return tuple(Minimum(point, value, local) for point, value, local in specs)


def _origin(value: float) -> Callable[[int], tuple[Minimum, ...]]:
    return lambda n: _records(((tuple(0.0 for _ in range(n)), value, False),))


def _min(point: tuple[float, ...], value: float, local: bool = False) -> _Spec:
    return (point, value, local)


def _minima(*items: _Spec) -> Callable[[int], tuple[Minimum, ...]]:
    return lambda n: _records(items)


_CUBIC_MIN = (-2.0 + math.sqrt(7.0)) / 3.0  # root of 3x^2 + 4x - 1 with f'' > 0

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin(
            "sphere",
            (1, 2, 3),
            lambda n: (" + ".join(f"{v}**2" for v in _nvars(n)), _nvars(n)),
            _box(-2.0, 2.0),
            _origin(0.0),
            "sum of squares; seed 003's x0**2 + x1**2",
        ),
        Builtin(
            "rastrigin",
            (1, 2, 3),
            lambda n: (
                f"{10 * n} + " + " + ".join(f"({v}**2 - 10*cos(2*pi*{v}))" for v in _nvars(n)),
                _nvars(n),
            ),
            _box(-5.12, 5.12),
            _origin(0.0),
            "Rastrigin: a regular field of local minima",
        ),
        Builtin(
            "rosenbrock",
            (2,),
            _fixed("(1 - x)**2 + 100*(y - x**2)**2", ("x", "y")),
            lambda n: ((-2.0, 2.0), (-1.0, 3.0)),
            _minima(_min((1.0, 1.0), 0.0)),
            "Rosenbrock's banana valley",
        ),
        Builtin(
            "himmelblau",
            (2,),
            _fixed("(x**2 + y - 11)**2 + (x + y**2 - 7)**2", ("x", "y")),
            _box(-5.0, 5.0),
            _minima(
                _min((3.0, 2.0), 0.0),
                _min((-2.805118086952745, 3.131312518250573), 0.0),
                _min((-3.779310253377747, -3.283185991286170), 0.0),
                _min((3.584428340330492, -1.848126526964404), 0.0),
            ),
            "Himmelblau: four equal minima (seed 004)",
        ),
        Builtin(
            "beale",
            (2,),
            _fixed("(1.5 - x + x*y)**2 + (2.25 - x + x*y**2)**2 + (2.625 - x + x*y**3)**2", ("x", "y")),
            _box(-4.5, 4.5),
            _minima(_min((3.0, 0.5), 0.0)),
            "Beale",
        ),
        Builtin(
            "booth",
            (2,),
            _fixed("(x + 2*y - 7)**2 + (2*x + y - 5)**2", ("x", "y")),
            _box(-10.0, 10.0),
            _minima(_min((1.0, 3.0), 0.0)),
            "Booth",
        ),
        Builtin(
            "matyas",
            (2,),
            _fixed("0.26*(x**2 + y**2) - 0.48*x*y", ("x", "y")),
            _box(-10.0, 10.0),
            _origin(0.0),
            "Matyas",
        ),
        Builtin(
            "goldstein_price",
            (2,),
            _fixed(
                "(1 + (x + y + 1)**2*(19 - 14*x + 3*x**2 - 14*y + 6*x*y + 3*y**2))"
                "*(30 + (2*x - 3*y)**2*(18 - 32*x + 12*x**2 + 48*y - 36*x*y + 27*y**2))",
                ("x", "y"),
            ),
            _box(-2.0, 2.0),
            _minima(_min((0.0, -1.0), 3.0)),
            "Goldstein-Price",
        ),
        Builtin(
            "easom",
            (2,),
            _fixed("-cos(x)*cos(y)*exp(-((x - pi)**2 + (y - pi)**2))", ("x", "y")),
            _box(-2.0, 8.0),
            _minima(_min((math.pi, math.pi), -1.0)),
            "Easom: a needle in a flat plain",
        ),
        Builtin(
            "mccormick",
            (2,),
            _fixed("sin(x + y) + (x - y)**2 - 1.5*x + 2.5*y + 1", ("x", "y")),
            lambda n: ((-1.5, 4.0), (-3.0, 4.0)),
            _minima(_min((-0.5471975602214493, -1.5471975602214493), -1.9132229549810367)),
            "McCormick",
        ),
        # The seeds' functions.
        Builtin(
            "cubic",
            (1,),
            _fixed("x**3 + 2*x**2 - x", ("x",)),
            _box(-3.0, 1.5),
            _minima(_min((_CUBIC_MIN,), _CUBIC_MIN**3 + 2 * _CUBIC_MIN**2 - _CUBIC_MIN, True)),
            "seed 000's cubic x^3 + 2x^2 - x",
        ),
        Builtin(
            "ripple",
            (2,),
            _fixed("sin(sqrt((0.75*x)**2 + y**2 + 0.01))", ("x", "y")),
            _box(-5.0, 5.0),
            _minima(),
            "seed 000's ripple sin(sqrt((0.75x)^2 + y^2 + 0.01))",
        ),
        Builtin(
            "sin_xy",
            (2,),
            _fixed("sin(x*y)", ("x", "y")),
            _box(0.0, 4.0),
            _minima(),
            "seeds 001 and 003: sin(xy)",
        ),
        Builtin(
            "saddle",
            (2,),
            _fixed("x*y", ("x", "y")),
            _box(-2.0, 2.0),
            _minima(),
            "seed 003's x0*x1: a saddle at the origin",
        ),
        Builtin(
            "xyz",
            (3,),
            _fixed("x**2 + y**2 + exp(z) + x*y*z", ("x", "y", "z")),
            _box(-1.0, 1.0),
            _minima(),
            "seed 001's function of three variables",
        ),
    ]
}
