"""Pure numpy geometry for the viewer: arrows, polylines, level of detail. No GL here.

Arrows are drawn as one batched set of line segments (one GL draw call for any number of
arrows). Each arrow is three segments, six vertices::

        barb1
           \\
    tail ───▶ tip        vertices: tail, tip, tip, barb1, tip, barb2
           /             segment k joins vertices 2k and 2k+1
        barb2

Polylines (streamlines, descent paths) become one vertex array plus a ``connect`` array of
vertex pairs, so thousands of lines are one draw call too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ArrowSegments",
    "arrow_segments",
    "scale_vectors",
    "polyline_connect",
    "lod_grid",
    "choose_level",
    "VERTICES_PER_ARROW",
]

VERTICES_PER_ARROW = 6


@dataclass(frozen=True)
class ArrowSegments:
    """``vertices``: (6N, 2) float32; ``values``: (6N,) the magnitude at each vertex (for colour)."""

    vertices: np.ndarray
    values: np.ndarray


def scale_vectors(
    u: np.ndarray, v: np.ndarray, length: float, mode: str = "normalize", max_length: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors as drawn: ``normalize`` (all ``length`` long), ``clip`` (as they are, at most
    ``max_length``, seed 000's way) or ``scale`` (as they are, times ``length``)."""
    mag = np.hypot(u, v)
    if mode == "normalize":
        f = np.where(mag > 0, length / np.where(mag > 0, mag, 1), 0.0)
    elif mode == "clip":
        cap = max_length if max_length is not None else length
        f = np.where(mag > cap, cap / np.where(mag > 0, mag, 1), 1.0)
    elif mode == "scale":
        f = np.full_like(mag, length)
    else:
        raise ValueError(f"unknown arrow mode {mode!r}; allowed: normalize, clip, scale")
    return u * f, v * f


def arrow_segments(
    x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, head: float = 0.3, angle_deg: float = 25.0
) -> ArrowSegments:
    """N arrows from (x, y) along (u, v) (all (N,)) as 3N segments; NaN vectors are dropped.

    ``head`` is the barb length as a fraction of the arrow's length. Computed in float32,
    written straight into the vertex array (a million arrows in a fraction of a second).
    """
    x, y, u, v = (np.asarray(a, dtype=np.float32).ravel() for a in (x, y, u, v))
    keep = np.isfinite(u) & np.isfinite(v) & np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        x, y, u, v = x[keep], y[keep], u[keep], v[keep]
    n = x.size
    a = math.radians(angle_deg)
    c, s = np.float32(math.cos(a) * head), np.float32(math.sin(a) * head)
    verts = np.empty((n, VERTICES_PER_ARROW, 2), dtype=np.float32)
    tip_x, tip_y = x + u, y + v
    verts[:, 0, 0], verts[:, 0, 1] = x, y
    for k in (1, 2, 4):
        verts[:, k, 0], verts[:, k, 1] = tip_x, tip_y
    # barbs: back from the tip along -(u, v), rotated by +-angle
    cu, cv, su, sv = c * u, c * v, s * u, s * v
    verts[:, 3, 0], verts[:, 3, 1] = tip_x - cu + sv, tip_y - cv - su
    verts[:, 5, 0], verts[:, 5, 1] = tip_x - cu - sv, tip_y - cv + su
    mag = np.repeat(np.hypot(u, v), VERTICES_PER_ARROW)
    return ArrowSegments(verts.reshape(-1, 2), mag)


def polyline_connect(offsets: np.ndarray) -> np.ndarray:
    """``(K, 2)`` uint32 vertex pairs joining consecutive points within each line.

    Line i is vertices ``offsets[i]:offsets[i + 1]``; no segment crosses from one line to the
    next. Lines of one point contribute nothing.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    m = int(offsets[-1]) if offsets.size else 0
    if m < 2:
        return np.empty((0, 2), dtype=np.uint32)
    starts = np.arange(m - 1)
    last_of_line = np.zeros(m, dtype=bool)
    ends = offsets[1:] - 1
    last_of_line[ends[ends >= 0]] = True
    keep = ~last_of_line[:-1]
    a = starts[keep]
    return np.stack([a, a + 1], axis=1).astype(np.uint32)


def lod_grid(
    window: tuple[float, float, float, float], canvas: tuple[int, int], pixels_per_arrow: float = 16.0
) -> tuple[np.ndarray, np.ndarray]:
    """Arrow positions for a view: about one arrow per ``pixels_per_arrow`` screen pixels.

    ``window`` = (x0, x1, y0, y1) in data coordinates; ``canvas`` = (width, height) in pixels.
    Returns 1D x and y positions (cell centres); the arrow count depends only on the canvas,
    never on the zoom, so a view always shows the same density of arrows.
    """
    x0, x1, y0, y1 = window
    nx = max(1, int(canvas[0] // pixels_per_arrow))
    ny = max(1, int(canvas[1] // pixels_per_arrow))
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    return xs, ys


def choose_level(points_in_window: float, screen_pixels: float, levels: int) -> int:
    """The coarsest pyramid level that still gives at least one data point per screen pixel
    (level k has a point every 2^k full-resolution points)."""
    if points_in_window <= 0 or screen_pixels <= 0:
        return 0
    ratio = points_in_window / screen_pixels
    if ratio <= 1:
        return 0
    return int(min(levels, math.floor(math.log2(ratio))))
