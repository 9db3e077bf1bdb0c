"""Writing a job: tiles and their pyramid pieces into the job's group, the done map, the final
attributes, and the rename that makes a finished file visible.

A job writes to ``<output>.partial`` and the file is renamed to ``<output>`` only when every job
of that file has finished (:func:`commit`), so a killed or failed run never leaves a file that
looks complete. The writer holds the file in SWMR mode: readers may open it while tiles land,
and a crash leaves the structure readable. A tile's done bit is set only after a flush has put
its data on disk.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import StoreError
from ..grid import Tile, TileLayout, level_shape
from . import layout as L
from .access import child, open_store, reading
from .chunks import LevelChunks
from .codec import ChunkCodec
from .create import create_job, mark_format, resumable_tiles
from .encode import encode_attr
from .failures import WatchWrites, h5_reason, open_rw, park
from .reader import check_job
from .recovery import open_for_writing, partial_jobs
from .stats import complete_ranges, write_percentiles

__all__ = ["JobWriter", "commit", "read_back", "FLUSH_INTERVAL_S"]

FLUSH_INTERVAL_S = 1.0


@dataclass
class JobWriter:
    """Creates (or reopens, to resume) one job's group in a partial file and writes its tiles.

    ``fields``: dataset names; ``axes``: (name, coordinates) in grid order; ``lay``: tile layout
    in array order; ``levels``: pyramid levels beyond the full grid; ``axis_attrs``: each axis's
    ``long_name`` and ``units`` for pictures, stored on its coordinates at every level.
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
    axis_attrs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # axis -> {long_name, units}
    _file: h5py.File | None = field(default=None, init=False, repr=False)
    _pending: list[int] = field(default_factory=list, init=False, repr=False)
    _chunks: LevelChunks = field(init=False, repr=False)
    _last_flush: float = field(default=0.0, init=False, repr=False)
    _failed: bool = field(default=False, init=False, repr=False)
    _handles: dict[str, h5py.Dataset] = field(default_factory=dict, init=False, repr=False)
    _codecs: dict[int, ChunkCodec] = field(default_factory=dict, init=False, repr=False)  # level -> codec
    _rows: dict[str, dict[int, np.ndarray]] = field(default_factory=dict, init=False, repr=False)  # table -> rows
    # whole pyramid chunks being encoded (by ``encoders``), a tile's at a time: written in order,
    # then that tile's finished tiles join _pending
    _later: deque[tuple[list[_ChunkWrite], list[int]]] = field(default_factory=deque, init=False, repr=False)
    encoders: Executor | None = field(default=None, repr=False)  # encodes pyramid chunks (None: here)
    _syncer: _Syncer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        dtype = self.axes[0][1].dtype
        self._chunks = LevelChunks(self.lay, self.levels, self.fields, dtype)
        # the chunk shape of each level's datasets (level 0: the tile), as store/create.py makes them
        for k in range(self.levels + 1):
            self._codecs[k] = ChunkCodec(self._chunks.chunk(k), dtype, self.compression)

    def prepare_tile(
        self, tile: Tile, fields: Mapping[str, np.ndarray], levels: Sequence[Mapping[str, np.ndarray]]
    ) -> dict[str, tuple[int, bytes]]:
        """A tile's fields as the chunks the file stores them in (filter mask, bytes), for
        :meth:`write_tile`'s ``chunks`` with ``placed=True``, and its pyramid pieces copied into
        their chunks' buffers. Makes no HDF5 call, so any number of threads may prepare tiles
        while the writer writes (the codecs release the GIL)."""
        for k, level in enumerate(levels, start=1):
            self._chunks.place(tile, k, level)
        codec = self._codecs[0]
        return {name: codec.encode(fields[name]) for name in self.fields}

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> set[int]:
        """Create or reopen the group; returns the flat numbers of tiles already done."""
        f = open_for_writing(self.path)
        try:
            mark_format(f)
            if self.job in f:
                done = resumable_tiles(f[self.job], self, self._chunks)
            else:
                create_job(f, self, self._chunks)
                done = set()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        self._file = f
        self._last_flush = time.monotonic()
        self._syncer = _Syncer(self.path)
        return done

    def complete_groups(self, done: set[int]) -> set[int]:
        """Keep only done tiles whose whole deepest-level chunk group is done."""
        return self._chunks.complete_groups(done)

    # -- writing ------------------------------------------------------------------------------
    def write_tile(
        self,
        tile: Tile,
        fields: Mapping[str, np.ndarray],
        levels: Sequence[Mapping[str, np.ndarray]],
        chunks: Mapping[str, tuple[int, bytes]] | None = None,
        nonfinite: np.ndarray | None = None,
        check: Sequence[float] | None = None,
        ranges: np.ndarray | None = None,
        nonpositive: np.ndarray | None = None,
        placed: bool = False,
    ) -> None:
        """Write a tile's fields (valid shape) and its pyramid pieces; mark it done once its
        data and its pyramid chunks are flushed. ``chunks``: fields already encoded by a
        :class:`~gradbatch.store.ChunkEncoder` (filter mask, bytes), stored as they are;
        ``placed``: its pyramid pieces are in their buffers already (:meth:`prepare_tile`).
        ``nonfinite``: the tile's (fields, 3) NaN/+inf/-inf counts; ``check``: its
        gradient-check row; ``ranges`` (fields, 3) and ``nonpositive`` (fields,): its finite
        min, max, min positive and count <= 0 per field. All are written before the tile's done
        bit, so a resumed run's totals cover every tile (a tile written without ranges gets them
        from its data in :meth:`finalize`)."""
        assert self._file is not None, "open() first"
        if self._failed:
            raise StoreError(f"{self.path}: an earlier write failed; nothing more is written")
        try:
            with WatchWrites():
                rows = {L.NONFINITE: nonfinite}
                if ranges is not None and nonpositive is not None:  # together: a row >= 0 says both are there
                    rows.update({L.RANGE: ranges, L.NONPOSITIVE: nonpositive})
                if check is not None and self.check_width:
                    rows[L.CHECK] = np.asarray(check, dtype=np.float64)
                self._write_tile(tile, fields, levels, chunks, rows, placed)
        except (KeyError, ValueError) as exc:  # h5py cannot open a dataset: metadata damaged earlier
            self._failed = True
            raise StoreError(
                f"{self.path}: cannot write tile {tile.index}: the file is damaged ({h5_reason(exc)}; "
                "a disk that filled up as it was made?); run again with --overwrite to start "
                "afresh"
            ) from None
        except (OSError, RuntimeError) as exc:  # h5py: a failed write or flush
            self._failed = True
            raise StoreError(
                f"{self.path}: writing tile {tile.index} failed ({h5_reason(exc)}; disk full "
                "or file size limit?); the tiles written before it stay for --resume"
            ) from None

    def _write_tile(
        self,
        tile: Tile,
        fields: Mapping[str, np.ndarray],
        levels: Sequence[Mapping[str, np.ndarray]],
        chunks: Mapping[str, tuple[int, bytes]] | None,
        rows: Mapping[str, np.ndarray | None],
        placed: bool = False,
    ) -> None:
        for table, row in rows.items():  # the tile's rows of the _tiles tables: written at the next flush
            if row is not None:
                self._rows.setdefault(table, {})[tile.flat] = row
        for name in self.fields:
            if chunks is not None and name in chunks:
                mask, data = chunks[name]
                self._ds(name).id.write_direct_chunk(tile.start, data, mask)
            else:
                self._ds(name).write_direct(np.ascontiguousarray(fields[name]), dest_sel=tile.slices)
        finished: list[tuple[int, ...]] = [tile.index] if not levels else []
        writes: list[_ChunkWrite] = []
        for k, level in enumerate(levels, start=1):
            whole = self._chunks.arrive(tile, k) if placed else self._chunks.add(tile, k, level)
            if whole is None:
                continue
            dest, buffers = whole
            writes += [self._level_chunk(k, name, dest, buffers[name]) for name in self.fields]
            if k == len(levels):
                finished = self._chunks.group_tiles(tile.index, k)
        self._later.append((writes, [int(np.ravel_multi_index(t, self.lay.counts)) for t in finished]))
        self._write_encoded(wait=False)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def _level_chunk(self, k: int, name: str, dest: tuple[slice, ...], data: np.ndarray) -> _ChunkWrite:
        """One whole pyramid chunk, to be stored as encoded (by the encoders, outside h5py's lock,
        or here); through the filter if it is not chunk-aligned."""
        codec, ds = self._codecs[k], self._ds(L.level_path(k, name))
        start = tuple(s.start for s in dest)
        if ds.chunks != codec.chunk or any(a % c for a, c in zip(start, codec.chunk)):
            return _ChunkWrite(ds, start, dest, data, None)
        if self.encoders is None:
            return _ChunkWrite(ds, start, dest, data, codec.encode(data))
        return _ChunkWrite(ds, start, dest, None, self.encoders.submit(codec.encode, data))

    def _write_encoded(self, wait: bool) -> None:
        """Store the pyramid chunks whose encoding is done, in order (all of them with ``wait``),
        and mark their tiles as written: done at the next flush."""
        while self._later:
            writes, finished = self._later[0]
            if not wait and not all(w.ready() for w in writes):
                return
            for w in writes:
                w.store()
            self._pending.extend(finished)
            self._later.popleft()

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
        self._write_encoded(wait=True)
        self._write_rows()
        self._file.flush()
        if self._syncer is not None:
            self._syncer.kick()
        if self._pending:
            done = self._ds(L.DONE)
            bits = done[...]  # the whole map (a byte a tile), set and written back at once
            bits[np.unravel_index(np.asarray(self._pending), self.lay.counts)] = 1
            done[...] = bits
            self._pending.clear()
            self._file.flush()
        self._last_flush = time.monotonic()

    def _write_rows(self) -> None:
        """The buffered rows of the _tiles tables, a slice per run of consecutive tiles (one h5py
        call, not one a tile): always before the flush that precedes their tiles' done bits."""
        for table, rows in self._rows.items():
            ds = self._ds(table)
            flats = sorted(rows)
            i = 0
            while i < len(flats):
                j = i
                while j + 1 < len(flats) and flats[j + 1] == flats[j] + 1:
                    j += 1
                ds[flats[i] : flats[j] + 1] = np.stack([rows[f] for f in flats[i : j + 1]])
                i = j + 1
        self._rows = {}

    # -- closing ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._file is None:
            return
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        f = self._file
        if not self._failed:
            try:
                self.flush()
            except (OSError, RuntimeError) as exc:
                self._failed = True
                self._file = None
                park(f, self._handles)
                raise StoreError(
                    f"{self.path}: writing the last tiles failed ({h5_reason(exc)}; disk "
                    "full or file size limit?); the tiles written before stay for --resume"
                ) from None
        self._file = None
        if self._failed:
            park(f, self._handles)
            return
        self._handles = {}
        try:
            f.close()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            park(f)
            raise StoreError(
                f"{self.path}: closing failed ({h5_reason(exc)}; disk full or file size "
                "limit?); the tiles written before stay for --resume"
            ) from None

    def abandon(self) -> None:
        """Close after a failure: flush what was written, unless writing already failed
        (--resume picks it up), and close."""
        if self._file is not None:
            try:
                self.close()
            except Exception:  # the original failure matters more than a failed close
                self._file = None

    def finalize(self, attrs: Mapping[str, Any]) -> None:
        """Record final attributes (timings, check results) and each field's percentiles (see
        :mod:`gradbatch.store.stats`), then mark the job complete."""
        with open_rw(self.path) as f:
            g = f[self.job]
            done = g[L.DONE][...]
            if not done.all():
                raise StoreError(
                    f"{self.path}: job {self.job!r} has {int((done == 0).sum())} "
                    "tiles missing; it cannot be marked complete"
                )
            complete_ranges(self.path, g, self.lay, self.fields)
            shapes = [level_shape(self.lay.shape, k) for k in range(self.levels + 1)]
            write_percentiles(self.path, g, shapes, self.fields)
            for k, v in attrs.items():
                g.attrs[k] = encode_attr(v)
            g.attrs[L.COMPLETE] = True


