"""Picture files a reader can publish: matplotlib's axes, ticks, colour bar, legend and
typography around gradbatch's layers, written as PNG, SVG or PDF by the output's suffix.

datashader's way: the data is reduced to what the picture can show before matplotlib sees it
(the pyramid level for the picture's pixels; arrows sampled at data points), and a layer too
dense for matplotlib (a million arrows) is drawn by GL and embedded as one raster inside the
vector axes, as matplotlib's ``rasterized=True`` does. Thin layers (paths, streamlines,
contours, a few thousand arrows) stay vector. Colour limits come from the field's statistics
(:mod:`gradbatch.viewer.limits`), so every picture of one job shares its colours.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import StoreError, ViewerError
from .limits import Limits
from .options import RenderOptions
from .prepare import colormap_lut

__all__ = [
    "FORMATS",
    "PATH_COLORS",
    "BASIN_COLORS",
    "figure_context",
    "new_figure",
    "save_figure",
    "colormap",
    "norm_of",
    "field_label",
    "axis_label",
    "wrap_title",
    "add_legend",
]

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
"""What a picture file can be, by its suffix (any case)."""
PATH_COLORS = ["#e41a1c", "#ff7f00", "#f781bf", "#a65628", "#984ea3", "#ffff33", "#377eb8", "#4daf4a"]
"""One colour per optimiser: none of them is in viridis, and each keeps a white halo."""
BASIN_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
"""One colour per basin (Dark2): apart from the paths' colours, so a path is never read as a basin."""
NEEDS_MATPLOTLIB = "picture files need matplotlib: pip install 'gradbatch[viewer]'"


@contextmanager
def figure_context(theme: str) -> Iterator[None]:
    """matplotlib's settings for one picture: the theme, text kept as text in SVG and PDF (a
    reader can search and copy the axis names), no global state left behind."""
    try:
        import matplotlib
        import matplotlib.style
    except ImportError:
        raise ViewerError(NEEDS_MATPLOTLIB) from None
    style = "dark_background" if theme == "dark" else "default"
    with (
        matplotlib.style.context(style),
        matplotlib.rc_context(
            {"svg.fonttype": "none", "pdf.fonttype": 42, "axes.titlesize": "medium", "legend.fontsize": "small"}
        ),
    ):
        yield


def new_figure(options: RenderOptions, **kwargs: Any) -> Any:
    """A matplotlib Figure of ``options.size`` pixels at ``options.dpi``, laid out by matplotlib's
    constrained layout (nothing cut off at the edges), on the Agg canvas (no pyplot, no GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w, h = options.size
    fig = Figure(figsize=(w / options.dpi, h / options.dpi), dpi=options.dpi, layout="compressed", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` in the format its suffix names, all at once: the picture goes to a
    temporary file beside ``out`` that replaces it only when whole (an interrupted render never
    leaves half a PNG under the name)."""
    fmt = FORMATS[out.suffix.lower()]
    meta = {"Software" if fmt == "png" else "Creator": f"gradbatch {__version__}"}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the picture ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=fig.dpi, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it private)
        os.replace(tmp, out)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the picture ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def colormap(name: str) -> Any:
    """A matplotlib colormap sampled from vispy's of that name (the window's colours exactly);
    masked points are transparent, so what lies under the image (the "undefined" hatching)
    shows through."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormap_lut(name), name=name).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))


def norm_of(limits: Limits) -> Any:
    """matplotlib's norm for ``limits``: linear, or logarithmic (values <= 0 are masked before)."""
    from matplotlib.colors import LogNorm, Normalize

    if limits.scale == "log":
        return LogNorm(limits.lo, limits.hi, clip=False)
    return Normalize(limits.lo, limits.hi, clip=False)


def field_label(name: str, axes: tuple[str, ...], gradient: bool) -> str:
    """What a field is called on a colour bar: ``f(x, y)``, ``|∇f|``, ``∂f/∂x``; other names as stored."""
    if name == "value":
        return f"f({', '.join(axes)})"
    if name == "magnitude":
        return "|∇f|" if gradient else "|v|"
    if name.startswith("grad_"):
        return f"∂f/∂{name[5:]}"
    return name


def axis_label(axis: str, labels: dict[str, tuple[str, str]]) -> str:
    """An axis's name for a picture: the job's label for it (or its name), with its units."""
    long_name, units = labels.get(axis, ("", ""))
    text = long_name or axis
    return f"{text} [{units}]" if units else text


def wrap_title(text: str, width_px: int, dpi: int) -> str:
    """``text`` wrapped to about the axes' width (a long expression must neither run off the
    edge nor push the axes aside: ~0.6 of the figure)."""
    chars = max(30, int(0.6 * width_px / dpi * 72 / 7.5))  # ~7.5 pt a character at the title's size
    return "\n".join(textwrap.wrap(text, chars, break_long_words=True)[:3])


def add_legend(fig: Any, handles: list[Any], options: RenderOptions, side: bool = False) -> Any:
    """The figure's legend, laid out so nothing is cut off: beside the axes (``side``, where an
    equal aspect leaves the width unused) or below them, in as many columns as the longest
    entry leaves room for; entries wider than their column are wrapped."""
    if not (options.legend and handles):
        return None
    char_px = 8.3 * 0.55 * options.dpi / 72  # ~0.55 em a character at the legend's ~8 pt
    width = options.size[0] * (0.3 if side else 0.92)
    longest = max(len(h.get_label()) for h in handles)
    cols = 1 if side else max(1, min(3, int(width / (longest * char_px + 0.5 * options.dpi))))
    chars = max(20, int(width / cols / char_px) - 6)
    for h in handles:
        h.set_label(textwrap.fill(h.get_label(), chars, break_long_words=False))
    loc = "outside right upper" if side else "outside lower center"
    return fig.legend(handles=handles, loc=loc, ncols=cols, frameon=False, handlelength=1.6)
