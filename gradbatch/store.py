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

from ._h5clear import clear_write_flags, held_by_another_process, stored_eof
from .errors import StoreError
from .grid import Tile, TileLayout, level_axis_values, level_shape

__all__ = ["FORMAT", "partial_path", "JobWriter", "commit", "FieldInfo", "JobInfo", "StoreInfo",
           "inspect", "read_field", "open_store", "job_complete", "write_paths", "write_basins",
           "write_streamlines", "write_failed", "recover_partial", "partial_jobs", "tile_stats"]

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
                return h5py.File(self.path, "a" if exists else "w", libver="latest",
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
        except (OSError, RuntimeError) as exc:  # h5py: OSError, or RuntimeError from a failed flush
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
            d = self._handles[name] = self._file[self.job][name]
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
        eof = stored_eof(part)
    except (OSError, ValueError) as why:
        raise StoreError(f"{part}: cannot be resumed: its superblock is damaged ({why}); run again "
                         "with --overwrite to start afresh") from None
    size = part.stat().st_size
    if eof is not None and size < eof:
        # A full disk or a file size limit cut the file short of the space HDF5 had allocated.
        # Everything a successful flush wrote lies before the cut, and only tiles flushed whole
        # are marked done; the rest is recomputed. Pad to the recorded end so HDF5 opens it,
        # and have the writer read every done tile back before trusting it.
        with open(part, "r+b") as fh:
            fh.truncate(eof)
        _REPAIRED.add(part.resolve())


_REPAIRED: set[Path] = set()


def partial_jobs(part: Path) -> dict[str, bool]:
    """The jobs a partial file holds, each with whether it is marked complete; a file that
    cannot be read is a :class:`StoreError` saying why it cannot be resumed."""
    try:
        with h5py.File(part, "r", libver="latest", swmr=True) as f:
            if f.attrs.get("gradbatch_format") != FORMAT:
                raise StoreError(f"{part}: cannot be resumed: not a gradbatch file; remove it or run "
                                 "with --overwrite")
            return {name: bool(g.attrs.get("complete", False)) for name, g in f.items()
                    if isinstance(g, h5py.Group)}
    except StoreError:
        raise
    except Exception as exc:  # h5py: OSError, KeyError, RuntimeError on damaged metadata
        raise StoreError(f"{part}: cannot be resumed: it cannot be read ({_h5_reason(exc)}); run again "
                         "with --overwrite to start afresh") from None


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
        unfinished = sorted(j for j in jobs if not held.get(j, False))
        if extra or unfinished:
            what = (f"jobs not in the job file: {', '.join(extra)}" if extra else
                    f"jobs not complete: {', '.join(unfinished)}")
            raise StoreError(f"{partial}: not renamed to {final.name}: it holds {what}; run again with "
                             "--overwrite to start afresh")
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
    attrs: dict[str, Any]
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


def open_store(path: str | Path) -> h5py.File:
    """Open a gradbatch file for reading, with a clear error for anything else."""
    p = Path(path)
    if not p.exists():
        hint = f"; a run in progress or interrupted writes {partial_path(p).name}" \
            if partial_path(p).exists() else ""
        raise StoreError(f"{p}: no such file{hint}")
    if p.is_dir():
        raise StoreError(f"{p}: is a folder, not an HDF5 file")
    if not h5py.is_hdf5(p):
        raise StoreError(f"{p}: not an HDF5 file")
    try:
        f = h5py.File(p, "r", libver="latest", swmr=True, rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError:
        try:
            f = h5py.File(p, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            raise StoreError(f"{p}: cannot be opened ({exc})") from None
    if f.attrs.get("gradbatch_format") != FORMAT:
        found = f.attrs.get("gradbatch_format")
        f.close()
        what = f"format {found!r}" if found is not None else "no 'gradbatch_format' attribute"
        raise StoreError(f"{p}: not a gradbatch file ({what}; expected {FORMAT!r})")
    return f


def inspect(path: str | Path) -> StoreInfo:
    """What a gradbatch file (or a partial one) holds."""
    p = Path(path)
    with open_store(p) as f:
        jobs = []
        for name, g in f.items():
            if not isinstance(g, h5py.Group):
                continue
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.attrs.items()}
            field_names = [str(n) for n in attrs.get("fields", [])]
            fields = []
            for fn in field_names:
                d = g[fn]
                dims = tuple(dim.label or (dim[0].name.rsplit("/", 1)[-1] if len(dim) else "")
                             for dim in d.dims)
                fields.append(FieldInfo(fn, dims, d.shape, str(d.dtype), d.chunks,
                                        str(attrs.get("compression", "")), d.id.get_storage_size()))
            axis_names = [str(a) for a in attrs.get("axes", [])]
            axes = tuple((a, float(g[a][0]), float(g[a][-1]), int(g[a].shape[0])) for a in axis_names)
            nlev = int(attrs.get("levels", 0))
            levels = tuple(g[f"levels/{k}/{field_names[0]}"].shape for k in range(1, nlev + 1)) \
                if field_names else ()
            done = g["_tiles/done"][...]
            jobs.append(JobInfo(name, bool(attrs.get("complete", False)), attrs, tuple(fields),
                                axes, levels, int(done.sum()), int(done.size), _trajectories(g)))
        return StoreInfo(p, str(f.attrs["gradbatch_format"]), str(f.attrs.get("gradbatch_version", "")),
                         tuple(jobs), p.name.endswith(".partial"))


def job_complete(path: str | Path, job: str) -> bool:
    """Whether ``path`` (a finished or partial file) holds ``job`` marked complete."""
    with open_store(path) as f:
        return job in f and bool(f[job].attrs.get("complete", False))


def _trajectories(g: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "paths" in g:
        paths = {}
        for label, pg in g["paths"].items():
            reasons = [str(r) for r in pg.attrs.get("reasons", [])]
            codes = pg["stop_reason"][...]
            stopped = {reasons[c] if c < len(reasons) else str(c): int((codes == c).sum()) for c in np.unique(codes)}
            paths[label] = {"optimizer": str(pg.attrs.get("optimizer", label)), "paths": int(codes.size),
                            "steps": int(pg["positions"].shape[1] - 1), "stopped": stopped}
        out["paths"] = paths
    if "basins" in g:
        b = g["basins"]
        kinds = [str(k) for k in b["minima/kind"].asstr()[...]]
        out["basins"] = {"resolution": list(b["label"].shape[::-1]), "minima": len(kinds), "kinds": kinds,
                         "points": b["minima/point"][...].tolist(), "counts": b["minima/count"][...].tolist()}
    if "landscape" in g:
        la = g["landscape"].attrs
        keep = ("kind", "model", "loss", "rows", "lstsq", "directions", "loss_at_theta", "explained_variance")
        out["landscape"] = {k: (la[k].tolist() if hasattr(la[k], "tolist") else la[k]) for k in keep if k in la}
    if "streamlines" in g:
        sl = g["streamlines"]
        out["streamlines"] = {"lines": int(sl["offsets"].shape[0] - 1), "points": int(sl["points"].shape[0]),
                              "field": str(sl.attrs.get("field", ""))}
    return out


def read_field(path: str | Path, job: str, field_name: str, level: int = 0) -> np.ndarray:
    """Read one whole field (or pyramid level) into memory. Mind the size of large jobs."""
    with open_store(path) as f:
        if job not in f:
            raise StoreError(f"{path}: no job {job!r}; jobs: {', '.join(f.keys())}")
        g = f[job] if level == 0 else f[job].get(f"levels/{level}")
        if g is None:
            raise StoreError(f"{path}: job {job!r} has no pyramid level {level}")
        if field_name not in g:
            names = [str(n) for n in f[job].attrs.get("fields", [])]
            raise StoreError(f"{path}: job {job!r} has no field {field_name!r}; fields: {', '.join(names)}")
        return g[field_name][...]


# -- trajectories: paths, basins, streamlines (written after the fields, before `complete`) ----

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


def write_failed() -> bool:
    """Whether a write to some file failed in this process (see :func:`_park`)."""
    return bool(_BROKEN)


@contextmanager
def _open_rw(path: Path) -> Iterator[h5py.File]:
    """A partial file opened outside SWMR mode (overlays, final attributes), where a failed
    write or close (full disk, file size limit) is one :class:`StoreError`; ``--resume``
    clears the flags such a failure or a kill leaves and writes the overlays again."""
    def failed(exc: BaseException) -> StoreError:
        return StoreError(f"{path}: writing failed ({_h5_reason(exc)}; disk full or file size limit?); "
                          "run again with --resume to finish it")

    try:
        f = h5py.File(path, "r+", libver="latest")
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


def write_paths(path: Path, job: str, label: str, descent: Any, attrs: Mapping[str, Any]) -> None:
    """``/<job>/paths/<label>``: positions (paths, steps+1, axes), values, grad_norms (NaN after
    each path's stop), stop_step, stop_reason; the optimiser's settings as attributes."""
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


def write_basins(path: Path, job: str, result: Any, axes: Sequence[str], attrs: Mapping[str, Any]) -> None:
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


def write_streamlines(path: Path, job: str, lines: Any, attrs: Mapping[str, Any]) -> None:
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
