"""Job files: YAML → frozen, typed :class:`JobConfig` objects. Every validation message lives here.

A file holds one job, or several under ``jobs:``; keys beside ``jobs:`` are shared defaults that
each job may override. Every error names the YAML path, the value given and what is allowed::

    grid.y[2]: expected a positive integer, got -4

and nothing is computed or written until the whole file has validated.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml

from .config_landscape import (DataLandscapeSource, FileData, MLPConfig, NetworkSource, SyntheticData,
                               check_landscape_grid, parse_landscape, parse_network)
from .config_trajectories import (BasinsConfig, OptimizerConfig, PathsConfig, Starts, StreamlinesConfig,
                                  parse_basins, parse_paths, parse_streamlines)
from .config_yaml import bad_character, load_yaml, read_job_text, show
from .errors import ConfigError, ExpressionError
from .expr import CONSTANTS, FUNCTIONS, parse
from .builtins import BUILTINS

__all__ = [
    "Axis", "Grid", "ExpressionSource", "VectorSource", "BuiltinSource", "CallableSource",
    "FunctionSource", "Output", "Compression", "CompileMode", "JobConfig", "JobFile",
    "load_config", "parse_config", "DEFAULT_CONFIG",
]

DEFAULT_CONFIG = Path(__file__).parent / "data" / "ripple.yaml"
"""The small embedded job that ``gradbatch run`` runs when no file is given."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # always .fullmatch: '$' would let a final newline through
_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DEVICE = re.compile(r"auto|cpu|cuda|cuda:\d+")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
_RESERVED = {"jobs", "levels", "_tiles"}
# Names in a job's HDF5 group beside the axes' coordinate datasets (docs/format.md): an axis of
# one of these names would collide with a field or group only when the file is written.
_STORE_NAMES = ("value", "magnitude", "divergence", "curl", "paths", "basins", "streamlines", "levels",
                "landscape", "_tiles")
_FIELD_PREFIXES = ("grad_", "v_", "curl_")  # + another axis's name
_BASINS_NAMES = ("label", "steps", "stop_reason", "minima")  # in /<job>/basins beside its coordinates

# Resource limits: far beyond any sensible job, they stop a typo (an extra 0 or two) from
# starting something that cannot finish. Each message says the limit.
MAX_GRID_POINTS = 1 << 48
"""Most points in one job's grid (2^48: about a petabyte per float32 field)."""
MAX_AXIS_POINTS = 1 << 32
MAX_TILE_POINTS = 1 << 26
"""Most points in one tile (2^26: a few GB of autograd memory)."""
MAX_THREADS = 1024
MAX_CONTOURS = 1000

# vispy 0.17's colormaps (vispy.color.get_colormaps()), listed here because importing
# vispy.color loads its GL modules; tests/reliability/test_config_limits.py keeps it in step.
VISPY_COLORMAPS = (
    "GrBu", "GrBu_d", "HiLo", "PuGr", "RdBu", "RdYeBuCy", "autumn", "blues", "cool", "coolwarm", "cubehelix",
    "diverging", "fire", "grays", "greens", "hot", "hsl", "husl", "ice", "light_blues", "orange", "reds",
    "single_hue", "spring", "summer", "viridis", "winter",
)


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


class Compression(str, Enum):
    LZ4 = "lz4"  # Blosc2 LZ4 + shuffle (hdf5plugin): fast, ~1.8x
    ZSTD = "zstd"  # Blosc2 zstd level 1 + shuffle: smaller, slower
    GZIP = "gzip"  # plain HDF5 deflate: slow, but readable without hdf5plugin
    NONE = "none"


class CompileMode(str, Enum):
    AUTO = "auto"  # compile when the job is large enough to pay the compile time back
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class Axis:
    """One grid axis: ``points`` evenly spaced values from ``start`` to ``stop`` inclusive."""

    name: str
    start: float
    stop: float
    points: int


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


FunctionSource = Union[ExpressionSource, VectorSource, BuiltinSource, CallableSource, DataLandscapeSource,
                       NetworkSource]


@dataclass(frozen=True)
class RenderConfig:
    """A PNG to draw once the job's file is complete (``render:`` in a job)."""

    output: Path
    size: tuple[int, int] = (1200, 900)
    layers: tuple[str, ...] = ("image", "basins", "arrows", "streamlines", "paths")
    field: str = "value"
    colormap: str = "viridis"
    descent: bool = False
    scale: str = "linear"
    colorbar: bool = True
    surface: bool = False
    contours: int = 10  # contour lines (layer contours)


