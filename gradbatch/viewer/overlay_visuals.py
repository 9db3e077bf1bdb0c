"""A job's static overlays drawn over its image: basin outlines, minima, streamlines with
direction arrowheads and descent paths coloured by optimiser. Built once from the records the
store reads (:class:`gradbatch.records.Overlays`); GL only draws here.

Basins never tint the image (the colour bar stays true): they are drawn as outlines, with their
count in the legend. Descent paths are one line set per optimiser label, a circle at each start
and a star at each current end, both edged so they show on dark and light colours alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..geometry import polyline_connect
from ..records import BasinsResult, Descent, Overlays, Stored, Streamlines
from .arrows import ArrowField
from .prepare import path_polylines
from .window_layout import THEMES, Theme, kind_symbol, rgba

__all__ = ["StaticLayers", "basin_outline"]


def basin_outline(label: np.ndarray) -> np.ndarray:
    """(ny, nx, 4) float32 RGBA: opaque where a basin label changes to its neighbour, else clear."""
    edge = np.zeros(label.shape, dtype=bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    rgba = np.zeros(label.shape + (4,), dtype=np.float32)
    rgba[edge] = (1.0, 1.0, 1.0, 0.9)
    return rgba


class StaticLayers:
    """The overlays of one job under ``parent`` (a vispy scene node), projected on the view's
    ``plane_axes``; ``layers[name]`` lists each layer's visuals (basins, minima, streamlines, paths)."""

    def __init__(
        self,
        scene: Any,
        parent: Any,
        overlays: Overlays,
        plane_axes: tuple[int, int] = (0, 1),
        theme: Theme = THEMES["dark"],
    ) -> None:
        self.scene = scene
        self.theme = theme
        self.plane_axes = list(plane_axes)
        self.layers: dict[str, list[Any]] = {"basins": [], "minima": [], "streamlines": [], "paths": []}
        self.kinds: list[str] = []
        self.basin_count = 0
        self._basins(parent, overlays.basins)
        self._streamlines(parent, overlays.streamlines)
        self._paths(parent, overlays.paths)
        self.labels = [label for label, _ in self.path_labels]
        self.has_streamlines = bool(self.layers["streamlines"])

    def _basins(self, parent: Any, stored: Stored[BasinsResult] | None) -> None:
        """Basin outlines (a 2D basin map only) and the critical points the basins end in."""
        if stored is None:
            return
        from vispy.visuals.transforms import STTransform

        rec = stored.record
        pts = [p for p in rec.points if len(p.point) > max(self.plane_axes)]
        if pts:
            by_kind: dict[str, list[list[float]]] = {}
            for p in pts:
                by_kind.setdefault(p.kind, []).append([p.point[self.plane_axes[0]], p.point[self.plane_axes[1]]])
            for kind, xy in by_kind.items():
                self.kinds.append(kind)
                self.layers["minima"].append(
                    self.scene.visuals.Markers(
                        pos=np.array(xy, np.float32),
                        face_color=self.theme.foreground,
                        edge_color=self.theme.background,
                        edge_width=1.5,
                        size=12,
                        symbol=kind_symbol(kind),
                        parent=parent,
                    )
                )
        if rec.label.ndim != 2:
            return
        self.basin_count = len(rec.points)
        x, y = rec.axes[0], rec.axes[1]
        img = self.scene.visuals.Image(basin_outline(rec.label), parent=parent)
        dx = (x[-1] - x[0]) / max(len(x) - 1, 1)
        dy = (y[-1] - y[0]) / max(len(y) - 1, 1)
        img.transform = STTransform(scale=(dx, dy), translate=(x[0] - dx / 2, y[0] - dy / 2))
        img.set_gl_state("translucent", depth_test=False)
        self.layers["basins"].append(img)

    def _streamlines(self, parent: Any, stored: Stored[Streamlines] | None) -> None:
        """The lines, and an arrowhead at the middle of each pointing along it (the field's way)."""
        if stored is None:
            return
        pts = stored.record.points[:, self.plane_axes].astype(np.float32)
        offsets = np.asarray(stored.record.offsets)
        if not len(pts):
            return
        color = self.theme.streamlines
        self.layers["streamlines"].append(
            self.scene.visuals.Line(
                pos=pts, connect=polyline_connect(offsets), color=color, width=1.5, method="gl", parent=parent
            )
        )
        starts, ends = offsets[:-1], offsets[1:]
        long = (ends - starts) >= 3
        mid = ((starts + ends) // 2)[long]
        if not len(mid):
            return
        d = pts[mid + 1] - pts[mid - 1]
        norm = np.hypot(d[:, 0], d[:, 1])
        ok = np.isfinite(norm) & (norm > 0)
        span = np.nanmax(pts, axis=0) - np.nanmin(pts, axis=0)
        size = 0.02 * float(np.hypot(*span)) if np.all(np.isfinite(span)) else 1.0  # small sprites: cheap
        heads = ArrowField(parent=parent)
        vec = d[ok] / norm[ok, None] * size * np.array([1.0, 1.0], np.float32)
        heads.set_data(pts[mid][ok], vec, np.tile(np.array(color, np.float32), (int(ok.sum()), 1)))
        self.layers["streamlines"].append(heads)

    def _paths(self, parent: Any, paths: Mapping[str, Stored[Descent]]) -> None:
        """Each optimiser's paths as one line set, a circle at each start, a star at each end."""
        self.path_sets: list[tuple[np.ndarray, Any, Any]] = []  # positions [paths, steps+1, 2], line, ends
        self.path_labels: list[tuple[str, str]] = []
        self.path_steps = 0
        for i, (label, stored) in enumerate(paths.items()):
            color = self.theme.paths[i % len(self.theme.paths)]
            positions = stored.record.positions
            if positions is None:
                continue
            pos = positions[:, :, self.plane_axes].astype(np.float32)
            first = pos[:, 0]
            first = first[np.isfinite(first).all(axis=1)]
            if not len(first):
                continue
            line = self.scene.visuals.Line(
                pos=np.zeros((2, 2), np.float32), color=rgba(color), width=2, method="gl", parent=parent
            )
            ends = self.scene.visuals.Markers(parent=parent)
            starts = self.scene.visuals.Markers(
                pos=first, face_color=color, edge_color=self.theme.marker_edge, size=8, symbol="o", parent=parent
            )
            self.path_sets.append((pos, line, ends))
            self.path_labels.append((label, color))
            self.path_steps = max(self.path_steps, pos.shape[1] - 1)
            self.layers["paths"] += [line, starts, ends]

    def set_path_step(self, step: int | None) -> int:
        """Draw every path up to ``step`` (None: whole); returns the step drawn."""
        step = self.path_steps if step is None else int(np.clip(step, 0, self.path_steps))
        for (pos, line, ends), (_, color) in zip(self.path_sets, self.path_labels):
            verts, connect, tips = path_polylines(pos, step)
            if len(connect):
                line.set_data(pos=verts, connect=connect)
            else:  # at step 0 there is no segment yet: an invisible one at the start
                line.set_data(pos=np.repeat(verts[:1], 2, axis=0), connect="segments")
            ends.set_data(pos=tips, face_color=color, edge_color=self.theme.marker_edge, size=12, symbol="star")
        return step

    def visuals(self) -> list[Any]:
        return [v for vs in self.layers.values() for v in vs]
