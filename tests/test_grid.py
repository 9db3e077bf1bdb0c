"""Tiles, coordinates and pyramid levels, against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradbatch.config import parse_config
from gradbatch.engine.coords import tile_coords
from gradbatch.engine.pyramid import tile_levels
from gradbatch.grid import TileLayout, axis_values, blocks, layout, level_axis_values, level_count, tiles_per_block

from .conftest import compute_fields


def _grid(text: str):  # noqa: ANN202
    return parse_config(f"function: x\ngrid: {text}\n").jobs[0].grid


def test_layout_is_in_array_order_and_covers_the_grid_once() -> None:
    grid = _grid("{x: [0, 1, 100], y: [0, 1, 40]}")
    lay = layout(grid, (32, 16))  # grid order: x tile 32, y tile 16
    assert lay.shape == (40, 100) and lay.tile == (16, 32) and lay.counts == (3, 4) and len(lay) == 12
    seen = np.zeros(lay.shape, dtype=int)
    for t in lay:
        seen[t.slices] += 1
    assert (seen == 1).all()
    last = lay.tile_at((2, 3))
    assert last.start == (32, 96) and last.shape == (8, 4) and last.flat == 11


def test_default_tiles_shrink_to_small_grids() -> None:
    assert layout(_grid("{x: [0, 1, 100], y: [0, 1, 3]}")).tile == (4, 128)
    assert layout(_grid("{x: [0, 1, 5000], y: [0, 1, 5000]}")).tile == (512, 512)
    assert layout(_grid("{x: [0, 1, 1000000]}")).tile == (1 << 18,)


def test_tile_coordinates_pad_by_repeating_the_last_value() -> None:
    grid = _grid("{x: [0, 4, 5], y: [10, 12, 3]}")
    lay = layout(grid, (4, 4))
    axes = [torch.as_tensor(a) for a in axis_values(grid, "float64")]
    x, y = tile_coords(axes, lay, lay.tile_at((0, 1)))  # second tile along x
    assert x.shape == (4, 4) and x.is_contiguous()
    np.testing.assert_array_equal(x[0].numpy(), [4, 4, 4, 4])  # x index 4, then padding
    np.testing.assert_array_equal(y[:, 0].numpy(), [10, 11, 12, 12])


def test_level_axis_values_are_block_means() -> None:
    v = np.arange(7, dtype=np.float64)
    np.testing.assert_array_equal(level_axis_values(v, 1), [0.5, 2.5, 4.5, 6.0])
    np.testing.assert_array_equal(level_axis_values(v, 2), [1.5, 5.0])


def test_level_count_stops_at_256_or_the_tile() -> None:
    assert level_count(layout(_grid("{x: [0, 1, 256], y: [0, 1, 256]}"))) == 0
    assert level_count(layout(_grid("{x: [0, 1, 2048], y: [0, 1, 1000]}"))) == 3
    assert level_count(layout(_grid("{x: [0, 1, 2048], y: [0, 1, 2048]}"), (8, 8))) == 3


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Reference: nan-mean of f x f blocks, partial at the edges."""
    ny, nx = -(-a.shape[0] // f), -(-a.shape[1] // f)
    out = np.empty((ny, nx))
    for j in range(ny):
        for i in range(nx):
            block = a[j * f : (j + 1) * f, i * f : (i + 1) * f]
            out[j, i] = np.nanmean(block) if np.isfinite(block).any() else np.nan
    return out


def test_pyramid_levels_equal_block_means_of_the_whole_field() -> None:
    text = (
        "function: 'sin(3*x) * y + where(x > 0.9, log(-x), 0)'\n"  # NaN where x > 0.9
        "grid: {x: [-1, 1, 600], y: [0, 2, 540]}\ndtype: float64\ntile: 64\n"
        "outputs: [value]\n"
    )
    fields = compute_fields(text, levels=True)
    value = fields["value"]
    assert np.isnan(value).any() and not np.isnan(value).all()
    for k in (1, 2):
        np.testing.assert_allclose(fields[f"value@{k}"], _block_mean(value, 1 << k), rtol=1e-12)


def test_pyramid_leaves_nans_out_of_the_mean() -> None:
    fields = compute_fields(
        "function: 'sqrt(x)'\ngrid: {x: [-1, 1, 600], y: [0, 1, 300]}\ndtype: float64\ntile: 128\noutputs: [value]\n",
        levels=True,
    )
    value = fields["value"]
    assert np.isnan(value).any()
    np.testing.assert_allclose(fields["value@1"], _block_mean(value, 2), rtol=1e-12)


@pytest.mark.parametrize("shape, valid", [((8,), (5,)), ((4, 8), (3, 8)), ((4, 4, 4), (4, 3, 2))])
def test_tile_levels_in_1d_2d_3d(shape: tuple[int, ...], valid: tuple[int, ...]) -> None:
    v = torch.arange(float(np.prod(shape)), dtype=torch.float64).reshape(shape)
    (level,) = tile_levels({"a": v}, valid, 1)
    crop = v[tuple(slice(0, n) for n in valid)].numpy()
    expected = crop
    for d in range(len(shape)):  # mean of pairs along each axis, keeping a short last pair
        idx = np.arange(0, crop.shape[d], 2)
        sums = np.add.reduceat(expected, idx, axis=d)
        counts = np.minimum(idx + 2, crop.shape[d]) - idx
        expected = sums / counts.reshape([-1 if i == d else 1 for i in range(len(shape))])
    np.testing.assert_allclose(level["a"].numpy(), expected)


def test_fields_pooled_together_get_the_bits_each_gets_alone() -> None:
    """The exact (masked) path pools every field of a tile at once, stacked: nothing in any
    field's levels may depend on the others (NaN in one only, an edge tile)."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn((64, 64), generator=g, dtype=torch.float32)
    b = torch.randn((64, 64), generator=g, dtype=torch.float32) * 1e3
    a[5:9, 40:60] = float("nan")
    together = tile_levels({"a": a, "b": b}, (50, 37), 4)
    alone = [tile_levels({"a": a}, (50, 37), 4), tile_levels({"b": b}, (50, 37), 4)]
    for k in range(4):
        assert list(together[k]) == ["a", "b"]
        for i, name in enumerate(("a", "b")):
            assert torch.equal(torch.isnan(together[k][name]), torch.isnan(alone[i][k][name]))
            torch.testing.assert_close(together[k][name], alone[i][k][name], rtol=0, atol=0, equal_nan=True)


def test_blocks_group_aligned_tiles_and_span_only_the_wanted_ones() -> None:
    lay = TileLayout((300, 200), (64, 64))  # 5 x 4 tiles, the last row and column short
    assert lay.counts == (5, 4)
    tiles = list(lay)
    bs = blocks(lay, tiles, 2)
    assert [b.first for b in bs] == [(0, 0), (0, 2), (2, 0), (2, 2), (4, 0), (4, 2)]
    assert sum(len(b.tiles) for b in bs) == 20
    last = bs[-1]
    assert last.counts == (1, 2) and last.padded == (64, 128) and last.valid == (300 - 256, 200 - 128)
    assert [t.index for t in last.tiles] == [(4, 2), (4, 3)] and last.row(last.tiles[1]) == 1
    # a resumed job's leftovers: a block spans only the tiles still wanted
    (b,) = blocks(lay, [lay.tile_at((1, 1))], 4)
    assert b.first == (1, 1) and b.counts == (1, 1) and b.label == "tile (1, 1)"
    # one shape for a compiled kernel: padding past the grid included
    fixed = blocks(lay, tiles, 4, fixed=True)
    assert len(fixed) == 2 and {b.padded for b in fixed} == {(256, 256)} and fixed[-1].valid == (300 - 256, 200)
    assert fixed[0].label == "tiles (0, 0)..(3, 3)"


def test_tiles_per_block_fills_the_points_and_no_more_than_the_grid() -> None:
    assert tiles_per_block(TileLayout((16384, 16384), (512, 512)), 1 << 24) == 8  # 4096^2
    assert tiles_per_block(TileLayout((1000, 1000), (512, 512)), 1 << 24) == 2  # the grid is 2 x 2 tiles
    assert tiles_per_block(TileLayout((512, 100_000), (512, 512)), 1 << 24) == 64  # one row: 1 x 64
    assert tiles_per_block(TileLayout((512, 512, 512), (64, 64, 64)), 1 << 24) == 4  # 256^3
    assert tiles_per_block(TileLayout((100,), (1 << 18,)), 1 << 24) == 1
