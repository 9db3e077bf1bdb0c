"""The HDF5 file: one group per job, one dataset per field, a pyramid, a per-tile done map.

Layout (see docs/format.md for the full description)::

    /                               attrs: gradbatch_format, gradbatch_version
    /<job>/                         attrs: provenance (function, grid, dtype, device, versions,
                                           timings, job YAML, complete ...)
    /<job>/<axis>                   1D coordinates, HDF5 dimension scales
    /<job>/<field>                  (… , y, x) arrays, chunked by tile, dims labelled by axis
    /<job>/levels/<k>/<axis|field>  2^k block means, same layout
    /<job>/_tiles/done              uint8 per tile: 1 once the tile's data is on disk
/<job>/_tiles/nonfinite         int64 (tiles, fields, 3): NaN, +inf, -inf points of each tile
/<job>/_tiles/check             float64 (tiles, 4 + axes): each tile's gradient check (if asked)

A job writes to ``<output>.partial`` and the file is renamed to ``<output>`` only when every job
of that file has finished, so a killed or failed run never leaves a file that looks complete.
The writer holds the file in SWMR mode: readers may open it while tiles land, and a crash leaves
the structure readable. A tile's done bit is set only after a flush has put its data on disk.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from ._h5clear import (SWMR_WRITE_ACCESS, WRITE_ACCESS, clear_write_flags, held_by_another_process, raise_eof,
                       read_superblock)
from .errors import GradbatchError, StoreError
from .records import BasinsResult, Descent, Streamlines
from .grid import Tile, TileLayout, level_axis_values, level_shape

__all__ = ["FORMAT", "partial_path", "JobWriter", "commit", "FieldInfo", "JobInfo", "StoreInfo",
           "inspect", "read_field", "open_store", "job_complete", "write_paths", "write_basins",
           "write_streamlines", "write_failures", "recover_partial", "partial_jobs", "HeldJob", "read_back",
           "tile_stats"]

FORMAT = "gradbatch/1"
FLUSH_INTERVAL_S = 1.0
CHUNK_CACHE_BYTES = 64 << 20


def partial_path(path: Path) -> Path:
    """Where a job file is written until it is complete."""
    return path.with_name(path.name + ".partial")


class ChunkEncoder:
    """Encodes a tile's fields into the chunks the job's file would hold: the same dataset
    definition (shape, chunks, dtype, fill, filters) in an in-memory HDF5 file, written, then
    read back raw. A process other than the writer (a cluster worker) can so do the
    compressing, and the writer stores the bytes as they are: the file is the same."""

    def __init__(self, lay: TileLayout, dtype: np.dtype, compression: str) -> None:
        self.lay = lay
        self.dtype = np.dtype(dtype)
        self.filters = _filters(compression)
        self.count = 0

    def encode(self, tile: Tile, fields: Mapping[str, np.ndarray]) -> dict[str, tuple[int, bytes]]:
        self.count += 1
        chunks = tuple(min(c, n) for c, n in zip(self.lay.tile, self.lay.shape))
        out = {}
        # a fresh in-memory file per tile: memory stays one tile's chunks
        with h5py.File(f"gradbatch-encode-{os.getpid()}-{self.count}.h5", "w", driver="core",
                       backing_store=False) as f:
            for name, data in fields.items():
                d = f.create_dataset(name, shape=self.lay.shape, dtype=self.dtype, chunks=chunks,
                                     fillvalue=np.nan, **self.filters)
                d.write_direct(np.ascontiguousarray(data, dtype=self.dtype), dest_sel=tile.slices)
                mask, raw = d.id.read_direct_chunk(tile.start)
                out[name] = (int(mask), bytes(raw))
        return out


def _filters(compression: str) -> dict[str, Any]:
    """HDF5 filter settings for ``compression`` ("lz4", "zstd", "gzip" or "none")."""
    if compression == "lz4":
        return dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE))
    if compression == "zstd":
        return dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.SHUFFLE))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    return {}


def _attr(value: Any) -> Any:
    """Attributes HDF5 can hold: numbers and strings as they are, the rest as JSON text."""
    if isinstance(value, str):
        return str(value)  # plain str: h5py rejects subclasses such as torch's TorchVersion
    if isinstance(value, (int, float, bool, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    return json.dumps(value)


@dataclass
class JobWriter:
    """Creates (or reopens, to resume) one job's group in a partial file and writes its tiles.

    ``fields``: dataset names; ``axes``: (name, coordinates) in grid order; ``lay``: tile layout
    in array order; ``levels``: pyramid levels beyond the full grid.
    """

    path: Path
    job: str
    fields: Sequence[str]
    axes: Sequence[tuple[str, np.ndarray]]
    lay: TileLayout
    levels: int
    compression: str  # "lz4" | "zstd" | "gzip" | "none"
    attrs: Mapping[str, Any]
    check_width: int = 0  # columns of a tile's gradient-check row (0: the job has no check)
    _file: h5py.File | None = field(default=None, init=False, repr=False)
    _pending: list[int] = field(default_factory=list, init=False, repr=False)
    _groups: dict[tuple[int, tuple[int, ...]], tuple[dict[str, np.ndarray], int]] = field(
        default_factory=dict, init=False, repr=False)
    _last_flush: float = field(default=0.0, init=False, repr=False)
    _failed: bool = field(default=False, init=False, repr=False)
    _handles: dict[str, h5py.Dataset] = field(default_factory=dict, init=False, repr=False)

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> set[int]:
        """Create or reopen the group; returns the flat numbers of tiles already done."""
        f = self._open_for_writing()
        try:
            if "gradbatch_format" not in f.attrs:
                f.attrs["gradbatch_format"] = FORMAT
                from . import __version__
                f.attrs["gradbatch_version"] = __version__
            if self.job in f:
                done = self._reopen(f[self.job])
            else:
                self._create(f)
                done = set()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        self._file = f
        self._last_flush = time.monotonic()
        return done

    def _open_for_writing(self) -> h5py.File:
        exists = self.path.exists()
        for attempt in range(2):
            try:
                return h5py.File(self.path, "a" if exists else "w", libver="latest", locking=False,
                                 rdcc_nbytes=CHUNK_CACHE_BYTES, track_order=True)
            except OSError as exc:
                if attempt == 0 and exists and "already open for write" in str(exc):
                    # A writer killed mid-run leaves its "open" flags set. Clear them only if
                    # no live process holds the file (HDF5 keeps an flock while writing).
                    if held_by_another_process(self.path):
                        raise StoreError(f"{self.path}: another process is writing this file") from None
                    try:
                        clear_write_flags(self.path)
                    except (OSError, ValueError) as why:
                        raise StoreError(f"{self.path}: cannot recover the file of a killed run "
                                         f"({why}); start again with --overwrite") from None
                    continue
                raise StoreError(f"{self.path}: cannot open for writing ({exc}); if it is a damaged "
                                 "partial file from a killed run, start again with --overwrite") from None
        raise AssertionError("unreachable")

    def _create(self, f: h5py.File) -> None:
        g = f.create_group(self.job)
        for key, value in self.attrs.items():
            g.attrs[key] = _attr(value)
        g.attrs["complete"] = False
        g.attrs["fields"] = _attr(list(self.fields))
        g.attrs["tile"] = _attr(list(self.lay.tile))
        g.attrs["levels"] = self.levels
        self._datasets(g, self.lay.shape, self.lay.tile, 0)
        for k in range(1, self.levels + 1):
            lg = g.create_group(f"levels/{k}")
            lg.attrs["factor"] = 1 << k
            self._datasets(lg, level_shape(self.lay.shape, k), self._level_chunk(k), k)
        t = g.create_group("_tiles")
        t.create_dataset("done", shape=self.lay.counts, dtype="u1", fillvalue=0)
        ntiles = int(np.prod(self.lay.counts))
        t.create_dataset("nonfinite", shape=(ntiles, len(self.fields), 3), dtype="i8", fillvalue=0)
        if self.check_width:
            t.create_dataset("check", shape=(ntiles, self.check_width), dtype="f8", fillvalue=np.nan)

    def _datasets(self, g: h5py.Group, shape: tuple[int, ...], chunks: tuple[int, ...], level: int) -> None:
        dtype = self.axes[0][1].dtype
        scales = []
        for name, values in self.axes:
            coords = level_axis_values(values, level) if level else values
            d = g.create_dataset(name, data=coords)
            d.make_scale(name)
            scales.append(d)
        filters = _filters(self.compression)
        chunks = tuple(min(c, n) for c, n in zip(chunks, shape))
        for name in self.fields:
            d = g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks,
                                 fillvalue=np.nan, **filters)
            for dim, scale in enumerate(reversed(scales)):
                d.dims[dim].label = scale.name.rsplit("/", 1)[-1]
                d.dims[dim].attach_scale(scale)

    def _reopen(self, g: h5py.Group) -> set[int]:
        try:  # a full disk as the file's structure was made can leave it unusable: say so
            check_job(self.path, g, overlays=False)
        except StoreError as exc:
            raise StoreError(f"{self.path}: cannot be resumed: {str(exc).removeprefix(f'{self.path}: ')}; run "
                             "again with --overwrite to start afresh") from None
        if g.attrs.get("complete", False):
            raise StoreError(f"{self.path}: job {self.job!r} is already complete")
        stored = g.attrs.get("job_yaml", "")
        if stored != self.attrs.get("job_yaml", ""):
            raise StoreError(
                f"{self.path}: job {self.job!r} was started with different settings; "
                "run again with --overwrite to start afresh"
            )
        if [int(t) for t in g.attrs.get("tile", [])] != list(self.lay.tile):
            raise StoreError(f"{self.path}: job {self.job!r} was started with another tile shape")
        for name in ("_tiles/done", "_tiles/nonfinite") + (("_tiles/check",) if self.check_width else ()):
            if name not in g:
                raise StoreError(f"{self.path}: job {self.job!r} has no {name} (started by an older "
                                 "gradbatch, or damaged); run again with --overwrite to start afresh")
        if stored_code_hash(g) != self.attrs.get("code_hash"):
            raise StoreError(f"{self.path}: job {self.job!r} was started with other code for its "
                             f"callable {self.attrs.get('function')!r} (its source files changed); run "
                             "again with --overwrite to start afresh")
        done = np.asarray(g["_tiles/done"][...]).ravel()
        tiles = set(int(i) for i in np.flatnonzero(done))
        if self.path.resolve() in _REPAIRED:
            tiles = self._readable(g, tiles)
        return self.complete_groups(tiles)

    def _readable(self, g: h5py.Group, tiles: set[int]) -> set[int]:
        """The done tiles of a repaired file whose data reads back (else they are recomputed)."""
        good = set()
        for flat in sorted(tiles):
            sl = self.lay.tile_of(flat).slices
            try:
                for name in self.fields:
                    g[name][sl]
                good.add(flat)
            except (OSError, RuntimeError, ValueError):
                continue
        return good

    # -- writing ------------------------------------------------------------------------------
    # Pyramid chunks: level k keeps the tile's extent in the last dimension, so one chunk spans
    # 2^k consecutive tiles (the order tiles are computed in) and holds their level-k pieces:
    #
    #     tiles along the last dim:  | t0 | t1 | t2 | t3 |      level 0: one chunk per tile
    #     level 1 chunks:            | t0 t1   | t2 t3   |      (rows halved, columns shared)
    #     level 2 chunks:            | t0 t1 t2 t3       |
    #
    # A chunk is buffered until all its tiles have arrived, then written whole: few, large
    # chunks instead of one tiny chunk per tile and level. Tiles are marked done when their
    # deepest-level chunk is written, so a resumed run never finds a half-filled chunk.
    def _level_chunk(self, k: int) -> tuple[int, ...]:
        shape = level_shape(self.lay.shape, k)
        chunk = tuple(max(1, t >> k) for t in self.lay.tile[:-1]) + (self.lay.tile[-1],)
        return tuple(min(c, n) for c, n in zip(chunk, shape))

    def _group_tiles(self, index: tuple[int, ...], k: int) -> list[tuple[int, ...]]:
        """The tiles whose level-k pieces share a chunk with tile ``index``."""
        f = 1 << k
        first = (index[-1] // f) * f
        last = min(first + f, self.lay.counts[-1])
        return [index[:-1] + (i,) for i in range(first, last)]

    def complete_groups(self, done: set[int]) -> set[int]:
        """Keep only done tiles whose whole deepest-level chunk group is done."""
        if self.levels == 0:
            return done
        counts = self.lay.counts
        keep = set()
        for flat in done:
            index = tuple(int(i) for i in np.unravel_index(flat, counts))
            group = [int(np.ravel_multi_index(t, counts)) for t in self._group_tiles(index, self.levels)]
            if all(g in done for g in group):
                keep.add(flat)
        return keep

    def write_tile(self, tile: Tile, fields: Mapping[str, np.ndarray],
                   levels: Sequence[Mapping[str, np.ndarray]],
                   chunks: Mapping[str, tuple[int, bytes]] | None = None,
                   nonfinite: np.ndarray | None = None, check: Sequence[float] | None = None) -> None:
        """Write a tile's fields (valid shape) and its pyramid pieces; mark it done once its
        data and its pyramid chunks are flushed. ``chunks``: fields already encoded by a
        :class:`ChunkEncoder` (filter mask, bytes), stored as they are. ``nonfinite``: the
        tile's (fields, 3) NaN/+inf/-inf counts; ``check``: its gradient-check row. Both are
        written before the tile's done bit, so a resumed run's totals cover every tile."""
        assert self._file is not None, "open() first"
        if self._failed:
            raise StoreError(f"{self.path}: an earlier write failed; nothing more is written")
        try:
            with _WatchWrites():
                self._write_tile(tile, fields, levels, chunks, nonfinite, check)
        except (KeyError, ValueError) as exc:  # h5py cannot open a dataset: metadata damaged earlier
            self._failed = True
            raise StoreError(f"{self.path}: cannot write tile {tile.index}: the file is damaged ({_h5_reason(exc)}; "
                             "a disk that filled up as it was made?); run again with --overwrite to start "
                             "afresh") from None
        except (OSError, RuntimeError) as exc:  # h5py: a failed write or flush
            self._failed = True
            raise StoreError(f"{self.path}: writing tile {tile.index} failed ({_h5_reason(exc)}; disk full "
                             "or file size limit?); the tiles written before it stay for --resume") from None

    def _write_tile(self, tile: Tile, fields: Mapping[str, np.ndarray],
                    levels: Sequence[Mapping[str, np.ndarray]], chunks: Mapping[str, tuple[int, bytes]] | None,
                    nonfinite: np.ndarray | None, check: Sequence[float] | None) -> None:
        assert self._file is not None
        g = self._file[self.job]
        sl = tile.slices
        if nonfinite is not None:
            self._ds("_tiles/nonfinite")[tile.flat] = nonfinite
        if check is not None and self.check_width:
            self._ds("_tiles/check")[tile.flat] = np.asarray(check, dtype=np.float64)
        for name in self.fields:
            if chunks is not None and name in chunks:
                mask, data = chunks[name]
                self._ds(name).id.write_direct_chunk(tile.start, data, mask)
            else:
                self._ds(name).write_direct(np.ascontiguousarray(fields[name]), dest_sel=sl)
        finished: list[tuple[int, ...]] = [tile.index] if not levels else []
        for k, level in enumerate(levels, start=1):
            done_group = self._add_to_group(g, tile, k, level)
            if done_group and k == len(levels):
                finished = self._group_tiles(tile.index, k)
        counts = self.lay.counts
        self._pending.extend(int(np.ravel_multi_index(t, counts)) for t in finished)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def _add_to_group(self, g: h5py.Group, tile: Tile, k: int, level: Mapping[str, np.ndarray]) -> bool:
        """Put a tile's level-k piece into its chunk buffer; write the chunk once it is full."""
        f = 1 << k
        chunk = self._level_chunk(k)
        shape = level_shape(self.lay.shape, k)
        group = tile.index[:-1] + (tile.index[-1] // f,)
        # where the chunk starts in the level array, and its (edge-clipped) shape
        start = tuple(s // f for s in tile.start[:-1]) + (group[-1] * chunk[-1],)
        size = tuple(min(c, n - s) for c, n, s in zip(chunk, shape, start))
        key = (k, group)
        if key not in self._groups:
            dtype = self.axes[0][1].dtype
            self._groups[key] = ({n: np.full(size, np.nan, dtype=dtype) for n in self.fields}, 0)
        buffers, arrived = self._groups[key]
        piece = level[self.fields[0]].shape
        offset = (0,) * (len(start) - 1) + (tile.start[-1] // f - start[-1],)
        inner = tuple(slice(o, o + n) for o, n in zip(offset, piece))
        for name in self.fields:
            buffers[name][inner] = level[name]
        arrived += 1
        if arrived < len(self._group_tiles(tile.index, k)):
            self._groups[key] = (buffers, arrived)
            return False
        del self._groups[key]
        dest = tuple(slice(s, s + n) for s, n in zip(start, size))
        for name in self.fields:
            self._ds(f"levels/{k}/{name}").write_direct(buffers[name], dest_sel=dest)
        return True

    def _ds(self, name: str) -> h5py.Dataset:
        """The job's dataset ``name``, opened once: a dataset handle freed after each write
        would flush its chunk cache on the way, where a failure (full disk) goes unseen."""
        d = self._handles.get(name)
        if d is None:
            assert self._file is not None
            # No chunk cache: every write is a whole chunk (a tile, or a full pyramid group), so
            # it is compressed and written at once, on this thread, and a failure raises here.
            dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
            dapl.set_chunk_cache(0, 0, 1.0)
            gid = self._file[self.job].id
            d = self._handles[name] = h5py.Dataset(h5py.h5d.open(gid, name.encode(), dapl=dapl))
        return d

    def flush(self) -> None:
        """Put written data on disk, then mark the tiles written before it as done."""
        assert self._file is not None
        self._file.flush()
        if self._pending:
            done = self._ds("_tiles/done")
            counts = self.lay.counts
            for flat in self._pending:
                done[np.unravel_index(flat, counts)] = 1
            self._pending.clear()
            self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._file is None:
            return
        f = self._file
        if not self._failed:
            try:
                self.flush()
            except (OSError, RuntimeError) as exc:
                self._failed = True
                self._file = None
                _park(f, self._handles)
                raise StoreError(f"{self.path}: writing the last tiles failed ({_h5_reason(exc)}; disk "
                                 "full or file size limit?); the tiles written before stay for --resume") from None
        self._file = None
        if self._failed:
            _park(f, self._handles)
            return
        self._handles = {}
        try:
            f.close()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            _park(f)
            raise StoreError(f"{self.path}: closing failed ({_h5_reason(exc)}; disk full or file size "
                             "limit?); the tiles written before stay for --resume") from None

    def abandon(self) -> None:
        """Close after a failure: flush what was written, unless writing already failed
        (--resume picks it up), and close."""
        if self._file is not None:
            try:
                self.close()
            except Exception:  # the original failure matters more than a failed close
                self._file = None

    def finalize(self, attrs: Mapping[str, Any]) -> None:
        """Record final attributes (timings, check results) and mark the job complete."""
        with _open_rw(self.path) as f:
            g = f[self.job]
            done = g["_tiles/done"][...]
            if not done.all():
                raise StoreError(f"{self.path}: job {self.job!r} has {int((done == 0).sum())} "
                                 "tiles missing; it cannot be marked complete")
            for k, v in attrs.items():
                g.attrs[k] = _attr(v)
            g.attrs["complete"] = True


def stored_code_hash(g: h5py.Group) -> str | None:
    """The hash of a callable's source files recorded when the job started (None: not a callable)."""
    v = g.attrs.get("code_hash")
    return None if v is None else str(v)


def tile_stats(path: Path, job: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Every tile's non-finite counts (tiles, fields, 3) and gradient-check rows (or None), as
    written with the tiles: totals over these cover the tiles of every run of a resumed job."""
    with h5py.File(path, "r", libver="latest") as f:
        t = f[job]["_tiles"]
        return t["nonfinite"][...], (t["check"][...] if "check" in t else None)


def recover_partial(part: Path) -> None:
    """Make a ``.partial`` that an earlier gradbatch run left openable again, or say exactly why
    it cannot be. Only call it while holding the output's lock (:mod:`gradbatch.lock`): then no
    gradbatch writes the file, and "open for writing" flags in its superblock were left by a
    writer that was killed or failed to close (a full disk), in any phase (tiles in SWMR mode,
    or paths, basins, streamlines and final attributes outside it)."""
    if part.is_symlink():
        raise StoreError(f"{part}: is a symbolic link; gradbatch only resumes the partial files it "
                         "wrote itself (remove the link, or run with --overwrite)")
    if not part.is_file():
        raise StoreError(f"{part}: is not a regular file; remove it or run with --overwrite")
    if held_by_another_process(part):
        raise StoreError(f"{part}: another process holds it open for writing (not a gradbatch run of "
                         "this output: those take its .lock first)")
    try:
        clear_write_flags(part)
        sb = read_superblock(part)
        eof = sb.end if sb is not None else None
    except (OSError, ValueError) as why:
        raise StoreError(f"{part}: cannot be resumed: its superblock is damaged ({why}); run again "
                         "with --overwrite to start afresh") from None
    size = part.stat().st_size
    if eof is not None and size > eof:
        # A close that failed (full disk) can leave metadata written past the end of file the
        # superblock records; HDF5 refuses to read it. Record the real end, as h5clear -i does;
        # commit() reads the whole structure back before it renames the file.
        try:
            raise_eof(part, size)
        except (OSError, ValueError) as why:
            raise StoreError(f"{part}: cannot be resumed: its superblock is damaged ({why}); run again "
                             "with --overwrite to start afresh") from None
    if eof is not None and size < eof:
        # A full disk or a file size limit cut the file short of the space HDF5 had allocated.
        # Everything a successful flush wrote lies before the cut, and only tiles flushed whole
        # are marked done; the rest is recomputed. Pad to the recorded end so HDF5 opens it,
        # and have the writer read every done tile back before trusting it.
        with open(part, "r+b") as fh:
            fh.truncate(eof)
        _REPAIRED.add(part.resolve())


_REPAIRED: set[Path] = set()


@dataclass(frozen=True)
class HeldJob:
    """A job found in an existing file: whether it is complete, and what it was made from."""

    complete: bool
    job_yaml: str
    code_hash: str | None


def partial_jobs(part: Path) -> dict[str, HeldJob]:
    """The jobs a file (partial or complete) holds, with whether each is marked complete and
    the settings and code it was made from; a file that cannot be read is a
    :class:`StoreError` saying why it cannot be resumed."""
    try:
        with _open_swmr(part) as f:  # few read attempts: damaged metadata fails, not hangs
            if f.attrs.get("gradbatch_format") != FORMAT:
                raise StoreError(f"{part}: cannot be resumed: not a gradbatch file; remove it or run "
                                 "with --overwrite")
            return {name: HeldJob(bool(g.attrs.get("complete", False)), str(g.attrs.get("job_yaml", "")),
                                  stored_code_hash(g))
                    for name, g in f.items() if isinstance(g, h5py.Group)}
    except StoreError:
        raise
    except Exception as exc:  # h5py: OSError, KeyError, RuntimeError on damaged metadata
        raise StoreError(f"{part}: cannot be resumed: it cannot be read ({_h5_reason(exc)}); run again "
                         "with --overwrite to start afresh") from None


def read_back(path: Path, jobs: Sequence[str]) -> None:
    """Read the structure and every attribute of ``jobs`` in ``path`` as a reader will: a file
    whose writes did not all reach the disk (a full disk at the last close) is refused here, not
    found out by its first reader."""
    with open_store(path) as f:
        for name in jobs:
            g = child(path, f, name, h5py.Group)
            check_job(path, g)
            with reading(path, f"the attributes of /{name}"):
                for key in g.attrs:
                    g.attrs[key]


def _h5_reason(exc: BaseException) -> str:
    """An h5py error in one short line: HDF5's own text spans lines and buries the cause."""
    import re

    text = " ".join(str(exc).split())
    cause = re.search(r"error message = '([^']+)'", text)
    head = re.split(r" \(|; ", text, maxsplit=1)[0]
    return f"{type(exc).__name__}: {head}{': ' + cause.group(1) if cause else ''}"[:300]


def commit(partial: Path, final: Path, jobs: Sequence[str] = ()) -> None:
    """Make a finished partial file durable, then give it its final name (atomic on one
    filesystem), then make the rename durable: a crash never leaves a complete-looking name on
    data that did not reach the disk.

    ``jobs``: the jobs the file must hold, every one complete, and no others (a resumed partial
    file of a job file that has since changed is refused, not renamed)."""
    if jobs:
        held = partial_jobs(partial)
        extra = sorted(set(held) - set(jobs))
        unfinished = sorted(j for j in jobs if j not in held or not held[j].complete)
        if extra or unfinished:
            what = (f"jobs not in the job file: {', '.join(extra)}" if extra else
                    f"jobs not complete: {', '.join(unfinished)}")
            raise StoreError(f"{partial}: not renamed to {final.name}: it holds {what}; run again with "
                             "--overwrite to start afresh")
        try:
            read_back(partial, jobs)
        except StoreError as exc:
            raise StoreError(f"{partial}: not renamed to {final.name}: it does not read back ({exc}); run "
                             "again with --overwrite to start afresh") from None
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, final)
    try:
        dfd = os.open(final.parent if str(final.parent) else ".", os.O_RDONLY)
    except OSError:
        return  # a folder that cannot be opened (some filesystems): the rename itself is done
    try:
        os.fsync(dfd)
    except OSError:
        pass  # fsync on a folder is unsupported on some filesystems
    finally:
        os.close(dfd)


# -- reading ------------------------------------------------------------------------------------
# A reader never trusts the file. What it relies on is checked first (superblock, attributes,
# shapes: metadata only, cheap), and every h5py access goes through `reading` or the helpers
# built on it, so a damaged file ends in one StoreError naming the file and the object.

_DAMAGE = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError)
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
    attrs: dict[str, Any]  # plain Python values (numpy scalars and arrays converted)
    fields: tuple[FieldInfo, ...]
    axes: tuple[tuple[str, float, float, int], ...]  # (name, first, last, points), grid order
    levels: tuple[tuple[int, ...], ...]  # shape of each pyramid level
    tiles_done: int
    tiles_total: int
    trajectories: dict[str, Any] = field(default_factory=dict)  # summaries of paths/basins/streamlines


@dataclass(frozen=True)
class StoreInfo:
    path: Path
    format: str
    version: str
    jobs: tuple[JobInfo, ...]
    partial: bool


@dataclass(frozen=True)
class JobLayout:
    """A job's structure as checked by :func:`check_job`: what every reader relies on."""

    name: str
    axes: tuple[str, ...]  # grid order
    fields: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # array shape (axes reversed) of level 0, 1, ...


@contextmanager
def reading(path: str | Path, what: str, only_h5py: bool = False) -> Iterator[None]:
    """Turn what h5py raises on a damaged file into a StoreError naming ``path`` and ``what``.

    ``only_h5py``: convert only errors raised inside h5py, for blocks that run other code too
    (drawing): an error of that code is a bug and keeps its traceback."""
    try:
        yield
    except GradbatchError:
        raise
    except _DAMAGE as exc:
        if only_h5py:
            if not _raised_in_h5py(exc):
                raise
            what = _h5py_object(exc) or what
        why = exc.args[0] if exc.args and isinstance(exc.args[0], str) else f"{type(exc).__name__}: {exc}"
        raise StoreError(f"{path}: cannot read {what}: the file is damaged ({why})") from None


def _h5py_object(exc: BaseException) -> str | None:
    """The name of the dataset or group whose h5py method raised ``exc`` (its ``self``)."""
    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, (h5py.Dataset, h5py.Group)):
            try:
                return str(obj.name)
            except _DAMAGE:
                return None
        tb = tb.tb_next
    return None


def _raised_in_h5py(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "h5py" in Path(tb.tb_frame.f_code.co_filename).parts:
            return True
        tb = tb.tb_next
    return False


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
                raise StoreError(f"{path}: {full} is a link to another file ({link.filename}:{link.path}); "
                                 "a gradbatch file holds its own data")
            obj = obj[part]  # a soft link that loops or dangles fails here
    if not isinstance(obj, kind):
        found = "group" if isinstance(obj, h5py.Group) else "dataset"
        raise StoreError(f"{path}: {obj.name} is a {found}; expected a {kind.__name__.lower()}")
    return obj


def _read(path: str | Path, d: h5py.Dataset, sel: Any = Ellipsis) -> np.ndarray:
    with reading(path, d.name):
        return np.asarray(d[sel])


def _attr_value(path: str | Path, obj: h5py.HLObject, key: str) -> Any:
    with reading(path, f"attribute {key!r} of {obj.name}"):
        return obj.attrs[key] if key in obj.attrs else None


def _bad_attr(path: str | Path, obj: h5py.HLObject, key: str, value: Any, expected: str) -> StoreError:
    shown = repr(plain(value))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return StoreError(f"{path}: attribute {key!r} of {obj.name} is {shown}; expected {expected}")


def _names_attr(path: str | Path, g: h5py.Group, key: str) -> tuple[str, ...]:
    v = plain(_attr_value(path, g, key))
    if isinstance(v, str) and v.startswith("["):
        try:
            v = json.loads(v)  # an empty list is stored as JSON text
        except ValueError:
            pass
    if isinstance(v, list) and all(isinstance(n, str) and n and "/" not in n for n in v):
        return tuple(v)
    raise _bad_attr(path, g, key, v, "a list of names")


def _int_attr(path: str | Path, g: h5py.Group, key: str, lo: int, hi: int) -> int:
    v = plain(_attr_value(path, g, key))
    if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi:
        return v
    raise _bad_attr(path, g, key, v, f"an integer from {lo} to {hi}")


def _flag_attr(path: str | Path, g: h5py.Group, key: str) -> bool:
    v = plain(_attr_value(path, g, key))
    if v is None or isinstance(v, bool):
        return bool(v)
    raise _bad_attr(path, g, key, v, "true or false")


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


def _superblock_swmr(p: Path) -> bool:
    """Check the superblock before HDF5 sees the file; True if a writer holds it in SWMR mode.

    A truncated file opened for SWMR reading makes HDF5 retry for minutes, and a reader that
    opens every file for SWMR retries on damaged metadata too: only a file a SWMR writer holds
    (or a killed one left) is opened so, after this check."""
    try:
        sb = read_superblock(p)
    except OSError as exc:
        raise StoreError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if sb is None:
        return False  # not a superblock gradbatch writes: HDF5 checks the rest, without retries
    if not sb.checksum_ok:
        raise StoreError(f"{p}: damaged: its HDF5 superblock does not match its checksum")
    writing = bool(sb.flags & WRITE_ACCESS)
    swmr = writing and bool(sb.flags & SWMR_WRITE_ACCESS)
    if writing and not swmr and held_by_another_process(p):
        raise StoreError(f"{p}: another process is writing it (a step readers cannot share); "
                         "open it when that process has finished")
    size = p.stat().st_size
    if sb.end is not None and size < sb.end:
        raise StoreError(f"{p}: truncated: {size:,} bytes of the {sb.end:,} its superblock records")
    if writing and not swmr:
        raise StoreError(f"{p}: left open for writing by a process that stopped before closing it; "
                         "if it is a run's .partial file, `gradbatch run --resume` finishes it")
    return swmr


SWMR_READ_ATTEMPTS = 30
"""Metadata read attempts of a SWMR reader. HDF5 retries a read whose checksum fails (a
writer may be midway through it), doubling a wait that starts at 1 ns; its default of 100
attempts turned damaged metadata into a hang of hours. 30 give up after about a second, far
longer than a writer's torn write lasts."""


def _open_swmr(p: Path) -> h5py.File:
    """``h5py.File(p, "r", swmr=True)`` with at most :data:`SWMR_READ_ATTEMPTS` read attempts
    (h5py has no setting for them: the HDF5 library h5py loaded is called directly, and where
    it cannot be found, HDF5's default stays)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    cache = list(fapl.get_cache())
    cache[2] = CHUNK_CACHE_BYTES
    fapl.set_cache(*cache)
    setter = _read_attempts_setter()
    if setter is not None:
        setter(fapl.id, SWMR_READ_ATTEMPTS)
    fid = h5py.h5f.open(os.fsencode(p), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


@functools.lru_cache(maxsize=1)
def _read_attempts_setter() -> Any:
    """``H5Pset_metadata_read_attempts`` of the HDF5 library this process loaded for h5py
    (found in /proc/self/maps, so never another copy); None where that cannot be done."""
    import ctypes
    import re

    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read()
    except OSError:
        return None
    for lib in sorted(set(re.findall(r"(/\S*/libhdf5[-.][^/\s]*\.so[^/\s]*)", maps))):
        if "_hl" in lib.rsplit("/", 1)[-1]:
            continue
        try:
            fn = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]  # hid_t is 64 bits since HDF5 1.10
        fn.restype = ctypes.c_int
        return fn
    return None


def open_store(path: str | Path) -> h5py.File:
    """Open a gradbatch file for reading, with a clear error for anything else."""
    p = Path(path)
    if not p.exists():
        hint = f"; a run in progress or interrupted writes {partial_path(p).name}" \
            if partial_path(p).exists() else ""
        raise StoreError(f"{p}: no such file{hint}")
    if p.is_dir():
        raise StoreError(f"{p}: is a folder, not an HDF5 file")
    if not p.is_file():
        raise StoreError(f"{p}: is not a regular file (a pipe or a device?); expected an HDF5 file")
    swmr = _superblock_swmr(p)
    if p.stat().st_size == 0:
        raise StoreError(f"{p}: is empty (0 bytes), not an HDF5 file")
    if not h5py.is_hdf5(p):
        raise StoreError(f"{p}: not an HDF5 file")
    try:
        f = _open_swmr(p) if swmr else h5py.File(p, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as exc:
        raise StoreError(f"{p}: cannot be opened ({exc})") from None
    try:
        found = plain(_attr_value(p, f, "gradbatch_format"))
    except BaseException:
        f.close()
        raise
    if found != FORMAT:
        f.close()
        what = f"format {found!r}" if found is not None else "no 'gradbatch_format' attribute"
        raise StoreError(f"{p}: not a gradbatch file ({what}; expected {FORMAT!r})")
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


def check_job(path: str | Path, g: h5py.Group, overlays: bool = True) -> JobLayout:
    """Check what readers rely on in job group ``g``: its ``axes``, ``fields`` and ``levels``
    attributes, each level's coordinates and fields (shape, dtype), the done map and, with
    ``overlays``, the paths, basins and streamlines. Reads metadata and small tables only."""
    axes = _names_attr(path, g, "axes")
    fields = _names_attr(path, g, "fields")
    levels = _int_attr(path, g, "levels", 0, MAX_LEVELS)
    shape: tuple[int, ...] = ()
    shapes = []
    for k in range(levels + 1):
        lg = g if k == 0 else child(path, g, f"levels/{k}", h5py.Group)
        sizes = []
        for a in axes:
            d = child(path, lg, a)
            if d.ndim != 1 or d.shape[0] < 1 or d.dtype.kind not in "fiu":
                raise StoreError(f"{path}: {d.name} is {d.shape} {d.dtype}; expected coordinates: "
                                 "a non-empty 1D array of numbers")
            sizes.append(d.shape[0])
        here = tuple(reversed(sizes))
        if k == 0:
            shape = here
        elif here != level_shape(shape, k):
            raise StoreError(f"{path}: {lg.name} has coordinates for {here}; expected {level_shape(shape, k)}")
        for fn in fields:
            d = child(path, lg, fn)
            if d.shape != here or d.dtype.kind != "f":
                raise StoreError(f"{path}: {d.name} is {d.shape} {d.dtype}; expected a {here} float array")
        shapes.append(here)
    done = child(path, g, "_tiles/done")
    if done.ndim != len(axes) or done.dtype.kind not in "iub":
        raise StoreError(f"{path}: {done.name} is {done.shape} {done.dtype}; expected a {len(axes)}D integer map")
    if overlays:
        _trajectories(path, g, axes)
    return JobLayout(g.name.lstrip("/"), axes, fields, tuple(shapes))


def inspect(path: str | Path) -> StoreInfo:
    """What a gradbatch file (or a partial one) holds."""
    p = Path(path)
    with open_store(p) as f:
        jobs = tuple(_job_info(p, child(p, f, name, h5py.Group)) for name in job_names(p, f))
        version = plain(_attr_value(p, f, "gradbatch_version"))
        return StoreInfo(p, FORMAT, "" if version is None else str(version), jobs, p.name.endswith(".partial"))


def _job_info(p: Path, g: h5py.Group) -> JobInfo:
    lay = check_job(p, g, overlays=False)
    with reading(p, f"the attributes of {g.name}"):
        attrs = {str(k): plain(v) for k, v in g.attrs.items()}
    complete = _flag_attr(p, g, "complete")
    fields = []
    for fn in lay.fields:
        d = child(p, g, fn)
        with reading(p, d.name):
            dims = tuple(dim.label or (dim[0].name.rsplit("/", 1)[-1] if len(dim) else "") for dim in d.dims)
            fields.append(FieldInfo(fn, dims, tuple(d.shape), str(d.dtype),
                                    tuple(d.chunks) if d.chunks else None,
                                    str(attrs.get("compression", "")), int(d.id.get_storage_size())))
    axes = []
    for a in lay.axes:
        values = _read(p, child(p, g, a))
        axes.append((a, float(values[0]), float(values[-1]), int(values.shape[0])))
    done = _read(p, child(p, g, "_tiles/done"))
    return JobInfo(g.name.lstrip("/"), complete, attrs, tuple(fields), tuple(axes), lay.shapes[1:],
                   int(np.count_nonzero(done)), int(done.size), _trajectories(p, g, lay.axes))


def job_complete(path: str | Path, job: str) -> bool:
    """Whether ``path`` (a finished or partial file) holds ``job`` marked complete."""
    with open_store(path) as f:
        if job not in job_names(path, f):
            return False
        return _flag_attr(path, child(path, f, job, h5py.Group), "complete")


def _table(path: str | Path, g: h5py.Group, name: str, shape: tuple[int | None, ...], kinds: str) -> np.ndarray:
    """A small dataset read whole, checked: ``shape`` (None: any length) and dtype kind."""
    d = child(path, g, name)
    if d.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, d.shape)) \
            or d.dtype.kind not in kinds:
        want = " x ".join("N" if n is None else str(n) for n in shape)
        raise StoreError(f"{path}: {d.name} is {d.shape} {d.dtype}; expected {want} ({kinds!r} kind)")
    return _read(path, d)


def _trajectories(path: str | Path, g: h5py.Group, axes: Sequence[str]) -> dict[str, Any]:
    """Summaries of the paths, basins, landscape and streamlines, their shapes checked on the way."""
    out: dict[str, Any] = {}
    n = len(axes)
    with reading(path, f"the groups of {g.name}"):
        present = set(g.keys())
    if "paths" in present:
        paths = {}
        pgs = child(path, g, "paths", h5py.Group)
        with reading(path, pgs.name):
            labels = list(pgs.keys())
        for label in labels:
            pg = child(path, pgs, label, h5py.Group)
            pos = child(path, pg, "positions")
            if pos.ndim != 3 or pos.shape[2] != n or pos.shape[1] < 1 or pos.dtype.kind != "f":
                raise StoreError(f"{path}: {pos.name} is {pos.shape} {pos.dtype}; expected paths x steps x {n} floats")
            codes = _table(path, pg, "stop_reason", (pos.shape[0],), "iu")
            raw = _attr_value(path, pg, "reasons")
            reasons = [str(r) for r in plain(raw)] if isinstance(plain(raw), list) else []
            stopped = {reasons[c] if 0 <= c < len(reasons) else str(c): int((codes == c).sum())
                       for c in np.unique(codes).tolist()}
            optimizer = plain(_attr_value(path, pg, "optimizer"))
            paths[label] = {"optimizer": str(optimizer if optimizer is not None else label),
                            "paths": int(codes.size), "steps": int(pos.shape[1] - 1), "stopped": stopped}
        out["paths"] = paths
    if "basins" in present:
        b = child(path, g, "basins", h5py.Group)
        label = child(path, b, "label")
        if label.ndim != n or label.dtype.kind not in "iu":
            raise StoreError(f"{path}: {label.name} is {label.shape} {label.dtype}; expected a {n}D integer array")
        for i, a in enumerate(axes):
            _table(path, b, a, (label.shape[n - 1 - i],), "fiu")
        kinds = [str(k) for k in plain(_table(path, b, "minima/kind", (None,), "OSU"))]
        k = len(kinds)
        out["basins"] = {"resolution": list(label.shape[::-1]), "minima": k, "kinds": kinds,
                         "points": _table(path, b, "minima/point", (k, n), "f").tolist(),
                         "counts": _table(path, b, "minima/count", (k,), "iu").tolist()}
    if "landscape" in present:
        la = child(path, g, "landscape", h5py.Group)
        keep = ("kind", "model", "loss", "rows", "lstsq", "directions", "loss_at_theta", "explained_variance")
        out["landscape"] = {key: plain(_attr_value(path, la, key)) for key in keep
                            if _attr_value(path, la, key) is not None}
    if "streamlines" in present:
        sl = child(path, g, "streamlines", h5py.Group)
        points = child(path, sl, "points")
        if points.ndim != 2 or points.shape[1] != n or points.dtype.kind != "f":
            raise StoreError(f"{path}: {points.name} is {points.shape} {points.dtype}; expected N x {n} floats")
        offsets = _table(path, sl, "offsets", (None,), "iu")
        if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != points.shape[0] or (np.diff(offsets) < 0).any():
            raise StoreError(f"{path}: {sl.name}/offsets do not split its {points.shape[0]} points into lines")
        fld = plain(_attr_value(path, sl, "field"))
        out["streamlines"] = {"lines": int(offsets.shape[0] - 1), "points": int(points.shape[0]),
                              "field": "" if fld is None else str(fld)}
    return out


def read_field(path: str | Path, job: str, field_name: str, level: int = 0) -> np.ndarray:
    """Read one whole field (or pyramid level) into memory. Mind the size of large jobs."""
    with open_store(path) as f:
        jobs = job_names(path, f)
        if job not in jobs:
            raise StoreError(f"{path}: no job {job!r}; jobs: {', '.join(jobs)}")
        lay = check_job(path, child(path, f, job, h5py.Group), overlays=False)
        if not (isinstance(level, int) and 0 <= level < len(lay.shapes)):
            raise StoreError(f"{path}: job {job!r} has no pyramid level {level}; levels: 0 to {len(lay.shapes) - 1}")
        if field_name not in lay.fields:
            raise StoreError(f"{path}: job {job!r} has no field {field_name!r}; fields: {', '.join(lay.fields)}")
        where = field_name if level == 0 else f"levels/{level}/{field_name}"
        return _read(path, child(path, f[job], where))


# -- trajectories: paths, basins, streamlines (written after the fields, before `complete`) ----

# Writers open files with HDF5's own file locking off (locking=False): gradbatch's lock on
# <output>.lock already keeps a second writer away, and HDF5's lock would make a reader that
# has the .partial open (`gradbatch info`, a `view` window) fail the writer when it reopens the
# file for the paths, basins, streamlines and final attributes.
_BROKEN: list[Any] = []
_LOST_WRITES: list[str] = []  # writes HDF5 failed while h5py freed an object (see _unraisable)
_previous_hook = sys.unraisablehook


def _unraisable(args: Any) -> None:
    """h5py frees an object in ``__dealloc__``, where HDF5 may flush it; a failed write there
    (full disk) cannot raise and is printed as "Exception ignored", thousands of times. Record
    it instead, so the writer turns it into one StoreError; pass everything else on."""
    if isinstance(args.exc_value, RuntimeError) and "file write failed" in str(args.exc_value) \
            and "dealloc" in f"{args.object} {args.err_msg}":
        _LOST_WRITES.append(str(args.exc_value))
        return
    _previous_hook(args)


sys.unraisablehook = _unraisable


class _WatchWrites:
    """Raises the first write h5py lost in a ``__dealloc__`` during the block as an OSError."""

    def __enter__(self) -> "_WatchWrites":
        self.seen = len(_LOST_WRITES)
        return self

    def check(self) -> None:
        if len(_LOST_WRITES) > self.seen:
            raise OSError(_LOST_WRITES[self.seen])

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.check()


def _park(f: h5py.File, handles: Any = None) -> None:
    """Keep a file whose writes failed (full disk) open and referenced until the process ends:
    closing it, or letting h5py free its objects, makes HDF5 retry the failed flush, print
    thousands of lines and, at exit, crash. The process says one line and ends instead (the
    CLI leaves through ``os._exit`` when :func:`write_failed`)."""
    _BROKEN.append((f, handles))


def write_failures() -> int:
    """How many files' writes have failed in this process so far (see :func:`_park`)."""
    return len(_BROKEN)


@contextmanager
def _open_rw(path: Path) -> Iterator[h5py.File]:
    """A partial file opened outside SWMR mode (overlays, final attributes), where a failed
    write or close (full disk, file size limit) is one :class:`StoreError`; ``--resume``
    clears the flags such a failure or a kill leaves and writes the overlays again."""
    def failed(exc: BaseException) -> StoreError:
        return StoreError(f"{path}: writing failed ({_h5_reason(exc)}; disk full or file size limit?); "
                          "run again with --resume to finish it")

    try:
        f = h5py.File(path, "r+", libver="latest", locking=False)
    except (OSError, RuntimeError) as exc:
        raise failed(exc) from None
    with _QuietH5():
        try:
            with _WatchWrites():
                yield f
        except (OSError, RuntimeError) as exc:
            _park(f)
            raise failed(exc) from None
        except BaseException:
            _close_or_park(f)
            raise
        try:
            with _WatchWrites():
                f.close()
        except (OSError, RuntimeError) as exc:
            _park(f)
            raise failed(exc) from None


class _QuietH5:
    """Holds back what is printed to stderr while overlays are written: h5py prints a traceback
    of its own (besides the "Exception ignored" line) for each object it fails to free after a
    failed write. Printed as it was if no write was lost; dropped (it is all h5py's) if one was."""

    def __enter__(self) -> "_QuietH5":
        import io

        self.real, self.seen = sys.stderr, len(_LOST_WRITES)
        sys.stderr = self.buffer = io.StringIO()
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr = self.real
        if len(_LOST_WRITES) == self.seen:
            self.real.write(self.buffer.getvalue())


def _close_or_park(f: h5py.File) -> None:
    try:
        f.close()
    except (OSError, RuntimeError):
        _park(f)


def _fresh_group(f: h5py.File, path: str) -> h5py.Group:
    """An empty group at ``path``: a resumed run replaces what an interrupted one left."""
    if path in f:
        del f[path]
    return f.create_group(path, track_order=True)


def _array(g: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    big = data.size * data.dtype.itemsize > (1 << 20)
    return g.create_dataset(name, data=data, **(_filters("lz4") if big else {}))


def write_paths(path: Path, job: str, label: str, descent: Descent, attrs: Mapping[str, Any]) -> None:
    """``/<job>/paths/<label>``: positions (paths, steps+1, axes), values, grad_norms (NaN after
    each path's stop), stop_step, stop_reason; the optimiser's settings as attributes."""
    if descent.positions is None or descent.values is None or descent.grad_norms is None:
        raise ValueError(f"paths {label!r}: only descents with recorded positions are stored")
    with _open_rw(path) as f:
        if "paths" not in f[job]:
            f[job].create_group("paths", track_order=True)  # optimisers in the order given
        g = _fresh_group(f, f"{job}/paths/{label}")
        _array(g, "positions", descent.positions)
        _array(g, "values", descent.values)
        _array(g, "grad_norms", descent.grad_norms)
        g.create_dataset("stop_step", data=descent.stop_step.astype(np.int64))
        g.create_dataset("stop_reason", data=descent.reason)
        for k, v in attrs.items():
            g.attrs[k] = _attr(v)


def write_landscape(path: Path, job: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """``/<job>/landscape``: what the loss landscape was made of (the data, or θ* and the
    directions of a network's plane), so the file is reproducible."""
    with _open_rw(path) as f:
        g = _fresh_group(f, f"{job}/landscape")
        for name, data in arrays.items():
            _array(g, name, np.asarray(data))
        for k, v in attrs.items():
            g.attrs[k] = _attr(v)


def write_basins(path: Path, job: str, result: BasinsResult, axes: Sequence[str], attrs: Mapping[str, Any]) -> None:
    """``/<job>/basins``: label / steps / stop_reason on the starts grid (dims like the fields,
    with their own coordinates) and the table ``minima/{point, value, kind, eigenvalues, count}``."""
    with _open_rw(path) as f:
        g = _fresh_group(f, f"{job}/basins")
        scales = []
        for name, values in zip(axes, result.axes):
            d = g.create_dataset(name, data=values)
            d.make_scale(name)
            scales.append(d)
        for name, data in (("label", result.label), ("steps", result.steps), ("stop_reason", result.reason)):
            d = _array(g, name, data)
            for dim, scale in enumerate(reversed(scales)):
                d.dims[dim].label = scale.name.rsplit("/", 1)[-1]
                d.dims[dim].attach_scale(scale)
        t = g.create_group("minima")
        k = len(result.points)
        t.create_dataset("point", data=np.array([p.point for p in result.points], dtype=np.float64).reshape(k, len(axes)))
        t.create_dataset("value", data=np.array([p.value for p in result.points], dtype=np.float64))
        t.create_dataset("kind", data=np.array([p.kind for p in result.points], dtype=h5py.string_dtype()))
        t.create_dataset("eigenvalues",
                         data=np.array([p.eigenvalues for p in result.points], dtype=np.float64).reshape(k, len(axes)))
        t.create_dataset("count", data=np.array(result.counts, dtype=np.int64))
        t.attrs["known"] = bool(result.points and result.points[0].known)
        for key, v in attrs.items():
            g.attrs[key] = _attr(v)


def write_streamlines(path: Path, job: str, lines: Streamlines, attrs: Mapping[str, Any]) -> None:
    """``/<job>/streamlines``: ragged lines, line i = points[offsets[i]:offsets[i+1]]."""
    with _open_rw(path) as f:
        g = _fresh_group(f, f"{job}/streamlines")
        _array(g, "points", lines.points)
        g.create_dataset("offsets", data=lines.offsets)
        g.create_dataset("seeds", data=lines.seeds)
        g.create_dataset("stop_backward", data=lines.stop_backward)
        g.create_dataset("stop_forward", data=lines.stop_forward)
        g.create_dataset("length", data=lines.length)
        for k, v in attrs.items():
            g.attrs[k] = _attr(v)
