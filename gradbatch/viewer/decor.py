"""The window's frame around the data view: title, axes with ticks in data units that follow pan
and zoom, a colour bar with ticks and the field's name, and a legend. GL only draws here; what
the words say is decided in :mod:`gradbatch.viewer.window_layout`.

Layout (a vispy grid; columns collapse on a narrow canvas)::

    +-------------------------------- title --------------------------------+
    | y name | y axis |          data view            | bar | bar axis | legend |
    |        |        |          x axis               |     |          |        |
    |        |        |          x name               |     |          |        |

Text costs llvmpipe about half a second the first time it is drawn, so everything but the data
view starts hidden and is shown after the first frame (:meth:`Decor.reveal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .window_layout import LegendEntry, Theme, rgba

__all__ = ["ColourBar", "Decor"]

BAR_WIDTH = 16  # pixels: the colour bar's strip
BAR_AXIS = 64  # its ticks and the field's name
LEGEND_WIDTH = 150
ROW_PX = 18  # a legend line


def share_fonts(fonts: Any, *texts: Any) -> None:
    """Let vispy text visuals share one glyph atlas (``fonts``: a vispy FontManager). Each makes
    its own by default, and a glyph costs llvmpipe ~30 ms to raster on the CPU the first time:
    shared, the frame's ~60 glyphs are made once, not once per label."""
    for text in texts:
        text._font_manager = fonts
        text._update_font()


def _slot(grid: Any, row: int, col: int, width: int | None = None, height: int | None = None, span: int = 1) -> Any:
    """An empty widget holding a place in ``grid`` (a fixed width or height) until the real one
    is made: the data view gets its final size from the first frame."""
    w = grid.add_widget(row=row, col=col, col_span=span)
    if width is not None:
        w.width_min = w.width_max = width
    if height is not None:
        w.height_min = w.height_max = height
    return w


def _replace(grid: Any, slot: Any, widget: Any, row: int, col: int, span: int = 1) -> Any:
    grid.remove_widget(slot)
    slot.parent = None
    return grid.add_widget(widget, row=row, col=col, col_span=span)


class ColourBar:
    """A strip of the colormap over [lo, hi] in a small view, with an axis of ticks in data units
    and the field's name. ``clim`` may be set as numbers (or, from older callers, strings).
    Its widgets are made when it is first revealed; until then it keeps their place in the grid
    and what they will show."""

    def __init__(self, scene: Any, grid: Any, row: int, col: int, theme: Theme, cmap: Any, fonts: Any) -> None:
        self.scene, self.grid, self.row, self.col = scene, grid, row, col
        self.theme, self.cmap, self.fonts = theme, cmap, fonts
        self.slot = _slot(grid, row, col, width=BAR_WIDTH + BAR_AXIS, span=2)
        self.strip: Any = None
        self.image: Any = None
        self.axis: Any = None
        self._clim = (0.0, 1.0)
        self._label = ""
        self._visible = True  # the image layer is on
        self.revealed = False  # the frame's words are shown (after the first frame)

    def _make(self) -> None:
        from vispy.color import get_colormap

        scene, grid, fg = self.scene, self.grid, rgba(self.theme.foreground)
        grid.remove_widget(self.slot)
        self.slot.parent = None
        self.strip = grid.add_view(row=self.row, col=self.col, camera=scene.PanZoomCamera(interactive=False))
        self.strip.width_min = self.strip.width_max = BAR_WIDTH
        self.strip.border_color = fg
        ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
        cmap = get_colormap(self.cmap) if isinstance(self.cmap, str) else self.cmap
        self.image = scene.visuals.Image(ramp, cmap=cmap, clim=(0, 1))
        self.image.parent = self.strip.scene
        self.axis = scene.AxisWidget(
            orientation="right",
            text_color=fg,
            axis_color=fg,
            tick_color=fg,
            tick_font_size=7,
            axis_font_size=8,
            axis_label_margin=50,
            tick_label_margin=6,
            axis_width=1,
            major_tick_length=5,
            minor_tick_length=2,
        )
        share_fonts(self.fonts, self.axis.axis._text, self.axis.axis._axis_label_vis)
        grid.add_widget(self.axis, row=self.row, col=self.col + 1)
        self.axis.width_min = self.axis.width_max = BAR_AXIS
        grid._update_child_widget_dim()  # the axis maps its ends through its place in the grid
        self.axis.link_view(self.strip)
        self._apply()

    def _apply(self) -> None:
        from vispy.visuals.transforms import STTransform

        if self.strip is None:
            return
        lo, hi = self._clim
        self.image.transform = STTransform(scale=(1.0, (hi - lo) / 256), translate=(0.0, lo))
        self.strip.camera.rect = (0.0, lo, 1.0, hi - lo)
        self.axis.axis.axis_label = self._label

    def set_limits(self, lo: float, hi: float, label: str | None = None) -> None:
        """Show the colormap from ``lo`` (bottom) to ``hi`` (top), ticks in those units."""
        lo, hi = float(lo), float(hi)
        if not hi > lo:
            hi = lo + 1.0
        self._clim = (lo, hi)
        if label is not None:
            self._label = label
        self._apply()

    @property
    def clim(self) -> tuple[float, float]:
        return self._clim

    @clim.setter
    def clim(self, value: Sequence[Any]) -> None:
        self.set_limits(float(value[0]), float(value[1]))

    @property
    def label(self) -> str:
        return self._label

    @property
    def visible(self) -> bool:
        return self._visible and self.revealed

    @visible.setter
    def visible(self, on: bool) -> None:
        self._visible = bool(on)
        if self.strip is not None:
            self.strip.visible = self.axis.visible = self.visible

    def reveal(self, on: bool = True) -> None:
        if on and self.strip is None:
            self._make()
        self.revealed = on
        self.visible = self._visible


