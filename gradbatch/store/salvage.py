"""A partial file whose overlays a failed write left damaged, rebuilt without them.

A file size limit or a full disk that hits while a job's paths, basins or streamlines are
written (outside SWMR mode, after the fields) can leave their metadata pointing past the end
of the file ("addr overflow"): the group reads no further, and a resumed run cannot delete it
to write it again. Everything written before (root and job attributes, coordinates, fields,
pyramid levels and the ``_tiles`` tables) was flushed whole before the overlays started, and
is kept: :func:`salvage_partial` copies it (HDF5's object copy: chunks as they are stored,
dimension scales attached anew) into a fresh file that replaces the partial one, leaving out
the unfinished jobs' overlays, which the resumed run computes and writes again.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import StoreError
from . import layout as L
from .failures import h5_reason

__all__ = ["OVERLAYS", "damaged_overlays", "salvage_partial"]

OVERLAYS = (L.PATHS, L.BASINS, L.STREAMLINES, L.LANDSCAPE)
"""A job's groups written after its fields; a resumed run writes them again."""

_DAMAGE = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError)
_SCALE_ATTRS = ("DIMENSION_LIST", "REFERENCE_LIST")  # object references: made anew by attaching


def _open(path: Path) -> h5py.File:
    return h5py.File(path, "r", locking=False)


def _read_whole(obj: h5py.HLObject) -> None:
    """Read ``obj`` and everything under it (attributes, data): what deleting it would touch."""
    for key in obj.attrs:
        obj.attrs[key]
    if isinstance(obj, h5py.Dataset):
        obj[()]
        return
    for name in obj:
        _read_whole(obj[name])


def damaged_overlays(path: Path) -> list[str]:
    """The overlay groups of ``path``'s unfinished jobs that cannot be read whole (their
    metadata or data lies past the file's end, or is torn), as ``/<job>/<overlay>``. Damage
    elsewhere is not looked for here: the resumed run's checks of the job refuse it."""
    damaged: list[str] = []
    try:
        f = _open(path)
    except _DAMAGE:
        return []  # not openable: the resumed run's checks say why
    with f:
        for job in _members(f):
            try:
                g = f[job]
                if not isinstance(g, h5py.Group) or g.attrs.get(L.COMPLETE, False):
                    continue
                members = set(g)
            except _DAMAGE:
                continue  # the job's own group does not read: nothing to salvage it from
            for name in OVERLAYS:
                if name in members:
                    try:
                        _read_whole(g[name])
                    except _DAMAGE:
                        damaged.append(f"/{job}/{name}")
    return damaged


def _members(g: h5py.Group) -> list[str]:
    try:
        return list(g)
    except _DAMAGE:
        return []


def salvage_partial(path: Path) -> list[str]:
    """Rebuild ``path`` without its unfinished jobs' overlays if any of them is damaged (see
    :func:`damaged_overlays`); returns what was left out ([]: the file was left alone). What
    cannot be copied is a :class:`StoreError` saying so; the partial file is then unchanged."""
    damaged = damaged_overlays(path)
    if not damaged:
        return []
    tmp = path.with_name(path.name + ".salvage")
    try:
        with _open(path) as src, h5py.File(tmp, "w", libver="latest", locking=False, track_order=True) as dst:
            _copy_attrs(src, dst)
            copies: dict[int, tuple[h5py.Dataset, h5py.Dataset]] = {}
            for job in src:
                g = src[job]
                if not isinstance(g, h5py.Group):
                    raise ValueError(f"/{job} is not a job's group")
                skip = () if g.attrs.get(L.COMPLETE, False) else OVERLAYS
                _copy_group(src, g, dst, job, skip, copies)
            _attach_scales(copies)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except _DAMAGE as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"{path}: cannot be resumed: {', '.join(damaged)} cannot be read, and the rest could not be "
            f"copied out ({h5_reason(exc)}); run again with --overwrite to start afresh"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return damaged


def _copy_group(
    src: h5py.File,
    g: h5py.Group,
    parent: h5py.Group,
    name: str,
    skip: tuple[str, ...],
    copies: dict[int, tuple[h5py.Dataset, h5py.Dataset]],
) -> None:
    """``g`` as ``parent/name`` with its creation settings (link order) and attributes, then
    its members but ``skip`` (names directly in ``g``); each dataset is noted in ``copies``
    (source object address: source, copy) for its dimension scales, attached once all are copied."""
    made = g.id.get_create_plist()  # its creation orders only: the list as a whole holds file addresses
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_link_creation_order(made.get_link_creation_order())
    gcpl.set_attr_creation_order(made.get_attr_creation_order())
    gid = h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
    out = h5py.Group(gid)
    _copy_attrs(g, out)
    for member in g:
        if member in skip:
            continue
        obj = g.get(member, getlink=True)
        if not isinstance(obj, h5py.HardLink):
            raise ValueError(f"{g.name}/{member} is a link, not a dataset or group gradbatch wrote")
        item = g[member]
        if isinstance(item, h5py.Group):
            _copy_group(src, item, out, member, (), copies)
            continue
        src.copy(item, out, member, without_attrs=True)
        copy = out[member]
        _copy_attrs(item, copy, skip=_SCALE_ATTRS)  # a scale's CLASS and NAME as stored: still a scale
        copies[h5py.h5o.get_info(item.id).addr] = (item, copy)


def _attach_scales(copies: dict[int, tuple[h5py.Dataset, h5py.Dataset]]) -> None:
    """Attach to each copied dataset the copies of the scales its source had, dimension by
    dimension. Scales are found by address: their names would be looked up through the
    damaged groups too."""
    for item, copy in copies.values():
        if "DIMENSION_LIST" not in item.attrs:
            continue
        for dim, d in enumerate(item.dims):
            for scale in d.values():
                found = copies.get(h5py.h5o.get_info(scale.id).addr)
                if found is None:
                    raise ValueError(f"{item.name}: a dimension scale of dimension {dim} lies outside what is kept")
                copy.dims[dim].attach_scale(found[1])


def _copy_attrs(src: h5py.HLObject, dst: h5py.HLObject, skip: tuple[str, ...] = ()) -> None:
    """Every attribute of ``src`` but ``skip`` onto ``dst``, with its stored type and shape."""
    for key in src.attrs:
        if key in skip:
            continue
        aid = src.attrs.get_id(key)
        space = aid.get_space()
        new = h5py.h5a.create(dst.id, key.encode(), aid.get_type(), space)
        if space.get_simple_extent_type() != h5py.h5s.NULL:
            buf = np.empty(aid.shape, dtype=aid.dtype)
            aid.read(buf)
            new.write(buf)
