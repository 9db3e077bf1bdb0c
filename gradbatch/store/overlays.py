"""Descent paths, basins, streamlines and landscape makings: written after a job's fields (before
``complete``) from the records of :mod:`gradbatch.records`, and read back as the same records.

Each writer replaces its group whole (:func:`_fresh_group`), so a resumed run writes it again.
Each reader checks shapes and kinds first; attributes come back as plain Python, with the ones
stored as JSON text (dicts, mixed lists) decoded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from ..errors import StoreError
from ..records import BasinsResult, CriticalPoint, Descent, LandscapeMakings, Overlays, Stored, Streamlines
from . import layout as L
from .access import attrs_of, child, group_keys, open_store, plain, read_array, table
from .encode import encode_attr, filters
from .failures import open_rw
from .reader import check_job, check_label, check_lines, check_positions, open_job

R = TypeVar("R")

__all__ = [
    "write_paths",
    "write_basins",
    "write_streamlines",
    "write_landscape",
    "read_paths",
    "read_basins",
    "read_streamlines",
    "read_landscape",
    "read_overlays",
    "overlays_of",
]


# -- writing ------------------------------------------------------------------------------------


def _fresh_group(f: h5py.File, path: str) -> h5py.Group:
    """An empty group at ``path``: a resumed run replaces what an interrupted one left."""
    if path in f:
        del f[path]
    return f.create_group(path, track_order=True)


def _array(g: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    big = data.size * data.dtype.itemsize > (1 << 20)
    return g.create_dataset(name, data=data, **(filters("lz4") if big else {}))


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        obj.attrs[key] = encode_attr(value)


def write_paths(path: Path, job: str, label: str, descent: Descent, attrs: Mapping[str, Any]) -> None:
    """``/<job>/paths/<label>``: positions (paths, steps+1, axes), values, grad_norms (NaN after
    each path's stop), stop_step, stop_reason; the optimiser's settings as attributes."""
    if descent.positions is None or descent.values is None or descent.grad_norms is None:
        raise ValueError(f"paths {label!r}: only descents with recorded positions are stored")
    with open_rw(path) as f:
        if L.PATHS not in f[job]:
            f[job].create_group(L.PATHS, track_order=True)  # optimisers in the order given
        g = _fresh_group(f, L.overlay_path(job, L.PATHS, label))
        _array(g, L.POSITIONS, descent.positions)
        _array(g, L.VALUES, descent.values)
        _array(g, L.GRAD_NORMS, descent.grad_norms)
        g.create_dataset(L.STOP_STEP, data=descent.stop_step.astype(np.int64))
        g.create_dataset(L.STOP_REASON, data=descent.reason)
        _set_attrs(g, attrs)


def write_landscape(path: Path, job: str, makings: LandscapeMakings) -> None:
    """``/<job>/landscape``: what the loss landscape was made of (the data, or θ* and the
    directions of a network's plane), so the file is reproducible."""
    with open_rw(path) as f:
        g = _fresh_group(f, L.overlay_path(job, L.LANDSCAPE))
        for name, data in makings.arrays.items():
            _array(g, name, np.asarray(data))
        _set_attrs(g, makings.attrs)


def _attach(d: h5py.Dataset, scales: Sequence[h5py.Dataset]) -> None:
    """Label ``d``'s dimensions (array order) with the coordinate scales (grid order)."""
    for dim, scale in enumerate(reversed(scales)):
        d.dims[dim].label = scale.name.rsplit("/", 1)[-1]
        d.dims[dim].attach_scale(scale)


def write_basins(path: Path, job: str, result: BasinsResult, axes: Sequence[str], attrs: Mapping[str, Any]) -> None:
    """``/<job>/basins``: label / steps / stop_reason on the starts grid (dims like the fields,
    with their own coordinates) and the table ``minima/{point, value, kind, eigenvalues, count}``."""
    with open_rw(path) as f:
        g = _fresh_group(f, L.overlay_path(job, L.BASINS))
        scales = []
        for name, values in zip(axes, result.axes):
            d = g.create_dataset(name, data=values)
            d.make_scale(name)
            scales.append(d)
        for name, data in ((L.LABEL, result.label), (L.STEPS, result.steps), (L.STOP_REASON, result.reason)):
            _attach(_array(g, name, data), scales)
        t = g.create_group(L.MINIMA)
        k, n = len(result.points), len(axes)
        pts = result.points
        for name, data in (
            (L.MINIMA_POINT, np.array([p.point for p in pts], dtype=np.float64).reshape(k, n)),
            (L.MINIMA_VALUE, np.array([p.value for p in pts], dtype=np.float64)),
            (L.MINIMA_KIND, np.array([p.kind for p in pts], dtype=h5py.string_dtype())),
            (L.MINIMA_EIGENVALUES, np.array([p.eigenvalues for p in pts], dtype=np.float64).reshape(k, n)),
            (L.MINIMA_COUNT, np.array(result.counts, dtype=np.int64)),
        ):
            t.create_dataset(name.rsplit("/", 1)[1], data=data)  # in the minima group made above
        t.attrs[L.KNOWN_ATTR] = bool(result.points and result.points[0].known)
        _set_attrs(g, attrs)


def write_streamlines(path: Path, job: str, lines: Streamlines, attrs: Mapping[str, Any]) -> None:
    """``/<job>/streamlines``: ragged lines, line i = points[offsets[i]:offsets[i+1]]."""
    with open_rw(path) as f:
        g = _fresh_group(f, L.overlay_path(job, L.STREAMLINES))
        _array(g, L.POINTS, lines.points)
        g.create_dataset(L.OFFSETS, data=lines.offsets)
        g.create_dataset(L.SEEDS, data=lines.seeds)
        g.create_dataset(L.STOP_BACKWARD, data=lines.stop_backward)
        g.create_dataset(L.STOP_FORWARD, data=lines.stop_forward)
        g.create_dataset(L.LENGTH, data=lines.length)
        _set_attrs(g, attrs)


# -- reading ------------------------------------------------------------------------------------


def _decoded(path: str | Path, obj: h5py.HLObject) -> dict[str, Any]:
    """``obj``'s attributes as plain Python; JSON text (how dicts and mixed lists are stored) decoded."""
    out = attrs_of(path, obj)
    for key, v in out.items():
        if isinstance(v, str) and v[:1] in "[{":
            try:
                out[key] = json.loads(v)
            except ValueError:
                pass
    return out


def _descent(path: str | Path, pg: h5py.Group, n: int) -> Stored[Descent]:
    pos = read_array(path, check_positions(path, pg, n))
    count, steps = pos.shape[:2]
    values = table(path, pg, L.VALUES, (count, steps), "f")
    grad_norms = table(path, pg, L.GRAD_NORMS, (count, steps), "f")
    stop_step = table(path, pg, L.STOP_STEP, (count,), "iu")
    reason = table(path, pg, L.STOP_REASON, (count,), "iu")
    if count and (stop_step.min() < 0 or stop_step.max() >= steps):
        raise StoreError(f"{path}: {pg.name}/{L.STOP_STEP} holds steps outside 0 to {steps - 1}")
    rows = np.arange(count)  # a path's final position is the one at its stop step
    return Stored(
        Descent(pos[rows, stop_step], values[rows, stop_step], stop_step, reason, pos, values, grad_norms),
        _decoded(path, pg),
    )


def _paths(path: str | Path, g: h5py.Group, n: int) -> dict[str, Stored[Descent]]:
    pgs = child(path, g, L.PATHS, h5py.Group)
    return {label: _descent(path, child(path, pgs, label, h5py.Group), n) for label in group_keys(path, pgs, pgs.name)}


def _basins(path: str | Path, g: h5py.Group, axes: Sequence[str]) -> Stored[BasinsResult]:
    n = len(axes)
    b = child(path, g, L.BASINS, h5py.Group)
    d = check_label(path, b, n)
    shape = tuple(d.shape)
    coords = tuple(table(path, b, a, (shape[n - 1 - i],), "fiu") for i, a in enumerate(axes))
    label = read_array(path, d)
    steps = table(path, b, L.STEPS, shape, "iu")
    reason = table(path, b, L.STOP_REASON, shape, "iu")
    kinds = [str(k) for k in plain(table(path, b, L.MINIMA_KIND, (None,), "OSU"))]
    k = len(kinds)
    point = table(path, b, L.MINIMA_POINT, (k, n), "f")
    value = table(path, b, L.MINIMA_VALUE, (k,), "f")
    eig = table(path, b, L.MINIMA_EIGENVALUES, (k, n), "f")
    counts = table(path, b, L.MINIMA_COUNT, (k,), "iu")
    attrs = _decoded(path, b)
    known = attrs.get(L.KNOWN_MINIMA_ATTR)
    if not isinstance(known, int) or isinstance(known, bool):  # the table's first row only
        known = int(bool(_decoded(path, child(path, b, L.MINIMA, h5py.Group)).get(L.KNOWN_ATTR)))
    points = tuple(
        CriticalPoint(
            tuple(float(v) for v in point[i]), float(value[i]), kinds[i], tuple(float(v) for v in eig[i]), i < known
        )
        for i in range(k)
    )
    return Stored(BasinsResult(coords, label, steps, reason, points, tuple(int(c) for c in counts)), attrs)


def _streamlines(path: str | Path, g: h5py.Group, n: int) -> Stored[Streamlines]:
    sl = child(path, g, L.STREAMLINES, h5py.Group)
    points, offsets = check_lines(path, sl, n)
    lines = len(offsets) - 1
    return Stored(
        Streamlines(
            read_array(path, points),
            offsets,
            table(path, sl, L.SEEDS, (lines, n), "f"),
            table(path, sl, L.STOP_BACKWARD, (lines,), "iu"),
            table(path, sl, L.STOP_FORWARD, (lines,), "iu"),
            table(path, sl, L.LENGTH, (lines,), "f"),
        ),
        _decoded(path, sl),
    )


def _landscape(path: str | Path, g: h5py.Group) -> LandscapeMakings:
    la = child(path, g, L.LANDSCAPE, h5py.Group)
    arrays = {name: read_array(path, child(path, la, name)) for name in group_keys(path, la, la.name)}
    return LandscapeMakings(arrays, _decoded(path, la))


def overlays_of(path: str | Path, g: h5py.Group, axes: Sequence[str]) -> Overlays:
    """Every overlay of job group ``g`` (of a checked job with ``axes``) as records."""
    present = set(group_keys(path, g, f"the groups of {g.name}"))
    n = len(axes)
    return Overlays(
        _paths(path, g, n) if L.PATHS in present else {},
        _basins(path, g, axes) if L.BASINS in present else None,
        _streamlines(path, g, n) if L.STREAMLINES in present else None,
        _landscape(path, g) if L.LANDSCAPE in present else None,
    )


def read_overlays(path: str | Path, job: str | None = None) -> Overlays:
    """Every overlay of ``job`` (None: the file's first job) as records."""
    with open_store(path) as f:
        g = open_job(path, f, job)
        return overlays_of(path, g, check_job(path, g).axes)


def _read_one(
    path: str | Path, job: str | None, overlay: str, read: Callable[[h5py.Group, Sequence[str]], R]
) -> R | None:
    """One overlay of ``job`` read by ``read`` (None: the job has none)."""
    with open_store(path) as f:
        g = open_job(path, f, job)
        axes = check_job(path, g).axes
        if overlay not in group_keys(path, g, f"the groups of {g.name}"):
            return None
        return read(g, axes)


def read_paths(path: str | Path, job: str | None = None) -> dict[str, Stored[Descent]]:
    """The job's descent paths by label, in the order the optimisers were given ({}: none)."""
    return _read_one(path, job, L.PATHS, lambda g, axes: _paths(path, g, len(axes))) or {}


def read_basins(path: str | Path, job: str | None = None) -> Stored[BasinsResult] | None:
    """The job's basins with their table of critical points (None: none stored)."""
    return _read_one(path, job, L.BASINS, lambda g, axes: _basins(path, g, axes))


def read_streamlines(path: str | Path, job: str | None = None) -> Stored[Streamlines] | None:
    """The job's streamlines (None: none stored)."""
    return _read_one(path, job, L.STREAMLINES, lambda g, axes: _streamlines(path, g, len(axes)))


def read_landscape(path: str | Path, job: str | None = None) -> LandscapeMakings | None:
    """What the job's loss landscape was made of (None: not a landscape)."""
    return _read_one(path, job, L.LANDSCAPE, lambda g, axes: _landscape(path, g))
