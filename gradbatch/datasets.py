"""Jobs as xarray Datasets, the notebook's currency: from a file (:func:`open`) or from memory
(``gradbatch.compute``), the same shape either way.

A job's Dataset holds:

- one data variable per field on the grid's dims in array order (``("y", "x")``), the axes as
  coordinates (a lazy view of the file, as ``xarray.open_dataset`` gives);
- the job's attributes (function, outputs, dtype, the gradient check's result, ...) and ``job``;
- its overlays, each on dims of its own (the ``axis`` dim is the grid's axis names):

  ==========================  ===========================================  =====================
  paths                       ``path_position`` (optimizer, path, step,    NaN after each stop;
                              axis), ``path_value``, ``path_grad_norm``    optimisers' runs
                              (optimizer, path, step), ``path_stop_step``  padded to the longest
                              (optimizer, path; -1: padding),
                              ``path_stop_reason`` (text)
  basins                      ``basin_label``, ``basin_steps``,            label: index into
                              ``basin_stop_reason`` (``basin_<axis>``...)  critical, -1: none
  critical points (basins)    ``critical_point``, ``critical_eigenvalues``
                              (critical, axis), ``critical_value``,
                              ``critical_kind``, ``critical_count``,
                              ``critical_known`` (critical)
  streamlines                 ``streamline_points`` (streamline_point,     CF contiguous ragged
                              axis), ``streamline_point_count``,           array: line i is the
                              ``streamline_seed`` (streamline, axis),      next count[i] points
                              ``streamline_length``,
                              ``streamline_stop_backward``/``_forward``
  a loss landscape's makings  ``landscape_<name>`` (``landscape_<name>_<k>`` dims)
  ==========================  ===========================================  =====================

Reading goes through gradbatch's own checks first, so a damaged file is one ``StoreError``.
xarray is an extra: ``pip install 'gradbatch[xarray]'``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import GradbatchError, StoreError
from .records import REASONS, STOPS, Overlays
from .store import JobLayout, job_layout, read_coords, read_overlays, read_part
from .store import read_field as _read_array

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["open", "read_field", "job_dataset", "overlay_variables", "NEEDS_XARRAY"]

NEEDS_XARRAY = "xarray Datasets need xarray and h5netcdf: pip install 'gradbatch[xarray]'"


def _xarray() -> Any:
    try:
        import xarray
    except ImportError:
        raise GradbatchError(NEEDS_XARRAY) from None
    return xarray


def the_job(path: str | Path, job: str | None) -> JobLayout:
    """The layout of job ``job`` of the file (None: its only job), checked; a StoreError
    names the jobs when there are several or ``job`` is not one of them."""
    from .store.access import job_names, open_store

    if not isinstance(path, (str, os.PathLike)):
        raise StoreError(f"expected a gradbatch file's path, got {path!r}")
    if job is not None and not isinstance(job, str):
        raise StoreError(f"{path}: job: expected a job's name, got {job!r}")
    with open_store(path) as f:
        names = job_names(path, f)
    if not names:
        raise StoreError(f"{path}: holds no jobs")
    if job is None:
        if len(names) > 1:
            raise StoreError(f"{path}: holds {len(names)} jobs ({', '.join(names)}); name one with job=")
        job = names[0]
    elif job not in names:
        raise StoreError(f"{path}: no job {job!r}; jobs: {', '.join(names)}")
    lay = job_layout(path, job)
    assert lay is not None
    return lay


def read_field(path: str | Path, job: str | None = None, field: str = "value", level: int = 0) -> xr.DataArray:
    """One whole field (or pyramid ``level``) in memory, as an ``xarray.DataArray`` with its
    coordinates. ``job``: None for a file's only job. Mind the size of large jobs."""
    xr = _xarray()
    lay = the_job(path, job)
    name, axes = lay.name, lay.axes
    data = _read_array(path, name, field, level)
    coords = read_coords(path, name, level)
    dims = tuple(reversed(axes))
    return xr.DataArray(
        data, dims=dims, coords={a: (a, c) for a, c in zip(axes, coords)}, name=field, attrs={"job": name}
    )