@dataclass(frozen=True)
class JobConfig:
    """One validated job. ``where`` is its YAML path prefix, for messages (``jobs[1]``)."""

    name: str
    output: Path
    function: FunctionSource
    grid: Grid
    params: Mapping[str, float] = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "float32"
    outputs: tuple[Output, ...] | None = None  # None: the default for the function's kind
    tile: tuple[int, ...] | None = None  # per axis in grid order; None: engine default
    compile: CompileMode = CompileMode.AUTO
    compression: Compression = Compression.LZ4
    pyramid: bool = True
    threads: int = 1
    where: str = ""
    yaml: str = ""  # this job's settings as YAML, for provenance
    paths: PathsConfig | None = None
    basins: BasinsConfig | None = None
    streamlines: StreamlinesConfig | None = None
    render: RenderConfig | None = None


@dataclass(frozen=True)
class JobFile:
    path: Path | None
    jobs: tuple[JobConfig, ...]
    text: str = ""


_JOB_KEYS = {
    "name", "output", "function", "params", "grid", "device", "dtype", "outputs", "tile",
    "compile", "compression", "pyramid", "threads", "description", "paths", "basins", "streamlines",
    "render",
}


def load_config(path: str | Path | None = None, *, output: str | Path | None = None) -> JobFile:
    """Read and validate a job file (the embedded example when ``path`` is None).

    ``output`` overrides every job's output path (the CLI's ``-o``).
    """
    p = Path(path) if path is not None else DEFAULT_CONFIG
    text = read_job_text(p)
    stem = p.stem if path is not None else "ripple"
    return parse_config(text, name=stem, source=p, output=output)


def parse_config(
    text: str,
    *,
    name: str = "job",
    source: Path | None = None,
    output: str | Path | None = None,
) -> JobFile:
    """Validate YAML ``text``. ``name`` is the default job name and output stem."""
    label = f"{source}: " if source else ""
    try:
        data = load_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{label}{exc}") from None
    if data is None:
        raise ConfigError(f"{label}the job file is empty; expected a mapping of job settings, e.g. "
                          "function: 'x**2' and grid: {x: [-1, 1, 101]}")
    if not isinstance(data, dict):
        raise ConfigError(f"{label}expected a mapping of job settings (function:, grid:, ...), "
                          f"got {_show(data)}")
    base_dir = source.parent.resolve() if source is not None else None
    try:
        if "jobs" in data:
            jobs_raw = data["jobs"]
            shared = {k: v for k, v in data.items() if k != "jobs"}
            if not isinstance(jobs_raw, list) or not jobs_raw:
                raise ConfigError(f"jobs: expected a non-empty list of jobs, got {_show(jobs_raw)}")
            jobs = []
            for i, raw in enumerate(jobs_raw):
                if not isinstance(raw, dict):
                    raise ConfigError(f"jobs[{i}]: expected a mapping, got {_show(raw)}")
                merged = {**shared, **raw}
                jobs.append(_job(merged, f"jobs[{i}]", f"{name}_{i}", name, base_dir, output))
        else:
            jobs = [_job(data, "", name, name, base_dir, output)]
        seen: dict[tuple[str, str], str] = {}
        for job in jobs:
            key = (str(job.output.resolve()), job.name)
            if key in seen:
                raise ConfigError(
                    f"{_at(job.where, 'name')}: job name {job.name!r} is used twice for "
                    f"{job.output} (also at {seen[key] or 'top level'}); names must be unique per file"
                )
            seen[key] = job.where
    except ConfigError as exc:
        raise type(exc)(f"{label}{exc}") from None
    return JobFile(source, tuple(jobs), text)


# -- helpers ------------------------------------------------------------------------------

