"""The ``paths:``, ``basins:`` and ``streamlines:`` sections of a job: YAML → frozen configs.

Part of the config layer: every message names the YAML path, the value and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .checks import Choice, boolean, choice, finite, integer, mapping, member, per_axis, positive, show

__all__ = [
    "Optimizer",
    "StreamField",
    "StreamMethod",
    "StreamDirection",
    "OPTIMIZERS",
    "OptimizerConfig",
    "Starts",
    "PathsConfig",
    "BasinsConfig",
    "StreamlinesConfig",
    "parse_paths",
    "parse_basins",
    "parse_streamlines",
]

# Resource limits, far beyond any sensible job: a typo must not start what cannot finish.
MAX_STARTS = 1 << 24
"""Most start points of paths or basins (2^24, e.g. a 4096 x 4096 basins resolution)."""
MAX_STEPS = 10_000_000
"""Most optimiser steps per path or basin start."""
MAX_PATH_POINTS = 1 << 27
"""Most stored path positions, starts x optimisers x (steps + 1): 2^27, several GB."""
MAX_SEEDS = 1 << 20
"""Most streamline seeds (a grid, random or listed)."""
MAX_LINE_POINTS = 1 << 28
"""Most streamline points held while integrating, seeds x (max_steps + 1)."""
MAX_EVEN_DENSITY = 100.0
"""Densest even seeding: 3000 x 3000 cells."""

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,100}")


class Optimizer(Choice):
    SGD = "sgd"
    MOMENTUM = "momentum"
    NESTEROV = "nesterov"
    ADAM = "adam"
    ADAMW = "adamw"
    RMSPROP = "rmsprop"
    ADAGRAD = "adagrad"


class StreamField(Choice):
    """What streamlines follow: up or down a scalar function's gradient, or a vector field."""

    ASCENT = "ascent"
    DESCENT = "descent"
    VECTOR = "vector"


class StreamMethod(Choice):
    RK4 = "rk4"  # fixed arc-length steps
    RK45 = "rk45"  # adaptive steps with a local error tolerance


class StreamDirection(Choice):
    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


