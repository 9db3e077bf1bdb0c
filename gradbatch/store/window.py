"""Field windows: a frozen request (job, window, canvas size) becomes a response holding the
fields of that window at the pyramid level that keeps at most one data point per screen pixel.

The full grid is never loaded: only the requested window of one level is read. Files still
being written (SWMR) can be read: each read refreshes its datasets first. The viewer's loader
thread calls :meth:`FieldReader.read`; nothing outside the store sees an h5py object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import StoreError
from ..geometry import choose_level
from ..records import FieldStats, Overlays, WindowRequest, WindowResponse
from . import layout as L
from .access import child, open_store, read_array, reading
from .overlays import overlays_of
from .reader import check_job, open_job
from .stats import field_stats

__all__ = ["WindowRequest", "WindowResponse", "FieldReader"]


@dataclass(frozen=True)
class _Level:
    x: np.ndarray
    y: np.ndarray
    s: np.ndarray | None = None  # a 3D job: the slice axis's coordinates


class FieldReader:
    """Window reads from one 2D job of a gradbatch file, or from planes of a 3D job.

    A 3D job is read one plane at a time, perpendicular to ``slice_axis`` (default: its last
    axis); ``axes`` are then the two in-plane axes, in the grid's order, and each request names
    the plane's coordinate.
    """

    def __init__(self, path: str | Path, job: str | None = None, slice_axis: str | None = None) -> None:
        self.path = Path(path)
        self._file = open_store(self.path)
        try:
            self._open(job, slice_axis)
        except BaseException:
            self._file.close()
            raise

    def _open(self, job: str | None, slice_axis: str | None) -> None:
        g = self._group0 = open_job(self.path, self._file, job)
        self.job = job = g.name.lstrip("/")
        layout = self.layout = check_job(self.path, g)  # all a reader and the overlays rely on, before drawing
        self._stats: dict[str, FieldStats] = {}
        self.grid_axes = list(layout.axes)
        if len(self.grid_axes) not in (2, 3):
            raise StoreError(
                f"{self.path}: job {job!r} has {len(self.grid_axes)} axes; window reads need 2, or 3 read as planes"
            )
        self.slice_axis: str | None = None
        if len(self.grid_axes) == 3:
            self.slice_axis = slice_axis or self.grid_axes[-1]
            if self.slice_axis not in self.grid_axes:
                raise StoreError(
                    f"{self.path}: job {job!r} has no axis {self.slice_axis!r} to slice; "
                    f"axes: {', '.join(self.grid_axes)}"
                )
        elif slice_axis is not None:
            raise StoreError(f"{self.path}: job {job!r} is 2D; slice_axis is for 3D jobs")
        self.axes = [a for a in self.grid_axes if a != self.slice_axis]
        self.fields = list(layout.fields)
        self.levels = [self._level(k) for k in range(len(layout.shapes))]

    def _group(self, level: int) -> h5py.Group:
        return self._group0 if level == 0 else child(self.path, self._group0, L.level_group(level), h5py.Group)

    def _level(self, k: int) -> _Level:
        g = self._group(k)

        def coords(axis: str) -> np.ndarray:
            return read_array(self.path, child(self.path, g, axis))

        return _Level(coords(self.axes[0]), coords(self.axes[1]), coords(self.slice_axis) if self.slice_axis else None)

    @property
    def axis_labels(self) -> dict[str, tuple[str, str]]:
        """Every grid axis's (long_name, units) for pictures ("" where the job gives none): the
        job's ``labels:``/``units:``, or a landscape's names for its parameters or directions."""
        return dict(self.layout.labels)

    @property
    def function_text(self) -> str:
        """The job's function as stored (its expression, a built-in's formula, a callable's
        reference or a landscape's description), to title a picture "job: function"."""
        return self.layout.function

    @property
    def plane_axes(self) -> tuple[int, int]:
        """Where the view's two axes sit among the grid's (to project paths and streamlines)."""
        return self.grid_axes.index(self.axes[0]), self.grid_axes.index(self.axes[1])

    @property
    def vectors(self) -> tuple[str, str] | None:
        """The in-plane components drawn as arrows: the gradient's, or a vector field's."""
        a, b = self.axes
        for pair in ((f"grad_{a}", f"grad_{b}"), (f"v_{a}", f"v_{b}")):
            if all(p in self.fields for p in pair):
                return pair
        return None

    @property
    def plane_range(self) -> tuple[float, float, float] | None:
        """A 3D job: (first, last, step) of the slice axis's coordinates; None for 2D."""
        s = self.levels[0].s
        if s is None:
            return None
        return float(s[0]), float(s[-1]), float((s[-1] - s[0]) / max(len(s) - 1, 1))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        x, y = self.levels[0].x, self.levels[0].y
        return float(x[0]), float(x[-1]), float(y[0]), float(y[-1])

    def level_for(self, req: WindowRequest, canvas: tuple[int, int] | None = None) -> int:
        x0, x1, y0, y1 = req.window
        canvas = canvas or req.canvas
        full = self.levels[0]
        dx = (full.x[-1] - full.x[0]) / max(len(full.x) - 1, 1)
        dy = (full.y[-1] - full.y[0]) / max(len(full.y) - 1, 1)
        kx = choose_level(abs(x1 - x0) / dx, canvas[0], len(self.levels) - 1)
        ky = choose_level(abs(y1 - y0) / dy, canvas[1], len(self.levels) - 1)
        return min(kx, ky)

    def read(self, req: WindowRequest) -> WindowResponse:
        for name in (*req.fields, *req.coarse_fields):
            if name not in self.fields:
                raise StoreError(
                    f"{self.path}: job {self.job!r} has no field {name!r}; fields: {', '.join(self.fields)}"
                )
        main = self._read(req, req.fields, self.level_for(req))
        if not req.coarse_fields:
            return main
        coarse = self._read(req, req.coarse_fields, self.level_for(req, req.coarse_canvas))
        return WindowResponse(req, main.level, main.x, main.y, main.data, coarse, main.plane)

    def _read(self, req: WindowRequest, names: tuple[str, ...], level: int) -> WindowResponse:
        lev = self.levels[level]
        x0, x1, y0, y1 = req.window
        ix = _span(lev.x, min(x0, x1), max(x0, x1))
        iy = _span(lev.y, min(y0, y1), max(y0, y1))
        g = self._group(level)
        index: tuple[int | slice, ...] = (iy, ix)
        plane = None
        if lev.s is not None:  # the nearest plane of this level, placed in array order (axes reversed)
            want = req.plane if req.plane is not None else float(lev.s[len(lev.s) // 2])
            k = int(np.abs(lev.s - want).argmin())
            plane = float(lev.s[k])
            parts: dict[str | None, int | slice] = {self.axes[0]: ix, self.axes[1]: iy, self.slice_axis: k}
            index = tuple(parts[a] for a in reversed(self.grid_axes))
        data = {}
        for name in names:
            d = child(self.path, g, name)
            with reading(self.path, d.name):
                if self._file.swmr_mode:
                    d.refresh()  # a file still being written: see the tiles that landed since
                data[name] = d[index]  # rows follow axes[1], columns axes[0], whichever axis is sliced
        return WindowResponse(req, level, lev.x[ix], lev.y[iy], data, plane=plane)

    def stats(self, name: str) -> FieldStats:
        """Field ``name``'s statistics over the whole job (a 3D job: its volume), read once and
        kept: colour limits come from these, never from the window read."""
        if name not in self.fields:
            raise StoreError(f"{self.path}: job {self.job!r} has no field {name!r}; fields: {', '.join(self.fields)}")
        if name not in self._stats:
            self._stats[name] = field_stats(self.path, self._group0, self.layout, name)
        return self._stats[name]

    def overlays(self) -> Overlays:
        """The job's paths, basins, streamlines and landscape as records (read now, whole)."""
        return overlays_of(self.path, self._group0, self.grid_axes)

    def close(self) -> None:
        self._file.close()


def _span(coords: np.ndarray, lo: float, hi: float) -> slice:
    """Indices covering [lo, hi] plus one point of margin on each side (coords ascending)."""
    a = max(int(np.searchsorted(coords, lo, side="left")) - 1, 0)
    b = min(int(np.searchsorted(coords, hi, side="right")) + 1, len(coords))
    return slice(a, max(b, a + 1))
