"""Downsampled levels for streaming viewers: level k holds 2^k x 2^k (x 2^k) block means.

Computed per tile on the device while the job runs. Tiles are powers of two and aligned, so a
block never straddles two tiles and each level of a tile is exact. Blocks at the grid's edge
average only the points that exist; NaN points are left out of the mean (all-NaN blocks stay NaN).
"""

from __future__ import annotations

import torch

__all__ = ["tile_levels"]


def _pool2(x: torch.Tensor, first: int = 0) -> torch.Tensor:
    """Sum 2-wide blocks along every dimension of ``x`` from ``first`` on (all sides even).

    Strided adds, one dimension at a time: ~10x faster than avg_pool2d on a CPU.
    """
    for d in range(first, x.ndim):
        x = _add_pairs(x, d)
    return x


def _add_pairs(x: torch.Tensor, d: int) -> torch.Tensor:
    even = [slice(None)] * x.ndim
    odd = [slice(None)] * x.ndim
    even[d] = slice(0, None, 2)
    odd[d] = slice(1, None, 2)
    return x[tuple(even)] + x[tuple(odd)]


def _mean_levels(v: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Fast path for a full tile without NaNs: repeated 2x block means."""
    scale = 1.0 / (1 << v.ndim)
    out = []
    for _ in range(levels):
        v = _pool2(v) * scale
        out.append(v)
    return out


def tile_levels(fields: dict[str, torch.Tensor], valid: tuple[int, ...], levels: int) -> list[dict[str, torch.Tensor]]:
    """Block means of each (padded) tile field for levels 1..``levels``.

    ``fields``: name -> tensor of the padded tile shape; ``valid``: the unpadded shape.
    Returns one dict per level with tensors cropped to that level's valid shape.

    On the CPU, full tiles without NaN take a fast path; choosing it needs one host-side check
    per field, which on CUDA would stall the stream, so CUDA always takes the exact masked path.
    """
    if levels <= 0:
        return []
    some = next(iter(fields.values()))
    full = tuple(some.shape) == tuple(valid) and some.device.type == "cpu"
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(levels)]
    slow: dict[str, torch.Tensor] = {}
    for name, v in fields.items():
        if full and not bool(torch.isnan(v.sum())):  # a NaN sum is cheap and catches any NaN
            for k, level in enumerate(_mean_levels(v, levels)):
                out[k][name] = level
        else:
            slow[name] = v
    if slow:
        for k, pieces in enumerate(_masked_levels(slow, valid, levels)):
            out[k].update(pieces)
    # keep the field order of the input
    return [{name: level[name] for name in fields} for level in out]


def _masked_levels(
    fields: dict[str, torch.Tensor], valid: tuple[int, ...], levels: int
) -> list[dict[str, torch.Tensor]]:
    """The exact path: the block sums of the valid, non-NaN points over their count, every
    field at once (stacked: a few kernels a level, not a few per field, which is what a GPU
    pays per launch). Each field's levels are views of the stacked ones."""
    names = list(fields)
    v = torch.stack([fields[n] for n in names])  # (fields, *tile)
    mask = torch.zeros(v.shape[1:], dtype=v.dtype, device=v.device)
    mask[tuple(slice(0, n) for n in valid)] = 1
    counts = mask * (~torch.isnan(v))
    sums = torch.where(counts > 0, v, torch.zeros((), dtype=v.dtype, device=v.device))
    out = []
    for k in range(1, levels + 1):
        f = 1 << k
        crop = (slice(None), *(slice(0, -(-n // f)) for n in valid))
        sums, counts = _pool2(sums, first=1), _pool2(counts, first=1)
        means = (sums / counts)[crop]
        out.append({n: means[i] for i, n in enumerate(names)})
    return out