_show = show  # bounded: never expands a shared (aliased) structure


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _job(
    d: dict[str, Any], where: str, default_name: str, stem: str, base_dir: Path | None,
    output_override: str | Path | None,
) -> JobConfig:
    unknown = sorted(set(d) - _JOB_KEYS)
    if unknown:
        raise ConfigError(
            f"{_at(where, unknown[0])}: unknown setting; allowed: {', '.join(sorted(_JOB_KEYS))}"
        )
    name = d.get("name", default_name if where else stem)
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name) or name in _RESERVED:
        raise ConfigError(
            f"{_at(where, 'name')}: expected a job name of letters, digits, '_', '.', '-' "
            f"(not {', '.join(sorted(_RESERVED))}), got {_show(name)}"
        )
    params = _params(d.get("params", {}), _at(where, "params"))
    function_raw = d.get("function")
    if function_raw is None:
        raise ConfigError(f"{_at(where, 'function')}: missing; give an expression, a list of "
                          "expressions, {builtin: NAME} or {callable: 'package.module:function'}")
    function = _function(function_raw, _at(where, "function"), base_dir)
    dtype = d.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"{_at(where, 'dtype')}: expected float32 or float64, got {_show(dtype)}")
    grid = _grid(d.get("grid"), _at(where, "grid"), function)
    _check_axis_names(grid, params, "basins" in d, _at(where, "grid"))
    _check_bounds(grid, dtype, _at(where, "grid"))
    for p in params:
        if p in FUNCTIONS or p in CONSTANTS:
            raise ConfigError(f"{_at(where, 'params')}.{p}: {p!r} is a built-in function or constant name")
    _check_function(function, grid, params, _at(where, "function"))

    device = d.get("device", "auto")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"{_at(where, 'device')}: expected auto, cpu, cuda or cuda:N, got {_show(device)}")
    outputs = _outputs(d.get("outputs"), _at(where, "outputs"), function, grid)
    tile = _tile(d.get("tile"), _at(where, "tile"), grid)
    compile_mode = _enum(CompileMode, d.get("compile", "auto"), _at(where, "compile"),
                         {True: CompileMode.ON, False: CompileMode.OFF})
    compression = _enum(Compression, d.get("compression", "lz4"), _at(where, "compression"),
                        {False: Compression.NONE})
    pyramid = d.get("pyramid", True)
    if not isinstance(pyramid, bool):
        raise ConfigError(f"{_at(where, 'pyramid')}: expected true or false, got {_show(pyramid)}")
    threads = d.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"{_at(where, 'threads')}: expected a positive integer (1 to {MAX_THREADS}), "
                          f"got {_show(threads)}")

    if output_override is not None:
        out = Path(output_override)
    else:
        out_raw = d.get("output", f"{stem}.h5")
        _check_path_text(out_raw, _at(where, "output"))
        out = Path(out_raw)
    if out.suffix not in (".h5", ".hdf5", ".nc"):
        raise ConfigError(f"{_at(where, 'output')}: expected a path ending in .h5, .hdf5 or .nc, got {str(out)!r}")

    bounds = tuple((a.start, a.stop) for a in grid.axes)
    vector = (True if isinstance(function, VectorSource)
              else None if isinstance(function, CallableSource) else False)
    paths = parse_paths(d["paths"], _at(where, "paths"), bounds) if "paths" in d else None
    basins = parse_basins(d["basins"], _at(where, "basins"), grid.ndim) if "basins" in d else None
    if vector and (paths or basins):
        raise ConfigError(f"{_at(where, 'paths' if paths else 'basins')}: descent needs a scalar "
                          "function; this job's is a vector field (use streamlines:)")
    streamlines = (parse_streamlines(d["streamlines"], _at(where, "streamlines"), bounds, vector)
                   if "streamlines" in d else None)

    render = _render(d["render"], _at(where, "render"), out, name, grid.ndim) if "render" in d else None

    settings = {k: v for k, v in d.items()}
    settings["name"] = name
    return JobConfig(
        name=name, output=out, function=function, grid=grid, params=params, device=device,
        dtype=dtype, outputs=outputs, tile=tile, compile=compile_mode, compression=compression,
        pyramid=pyramid, threads=threads, where=where,
        yaml=yaml.safe_dump(settings, sort_keys=False),
        paths=paths, basins=basins, streamlines=streamlines, render=render,
    )


