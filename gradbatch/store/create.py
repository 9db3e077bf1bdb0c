"""A job's group made (datasets, pyramid groups, done map), or an existing one checked before a
resumed run adds to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from .._version import __version__
from ..errors import StoreError
from ..grid import TileLayout, level_axis_values, level_shape
from . import layout as L
from .chunks import LevelChunks
from .encode import encode_attr, filters
from .reader import check_job
from .recovery import stored_code_hash, was_repaired
from .stats import tile_ranges

__all__ = ["JobSpec", "mark_format", "create_job", "resumable_tiles"]


class JobSpec(Protocol):
    """What a job's group is made from (:class:`gradbatch.store.JobWriter` is one)."""

    path: Path
    job: str
    fields: Sequence[str]
    axes: Sequence[tuple[str, np.ndarray]]  # (name, coordinates), grid order
    lay: TileLayout
    levels: int
    compression: str
    attrs: Mapping[str, Any]
    check_width: int
    axis_attrs: Mapping[str, Mapping[str, str]]  # axis -> {long_name, units}, where given


def mark_format(f: h5py.File) -> None:
    """The root attributes, on a file that has none yet."""
    if L.FORMAT_ATTR not in f.attrs:
        f.attrs[L.FORMAT_ATTR] = L.FORMAT
        f.attrs[L.VERSION_ATTR] = __version__


def create_job(f: h5py.File, spec: JobSpec, chunks: LevelChunks) -> None:
    """The job's group: provenance, fields and coordinates per level, the tile bookkeeping."""
    g = f.create_group(spec.job)
    for key, value in spec.attrs.items():
        g.attrs[key] = encode_attr(value)
    g.attrs[L.COMPLETE] = False
    g.attrs[L.FIELDS] = encode_attr(list(spec.fields))
    g.attrs[L.TILE] = encode_attr(list(spec.lay.tile))
    g.attrs[L.LEVELS] = spec.levels
    _datasets(g, spec, spec.lay.shape, spec.lay.tile, 0)
    for k in range(1, spec.levels + 1):
        lg = g.create_group(L.level_group(k))
        lg.attrs[L.FACTOR] = 1 << k
        _datasets(lg, spec, level_shape(spec.lay.shape, k), chunks.chunk(k), k)
    t = g.create_group(L.TILES)
    leaf = lambda name: name.rsplit("/", 1)[1]  # the datasets of the _tiles group
    ntiles = int(np.prod(spec.lay.counts))
    t.create_dataset(leaf(L.DONE), shape=spec.lay.counts, dtype="u1", fillvalue=0)
    t.create_dataset(leaf(L.NONFINITE), shape=(ntiles, len(spec.fields), 3), dtype="i8", fillvalue=0)
    tile_ranges(t, ntiles, len(spec.fields))
    if spec.check_width:
        t.create_dataset(leaf(L.CHECK), shape=(ntiles, spec.check_width), dtype="f8", fillvalue=np.nan)


def _datasets(g: h5py.Group, spec: JobSpec, shape: tuple[int, ...], chunks: tuple[int, ...], level: int) -> None:
    """One level's coordinates (dimension scales) and its fields, chunked, NaN until written."""
    dtype = spec.axes[0][1].dtype
    scales = []
    for name, values in spec.axes:
        coords = level_axis_values(values, level) if level else values
        d = g.create_dataset(name, data=coords)
        d.make_scale(name)
        for key, text in spec.axis_attrs.get(name, {}).items():
            d.attrs[key] = text
        scales.append(d)
    settings = filters(spec.compression)
    chunks = tuple(min(c, n) for c, n in zip(chunks, shape))
    for name in spec.fields:
        d = g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, fillvalue=np.nan, **settings)
        for dim, scale in enumerate(reversed(scales)):
            d.dims[dim].label = scale.name.rsplit("/", 1)[-1]
            d.dims[dim].attach_scale(scale)


def resumable_tiles(g: h5py.Group, spec: JobSpec, chunks: LevelChunks) -> set[int]:
    """The done tiles of an existing job group that a resumed run keeps, once the group is
    checked to be the same job (settings, tile shape, code) and intact."""
    path, job = spec.path, spec.job
    try:  # a full disk as the file's structure was made can leave it unusable: say so
        check_job(path, g, overlays=False)
    except StoreError as exc:
        raise StoreError(
            f"{path}: cannot be resumed: {str(exc).removeprefix(f'{path}: ')}; run "
            "again with --overwrite to start afresh"
        ) from None
    if g.attrs.get(L.COMPLETE, False):
        raise StoreError(f"{path}: job {job!r} is already complete")
    if g.attrs.get(L.JOB_YAML, "") != spec.attrs.get(L.JOB_YAML, ""):
        raise StoreError(
            f"{path}: job {job!r} was started with different settings; run again with --overwrite to start afresh"
        )
    if [int(t) for t in g.attrs.get(L.TILE, [])] != list(spec.lay.tile):
        raise StoreError(f"{path}: job {job!r} was started with another tile shape")
    for name in (L.DONE, L.NONFINITE) + ((L.CHECK,) if spec.check_width else ()):
        if name not in g:
            raise StoreError(
                f"{path}: job {job!r} has no {name} (started by an older "
                "gradbatch, or damaged); run again with --overwrite to start afresh"
            )
    if stored_code_hash(g) != spec.attrs.get(L.CODE_HASH):
        raise StoreError(
            f"{path}: job {job!r} was started with other code for its "
            f"callable {spec.attrs.get(L.FUNCTION)!r} (its source files changed); run "
            "again with --overwrite to start afresh"
        )
    done = np.asarray(g[L.DONE][...]).ravel()
    tile_ranges(g[L.TILES], done.size, len(spec.fields))
    tiles = set(int(i) for i in np.flatnonzero(done))
    if was_repaired(path):
        tiles = _readable(g, spec, tiles)
    return chunks.complete_groups(tiles)


def _readable(g: h5py.Group, spec: JobSpec, tiles: set[int]) -> set[int]:
    """The done tiles of a repaired file whose data reads back (else they are recomputed)."""
    good = set()
    for flat in sorted(tiles):
        sl = spec.lay.tile_of(flat).slices
        try:
            for name in spec.fields:
                g[name][sl]
            good.add(flat)
        except (OSError, RuntimeError, ValueError):
            continue
    return good