def open(path: str | Path, job: str | None = None, level: int = 0) -> xr.Dataset:  # noqa: A001
    """Job ``job`` of a gradbatch file (None: its only job) as an ``xarray.Dataset``: its
    fields (lazily read, as ``xarray.open_dataset`` reads them), coordinates and attributes,
    and its paths, basins and streamlines as data variables on dims of their own (see the
    module's table). ``level``: a pyramid level's fields instead (no overlays). The file stays
    open while the Dataset reads it lazily: ``ds.close()``, or ``with gradbatch.open(...) as ds``."""
    xr = _xarray()
    lay = the_job(path, job)
    name, axes = lay.name, lay.axes
    if not (isinstance(level, numbers.Integral) and not isinstance(level, bool) and 0 <= level < len(lay.shapes)):
        raise StoreError(f"{path}: job {name!r} has no pyramid level {level!r}; levels: 0 to {len(lay.shapes) - 1}")
    import hdf5plugin  # noqa: F401  (registers the Blosc2 filter with HDF5 for xarray's reader)

    group = name if level == 0 else f"{name}/levels/{int(level)}"
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", group=group)
        if level:  # a level's own group holds only its fields: the job's attributes too
            with xr.open_dataset(path, engine="h5netcdf", group=name) as top:
                ds.attrs = {**top.attrs, **ds.attrs}
    except (OSError, ValueError, KeyError) as exc:
        if "already open for write" in str(exc):
            raise StoreError(
                f"{path}: a run is writing this file now; open it once the run has finished "
                "(its finished jobs can be read then)"
            ) from None
        raise StoreError(f"{path}: xarray cannot open {group}: {type(exc).__name__}: {exc}") from None
    opened = ds
    ds = ds.assign({k: _through_store(xr, path, f"{group}/{k}", ds[k]) for k in ds.data_vars})
    if level == 0:
        ds = ds.assign(overlay_variables(read_overlays(path, name), axes))
    ds.set_close(opened.close)  # ds.close() (or a with block) lets go of the file
    ds.attrs["job"] = name
    return ds


def _through_store(xr: Any, path: str | Path, name: str, var: Any) -> Any:
    """``var`` (dims, attributes) with its values read lazily through the store, part by part as
    they are used: a damaged chunk is then a StoreError naming the file and the field."""
    from xarray.core import indexing

    class StoreArray(xr.backends.BackendArray):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.shape, self.dtype = tuple(var.shape), var.dtype

        def __getitem__(self, key: Any) -> np.ndarray:
            return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

        def _read(self, key: tuple[Any, ...]) -> np.ndarray:
            return read_part(path, name, key)

    data = indexing.LazilyIndexedArray(StoreArray())
    return xr.DataArray(xr.Variable(var.dims, data, attrs=var.attrs, encoding=var.encoding), coords=var.coords)


def job_dataset(
    fields: Mapping[str, np.ndarray],
    axes: Sequence[tuple[str, np.ndarray]],
    attrs: Mapping[str, Any],
    overlays: Overlays,
) -> xr.Dataset:
    """A job computed in memory as the Dataset :func:`open` gives of its file."""
    xr = _xarray()
    names = [a for a, _ in axes]
    dims = tuple(reversed(names))
    variables: dict[str, Any] = {k: (dims, v) for k, v in fields.items()}
    ds = xr.Dataset(variables, coords={a: (a, v) for a, v in axes}, attrs=dict(attrs))
    return ds.assign(overlay_variables(overlays, names))


