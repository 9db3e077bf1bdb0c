"""Grid coordinates, array order and tiles (numpy only: readers of files use it too).

Array order is the grid's axis order reversed (netCDF/CF, image convention)::

    grid: {x: [..., nx], y: [..., ny]}      ->  arrays of shape (ny, nx): value[j, i] = f(x[i], y[j])
    grid: {x: ..., y: ..., z: ...}          ->  arrays of shape (nz, ny, nx)

A job is computed tile by tile. Every tile has the same shape (so a compiled kernel is reused);
edge tiles are padded by repeating the last coordinate and cropped after evaluation::

    +--------+--------+----+        tile (ty, tx): powers of two, so the pyramid's 2x blocks
    | (0, 0) | (0, 1) |(0,2|pad     never straddle two tiles
    +--------+--------+----+
    | (1, 0) | (1, 1) |(1,2|pad
    +--------+--------+----+
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .config import Grid

__all__ = [
    "Tile",
    "TileLayout",
    "Block",
    "blocks",
    "tiles_per_block",
    "layout",
    "axis_values",
    "DEFAULT_TILE_POINTS",
    "level_count",
    "level_shape",
    "level_axis_values",
]

DEFAULT_TILE_POINTS = {1: 1 << 18, 2: 512, 3: 64}
"""Default tile side per grid dimensionality (2^18 points per tile in each case)."""

MIN_LEVEL_SIDE = 256
"""Pyramid levels stop once the largest side is at most this many points."""


@dataclass(frozen=True)
class Tile:
    """One tile. All tuples are in array order (reversed axes)."""

    index: tuple[int, ...]  # position in the tile grid
    flat: int  # row-major number of the tile, 0 .. len(layout) - 1
    start: tuple[int, ...]  # first array index covered
    shape: tuple[int, ...]  # valid (unpadded) shape

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.shape))

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class TileLayout:
    """How an array of ``shape`` is cut into tiles of ``tile`` (both in array order)."""

    shape: tuple[int, ...]
    tile: tuple[int, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(-(-n // t) for n, t in zip(self.shape, self.tile))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def tile_at(self, index: tuple[int, ...]) -> Tile:
        start = tuple(i * t for i, t in zip(index, self.tile))
        shape = tuple(min(t, n - s) for t, n, s in zip(self.tile, self.shape, start))
        flat = int(np.ravel_multi_index(index, self.counts))
        return Tile(index, flat, start, shape)

    def tile_of(self, flat: int) -> Tile:
        """The tile with row-major number ``flat``."""
        return self.tile_at(tuple(int(i) for i in np.unravel_index(flat, self.counts)))

    def __iter__(self) -> Iterator[Tile]:
        for index in np.ndindex(*self.counts):
            yield self.tile_at(tuple(int(i) for i in index))


@dataclass(frozen=True)
class Block:
    """Neighbouring tiles computed as one (a GPU's super-tile), then handed on tile by tile.

    All tuples in array order. ``first``: the tile index at the block's corner; ``counts``: the
    tiles it spans per dimension (some may lie past the grid, padding); ``start``, ``padded``:
    its first array index and its computed shape (``counts`` x the tile shape); ``valid``: the
    part inside the grid; ``tiles``: the tiles wanted from it, row-major."""

    first: tuple[int, ...]
    counts: tuple[int, ...]
    start: tuple[int, ...]
    padded: tuple[int, ...]
    valid: tuple[int, ...]
    tiles: tuple[Tile, ...]

    @property
    def label(self) -> str:
        if len(self.tiles) == 1:
            return f"tile {self.tiles[0].index}"
        last = tuple(f + n - 1 for f, n in zip(self.first, self.counts))
        return f"tiles {self.first}..{last}"

    def row(self, tile: Tile) -> int:
        """Row-major number of ``tile`` among the block's tiles (padding included)."""
        return int(np.ravel_multi_index(tuple(i - f for i, f in zip(tile.index, self.first)), self.counts))


def tiles_per_block(lay: TileLayout, points: int) -> int:
    """Tiles per side of a block of at most ``points`` points (a power of two; 1: tile by tile),
    no larger along any dimension than the grid needs."""
    g = 1
    while True:
        wider = [min(2 * g, c) for c in lay.counts]
        if wider == [min(g, c) for c in lay.counts] or math.prod(n * t for n, t in zip(wider, lay.tile)) > points:
            return g
        g *= 2


def blocks(lay: TileLayout, tiles: list[Tile], per_side: int, fixed: bool = False) -> list[Block]:
    """``tiles`` grouped into blocks of up to ``per_side`` tiles a side, aligned to multiples of
    it, in row-major block order. A block spans only the tiles wanted from it (a resumed job's
    leftovers); ``fixed``: every block spans ``per_side`` tiles a side, padding past the grid
    included, so that all have one shape (what a kernel compiled for one shape needs)."""
    groups: dict[tuple[int, ...], list[Tile]] = {}
    for t in tiles:
        groups.setdefault(tuple(i // per_side for i in t.index), []).append(t)
    out = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda t: t.flat)
        if fixed:
            first = tuple(k * per_side for k in key)
            counts = (per_side,) * len(key)
        else:
            first = tuple(min(t.index[d] for t in group) for d in range(len(key)))
            counts = tuple(max(t.index[d] for t in group) - f + 1 for d, f in enumerate(first))
        start = tuple(f * t for f, t in zip(first, lay.tile))
        padded = tuple(n * t for n, t in zip(counts, lay.tile))
        valid = tuple(min(p, n - s) for p, n, s in zip(padded, lay.shape, start))
        out.append(Block(first, counts, start, padded, valid, tuple(group)))
    return out


def layout(grid: Grid, tile: tuple[int, ...] | None = None) -> TileLayout:
    """Tile layout for ``grid``; ``tile`` is per axis in grid order (None: the default).

    A tile side never exceeds the next power of two above its axis length.
    """
    shape = tuple(a.points for a in reversed(grid.axes))
    if tile is None:
        want = (DEFAULT_TILE_POINTS[grid.ndim],) * grid.ndim
    else:
        want = tuple(reversed(tile))
    sides = tuple(min(t, 1 << max(n - 1, 1).bit_length()) for t, n in zip(want, shape))
    return TileLayout(shape, sides)


def axis_values(grid: Grid, dtype: str) -> list[np.ndarray]:
    """Coordinates of each axis (grid order), exactly as the engine evaluates them:
    ``linspace`` in float64, then cast to ``dtype`` ("float32" or "float64")."""
    return [np.linspace(a.start, a.stop, a.points, dtype=np.float64).astype(dtype) for a in grid.axes]


def level_count(lay: TileLayout) -> int:
    """How many 2x pyramid levels a layout supports (beyond level 0, the full grid)."""
    max_by_tile = min(int(math.log2(t)) for t in lay.tile)
    k = 0
    while k < max_by_tile and max(level_shape(lay.shape, k)) > MIN_LEVEL_SIDE:
        k += 1
    return k


def level_shape(shape: tuple[int, ...], level: int) -> tuple[int, ...]:
    f = 1 << level
    return tuple(-(-n // f) for n in shape)


def level_axis_values(values: np.ndarray, level: int) -> np.ndarray:
    """Mean of each block of ``2**level`` consecutive coordinates (the last block may be short)."""
    f = 1 << level
    starts = np.arange(0, values.shape[0], f)
    sums = np.add.reduceat(values.astype(np.float64), starts)
    counts = np.minimum(starts + f, values.shape[0]) - starts
    return (sums / counts).astype(values.dtype)