class _Syncer(threading.Thread):
    """Puts what the writer has handed the OS on the disk while tiles are still computed
    (``fdatasync`` after each flush, on a thread of its own), so the fsync that makes the finished
    file durable (:func:`commit`) has little left to wait for. Only a head start: a failure
    here is found again by the writes and that fsync, which say it."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="gradbatch-sync", daemon=True)
        self.fd: int | None
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except OSError:
            self.fd = None
        self.wake = threading.Event()
        self.done = False
        if self.fd is not None:
            self.start()

    def kick(self) -> None:
        self.wake.set()

    def run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.done:
                return
            try:
                os.fdatasync(self.fd)  # type: ignore[arg-type]
            except (OSError, AttributeError):
                pass

    def stop(self) -> None:
        self.done = True
        self.wake.set()
        if self.is_alive():
            self.join()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class _ChunkWrite:
    """A whole chunk of ``ds`` at ``start``: ``encoded`` (filter mask, bytes), or its future, or
    None (``data`` goes through the filter)."""

    ds: h5py.Dataset
    start: tuple[int, ...]
    dest: tuple[slice, ...]
    data: np.ndarray | None
    encoded: tuple[int, bytes] | Future[tuple[int, bytes]] | None

    def ready(self) -> bool:
        return not isinstance(self.encoded, Future) or self.encoded.done()

    def store(self) -> None:
        encoded = self.encoded.result() if isinstance(self.encoded, Future) else self.encoded
        if encoded is None:
            assert self.data is not None
            self.ds.write_direct(np.ascontiguousarray(self.data), dest_sel=self.dest)
        else:
            self.ds.id.write_direct_chunk(self.start, encoded[1], encoded[0])


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


def commit(partial: Path, final: Path, jobs: Sequence[str] = ()) -> None:
    """Make a finished partial file durable, then give it its final name (atomic on one
    filesystem), then make the rename durable: a crash never leaves a complete-looking name on
    data that did not reach the disk.

    ``jobs``: the jobs the file must hold, every one complete, and no others (a resumed partial
    file of a job file that has since changed is refused, not renamed)."""
    if jobs:
        _check_finished(partial, final, jobs)
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


def _check_finished(partial: Path, final: Path, jobs: Sequence[str]) -> None:
    """``partial`` holds exactly ``jobs``, every one complete, and reads back."""
    held = partial_jobs(partial)
    extra = sorted(set(held) - set(jobs))
    unfinished = sorted(j for j in jobs if j not in held or not held[j].complete)
    if extra or unfinished:
        what = (
            f"jobs not in the job file: {', '.join(extra)}" if extra else f"jobs not complete: {', '.join(unfinished)}"
        )
        raise StoreError(
            f"{partial}: not renamed to {final.name}: it holds {what}; run again with --overwrite to start afresh"
        )
    try:
        read_back(partial, jobs)
    except StoreError as exc:
        raise StoreError(
            f"{partial}: not renamed to {final.name}: it does not read back ({exc}); run "
            "again with --overwrite to start afresh"
        ) from None