def overlay_variables(overlays: Overlays, axes: Sequence[str]) -> dict[str, Any]:
    """The overlays' data variables (see the module's table), as ``(dims, data)`` pairs or
    DataArrays, ready for ``Dataset.assign``."""
    xr = _xarray()
    out: dict[str, Any] = {}
    axis = ("axis", list(axes))
    if overlays.paths:
        out.update(_paths(xr, overlays, axis))
    if overlays.basins is not None:
        b = overlays.basins.record
        grid = tuple(f"basin_{a}" for a in reversed(axes))
        coords = {f"basin_{a}": (f"basin_{a}", c) for a, c in zip(axes, b.axes)}
        out["basin_label"] = xr.DataArray(b.label, dims=grid, coords=coords)
        out["basin_steps"] = xr.DataArray(b.steps, dims=grid, coords=coords)
        out["basin_stop_reason"] = xr.DataArray(_names(b.reason, REASONS), dims=grid, coords=coords)
        pts = b.points
        crit = ("critical", "axis")
        n = len(axes)
        out["critical_point"] = xr.DataArray(
            np.array([p.point for p in pts], dtype=np.float64).reshape(len(pts), n), dims=crit, coords=dict([axis])
        )
        out["critical_eigenvalues"] = xr.DataArray(
            np.array([p.eigenvalues for p in pts], dtype=np.float64).reshape(len(pts), n), dims=crit
        )
        out["critical_value"] = (("critical",), np.array([p.value for p in pts], dtype=np.float64))
        out["critical_kind"] = (("critical",), np.array([p.kind for p in pts], dtype=object))
        out["critical_count"] = (("critical",), np.array(b.counts, dtype=np.int64))
        out["critical_known"] = (("critical",), np.array([p.known for p in pts], dtype=bool))
    if overlays.streamlines is not None:
        s = overlays.streamlines.record
        counts = np.diff(np.asarray(s.offsets, dtype=np.int64))
        out["streamline_points"] = xr.DataArray(s.points, dims=("streamline_point", "axis"), coords=dict([axis]))
        out["streamline_point_count"] = xr.DataArray(
            counts, dims=("streamline",), attrs={"sample_dimension": "streamline_point"}
        )
        out["streamline_seed"] = xr.DataArray(s.seeds, dims=("streamline", "axis"), coords=dict([axis]))
        out["streamline_length"] = (("streamline",), np.asarray(s.length, dtype=np.float64))
        out["streamline_stop_backward"] = (("streamline",), _names(s.stop_backward, STOPS))
        out["streamline_stop_forward"] = (("streamline",), _names(s.stop_forward, STOPS))
    if overlays.landscape is not None:
        for key, arr in overlays.landscape.arrays.items():
            a = np.asarray(arr)
            out[f"landscape_{key}"] = (tuple(f"landscape_{key}_{k}" for k in range(a.ndim)), a)
    return out


def _paths(xr: Any, overlays: Overlays, axis: tuple[str, list[str]]) -> dict[str, Any]:
    """Every optimiser's paths stacked on an ``optimizer`` dim, padded to the most paths and
    steps (NaN; stop step -1 and reason "" in the padding)."""
    labels = list(overlays.paths)
    runs = [overlays.paths[k].record for k in labels]
    paths = max(len(r.final) for r in runs)
    steps = max(r.positions.shape[1] if r.positions is not None else 1 for r in runs)
    d = len(axis[1])
    dtype = np.result_type(*(r.final.dtype for r in runs))
    position = np.full((len(runs), paths, steps, d), np.nan, dtype=dtype)
    value = np.full((len(runs), paths, steps), np.nan, dtype=dtype)
    grad_norm = np.full((len(runs), paths, steps), np.nan, dtype=dtype)
    stop_step = np.full((len(runs), paths), -1, dtype=np.int64)
    reason = np.full((len(runs), paths), "", dtype=object)
    for i, r in enumerate(runs):
        n = len(r.final)
        if r.positions is not None:
            position[i, :n, : r.positions.shape[1]] = r.positions
        if r.values is not None:
            value[i, :n, : r.values.shape[1]] = r.values
        if r.grad_norms is not None:
            grad_norm[i, :n, : r.grad_norms.shape[1]] = r.grad_norms
        stop_step[i, :n] = r.stop_step
        reason[i, :n] = _names(r.reason, REASONS)
    coords = {"optimizer": ("optimizer", labels)}
    dims3 = ("optimizer", "path", "step")
    return {
        "path_position": xr.DataArray(position, dims=(*dims3, "axis"), coords={**coords, axis[0]: axis}),
        "path_value": xr.DataArray(value, dims=dims3, coords=coords),
        "path_grad_norm": xr.DataArray(grad_norm, dims=dims3, coords=coords),
        "path_stop_step": xr.DataArray(stop_step, dims=dims3[:2], coords=coords),
        "path_stop_reason": xr.DataArray(reason, dims=dims3[:2], coords=coords),
    }


def _names(codes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Stop codes as their names (text arrays read better than indexes into an attribute)."""
    table = np.array([*names, "unknown"], dtype=object)
    c = np.asarray(codes, dtype=np.int64)
    return table[np.where((c >= 0) & (c < len(names)), c, len(names))]
