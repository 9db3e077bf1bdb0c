"""Downsampled levels for streaming viewers: level k holds 2^k x 2^k (x 2^k) block means.

Computed per tile on the device while the job runs. Tiles are powers of two and aligned, so a
block never straddles two tiles and each level of a tile is exact. Blocks at the grid's edge
average only the points that exist; NaN points are left out of the mean (all-NaN blocks stay NaN).
"""

from __future__ import annotations

import torch

__all__ = ["tile_levels"]


def _pool2(x: torch.Tensor) -> torch.Tensor:
    """Sum 2-wide blocks along every dimension of ``x`` (all sides even)."""
    shape: list[int] = []
    for n in x.shape:
        shape += [n // 2, 2]
    return x.reshape(shape).sum(dim=tuple(range(1, 2 * x.ndim, 2)))


def tile_levels(
    fields: dict[str, torch.Tensor], valid: tuple[int, ...], levels: int
) -> list[dict[str, torch.Tensor]]:
    """Block means of each (padded) tile field for levels 1..``levels``.

    ``fields``: name -> tensor of the padded tile shape; ``valid``: the unpadded shape.
    Returns one dict per level with tensors cropped to that level's valid shape.
    """
    if levels <= 0:
        return []
    some = next(iter(fields.values()))
    mask = torch.zeros(some.shape, dtype=some.dtype, device=some.device)
    mask[tuple(slice(0, n) for n in valid)] = 1
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}
    for name, v in fields.items():
        ok = mask * (~torch.isnan(v))
        sums[name] = torch.where(ok > 0, v, torch.zeros((), dtype=v.dtype, device=v.device))
        counts[name] = ok
    out: list[dict[str, torch.Tensor]] = []
    for k in range(1, levels + 1):
        f = 1 << k
        crop = tuple(slice(0, -(-n // f)) for n in valid)
        level: dict[str, torch.Tensor] = {}
        for name in fields:
            sums[name] = _pool2(sums[name])
            counts[name] = _pool2(counts[name])
            level[name] = (sums[name] / counts[name])[crop]
        out.append(level)
    return out
