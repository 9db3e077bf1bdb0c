"""What a gradbatch file holds: typed job information and provenance, whole fields, and the
checks every reader relies on (:func:`check_job`). Field windows are in
:mod:`gradbatch.store.window`, overlays as records in :mod:`gradbatch.store.overlays`."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import StoreError
from ..grid import level_shape
from ..records import FieldStats
from . import layout as L
from .access import (
    attr_value,
    attrs_of,
    bad_attr,
    child,
    flag_attr,
    group_keys,
    int_attr,
    job_names,
    names_attr,
    open_store,
    plain,
    read_array,
    reading,
    table,
)
from .stats import field_stats

__all__ = [
    "FieldInfo",
    "JobInfo",
    "StoreInfo",
    "JobLayout",
    "MAX_LEVELS",
    "check_job",
    "inspect",
    "job_complete",
    "read_field",
    "read_coords",
    "read_stats",
    "job_layout",
    "job_axes",
    "tile_stats",
    "stored_bytes",
    "h5py_version",
]

MAX_LEVELS = 64  # a pyramid of 2^64 points per side: anything above is a damaged attribute


@dataclass(frozen=True)
class FieldInfo:
    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...] | None
    compression: str
    stored_bytes: int


@dataclass(frozen=True)
class JobInfo:
    name: str
    complete: bool
    attrs: dict[str, Any]  # plain Python values (numpy scalars and arrays converted): the provenance
    fields: tuple[FieldInfo, ...]
    axes: tuple[tuple[str, float, float, int], ...]  # (name, first, last, points), grid order
    levels: tuple[tuple[int, ...], ...]  # shape of each pyramid level
    tiles_done: int
    tiles_total: int
    trajectories: dict[str, Any] = field(default_factory=dict)  # summaries of paths/basins/streamlines
    stats: dict[str, FieldStats] = field(default_factory=dict)  # each field's, over its done tiles
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # axis -> (long_name, units)


@dataclass(frozen=True)
class StoreInfo:
    path: Path
    format: str
    version: str
    jobs: tuple[JobInfo, ...]
    partial: bool


@dataclass(frozen=True)
class JobLayout:
    """A job's structure as checked by :func:`check_job`: what every reader relies on, and
    what a picture is titled and labelled with: ``labels`` (axis -> (long_name, units), ""
    where the file has none) and ``function`` (the job's function text, "" if absent)."""

    name: str
    axes: tuple[str, ...]  # grid order
    fields: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # array shape (axes reversed) of level 0, 1, ...
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    function: str = ""


def check_job(path: str | Path, g: h5py.Group, overlays: bool = True) -> JobLayout:
    """Check what readers rely on in job group ``g``: its ``axes``, ``fields`` and ``levels``
    attributes, each level's coordinates and fields (shape, dtype), the done map and, with
    ``overlays``, the paths, basins and streamlines. Reads metadata and small tables only."""
    axes = names_attr(path, g, L.AXES)
    fields = names_attr(path, g, L.FIELDS)
    levels = int_attr(path, g, L.LEVELS, 0, MAX_LEVELS)
    shapes: list[tuple[int, ...]] = []
    for k in range(levels + 1):
        lg = g if k == 0 else child(path, g, L.level_group(k), h5py.Group)
        shapes.append(_check_level(path, lg, axes, fields, shapes[0] if shapes else None, k))
    done = child(path, g, L.DONE)
    if done.ndim != len(axes) or done.dtype.kind not in "iub":
        raise StoreError(f"{path}: {done.name} is {done.shape} {done.dtype}; expected a {len(axes)}D integer map")
    if overlays:
        summaries(path, g, axes)
    labels = {
        a: (_text_attr(path, child(path, g, a), L.LONG_NAME), _text_attr(path, child(path, g, a), L.UNITS))
        for a in axes
    }
    return JobLayout(g.name.lstrip("/"), axes, fields, tuple(shapes), labels, _text_attr(path, g, L.FUNCTION))


def _text_attr(path: str | Path, obj: h5py.HLObject, key: str) -> str:
    """Text attribute ``key`` of ``obj`` ("" where absent)."""
    v = plain(attr_value(path, obj, key))
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    raise bad_attr(path, obj, key, v, "text")


def _check_level(
    path: str | Path, lg: h5py.Group, axes: Sequence[str], fields: Sequence[str], full: tuple[int, ...] | None, k: int
) -> tuple[int, ...]:
    """One pyramid level's coordinates and fields; returns its array shape."""
    sizes = []
    for a in axes:
        d = child(path, lg, a)
        if d.ndim != 1 or d.shape[0] < 1 or d.dtype.kind not in "fiu":
            raise StoreError(
                f"{path}: {d.name} is {d.shape} {d.dtype}; expected coordinates: a non-empty 1D array of numbers"
            )
        sizes.append(d.shape[0])
    here = tuple(reversed(sizes))
    if full is not None and here != level_shape(full, k):
        raise StoreError(f"{path}: {lg.name} has coordinates for {here}; expected {level_shape(full, k)}")
    for fn in fields:
        d = child(path, lg, fn)
        if d.shape != here or d.dtype.kind != "f":
            raise StoreError(f"{path}: {d.name} is {d.shape} {d.dtype}; expected a {here} float array")
    return here


def open_job(path: str | Path, f: h5py.File, job: str | None) -> h5py.Group:
    """Job group ``job`` of the open file (None: its first job), or a StoreError naming the jobs."""
    jobs = job_names(path, f)
    if not jobs:
        raise StoreError(f"{path}: holds no jobs")
    name = jobs[0] if job is None else job
    if name not in jobs:
        raise StoreError(f"{path}: no job {name!r}; jobs: {', '.join(jobs)}")
    return child(path, f, name, h5py.Group)


# -- the file as a whole ------------------------------------------------------------------------


def inspect(path: str | Path) -> StoreInfo:
    """What a gradbatch file (or a partial one) holds."""
    p = Path(path)
    with open_store(p) as f:
        jobs = tuple(_job_info(p, child(p, f, name, h5py.Group)) for name in job_names(p, f))
        version = plain(attr_value(p, f, L.VERSION_ATTR))
        return StoreInfo(p, L.FORMAT, "" if version is None else str(version), jobs, p.name.endswith(".partial"))


def _job_info(p: Path, g: h5py.Group) -> JobInfo:
    lay = check_job(p, g, overlays=False)
    attrs = attrs_of(p, g)
    complete = flag_attr(p, g, L.COMPLETE)
    fields = []
    for fn in lay.fields:
        d = child(p, g, fn)
        with reading(p, d.name):
            dims = tuple(dim.label or (dim[0].name.rsplit("/", 1)[-1] if len(dim) else "") for dim in d.dims)
            fields.append(
                FieldInfo(
                    fn,
                    dims,
                    tuple(d.shape),
                    str(d.dtype),
                    tuple(d.chunks) if d.chunks else None,
                    str(attrs.get(L.COMPRESSION, "")),
                    int(d.id.get_storage_size()),
                )
            )
    axes = []
    for a in lay.axes:
        values = read_array(p, child(p, g, a))
        axes.append((a, float(values[0]), float(values[-1]), int(values.shape[0])))
    done = read_array(p, child(p, g, L.DONE))
    return JobInfo(
        g.name.lstrip("/"),
        complete,
        attrs,
        tuple(fields),
        tuple(axes),
        lay.shapes[1:],
        int(np.count_nonzero(done)),
        int(done.size),
        summaries(p, g, lay.axes),
        {fn: field_stats(p, g, lay, fn) for fn in lay.fields},
        lay.labels,
    )


def job_axes(path: str | Path) -> dict[str, int]:
    """Every job of the file, in file order, with its number of axes (structure checked)."""
    with open_store(path) as f:
        return {k: len(check_job(path, child(path, f, k, h5py.Group), overlays=False).axes) for k in job_names(path, f)}


def job_layout(path: str | Path, job: str | None = None) -> JobLayout | None:
    """Job ``job``'s layout (None: the file's first job), checked with its overlays; None if the
    file has no such job."""
    with open_store(path) as f:
        jobs = job_names(path, f)
        name = job or (jobs[0] if jobs else None)
        if name is None or name not in jobs:
            return None
        return check_job(path, child(path, f, name, h5py.Group))


def job_complete(path: str | Path, job: str) -> bool:
    """Whether ``path`` (a finished or partial file) holds ``job`` marked complete."""
    with open_store(path) as f:
        if job not in job_names(path, f):
            return False
        return flag_attr(path, child(path, f, job, h5py.Group), L.COMPLETE)


# -- whole arrays ---------------------------------------------------------------------------------


def _level_of(path: str | Path, f: h5py.File, job: str, level: int) -> tuple[h5py.Group, JobLayout]:
    jobs = job_names(path, f)
    if job not in jobs:
        raise StoreError(f"{path}: no job {job!r}; jobs: {', '.join(jobs)}")
    g = child(path, f, job, h5py.Group)
    lay = check_job(path, g, overlays=False)
    if not (isinstance(level, numbers.Integral) and not isinstance(level, bool) and 0 <= level < len(lay.shapes)):
        raise StoreError(
            f"{path}: job {job!r} has no pyramid level {level!r}; levels: 0 to {len(lay.shapes) - 1} (whole numbers)"
        )
    return g, lay


def read_field(path: str | Path, job: str, field_name: str, level: int = 0) -> np.ndarray:
    """Read one whole field (or pyramid level) into memory. Mind the size of large jobs."""
    with open_store(path) as f:
        g, lay = _level_of(path, f, job, level)
        if field_name not in lay.fields:
            raise StoreError(f"{path}: job {job!r} has no field {field_name!r}; fields: {', '.join(lay.fields)}")
        return read_array(path, child(path, g, L.level_path(level, field_name)))


def read_part(path: str | Path, name: str, key: Any) -> np.ndarray:
    """``file[name][key]``: part of one dataset (``name``: its path in the file), read now; a
    damaged file or chunk is a StoreError naming it. What a lazily read Dataset
    (``gradbatch.open``) reads through."""
    with open_store(path) as f:
        return read_array(path, child(path, f, name.lstrip("/")), key)


def read_stats(path: str | Path, job: str, field_name: str) -> FieldStats:
    """Field ``field_name``'s statistics over the whole job (see :mod:`gradbatch.store.stats`):
    the finite range, non-finite and non-positive counts, percentiles of a fixed pyramid level."""
    with open_store(path) as f:
        g, lay = _level_of(path, f, job, 0)
        if field_name not in lay.fields:
            raise StoreError(f"{path}: job {job!r} has no field {field_name!r}; fields: {', '.join(lay.fields)}")
        return field_stats(path, g, lay, field_name)


def read_coords(path: str | Path, job: str, level: int = 0) -> tuple[np.ndarray, ...]:
    """Each axis's coordinates at pyramid ``level``, in grid order."""
    with open_store(path) as f:
        g, lay = _level_of(path, f, job, level)
        return tuple(read_array(path, child(path, g, L.level_path(level, a))) for a in lay.axes)


def tile_stats(path: Path, job: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Every tile's non-finite counts (tiles, fields, 3) and gradient-check rows (or None), as
    written with the tiles: totals over these cover the tiles of every run of a resumed job."""
    with h5py.File(path, "r", libver="latest") as f:
        g = f[job]
        return g[L.NONFINITE][...], (g[L.CHECK][...] if L.CHECK in g else None)


def stored_bytes(path: Path, job: str, fields: Sequence[str]) -> int:
    """Bytes the fields of ``job`` take on disk (compressed), of a file just written."""
    with h5py.File(path, "r") as f:
        return sum(f[job][n].id.get_storage_size() for n in fields)


def h5py_version() -> str:
    """The h5py the file is written with (recorded in each job's provenance)."""
    return str(h5py.__version__)


# -- overlay summaries (what `gradbatch info` prints; shapes checked on the way) ----------------


def summaries(path: str | Path, g: h5py.Group, axes: Sequence[str]) -> dict[str, Any]:
    """Summaries of the paths, basins, landscape and streamlines, their shapes checked on the way."""
    present = set(group_keys(path, g, f"the groups of {g.name}"))
    out: dict[str, Any] = {}
    if L.PATHS in present:
        out[L.PATHS] = _paths_summary(path, g, len(axes))
    if L.BASINS in present:
        out[L.BASINS] = _basins_summary(path, g, axes)
    if L.LANDSCAPE in present:
        la = child(path, g, L.LANDSCAPE, h5py.Group)
        out[L.LANDSCAPE] = {
            key: plain(attr_value(path, la, key))
            for key in L.LANDSCAPE_SUMMARY
            if attr_value(path, la, key) is not None
        }
    if L.STREAMLINES in present:
        out[L.STREAMLINES] = _streamlines_summary(path, g, len(axes))
    return out


def check_positions(path: str | Path, pg: h5py.Group, n: int) -> h5py.Dataset:
    pos = child(path, pg, L.POSITIONS)
    if pos.ndim != 3 or pos.shape[2] != n or pos.shape[1] < 1 or pos.dtype.kind != "f":
        raise StoreError(f"{path}: {pos.name} is {pos.shape} {pos.dtype}; expected paths x steps x {n} floats")
    return pos


def _paths_summary(path: str | Path, g: h5py.Group, n: int) -> dict[str, Any]:
    paths = {}
    pgs = child(path, g, L.PATHS, h5py.Group)
    for label in group_keys(path, pgs, pgs.name):
        pg = child(path, pgs, label, h5py.Group)
        pos = check_positions(path, pg, n)
        codes = table(path, pg, L.STOP_REASON, (pos.shape[0],), "iu")
        raw = plain(attr_value(path, pg, L.REASONS_ATTR))
        reasons = [str(r) for r in raw] if isinstance(raw, list) else []
        stopped = {
            reasons[c] if 0 <= c < len(reasons) else str(c): int((codes == c).sum()) for c in np.unique(codes).tolist()
        }
        optimizer = plain(attr_value(path, pg, L.OPTIMIZER_ATTR))
        paths[label] = {
            "optimizer": str(optimizer if optimizer is not None else label),
            "paths": int(codes.size),
            "steps": int(pos.shape[1] - 1),
            "stopped": stopped,
        }
    return paths


def check_label(path: str | Path, b: h5py.Group, n: int) -> h5py.Dataset:
    label = child(path, b, L.LABEL)
    if label.ndim != n or label.dtype.kind not in "iu":
        raise StoreError(f"{path}: {label.name} is {label.shape} {label.dtype}; expected a {n}D integer array")
    return label


def _basins_summary(path: str | Path, g: h5py.Group, axes: Sequence[str]) -> dict[str, Any]:
    n = len(axes)
    b = child(path, g, L.BASINS, h5py.Group)
    label = check_label(path, b, n)
    for i, a in enumerate(axes):
        table(path, b, a, (label.shape[n - 1 - i],), "fiu")
    kinds = [str(k) for k in plain(table(path, b, L.MINIMA_KIND, (None,), "OSU"))]
    k = len(kinds)
    return {
        "resolution": list(label.shape[::-1]),
        "minima": k,
        "kinds": kinds,
        "points": table(path, b, L.MINIMA_POINT, (k, n), "f").tolist(),
        "counts": table(path, b, L.MINIMA_COUNT, (k,), "iu").tolist(),
    }


def check_lines(path: str | Path, sl: h5py.Group, n: int) -> tuple[h5py.Dataset, np.ndarray]:
    """A streamlines group's points (checked: N x n floats) and its offsets (read, checked)."""
    points = child(path, sl, L.POINTS)
    if points.ndim != 2 or points.shape[1] != n or points.dtype.kind != "f":
        raise StoreError(f"{path}: {points.name} is {points.shape} {points.dtype}; expected N x {n} floats")
    offsets = table(path, sl, L.OFFSETS, (None,), "iu")
    if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != points.shape[0] or (np.diff(offsets) < 0).any():
        raise StoreError(f"{path}: {sl.name}/{L.OFFSETS} do not split its {points.shape[0]} points into lines")
    return points, offsets


def _streamlines_summary(path: str | Path, g: h5py.Group, n: int) -> dict[str, Any]:
    sl = child(path, g, L.STREAMLINES, h5py.Group)
    points, offsets = check_lines(path, sl, n)
    fld = plain(attr_value(path, sl, L.FIELD_ATTR))
    return {
        "lines": int(offsets.shape[0] - 1),
        "points": int(points.shape[0]),
        "field": "" if fld is None else str(fld),
    }
