"""Checked access to a gradbatch file: every h5py read of the readers goes through here.

A reader never trusts the file. What it relies on is checked first (superblock, attributes,
shapes: metadata only, cheap), and every h5py access goes through :func:`reading` or the
helpers built on it, so a damaged file ends in one StoreError naming the file and the object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import GradbatchError, StoreError
from . import layout as L
from .encode import CHUNK_CACHE_BYTES
from .recovery import open_swmr, superblock_swmr

__all__ = [
    "reading",
    "child",
    "read_array",
    "attr_value",
    "bad_attr",
    "names_attr",
    "int_attr",
    "flag_attr",
    "plain",
    "table",
    "open_store",
    "job_names",
    "partial_path",
    "attrs_of",
    "group_keys",
]

_DAMAGE = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError)


def partial_path(path: Path) -> Path:
    """Where a job file is written until it is complete."""
    return path.with_name(path.name + ".partial")


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Turn what h5py raises on a damaged file into a StoreError naming ``path`` and ``what``."""
    try:
        yield
    except GradbatchError:
        raise
    except _DAMAGE as exc:
        why = exc.args[0] if exc.args and isinstance(exc.args[0], str) else f"{type(exc).__name__}: {exc}"
        raise StoreError(f"{path}: cannot read {what}: the file is damaged ({why})") from None


def child(path: str | Path, g: h5py.Group, name: str, kind: type = h5py.Dataset) -> Any:
    """``g[name]`` (a relative path), checked: present, not a link to another file, of ``kind``."""
    obj: Any = g
    for part in name.split("/"):
        full = f"{obj.name.rstrip('/')}/{part}"
        with reading(path, full):
            link = obj.get(part, getlink=True) if isinstance(obj, h5py.Group) else None
            if link is None:
                raise StoreError(f"{path}: {full} is missing (a damaged file, or not written by gradbatch)")
            if isinstance(link, h5py.ExternalLink):
                raise StoreError(
                    f"{path}: {full} is a link to another file ({link.filename}:{link.path}); "
                    "a gradbatch file holds its own data"
                )
            obj = obj[part]  # a soft link that loops or dangles fails here
    if not isinstance(obj, kind):
        found = "group" if isinstance(obj, h5py.Group) else "dataset"
        raise StoreError(f"{path}: {obj.name} is a {found}; expected a {kind.__name__.lower()}")
    return obj


def read_array(path: str | Path, d: h5py.Dataset, sel: Any = Ellipsis) -> np.ndarray:
    """``d[sel]`` as an array; a damaged dataset is a StoreError naming it."""
    with reading(path, d.name):
        return np.asarray(d[sel])


def attr_value(path: str | Path, obj: h5py.HLObject, key: str) -> Any:
    """Attribute ``key`` of ``obj`` as stored (None: absent)."""
    with reading(path, f"attribute {key!r} of {obj.name}"):
        return obj.attrs[key] if key in obj.attrs else None


def attrs_of(path: str | Path, obj: h5py.HLObject) -> dict[str, Any]:
    """Every attribute of ``obj`` as plain Python (see :func:`plain`)."""
    with reading(path, f"the attributes of {obj.name}"):
        return {str(k): plain(v) for k, v in obj.attrs.items()}


def bad_attr(path: str | Path, obj: h5py.HLObject, key: str, value: Any, expected: str) -> StoreError:
    shown = repr(plain(value))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return StoreError(f"{path}: attribute {key!r} of {obj.name} is {shown}; expected {expected}")


def names_attr(path: str | Path, g: h5py.Group, key: str) -> tuple[str, ...]:
    v = plain(attr_value(path, g, key))
    if isinstance(v, str) and v.startswith("["):
        try:
            v = json.loads(v)  # an empty list is stored as JSON text
        except ValueError:
            pass
    if isinstance(v, list) and all(isinstance(n, str) and n and "/" not in n for n in v):
        return tuple(v)
    raise bad_attr(path, g, key, v, "a list of names")


def int_attr(path: str | Path, g: h5py.Group, key: str, lo: int, hi: int) -> int:
    v = plain(attr_value(path, g, key))
    if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi:
        return v
    raise bad_attr(path, g, key, v, f"an integer from {lo} to {hi}")


def flag_attr(path: str | Path, g: h5py.Group, key: str) -> bool:
    v = plain(attr_value(path, g, key))
    if v is None or isinstance(v, bool):
        return bool(v)
    raise bad_attr(path, g, key, v, "true or false")


def plain(v: Any) -> Any:
    """An attribute's value as plain Python: numpy scalars and arrays converted, bytes decoded."""
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()] if v.ndim else plain(v.item())
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return plain(v.item())
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def table(path: str | Path, g: h5py.Group, name: str, shape: tuple[int | None, ...], kinds: str) -> np.ndarray:
    """A small dataset read whole, checked: ``shape`` (None: any length) and dtype kind."""
    d = child(path, g, name)
    if (
        d.ndim != len(shape)
        or any(n is not None and n != m for n, m in zip(shape, d.shape))
        or d.dtype.kind not in kinds
    ):
        want = " x ".join("N" if n is None else str(n) for n in shape)
        raise StoreError(f"{path}: {d.name} is {d.shape} {d.dtype}; expected {want} ({kinds!r} kind)")
    return read_array(path, d)


def open_store(path: str | Path) -> h5py.File:
    """Open a gradbatch file for reading, with a clear error for anything else."""
    p = Path(path)
    if not p.exists():
        hint = f"; a run in progress or interrupted writes {partial_path(p).name}" if partial_path(p).exists() else ""
        raise StoreError(f"{p}: no such file{hint}")
    if p.is_dir():
        raise StoreError(f"{p}: is a folder, not an HDF5 file")
    if not p.is_file():
        raise StoreError(f"{p}: is not a regular file (a pipe or a device?); expected an HDF5 file")
    swmr = superblock_swmr(p)
    if p.stat().st_size == 0:
        raise StoreError(f"{p}: is empty (0 bytes), not an HDF5 file")
    if not h5py.is_hdf5(p):
        raise StoreError(f"{p}: not an HDF5 file")
    try:
        f = open_swmr(p) if swmr else h5py.File(p, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as exc:
        raise StoreError(f"{p}: cannot be opened ({exc})") from None
    try:
        found = plain(attr_value(p, f, L.FORMAT_ATTR))
    except BaseException:
        f.close()
        raise
    if found != L.FORMAT:
        f.close()
        what = f"format {found!r}" if found is not None else f"no {L.FORMAT_ATTR!r} attribute"
        raise StoreError(f"{p}: not a gradbatch file ({what}; expected {L.FORMAT!r})")
    return f


def job_names(path: str | Path, f: h5py.File) -> list[str]:
    """The file's jobs (its top-level groups), in file order."""
    names = []
    with reading(path, "the list of jobs"):
        keys = list(f.keys())
    for name in keys:
        with reading(path, f"/{name}"):
            link = f.get(name, getlink=True)
            if isinstance(link, h5py.HardLink) and not isinstance(f[name], h5py.Group):
                continue  # a dataset at the top: not a job
        child(path, f, name, h5py.Group)  # a link out of the file or a loop is damage
        names.append(name)
    return names


def group_keys(path: str | Path, g: h5py.Group, what: str) -> list[str]:
    """The names in group ``g``, in its order (``what``: how an error names the group)."""
    with reading(path, what):
        return list(g.keys())
