"""Tile coordinates on the device: what a kernel evaluates at."""

from __future__ import annotations

import torch

from ..grid import Tile, TileLayout

__all__ = ["block_axes", "tile_axes", "expand_axes", "tile_coords"]


def tile_axes(axes: list[torch.Tensor], lay: TileLayout, tile: Tile) -> tuple[torch.Tensor, ...]:
    """The tile's coordinates along each axis (grid order): 1D tensors of the padded tile side.

    ``axes`` are :func:`axis_values` as tensors on the target device; padding repeats the last
    value. :func:`expand_axes` turns them into one value per point.
    """
    return block_axes(axes, tile.start, lay.tile)


def block_axes(axes: list[torch.Tensor], start: tuple[int, ...], shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """The coordinates along each axis (grid order) of the block of ``shape`` points from array
    index ``start`` (both in array order); past the grid's end the last value repeats."""
    ndim = len(axes)
    out = []
    for k, values in enumerate(axes):
        dim = ndim - 1 - k  # array dimension of grid axis k
        idx = torch.arange(start[dim], start[dim] + shape[dim], device=values.device)
        out.append(values[idx.clamp_(max=values.shape[0] - 1)])
    return tuple(out)


def expand_axes(axes1d: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """One coordinate tensor per axis (grid order), each of the full tile shape in array order.

    Each is contiguous: one leaf element per point, as autograd needs. Pure torch, so a compiled
    kernel can build the coordinates inside its graph.
    """
    ndim = len(axes1d)
    shape = tuple(axes1d[ndim - 1 - d].shape[0] for d in range(ndim))
    out = []
    for k, v in enumerate(axes1d):
        view = [1] * ndim
        view[ndim - 1 - k] = v.shape[0]
        out.append(v.view(view).expand(shape).contiguous())
    return tuple(out)


def tile_coords(axes: list[torch.Tensor], lay: TileLayout, tile: Tile) -> tuple[torch.Tensor, ...]:
    """Coordinate tensors for ``tile``, one per axis in grid order, each of shape ``lay.tile``."""
    return expand_axes(tile_axes(axes, lay, tile))