class Decor:
    """The frame of ``canvas``: ``view`` (the data), its axes, a title, an optional colour bar
    (``bar``) and legend. ``colorbar``/``legend``: whether to make them (a narrow canvas drops
    the legend, then the colour bar, keeping its width for the data).

    Only the data view is made at once, with empty widgets holding the others' places; each
    group of words is made when it is first revealed (:meth:`reveal_step`, a group a frame after
    the first), so the first frame pays for none of their visuals."""

    def __init__(self, scene: Any, canvas: Any, theme: Theme, cmap: Any, colorbar: bool, legend: bool) -> None:
        from vispy.visuals.text.text import FontManager

        self.scene = scene
        self.theme = theme
        width, height = canvas.size
        grid = canvas.central_widget.add_grid(spacing=0)
        self.grid = grid
        fg = self.fg = rgba(theme.foreground)
        self.fonts = FontManager()
        self.framed = width >= 300 and height >= 200  # a thumbnail keeps its pixels for the data
        self.title: Any = None
        self.xaxis: Any = None
        self.yaxis: Any = None
        self.words = ("", "", "")  # title, x name, y name
        row = col = 1 if self.framed else 0
        self.view = grid.add_view(row=row, col=col, border_color=fg if self.framed else None)
        self.bar = ColourBar(scene, grid, row, col + 1, theme, cmap, self.fonts) if colorbar and width >= 360 else None
        self.legend_view: Any = None
        self.has_legend = legend and width >= 640
        self.columns = 5 if self.has_legend else 4 if self.bar is not None else 2  # the title spans them
        self.slots: dict[str, Any] = {}
        if self.framed:
            self.slots["y"] = _slot(grid, 1, 0, width=64)
            self.slots["x"] = _slot(grid, 2, 1, height=44)
            self.slots["title"] = _slot(grid, 0, 0, height=28, span=self.columns)
        if self.has_legend:
            self.slots["legend"] = _slot(grid, row, col + 3, width=LEGEND_WIDTH)
        self.legend: list[Any] = []
        self.entries: list[LegendEntry] = []  # what the legend says now
        self.rows = max(1, int((height - 72) // ROW_PX))  # legend lines that fit
        self.stage = 0  # text groups shown so far (none before the first frame)
        self.axes_on = True  # off for the surface: its turntable camera has no x, y ticks to give
        grid._update_child_widget_dim()  # lay out now: the first request needs the view's size

    # -- made when first revealed -------------------------------------------------------------
    def _make_axes(self) -> None:
        fg, scene = self.fg, self.scene
        style = dict(text_color=fg, axis_color=fg, tick_color=fg, tick_font_size=7, axis_font_size=9, axis_width=1)
        yaxis = scene.AxisWidget(orientation="left", axis_label_margin=46, tick_label_margin=6, **style)
        yaxis.width_min = yaxis.width_max = 64
        xaxis = scene.AxisWidget(orientation="bottom", axis_label_margin=30, tick_label_margin=14, **style)
        xaxis.height_min = xaxis.height_max = 44
        for axis in (xaxis, yaxis):
            share_fonts(self.fonts, axis.axis._text, axis.axis._axis_label_vis)
        self.yaxis = _replace(self.grid, self.slots.pop("y"), yaxis, 1, 0)
        self.xaxis = _replace(self.grid, self.slots.pop("x"), xaxis, 2, 1)
        self.grid._update_child_widget_dim()  # an axis maps its ends through its place in the grid
        self.link()
        self.set_words(*self.words)

    def _make_title(self) -> None:
        title = self.scene.Label("", color=self.fg, font_size=10, font_manager=self.fonts)
        title.height_min = title.height_max = 28
        self.title = _replace(self.grid, self.slots.pop("title"), title, 0, 0, span=self.columns)
        self.set_words(*self.words)

    def _make_legend(self) -> None:
        view = self.scene.widgets.ViewBox(camera=self.scene.PanZoomCamera(interactive=False))
        view.width_min = view.width_max = LEGEND_WIDTH
        row = col = 1 if self.framed else 0
        self.legend_view = _replace(self.grid, self.slots.pop("legend"), view, row, col + 3)
        self.set_legend(self.entries)

    def link(self) -> None:
        """Follow the data view's camera again (after a new camera was set on it)."""
        for axis in (self.xaxis, self.yaxis):
            if axis is not None:
                axis._linked_view = None
                axis.link_view(self.view)

    def set_words(self, title: str, xname: str, yname: str) -> None:
        if not self.framed:
            return  # a thumbnail: the window's own title says it
        self.words = (title, xname, yname)
        if self.title is not None:
            self.title.text = title
        if self.xaxis is not None and self.yaxis is not None:
            self.xaxis.axis.axis_label = xname
            self.yaxis.axis.axis_label = yname

    STAGES = 3  # axes, colour bar, title and legend

    def reveal(self) -> None:
        """Show all the text now."""
        self.stage = self.STAGES
        self._words()

    def reveal_step(self) -> bool:
        """Show the next group of text (axes, then colour bar, then title and legend): one a
        frame after the first, since each costs llvmpipe a few tenths of a second to make and
        draw the first time (its visuals, shaders and glyphs); returns whether all is shown."""
        self.stage = min(self.stage + 1, self.STAGES)
        self._words()
        return self.revealed

    @property
    def revealed(self) -> bool:
        return self.stage >= self.STAGES

    def show_axes(self, on: bool) -> None:
        """Draw the x and y axes (the 2D map) or not (the surface)."""
        self.axes_on = on
        self._words()

    def _words(self) -> None:
        if self.stage >= 1 and "y" in self.slots:
            self._make_axes()
        if self.stage >= 3 and "title" in self.slots:
            self._make_title()
        if self.stage >= 3 and "legend" in self.slots:
            self._make_legend()
        if self.title is not None:
            self.title.visible = self.stage >= 3
        if self.legend_view is not None:
            self.legend_view.visible = self.stage >= 3 and bool(self.legend)
        for axis in (self.xaxis, self.yaxis):
            if axis is not None:
                axis.visible = self.stage >= 1 and self.axes_on
        if self.bar is not None:
            self.bar.reveal(self.stage >= 2)

    def set_legend(self, entries: Sequence[LegendEntry]) -> None:
        """Draw ``entries``, one a line from the top: a swatch (line, markers or patch) and words
        (kept until the legend is first revealed)."""
        for v in self.legend:
            v.parent = None
        self.legend = []
        self.entries = list(entries) if self.has_legend else []
        if self.legend_view is None:
            return
        if self.entries:
            self.legend = _legend_visuals(self.scene, self.legend_view, self.entries, self.theme, self.rows)
            share_fonts(self.fonts, self.legend[-1])
        self.legend_view.visible = self.revealed and bool(self.legend)


def _legend_visuals(scene: Any, view: Any, entries: Sequence[LegendEntry], theme: Theme, rows: int) -> list[Any]:
    """The legend as a few visuals: one Line for every swatch line, one Markers per symbol, one
    Text for every word (rows ROW_PX apart, in a camera of LEGEND_WIDTH x rows * ROW_PX)."""
    rows = max(len(entries), rows)
    view.camera.rect = (0, 0, LEGEND_WIDTH, rows * ROW_PX)
    segs: list[list[float]] = []
    seg_colors: list[Any] = []
    marks: dict[str, tuple[list[list[float]], list[Any]]] = {}
    words, places = [], []
    for i, e in enumerate(entries):
        y = (rows - i - 0.5) * ROW_PX
        color = rgba(e.color)
        if e.kind in ("path", "line"):
            segs += [[6, y], [30, y]]
            seg_colors += [color, color]
        if e.kind == "path":
            marks.setdefault("o", ([], []))[0].append([6, y])
            marks["o"][1].append(color)
            marks.setdefault("star", ([], []))[0].append([30, y])
            marks["star"][1].append(color)
        elif e.kind in ("marker", "arrow", "patch"):
            symbol = {"arrow": "arrow", "patch": "square"}.get(e.kind, e.symbol or "disc")
            marks.setdefault(symbol, ([], []))[0].append([18, y])
            marks[symbol][1].append(color)
        words.append(e.text)
        places.append([40, y])
    out: list[Any] = []
    if segs:  # a dark casing under each swatch line: a white line still shows on a light panel
        out.append(
            scene.visuals.Line(
                pos=np.array(segs, np.float32),
                color=(0.3, 0.3, 0.3, 1.0),
                connect="segments",
                width=4,
                parent=view.scene,
            )
        )
        out.append(
            scene.visuals.Line(
                pos=np.array(segs, np.float32),
                color=np.array(seg_colors, np.float32),
                connect="segments",
                width=2,
                parent=view.scene,
            )
        )
    for symbol, (pos, colors) in marks.items():
        out.append(
            scene.visuals.Markers(
                pos=np.array(pos, np.float32),
                face_color=np.array(colors, np.float32),
                edge_color=theme.marker_edge,
                size=9,
                symbol=symbol,
                parent=view.scene,
            )
        )
    out.append(
        scene.visuals.Text(
            words,
            pos=np.array(places, np.float32),
            color=theme.foreground,
            font_size=7,
            anchor_x="left",
            parent=view.scene,
        )
    )
    return out
