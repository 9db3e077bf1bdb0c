"""Numpy preparation of what the layers draw, apart from the GL that draws it: colour lookup,
colour limits of an image, the polylines of descent paths up to a step, and the grid arrows are
read on. Tested without a GL context (only :func:`colormap_lut` asks vispy for its colormap).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..geometry import polyline_connect

__all__ = ["arrow_canvas", "colormap_lut", "image_limits", "map_colors", "path_polylines"]


def image_limits(data: np.ndarray, scale: str) -> tuple[np.ndarray, float, float]:
    """The image to upload for ``data`` (ny, nx) and its colour limits (lo, hi), in numpy.

    float32; ``scale`` 'log': log10 of the positive values, the rest shown as the lowest colour;
    'symmetric': limits +-max|v|. NaN is drawn as the lowest colour; an all-NaN window gets
    limits (0, 1) and a flat one limits half a unit either side, so both still draw."""
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    if scale == "log":
        with np.errstate(all="ignore"):
            data = np.where(data > 0, np.log10(data), np.nan).astype(np.float32)
    with warnings.catch_warnings():  # an all-NaN window is allowed: it is drawn flat
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = float(np.nanmin(data)) if data.size else 0.0, float(np.nanmax(data)) if data.size else 1.0
    if not np.isfinite(lo) or not np.isfinite(hi):
        lo, hi = 0.0, 1.0
    if scale == "symmetric":
        lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if np.isnan(data.sum()):  # copies only when there is a NaN to clear
        data = np.nan_to_num(data, nan=lo)
    return data, lo, hi


def path_polylines(pos: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paths ``pos`` (paths, steps + 1, 2) up to ``step`` as one line set: vertices (V, 2), the
    segment pairs joining each path's points (:func:`polyline_connect`; empty at step 0) and
    each path's current end (P', 2) float32. A stopped path is NaN after its stop: those points
    are dropped; a path NaN from its start is left out."""
    lines, offsets, tips = [], [0], []
    for p in pos[:, : step + 1]:
        p = p[np.isfinite(p).all(axis=1)]
        if len(p):
            lines.append(p)
            offsets.append(offsets[-1] + len(p))
            tips.append(p[-1])
    return np.concatenate(lines), polyline_connect(np.array(offsets)), np.array(tips, np.float32)


def colormap_lut(name: str, n: int = 256) -> np.ndarray:
    """(n, 4) float32 RGBA samples of a vispy colormap, for :func:`map_colors`."""
    from vispy.color import get_colormap

    return np.asarray(get_colormap(name).map(np.linspace(0.0, 1.0, n)[:, None]), dtype=np.float32)


def map_colors(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """RGBA of ``values`` in [0, 1] through a lookup table: a gather instead of vispy's
    per-value interpolation (6x faster for a million arrows). NaN maps to the lowest colour."""
    n = len(lut)
    idx = np.nan_to_num(np.asarray(values, dtype=np.float32) * (n - 1) + 0.5, nan=0.0)
    return lut[np.clip(idx.astype(np.intp), 0, n - 1)]


def arrow_canvas(canvas: tuple[int, int], pixels_per_arrow: float) -> tuple[int, int]:
    """The 'canvas' arrows need: a few data points per arrow cell is plenty."""
    return (max(2, int(4 * canvas[0] / pixels_per_arrow)), max(2, int(4 * canvas[1] / pixels_per_arrow)))