# name -> (torch.optim class name, fixed settings, allowed hyper-parameters)
OPTIMIZERS: dict[Optimizer, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    Optimizer.SGD: ("SGD", {}, ("weight_decay",)),
    Optimizer.MOMENTUM: ("SGD", {"momentum": 0.9}, ("momentum", "dampening", "weight_decay")),
    Optimizer.NESTEROV: ("SGD", {"momentum": 0.9, "nesterov": True}, ("momentum", "weight_decay")),
    Optimizer.ADAM: ("Adam", {}, ("betas", "eps", "weight_decay", "amsgrad")),
    Optimizer.ADAMW: ("AdamW", {}, ("betas", "eps", "weight_decay", "amsgrad")),
    Optimizer.RMSPROP: ("RMSprop", {}, ("alpha", "eps", "weight_decay", "momentum", "centered")),
    Optimizer.ADAGRAD: ("Adagrad", {}, ("lr_decay", "eps", "weight_decay", "initial_accumulator_value")),
}


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimiser: ``name`` (see OPTIMIZERS), ``lr``, extra torch.optim settings, a label."""

    name: Optimizer
    lr: float
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def torch_class(self) -> str:
        return OPTIMIZERS[self.name][0]

    @property
    def torch_kwargs(self) -> dict[str, Any]:
        return {**OPTIMIZERS[self.name][1], **self.options, "lr": self.lr}


@dataclass(frozen=True)
class Starts:
    """Start points: an explicit list, a regular grid (points per axis) or N random (seeded)."""

    points: tuple[tuple[float, ...], ...] = ()
    grid: tuple[int, ...] = ()
    random: int = 0
    seed: int = 0


def count_starts(starts: Starts) -> int:
    """How many start points (or seeds) ``starts`` gives."""
    return len(starts.points) or (math.prod(starts.grid) if starts.grid else starts.random)


@dataclass(frozen=True)
class PathsConfig:
    starts: Starts
    optimizers: tuple[OptimizerConfig, ...]
    steps: int = 1000
    tol: float = 1e-6  # stop when the gradient norm falls below this
    ascent: bool = False


@dataclass(frozen=True)
class BasinsConfig:
    resolution: tuple[int, ...]
    optimizer: OptimizerConfig
    steps: int = 1000
    tol: float = 1e-6
    merge_tol: float = 1e-2  # end points closer than this are one minimum
    batch: int = 1 << 20  # starts advanced together


@dataclass(frozen=True)
class StreamlinesConfig:
    field: StreamField
    seeds: Starts
    even_density: float = 0.0  # > 0: evenly spaced seeding, matplotlib's density
    method: StreamMethod = StreamMethod.RK4
    step: float = 0.0  # arc-length step (rk4) or first step (rk45); 0: from the grid spacing
    tol: float = 1e-5  # rk45 local error tolerance
    max_length: float = 0.0  # arc length per direction; 0: four times the domain diagonal
    max_steps: int = 2000
    direction: StreamDirection = StreamDirection.BOTH
    min_speed: float = 1e-8  # |field| below this: stagnation


def _per_axis_ints(raw: Any, where: str, ndim: int, minimum: int = 1) -> tuple[int, ...]:
    values = per_axis(raw, where, ndim, f"an integer or a list of {ndim} (one per axis)")
    out = tuple(integer(v, at, minimum) for v, at in values)
    if math.prod(out) > MAX_STARTS:
        raise ConfigError(
            f"{where}: {' x '.join(map(str, out))} = {math.prod(out):.3g} start points; at most "
            f"{MAX_STARTS:,} (2^24) are allowed"
        )
    return out


def parse_optimizer(raw: Any, where: str) -> OptimizerConfig:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an optimiser name or a mapping with name: and lr:, got {show(raw)}")
    name = member(Optimizer, raw.get("name"))
    if name is None:
        raise ConfigError(
            f"{where}.name: unknown optimiser {show(raw.get('name'))}; allowed: {', '.join(Optimizer.names())}"
        )
    allowed = set(OPTIMIZERS[name][2])
    mapping(raw, where, allowed | {"name", "lr", "label"})
    lr = positive(raw.get("lr", 1e-3), f"{where}.lr")
    options: dict[str, Any] = {}
    for key in sorted(allowed & set(raw)):
        value = raw[key]
        at = f"{where}.{key}"
        if key in ("amsgrad", "centered"):
            options[key] = boolean(value, at)
        elif key == "betas":
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(finite(b) is not None and 0 <= b < 1 for b in value)
            ):
                raise ConfigError(f"{at}: expected two numbers in [0, 1), e.g. [0.9, 0.999], got {show(value)}")
            options[key] = (float(value[0]), float(value[1]))
        elif key in ("momentum", "alpha", "dampening"):
            v = positive(value, at, allow_zero=True)
            if v >= 1 and key != "dampening":
                raise ConfigError(f"{at}: expected a number in [0, 1), got {show(value)}")
            options[key] = v
        else:
            options[key] = positive(value, at, allow_zero=True)
    label = raw.get("label", name.value)
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ConfigError(f"{where}.label: expected a name of letters, digits, '_' or '-', got {show(label)}")
    return OptimizerConfig(name, lr, options, label)


def parse_starts(raw: Any, where: str, bounds: tuple[tuple[float, float], ...]) -> Starts:
    ndim = len(bounds)
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{where}: expected at least one start point")
        points = []
        for i, p in enumerate(raw):
            if not isinstance(p, list) or len(p) != ndim or not all(finite(v) is not None for v in p):
                raise ConfigError(f"{where}[{i}]: expected a point of {ndim} finite numbers, got {show(p)}")
            for k, (v, (lo, hi)) in enumerate(zip(p, bounds)):
                if not lo <= v <= hi:
                    raise ConfigError(f"{where}[{i}]: start {show(p)} is outside the grid (axis {k}: {lo:g} .. {hi:g})")
            points.append(tuple(float(v) for v in p))
        return Starts(points=tuple(points))
    if isinstance(raw, dict) and "grid" in raw:
        mapping(raw, where, {"grid"})
        return Starts(grid=_per_axis_ints(raw["grid"], f"{where}.grid", ndim))
    if isinstance(raw, dict) and "random" in raw:
        mapping(raw, where, {"random", "seed"})
        seed = raw.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{where}.seed: expected a non-negative integer, got {show(seed)}")
        if seed >= 1 << 32:
            raise ConfigError(f"{where}.seed: expected a seed below 2^32, got {show(seed)}")
        return Starts(random=integer(raw["random"], f"{where}.random", 1, MAX_STARTS), seed=seed)
    raise ConfigError(
        f"{where}: expected a list of points, {{grid: N or [n per axis]}} or {{random: N, seed: S}}, got {show(raw)}"
    )


def parse_paths(raw: Any, where: str, bounds: tuple[tuple[float, float], ...]) -> PathsConfig:
    d = mapping(raw, where, {"starts", "optimizers", "optimizer", "steps", "tol", "ascent"})
    if "starts" not in d:
        raise ConfigError(f"{where}.starts: missing; give a list of points, {{grid: N}} or {{random: N}}")
    starts = parse_starts(d["starts"], f"{where}.starts", bounds)
    if "optimizers" in d and "optimizer" in d:
        raise ConfigError(f"{where}: give optimizers: (a list) or optimizer: (one), not both")
    raw_opts = d.get("optimizers", [d.get("optimizer", "adam")])
    if not isinstance(raw_opts, list) or not raw_opts:
        raise ConfigError(f"{where}.optimizers: expected a non-empty list, got {show(raw_opts)}")
    opts = tuple(parse_optimizer(o, f"{where}.optimizers[{i}]") for i, o in enumerate(raw_opts))
    labels = [o.label for o in opts]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise ConfigError(
                f"{where}.optimizers[{i}].label: {label!r} is used twice; give each optimiser a distinct label:"
            )
    steps = integer(d.get("steps", 1000), f"{where}.steps", 1, MAX_STEPS)
    n = count_starts(starts)
    total = n * len(opts) * (steps + 1)
    if total > MAX_PATH_POINTS:
        raise ConfigError(
            f"{where}: {n:,} starts x {len(opts)} optimiser(s) x {steps + 1:,} positions = "
            f"{total:.3g} path points to store; at most {MAX_PATH_POINTS:,} (2^27) are allowed: "
            "fewer starts or steps"
        )
    return PathsConfig(
        starts,
        opts,
        steps,
        positive(d.get("tol", 1e-6), f"{where}.tol", allow_zero=True),
        boolean(d.get("ascent", False), f"{where}.ascent"),
    )


def parse_basins(raw: Any, where: str, ndim: int) -> BasinsConfig:
    d = mapping(raw, where, {"resolution", "optimizer", "steps", "tol", "merge_tol", "batch"})
    resolution = _per_axis_ints(d.get("resolution", 256), f"{where}.resolution", ndim, minimum=2)
    opt = parse_optimizer(d.get("optimizer", {"name": "adam", "lr": 0.01}), f"{where}.optimizer")
    return BasinsConfig(
        resolution,
        opt,
        integer(d.get("steps", 1000), f"{where}.steps", 1, MAX_STEPS),
        positive(d.get("tol", 1e-6), f"{where}.tol", allow_zero=True),
        positive(d.get("merge_tol", 1e-2), f"{where}.merge_tol"),
        integer(d.get("batch", 1 << 20), f"{where}.batch", 1, MAX_STARTS),
    )


def parse_streamlines(
    raw: Any, where: str, bounds: tuple[tuple[float, float], ...], vector: bool | None
) -> StreamlinesConfig:
    d = mapping(
        raw, where, {"field", "seeds", "method", "step", "tol", "max_length", "max_steps", "direction", "min_speed"}
    )
    default_field = "vector" if vector else "descent"
    fld = choice(StreamField, d.get("field", default_field), f"{where}.field")
    if vector is False and fld == "vector":
        raise ConfigError(
            f"{where}.field: 'vector' needs a vector-field function; this job's is scalar (use ascent or descent)"
        )
    if vector is True and fld != "vector":
        raise ConfigError(
            f"{where}.field: a vector-field job's streamlines follow the field itself: use vector, got {fld.value!r}"
        )
    ndim = len(bounds)
    seeds_raw = d.get("seeds", {"even": 1} if ndim == 2 else None)
    if seeds_raw is None:
        raise ConfigError(
            f"{where}.seeds: missing; evenly spaced seeding (the default) is for 2D grids, this "
            f"one has {ndim} axes: give a list of points, {{grid: N}} or {{random: N}}"
        )
    density = 0.0
    max_steps = integer(d.get("max_steps", 2000), f"{where}.max_steps", 1, MAX_STEPS)
    if isinstance(seeds_raw, dict) and "even" in seeds_raw:
        mapping(seeds_raw, f"{where}.seeds", {"even"})
        if ndim != 2:
            raise ConfigError(
                f"{where}.seeds.even: evenly spaced seeding is for 2D grids, this one has {ndim} "
                "axes; use grid: or random:"
            )
        density = positive(seeds_raw["even"], f"{where}.seeds.even")
        if density > MAX_EVEN_DENSITY:
            raise ConfigError(
                f"{where}.seeds.even: expected a density up to {MAX_EVEN_DENSITY:g} "
                f"({30 * MAX_EVEN_DENSITY:.0f} x {30 * MAX_EVEN_DENSITY:.0f} cells), got {show(density)}"
            )
        seeds = Starts()
    else:
        seeds = parse_starts(seeds_raw, f"{where}.seeds", bounds)
        n = count_starts(seeds)
        if n > MAX_SEEDS or n * (max_steps + 1) > MAX_LINE_POINTS:
            raise ConfigError(
                f"{where}.seeds: {n:,} seeds x {max_steps + 1:,} points per line; at most "
                f"{MAX_SEEDS:,} (2^20) seeds and {MAX_LINE_POINTS:,} (2^28) points in all are "
                "allowed: fewer seeds or max_steps"
            )
    return StreamlinesConfig(
        fld,
        seeds,
        density,
        choice(StreamMethod, d.get("method", "rk4"), f"{where}.method"),
        positive(d.get("step", 0.0), f"{where}.step", allow_zero=True),
        positive(d.get("tol", 1e-5), f"{where}.tol"),
        positive(d.get("max_length", 0.0), f"{where}.max_length", allow_zero=True),
        max_steps,
        choice(StreamDirection, d.get("direction", "both"), f"{where}.direction"),
        positive(d.get("min_speed", 1e-8), f"{where}.min_speed", allow_zero=True),
    )
