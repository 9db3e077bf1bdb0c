"""Job files: YAML → frozen, typed :class:`JobConfig` objects; the top-level settings of a job.

A file holds one job, or several under ``jobs:``; keys beside ``jobs:`` are shared defaults that
each job may override. Every error names the YAML path, the value given and what is allowed::

    grid.y[2]: expected a positive integer, got -4

and nothing is computed or written until the whole file has validated. The sections have their
own modules (``axes``, ``function``, ``landscape``, ``trajectories``, ``render``); this one reads
the file, walks its jobs and checks the settings that are the job's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .axes import Grid, check_axis_names, check_bounds, parse_grid, parse_tile
from .checks import Choice, at, is_int, member, show, unknown_keys
from .expression import ARITY, CONSTANTS
from .function import (
    BuiltinSource,
    CallableSource,
    FunctionSource,
    Output,
    VectorSource,
    builtin_grid,
    check_function,
    check_param_names,
    parse_function,
    parse_outputs,
    parse_params,
)
from .reading import load_yaml, read_job_text
from .render import RenderConfig, check_path_text, parse_render
from .trajectories import BasinsConfig, PathsConfig, StreamlinesConfig, parse_basins, parse_paths, parse_streamlines

__all__ = [
    "Compression",
    "CompileMode",
    "DType",
    "JobConfig",
    "JobFile",
    "load_config",
    "parse_config",
    "DEFAULT_CONFIG",
    "MAX_THREADS",
]

DEFAULT_CONFIG = Path(__file__).parent.parent / "data" / "ripple.yaml"
"""The small embedded job that ``gradbatch run`` runs when no file is given."""

MAX_THREADS = 1024

_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DEVICE = re.compile(r"auto|cpu|cuda|cuda:\d+")
_RESERVED = {"jobs", "levels", "_tiles"}


class Compression(str, Enum):
    LZ4 = "lz4"  # Blosc2 LZ4 + shuffle (hdf5plugin): fast, ~1.8x
    ZSTD = "zstd"  # Blosc2 zstd level 1 + shuffle: smaller, slower
    GZIP = "gzip"  # plain HDF5 deflate: slow, but readable without hdf5plugin
    NONE = "none"


class CompileMode(str, Enum):
    AUTO = "auto"  # compile when the job is large enough to pay the compile time back
    ON = "on"
    OFF = "off"


class DType(Choice):
    """The floating-point type of the coordinates, the computation and the stored fields."""

    FLOAT32 = "float32"
    FLOAT64 = "float64"


@dataclass(frozen=True)
class JobConfig:
    """One validated job. ``where`` is its YAML path prefix, for messages (``jobs[1]``)."""

    name: str
    output: Path
    function: FunctionSource
    grid: Grid
    params: Mapping[str, float] = field(default_factory=dict)
    device: str = "auto"
    dtype: DType = DType.FLOAT32
    outputs: tuple[Output, ...] | None = None  # None: the default for the function's kind
    tile: tuple[int, ...] | None = None  # per axis in grid order; None: engine default
    compile: CompileMode = CompileMode.AUTO
    compression: Compression = Compression.LZ4
    pyramid: bool = True
    threads: int | None = None  # CPU threads computing tiles; None: every core this process may use
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
    "name",
    "output",
    "function",
    "params",
    "grid",
    "device",
    "dtype",
    "outputs",
    "tile",
    "compile",
    "compression",
    "pyramid",
    "threads",
    "description",
    "paths",
    "basins",
    "streamlines",
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
        raise ConfigError(
            f"{label}the job file is empty; expected a mapping of job settings, e.g. "
            "function: 'x**2' and grid: {x: [-1, 1, 101]}"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{label}expected a mapping of job settings (function:, grid:, ...), got {show(data)}")
    base_dir = source.parent.resolve() if source is not None else None
    try:
        jobs = _jobs(data, name, base_dir, output)
        _check_unique(jobs)
    except ConfigError as exc:
        raise type(exc)(f"{label}{exc}") from None
    return JobFile(source, tuple(jobs), text)


def _jobs(data: dict[str, Any], name: str, base_dir: Path | None, output: str | Path | None) -> list[JobConfig]:
    """One job, or each of ``jobs:`` merged over the settings beside it."""
    if "jobs" not in data:
        return [_job(data, "", name, name, base_dir, output)]
    jobs_raw = data["jobs"]
    shared = {k: v for k, v in data.items() if k != "jobs"}
    if not isinstance(jobs_raw, list) or not jobs_raw:
        raise ConfigError(f"jobs: expected a non-empty list of jobs, got {show(jobs_raw)}")
    jobs = []
    for i, raw in enumerate(jobs_raw):
        if not isinstance(raw, dict):
            raise ConfigError(f"jobs[{i}]: expected a mapping, got {show(raw)}")
        jobs.append(_job({**shared, **raw}, f"jobs[{i}]", f"{name}_{i}", name, base_dir, output))
    return jobs


def _check_unique(jobs: list[JobConfig]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for job in jobs:
        key = (str(job.output.resolve()), job.name)
        if key in seen:
            raise ConfigError(
                f"{at(job.where, 'name')}: job name {job.name!r} is used twice for "
                f"{job.output} (also at {seen[key] or 'top level'}); names must be unique per file"
            )
        seen[key] = job.where


# -- one job ---------------------------------------------------------------------------------


def _job(
    d: dict[str, Any],
    where: str,
    default_name: str,
    stem: str,
    base_dir: Path | None,
    output_override: str | Path | None,
) -> JobConfig:
    unknown_keys(d, where, _JOB_KEYS)
    name = _name(d.get("name", default_name if where else stem), at(where, "name"))
    params = parse_params(d.get("params", {}), at(where, "params"))
    function, grid, dtype = _function_and_grid(d, where, params, base_dir)
    device = d.get("device", "auto")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"{at(where, 'device')}: expected auto, cpu, cuda or cuda:N, got {show(device)}")
    outputs = parse_outputs(d.get("outputs"), at(where, "outputs"), function, grid)
    tile = parse_tile(d.get("tile"), at(where, "tile"), grid)
    compile_mode = _enum(
        CompileMode, d.get("compile", "auto"), at(where, "compile"), {True: CompileMode.ON, False: CompileMode.OFF}
    )
    compression = _enum(Compression, d.get("compression", "lz4"), at(where, "compression"), {False: Compression.NONE})
    pyramid = d.get("pyramid", True)
    if not isinstance(pyramid, bool):
        raise ConfigError(f"{at(where, 'pyramid')}: expected true or false, got {show(pyramid)}")
    threads = d.get("threads", "auto")
    if threads == "auto":
        threads = None
    elif not is_int(threads) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(
            f"{at(where, 'threads')}: expected auto or a positive integer (1 to {MAX_THREADS}), got {show(threads)}"
        )
    out = _output(d, where, stem, output_override)
    paths, basins, streamlines = _trajectories(d, where, function, grid)
    render = parse_render(d["render"], at(where, "render"), out, name, grid.ndim) if "render" in d else None
    settings = {k: v for k, v in d.items()}
    settings["name"] = name
    return JobConfig(
        name=name,
        output=out,
        function=function,
        grid=grid,
        params=params,
        device=device,
        dtype=dtype,
        outputs=outputs,
        tile=tile,
        compile=compile_mode,
        compression=compression,
        pyramid=pyramid,
        threads=threads,
        where=where,
        yaml=yaml.safe_dump(settings, sort_keys=False),
        paths=paths,
        basins=basins,
        streamlines=streamlines,
        render=render,
    )


def _name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name) or name in _RESERVED:
        raise ConfigError(
            f"{where}: expected a job name of letters, digits, '_', '.', '-' "
            f"(not {', '.join(sorted(_RESERVED))}), got {show(name)}"
        )
    return name


def _function_and_grid(
    d: dict[str, Any], where: str, params: Mapping[str, float], base_dir: Path | None
) -> tuple[FunctionSource, Grid, DType]:
    """The function, the dtype and the grid, checked together: axis names against the
    function's names and the file's datasets, bounds against the dtype, expressions against both."""
    function_raw = d.get("function")
    if function_raw is None:
        raise ConfigError(
            f"{at(where, 'function')}: missing; give an expression, a list of "
            "expressions, {builtin: NAME} or {callable: 'package.module:function'}"
        )
    function = parse_function(function_raw, at(where, "function"), base_dir)
    dtype = member(DType, d.get("dtype", "float32"))
    if dtype is None:
        raise ConfigError(f"{at(where, 'dtype')}: expected float32 or float64, got {show(d.get('dtype'))}")
    grid_raw = d.get("grid")
    own = builtin_grid(function) if isinstance(function, BuiltinSource) else None
    if grid_raw is None and own is not None:
        grid = own
    elif grid_raw is None:
        raise ConfigError(
            f"{at(where, 'grid')}: missing; give axis: [min, max, points] for 1 to 3 axes, "
            "e.g. {x: [-4, 4, 512], y: [-4, 4, 512]}"
        )
    else:
        grid = parse_grid(grid_raw, at(where, "grid"), own)
    check_axis_names(grid, {**ARITY, **CONSTANTS, **params}, "basins" in d, at(where, "grid"))
    check_bounds(grid, dtype.value, at(where, "grid"))
    check_param_names(params, at(where, "params"))
    check_function(function, grid, params, at(where, "function"))
    return function, grid, dtype


def _output(d: dict[str, Any], where: str, stem: str, output_override: str | Path | None) -> Path:
    if output_override is not None:
        out = Path(output_override)
    else:
        out_raw = d.get("output", f"{stem}.h5")
        check_path_text(out_raw, at(where, "output"))
        out = Path(out_raw)
    if out.suffix not in (".h5", ".hdf5", ".nc"):
        raise ConfigError(f"{at(where, 'output')}: expected a path ending in .h5, .hdf5 or .nc, got {str(out)!r}")
    return out


def _trajectories(
    d: dict[str, Any], where: str, function: FunctionSource, grid: Grid
) -> tuple[PathsConfig | None, BasinsConfig | None, StreamlinesConfig | None]:
    bounds = tuple((a.start, a.stop) for a in grid.axes)
    vector = True if isinstance(function, VectorSource) else None if isinstance(function, CallableSource) else False
    paths = parse_paths(d["paths"], at(where, "paths"), bounds) if "paths" in d else None
    basins = parse_basins(d["basins"], at(where, "basins"), grid.ndim) if "basins" in d else None
    if vector and (paths or basins):
        raise ConfigError(
            f"{at(where, 'paths' if paths else 'basins')}: descent needs a scalar "
            "function; this job's is a vector field (use streamlines:)"
        )
    streamlines = (
        parse_streamlines(d["streamlines"], at(where, "streamlines"), bounds, vector) if "streamlines" in d else None
    )
    return paths, basins, streamlines


def _enum(cls: type[Enum], raw: Any, where: str, aliases: dict[Any, Enum]) -> Any:
    if isinstance(raw, bool) and raw in aliases:
        return aliases[raw]
    try:
        return cls(raw)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)  # type: ignore[attr-defined]
        raise ConfigError(f"{where}: expected one of {allowed}, got {show(raw)}") from None