def _params(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of name: number, got {_show(raw)}")
    out: dict[str, float] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not _NAME.fullmatch(k):
            raise ConfigError(f"{where}: parameter names must be identifiers, got {_show(k)}")
        out[k] = _number(v, f"{where}.{k}")
    return out


def _function(raw: Any, where: str, base_dir: Path | None) -> FunctionSource:
    if isinstance(raw, str):
        return ExpressionSource(raw)
    if isinstance(raw, list):
        if not raw or not all(isinstance(t, str) for t in raw):
            raise ConfigError(f"{where}: a vector field is a list of expression strings, one per axis; "
                              f"got {_show(raw)}")
        return VectorSource(tuple(raw))
    if isinstance(raw, dict) and len(raw) == 1:
        (kind, value), = raw.items()
        if kind == "builtin":
            if not isinstance(value, str) or value not in BUILTINS:
                raise ConfigError(f"{where}.builtin: unknown built-in {_show(value)}; "
                                  f"allowed: {', '.join(sorted(BUILTINS))}")
            return BuiltinSource(value)
        if kind == "callable":
            if not isinstance(value, str) or value.count(":") != 1:
                raise ConfigError(f"{where}.callable: expected 'package.module:function', got {_show(value)}")
            return CallableSource(value, base_dir)
        if kind == "expression":
            return _function(value, where + ".expression", base_dir)
        if kind == "landscape":
            return parse_landscape(value, where + ".landscape", base_dir)
        if kind == "network":
            return parse_network(value, where + ".network", base_dir)
    raise ConfigError(
        f"{where}: expected an expression string, a list of expressions, {{builtin: NAME}}, "
        f"{{callable: 'package.module:function'}}, {{landscape: ...}} or {{network: ...}}, got {_show(raw)}"
    )


def _number(v: Any, where: str) -> float:
    """A finite float (an int past float64's range, .nan and .inf are refused)."""
    if not isinstance(v, bool) and isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if math.isfinite(f):
            return f
    raise ConfigError(f"{where}: expected a finite number, got {_show(v)}")


def _check_path_text(raw: Any, where: str) -> None:
    """A file path from the job file: text, not blank, no control characters (a newline, NUL)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: expected a file path, got {_show(raw)}")
    bad = bad_character(raw)
    if bad:
        raise ConfigError(f"{where}: the path {_show(raw)} has {bad} in it")


def _check_axis_names(grid: Grid, params: Mapping[str, float], basins: bool, where: str) -> None:
    """Axis names become coordinate datasets beside the fields (``grad_x``, ``value``, ...) and
    groups (``paths``, ``levels``) of the job's HDF5 group: refuse a clash now, not mid-write."""
    for a in grid.axes:
        if a.name in FUNCTIONS or a.name in CONSTANTS or a.name in params:
            raise ConfigError(f"{where}.{a.name}: axis name {a.name!r} clashes with a function, "
                              "constant or parameter name")
        clash = [a.name] if a.name in _STORE_NAMES or (basins and a.name in _BASINS_NAMES) else [
            f"{prefix}{b.name}" for prefix in _FIELD_PREFIXES for b in grid.axes if a.name == f"{prefix}{b.name}"]
        if clash:
            taken = ", ".join(_STORE_NAMES + ("grad_<axis>", "v_<axis>", "curl_<axis>")
                              + (_BASINS_NAMES if basins else ()))
            raise ConfigError(f"{where}.{a.name}: axis name {a.name!r} clashes with a field or group "
                              f"the output file holds; choose another (taken: {taken})")


def _check_bounds(grid: Grid, dtype: str, where: str) -> None:
    """Coordinates are float64 ``linspace`` cast to ``dtype`` (grid.axis_values): each must be
    finite in ``dtype``, and neighbours distinct, or every field is garbage at that axis."""
    import numpy as np

    info = np.finfo(np.dtype(dtype))
    total = 1
    for a in grid.axes:
        at = f"{where}.{a.name}"
        if a.points > MAX_AXIS_POINTS:
            raise ConfigError(f"{at}[2]: {a.points:,} points on one axis; at most {MAX_AXIS_POINTS:,} (2^32) "
                              "are allowed")
        total *= a.points
        big = max(abs(a.start), abs(a.stop))
        if big > float(info.max) or not math.isfinite(a.stop - a.start):
            raise ConfigError(f"{at}: bounds {a.start:g} .. {a.stop:g} overflow {dtype} (largest "
                              f"{float(info.max):.4g}" + (", or use dtype: float64)" if dtype == "float32" else ")"))
        step = (a.stop - a.start) / (a.points - 1)
        ulp = float(np.spacing(np.dtype(dtype).type(big)))
        if not step > ulp:
            raise ConfigError(f"{at}: {a.points:,} points from {a.start:g} to {a.stop:g} are {step:.3g} apart, "
                              f"closer than {dtype} can tell apart there ({ulp:.3g}); widen the range or use "
                              "fewer points" + (" or dtype: float64" if dtype == "float32" else ""))
    if total > MAX_GRID_POINTS:
        raise ConfigError(f"{where}: {total:.3g} points in all; at most {MAX_GRID_POINTS:,} (2^48) are allowed")


def _grid(raw: Any, where: str, function: FunctionSource) -> Grid:
    if raw is None:
        if isinstance(function, BuiltinSource):
            b = BUILTINS[function.name]
            n = b.dims[0] if len(b.dims) == 1 else 2
            _, names = b.template(n)
            return Grid(tuple(Axis(nm, lo, hi, 512 if n < 3 else 64)
                              for nm, (lo, hi) in zip(names, b.domain(n))))
        raise ConfigError(f"{where}: missing; give axis: [min, max, points] for 1 to 3 axes, "
                          "e.g. {x: [-4, 4, 512], y: [-4, 4, 512]}")
    if not isinstance(raw, dict) or not 1 <= len(raw) <= 3:
        raise ConfigError(f"{where}: expected a mapping of 1 to 3 axes, name: [min, max, points], got {_show(raw)}")
    axes = []
    for name, spec in raw.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: axis names must be identifiers, got {_show(name)}")
        if not isinstance(spec, list) or len(spec) != 3:
            raise ConfigError(f"{at}: expected [min, max, points], got {_show(spec)}")
        lo, hi = _number(spec[0], f"{at}[0]"), _number(spec[1], f"{at}[1]")
        pts = spec[2]
        if isinstance(pts, bool) or not isinstance(pts, int) or pts < 2:
            raise ConfigError(f"{at}[2]: expected a positive integer of at least 2, got {_show(pts)}")
        if not lo < hi:
            raise ConfigError(f"{at}: expected min < max, got min {lo:g} and max {hi:g}")
        axes.append(Axis(name, lo, hi, pts))
    return Grid(tuple(axes))


def _check_function(function: FunctionSource, grid: Grid, params: Mapping[str, float], where: str) -> None:
    """Parse expressions now, so a bad one fails before anything runs."""
    try:
        if isinstance(function, ExpressionSource):
            parse(function.text, grid.names, params)
        elif isinstance(function, VectorSource):
            if len(function.texts) != grid.ndim:
                raise ConfigError(f"{where}: a vector field needs one expression per axis "
                                  f"({grid.ndim}: {', '.join(grid.names)}), got {len(function.texts)}")
            for i, t in enumerate(function.texts):
                try:
                    parse(t, grid.names, params)
                except ExpressionError as exc:
                    raise ExpressionError(f"[{i}]: {exc}") from None
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {exc}") from None
    if isinstance(function, (DataLandscapeSource, NetworkSource)):
        check_landscape_grid(function, grid.ndim, where + (".landscape" if isinstance(function, DataLandscapeSource)
                                                           else ".network"), grid.size)
    if isinstance(function, BuiltinSource):
        b = BUILTINS[function.name]
        if grid.ndim not in b.dims:
            raise ConfigError(f"{where}.builtin: {b.name} takes {' or '.join(map(str, b.dims))} "
                              f"axes, the grid has {grid.ndim} ({', '.join(grid.names)})")


def _outputs(raw: Any, where: str, function: FunctionSource, grid: Grid) -> tuple[Output, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: expected a list of outputs, got {_show(raw)}")
    out: list[Output] = []
    for i, v in enumerate(raw):
        try:
            o = Output(v)
        except ValueError:
            raise ConfigError(f"{where}[{i}]: unknown output {_show(v)}; allowed: "
                              f"{', '.join(o.value for o in Output)}") from None
        if o not in out:
            out.append(o)
    kind = ("vector" if isinstance(function, VectorSource)
            else None if isinstance(function, CallableSource) else "scalar")
    if kind is not None:
        check_outputs(tuple(out), kind, grid.ndim, where)
    return tuple(out)


def check_outputs(outputs: Sequence[Output], kind: str, ndim: int, where: str) -> None:
    """Raise ConfigError if ``outputs`` do not suit a ``kind`` ('scalar'/'vector') function."""
    allowed = SCALAR_OUTPUTS if kind == "scalar" else VECTOR_OUTPUTS
    for o in outputs:
        if o not in allowed:
            raise ConfigError(f"{where}: {o.value!r} is not an output of a {kind} function; "
                              f"allowed: {', '.join(a.value for a in allowed)}")
        if o is Output.CURL and ndim == 1:
            raise ConfigError(f"{where}: curl needs a 2D or 3D grid")


def _tile(raw: Any, where: str, grid: Grid) -> tuple[int, ...] | None:
    if raw is None:
        return None
    values = [raw] * grid.ndim if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(values, list) or len(values) != grid.ndim:
        raise ConfigError(f"{where}: expected a power of two, or a list of {grid.ndim} of them "
                          f"(one per axis), got {_show(raw)}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v & (v - 1) or v > MAX_TILE_POINTS:
            raise ConfigError(f"{where}" + (f"[{i}]" if isinstance(raw, list) else "")
                              + f": expected a power of two (1, 2, 4, ... 512 ...) up to {MAX_TILE_POINTS:,} (2^26), "
                              f"got {_show(v)}")
    points = 1
    for v, a in zip(values, grid.axes):  # a tile side never exceeds the next power of two above its axis
        points *= min(v, 1 << max(a.points - 1, 1).bit_length())
    if points > MAX_TILE_POINTS:
        raise ConfigError(f"{where}: tiles of {' x '.join(map(str, values))} are {points:,} points; at most "
                          f"{MAX_TILE_POINTS:,} (2^26) are allowed: each tile is held in memory with its gradients")
    return tuple(values)


def _enum(cls: type[Enum], raw: Any, where: str, aliases: dict[Any, Enum]) -> Any:
    if isinstance(raw, bool) and raw in aliases:
        return aliases[raw]
    try:
        return cls(raw)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)  # type: ignore[attr-defined]
        raise ConfigError(f"{where}: expected one of {allowed}, got {_show(raw)}") from None


def _render(raw: Any, where: str, output: Path, name: str, ndim: int) -> RenderConfig:
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected true or a mapping (output, size, layers, field, colormap, "
                          f"descent, scale, colorbar, surface, contours), got {_show(raw)}")
    allowed = {"output", "size", "layers", "field", "colormap", "descent", "scale", "colorbar", "surface",
               "contours"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown setting; allowed: {', '.join(sorted(allowed))}")
    if ndim != 2:
        raise ConfigError(f"{where}: renders are for 2D jobs; this grid has {ndim} axes")
    out = raw.get("output", str(output.with_name(f"{output.stem}-{name}.png")))
    if not isinstance(out, str) or not out.endswith(".png"):
        raise ConfigError(f"{where}.output: expected a path ending in .png, got {_show(out)}")
    _check_path_text(out, f"{where}.output")
    size = raw.get("size", [1200, 900])
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 16384 for v in size)):
        raise ConfigError(f"{where}.size: expected [width, height] in pixels (16 to 16384), got {_show(size)}")
    allowed_layers = ("image", "contours", "basins", "arrows", "streamlines", "paths")
    layers = raw.get("layers", [x for x in allowed_layers if x != "contours"])
    if not isinstance(layers, list) or not all(x in allowed_layers for x in layers):
        raise ConfigError(f"{where}.layers: expected a list of {', '.join(allowed_layers)}, got {_show(layers)}")
    flags = {}
    for key, default in (("descent", False), ("colorbar", True), ("surface", False)):
        flags[key] = raw.get(key, default)
        if not isinstance(flags[key], bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {_show(flags[key])}")
    scale = raw.get("scale", "linear")
    if scale not in ("linear", "symmetric", "log"):
        raise ConfigError(f"{where}.scale: expected linear, symmetric or log, got {_show(scale)}")
    fld = raw.get("field", "value")
    if not isinstance(fld, str) or not _FIELD_NAME.fullmatch(fld):
        raise ConfigError(f"{where}.field: expected a field name such as value, magnitude or grad_x, "
                          f"got {_show(fld)}")
    colormap = _colormap(raw.get("colormap", "viridis"), f"{where}.colormap")
    contours = raw.get("contours", 10)
    if isinstance(contours, bool) or not isinstance(contours, int) or not 1 <= contours <= MAX_CONTOURS:
        raise ConfigError(f"{where}.contours: expected a number of contour lines from 1 to {MAX_CONTOURS}, "
                          f"got {_show(contours)}")
    return RenderConfig(Path(out), (size[0], size[1]), tuple(layers), fld, colormap, scale=scale,
                        contours=contours, **flags)


def _colormap(raw: Any, where: str) -> str:
    """vispy's colormap names, and matplotlib's where matplotlib is installed (vispy falls back
    to it): checked now, not after the job has been computed."""
    if isinstance(raw, str) and raw in VISPY_COLORMAPS:
        return raw
    if isinstance(raw, str) and importlib.util.find_spec("matplotlib") is not None:
        import matplotlib

        if raw in matplotlib.colormaps:
            return raw
    raise ConfigError(f"{where}: unknown colormap {_show(raw)}; allowed: {', '.join(VISPY_COLORMAPS)}"
                      + (" and matplotlib's colormaps" if importlib.util.find_spec("matplotlib") else ""))
