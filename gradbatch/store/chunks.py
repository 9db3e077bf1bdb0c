"""Which tiles share a pyramid chunk, and the buffers that collect a chunk until it is whole.

Pyramid chunks: level k keeps the tile's extent in the last dimension, so one chunk spans 2^k
consecutive tiles (the order tiles are computed in) and holds their level-k pieces::

    tiles along the last dim:  | t0 | t1 | t2 | t3 |      level 0: one chunk per tile
    level 1 chunks:            | t0 t1   | t2 t3   |      (rows halved, columns shared)
    level 2 chunks:            | t0 t1 t2 t3       |

A chunk is buffered until all its tiles have arrived, then written whole: few, large chunks
instead of one tiny chunk per tile and level. Tiles are marked done when their deepest-level
chunk is written, so a resumed run never finds a half-filled chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from ..grid import Tile, TileLayout, level_shape

__all__ = ["LevelChunks"]

Index = tuple[int, ...]


class LevelChunks:
    """The pyramid chunk grouping of a job's tile layout, and the chunks still filling."""

    def __init__(self, lay: TileLayout, levels: int, fields: Sequence[str], dtype: np.dtype) -> None:
        self.lay = lay
        self.levels = levels
        self.fields = list(fields)
        self.dtype = dtype
        self._buffers: dict[tuple[int, Index], dict[str, np.ndarray]] = {}  # chunks still filling
        self._arrived: dict[tuple[int, Index], int] = {}  # their pieces counted so far
        self._lock = threading.Lock()

    def chunk(self, k: int) -> tuple[int, ...]:
        """The chunk shape of level ``k``, clipped to the level's shape (level 0: the tile's)."""
        shape = level_shape(self.lay.shape, k)
        chunk = tuple(max(1, t >> k) for t in self.lay.tile[:-1]) + (self.lay.tile[-1],)
        return tuple(min(c, n) for c, n in zip(chunk, shape))

    def group_tiles(self, index: Index, k: int) -> list[Index]:
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
            group = [int(np.ravel_multi_index(t, counts)) for t in self.group_tiles(index, self.levels)]
            if all(g in done for g in group):
                keep.add(flat)
        return keep

    def add(
        self, tile: Tile, k: int, level: Mapping[str, np.ndarray]
    ) -> tuple[tuple[slice, ...], dict[str, np.ndarray]] | None:
        """Put a tile's level-k piece into its chunk buffer; once the chunk is whole, returns
        where it goes in the level's arrays and its data per field (and forgets it)."""
        self.place(tile, k, level)
        return self.arrive(tile, k)

    def _where(self, tile: Tile, k: int) -> tuple[tuple[int, Index], tuple[int, ...], tuple[int, ...]]:
        """The key of tile's level-k chunk, where the chunk starts in the level array, and its
        (edge-clipped) shape."""
        f = 1 << k
        chunk = self.chunk(k)
        shape = level_shape(self.lay.shape, k)
        group = tile.index[:-1] + (tile.index[-1] // f,)
        start = tuple(s // f for s in tile.start[:-1]) + (group[-1] * chunk[-1],)
        size = tuple(min(c, n - s) for c, n, s in zip(chunk, shape, start))
        return (k, group), start, size

    def place(self, tile: Tile, k: int, level: Mapping[str, np.ndarray]) -> None:
        """Copy a tile's level-k piece into its chunk's buffer. Thread-safe: the tiles of one
        chunk fill disjoint parts of it, from any thread (the writer's encoders)."""
        key, start, size = self._where(tile, k)
        with self._lock:
            if key not in self._buffers:
                self._buffers[key] = {n: np.full(size, np.nan, dtype=self.dtype) for n in self.fields}
            buffers = self._buffers[key]
        piece = level[self.fields[0]].shape
        offset = (0,) * (len(start) - 1) + (tile.start[-1] // (1 << k) - start[-1],)
        inner = tuple(slice(o, o + n) for o, n in zip(offset, piece))
        for name in self.fields:
            buffers[name][inner] = level[name]

    def arrive(self, tile: Tile, k: int) -> tuple[tuple[slice, ...], dict[str, np.ndarray]] | None:
        """Count a placed piece (tiles arrive in order, on one thread); once the chunk is whole,
        returns where it goes in the level's arrays and its data per field (and forgets it)."""
        key, start, size = self._where(tile, k)
        arrived = self._arrived.get(key, 0) + 1
        if arrived < len(self.group_tiles(tile.index, k)):
            self._arrived[key] = arrived
            return None
        self._arrived.pop(key, None)
        with self._lock:
            buffers = self._buffers.pop(key)
        return tuple(slice(s, s + n) for s, n in zip(start, size)), buffers
