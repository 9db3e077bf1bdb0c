"""What a picture draws and how, shared by ``gradbatch render`` (files) and ``gradbatch view``
(the window): one set of options, parsed once, checked once. No GL, no file reads.

Defaults follow what a reader of the picture needs, not what is cheapest to draw: several
options start as ``None`` ("decide from the job"), resolved against the file by
:func:`resolve` once it is open (the field: ``value``, or ``magnitude`` for a vector job; the
arrows' direction: downhill when the job descends; the colour scale: log for a non-negative
field spanning several decades; the aspect: equal unless the axes are different quantities).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import ViewerError

__all__ = [
    "LAYERS",
    "DEFAULT_LAYERS",
    "SCALES",
    "ARROW_MODES",
    "THEMES",
    "ASPECTS",
    "NEEDS_VISPY",
    "LayerOptions",
    "RenderOptions",
    "Resolved",
    "parse_size",
    "parse_window",
    "parse_slice",
    "parse_layers",
    "parse_clim",
    "VALUE_OPTIONS",
    "join_negative_values",
    "picture_options",
]

LAYERS = ("image", "contours", "basins", "minima", "arrows", "streamlines", "paths")
"""What a picture can draw, in drawing order."""
DEFAULT_LAYERS = ("image", "minima", "arrows", "streamlines", "paths")
"""Drawn unless asked otherwise: contours and basins on request (basins hide the image's colours)."""
SCALES = ("auto", "linear", "symmetric", "log")
ARROW_MODES = ("clip", "normalize", "scale")
THEMES = ("light", "dark")
ASPECTS = ("auto", "equal")
NEEDS_VISPY = "drawing needs vispy: pip install 'gradbatch[viewer]'"


@dataclass(frozen=True)
class LayerOptions:
    """What to draw and how; ``None`` means "decide from the job" (see :func:`resolve`)."""

    layers: tuple[str, ...] = DEFAULT_LAYERS
    field: str | None = None  # the image's field (None: value, or magnitude for a vector job)
    colormap: str = "viridis"
    scale: str = "auto"  # auto | linear | symmetric (limits +-max|v|) | log (log10; values <= 0 masked)
    clim: tuple[float, float] | None = None  # colour limits; None: from the field's statistics
    robust: float | None = None  # colour limits at these percentiles (p, 100 - p) instead of min, max
    contours: int = 10  # contour lines, evenly spaced in the colour scale between the limits
    arrow_mode: str = "clip"  # clip: length ~ |grad| up to a cell | normalize: direction only | scale
    pixels_per_arrow: float = 24.0
    descent: bool | None = None  # arrows point downhill (None: when the job has descent paths/basins/flows)
    colorbar: bool = True
    legend: bool = True
    path_step: int | None = None  # descent paths drawn up to this step (None: whole)
    theme: str = "light"  # light | dark
    aspect: str | None = None  # auto (fill the axes) | equal (None: equal unless the axes are different quantities)
    title: str | None = None  # None: the job's name and function

    def __post_init__(self) -> None:
        if isinstance(self.layers, str):  # "image,arrows", as on the command line: not its letters
            object.__setattr__(self, "layers", parse_layers(self.layers))

    def check(self) -> None:
        """Raise a ViewerError naming the first option that cannot be drawn."""
        for layer in self.layers:
            if layer not in LAYERS:
                raise ViewerError(f"layers: unknown layer {layer!r}; allowed: {', '.join(LAYERS)}")
        choices = {"scale": SCALES, "arrow_mode": ARROW_MODES, "theme": THEMES, "aspect": ASPECTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed and not (name == "aspect" and self.aspect is None):
                raise ViewerError(f"{name}: unknown value {getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        _check_colormap(self.colormap)
        if not 1 <= self.contours <= 1000:
            raise ViewerError(f"contours: expected a count from 1 to 1000, got {self.contours}")
        if not self.pixels_per_arrow >= 1:
            raise ViewerError(f"pixels_per_arrow: expected at least 1 pixel, got {self.pixels_per_arrow}")
        if self.path_step is not None and self.path_step < 0:
            raise ViewerError(f"path_step: expected a step of at least 0, got {self.path_step}")
        if self.clim is not None:
            lo, hi = self.clim
            if not (lo < hi and max(abs(lo), abs(hi)) <= 1e300) or hi - lo <= max(abs(lo), abs(hi)) * 1e-12:
                raise ViewerError(
                    f"clim: expected finite limits lo < hi, within ±1e300 and far enough apart to draw, "
                    f"got {lo:g},{hi:g}"
                )
            if self.scale == "log" and lo <= 0:
                raise ViewerError(f"clim: a log scale needs a positive lower limit, got {lo:g}")
        if self.robust is not None and not 0 <= self.robust < 50:
            raise ViewerError(
                f"robust: expected a percentile from 0 to 50 (e.g. 2: limits at 2% and 98%), got {self.robust:g}"
            )


@dataclass(frozen=True)
class RenderOptions(LayerOptions):
    """A picture file: the layer options and where: its size, resolution and data window."""

    size: tuple[int, int] = (1200, 900)  # pixels (PNG); with dpi, the figure's size in inches
    dpi: int = 150
    window: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1; None: the whole grid
    surface: bool = False  # seed 000's 3D picture: the surface, with arrows in the plane below
    slice_axis: str | None = None  # a 3D job: the axis cut by the drawn plane (None: its last)
    plane: float | None = None  # a 3D job: the plane's coordinate on that axis (None: the middle)
    elevation: float = 30.0  # camera angles for the surface, degrees
    azimuth: float = -60.0
    panels: bool = False  # small multiples: one panel per optimiser

    def check(self) -> None:
        super().check()
        w, h = self.size
        if not (16 <= w <= 16384 and 16 <= h <= 16384):
            raise ViewerError(f"size: each side must be 16 to 16384 pixels, got {w}x{h}")
        if not 20 <= self.dpi <= 1200:
            raise ViewerError(f"dpi: expected 20 to 1200 dots per inch, got {self.dpi}")


@dataclass(frozen=True)
class Resolved:
    """The options' ``None``s decided for one job, with the reasons a picture states."""

    field: str
    descent: bool
    scale: str  # linear | symmetric | log
    aspect: str  # auto | equal
    notes: tuple[str, ...] = ()  # e.g. "log scale: values span 7 decades"


def resolved(options: LayerOptions, r: Resolved) -> LayerOptions:
    """``options`` with its ``None``s and ``auto``s replaced by the decisions ``r``."""
    return replace(options, field=r.field, descent=r.descent, scale=r.scale, aspect=r.aspect)


def _check_colormap(name: str) -> None:
    try:
        from vispy.color import get_colormap, get_colormaps
    except ImportError:
        raise ViewerError(NEEDS_VISPY) from None
    try:
        get_colormap(name)  # vispy's own, or matplotlib's where matplotlib is installed
    except (KeyError, ValueError, TypeError):
        raise ViewerError(
            f"colormap: unknown colormap {name!r}; allowed: {', '.join(sorted(get_colormaps()))} "
            "(and matplotlib's names where it is installed)"
        ) from None


# -- command-line values ------------------------------------------------------------------------
VALUE_OPTIONS = ("--window", "--clim")
"""Options whose value may start with '-' (``--window -2,2,-2,2``): argparse would take it for
an option, so :func:`join_negative_values` joins such a pair into ``--window=-2,2,-2,2``."""


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with each ``OPTION VALUE`` of :data:`VALUE_OPTIONS` whose value starts with '-'
    and a digit or '.' joined as ``OPTION=VALUE``."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a in VALUE_OPTIONS and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ViewerError(f"--size: expected WIDTHxHEIGHT, e.g. 1200x900, got {text!r}") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise ViewerError(f"--size: each side must be 16 to 16384 pixels, got {text!r}")
    return w, h


def _numbers(text: str, option: str, count: int, form: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(abs(v) < float("inf") for v in values):
        raise ViewerError(f"{option}: expected {form} (finite numbers), got {text!r}")
    return values


def parse_window(text: str) -> tuple[float, float, float, float]:
    """``x0,x1,y0,y1``, or ``x0,x1`` (y: NaN, the whole range; for a 1D job, the curve's)."""
    n = 2 if text.count(",") == 1 else 4
    x0, x1, *y = _numbers(text, "--window", n, "x0,x1,y0,y1 or x0,x1")
    y0, y1 = y if y else (float("nan"), float("nan"))
    if not (x0 < x1 and (not y or y0 < y1)):
        raise ViewerError(f"--window: expected x0 < x1 and y0 < y1, got {text!r}")
    return x0, x1, y0, y1


def parse_clim(text: str) -> tuple[float, float]:
    lo, hi = _numbers(text, "--clim", 2, "lo,hi")
    if not lo < hi:
        raise ViewerError(f"--clim: expected lo < hi, got {text!r}")
    return lo, hi


def parse_slice(text: str) -> tuple[str, float | None]:
    """``--slice AXIS`` (its middle) or ``--slice AXIS=VALUE``: the plane drawn of a 3D job."""
    axis, _, value = text.partition("=")
    if not axis.strip():
        raise ViewerError(f"--slice: expected AXIS or AXIS=VALUE, e.g. z=0.5, got {text!r}")
    if not value:
        return axis.strip(), None
    try:
        return axis.strip(), float(value)
    except ValueError:
        raise ViewerError(f"--slice: expected a number after '=', got {text!r}") from None


def parse_layers(text: str) -> tuple[str, ...]:
    layers = tuple(v.strip() for v in text.split(",") if v.strip())
    for layer in layers:
        if layer not in LAYERS:
            raise ViewerError(f"--layers: unknown layer {layer!r}; allowed: {', '.join(LAYERS)}")
    return layers


# -- keyword values (gradbatch.show, gradbatch.explore) -------------------------------------------
ALIASES = {"arrows": "arrow_mode"}
"""Keywords named as ``gradbatch render``'s options where they differ from the fields."""


def picture_options(base: RenderOptions | None = None, **options: object) -> RenderOptions:
    """``base`` (default: ``gradbatch render``'s defaults) with keyword ``options`` set, named and
    written as ``gradbatch render``'s options are: ``layers=["image", "arrows"]`` or
    ``"image,arrows"``, ``clim=(lo, hi)`` or ``"lo,hi"``, ``size=(w, h)`` or ``"1200x900"``,
    ``window=(x0, x1, y0, y1)``, ``slice="z=0.5"``, ``arrows="normalize"``, ``descent=True``, and
    every other :class:`RenderOptions` field by its name. Checked: one ViewerError naming the
    first option that cannot be drawn, an unknown one with the allowed names."""
    from dataclasses import fields

    allowed = sorted({f.name for f in fields(RenderOptions)} - {"slice_axis", "plane"} | {*ALIASES, "slice"})
    values: dict[str, object] = {}
    for key, value in options.items():
        if key not in allowed:
            raise ViewerError(f"{key}: unknown option; allowed: {', '.join(allowed)}")
        if value is None:
            continue
        if key == "layers":
            value = parse_layers(value) if isinstance(value, str) else tuple(str(v) for v in _seq(value, key))
        elif key == "clim":
            value = parse_clim(value) if isinstance(value, str) else _pair(value, key, float)
        elif key == "size":
            value = parse_size(value) if isinstance(value, str) else _pair(value, key, int)
        elif key == "window":
            value = parse_window(value) if isinstance(value, str) else _window(value)
        elif key == "slice":
            values["slice_axis"], values["plane"] = parse_slice(str(value))
            continue
        else:
            value = _typed(key, value)
        values[ALIASES.get(key, key)] = value
    if base is not None and not isinstance(base, RenderOptions):
        raise ViewerError(f"options: expected a RenderOptions, got {base!r}")
    opts = replace(base or RenderOptions(), **values)  # type: ignore[arg-type]
    opts.check()
    return opts


_BOOLS = ("descent", "colorbar", "legend", "surface", "panels")
_INTS = ("contours", "dpi", "path_step")
_NUMBERS = ("robust", "pixels_per_arrow", "elevation", "azimuth")
_TEXTS = ("field", "colormap", "scale", "arrows", "theme", "aspect", "title")


def _typed(key: str, value: object) -> object:
    """A keyword's value of the type its option takes (a bool, a whole number, a finite number,
    text), or one ViewerError naming the option, the value and the type."""
    import math
    import numbers

    if key in _BOOLS and not isinstance(value, bool):
        raise ViewerError(f"{key}: expected True or False, got {value!r}")
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ViewerError(f"{key}: expected a whole number, got {value!r}")
        return int(value)
    if key in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ViewerError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if key in _TEXTS and not isinstance(value, str):
        raise ViewerError(f"{key}: expected text, got {value!r}")
    return value


def _seq(value: object, key: str) -> Sequence[object]:
    if not isinstance(value, (list, tuple)):
        raise ViewerError(f"{key}: expected a list or a comma-separated text, got {value!r}")
    return value


def _pair(value: object, key: str, kind: type) -> tuple:
    """Two numbers of ``kind`` (whole numbers stay whole: 800.7 pixels is refused)."""
    import math
    import numbers

    items = _seq(value, key)
    want = numbers.Integral if kind is int else numbers.Real
    ok = len(items) == 2 and all(isinstance(v, want) and not isinstance(v, bool) for v in items)
    if not ok or not all(math.isfinite(float(v)) for v in items):  # type: ignore[arg-type]
        what = "two whole numbers" if kind is int else "two finite numbers"
        raise ViewerError(f"{key}: expected {what}, got {value!r}")
    return tuple(kind(v) for v in items)


def _window(value: object) -> tuple[float, float, float, float]:
    try:
        items = [float(v) for v in _seq(value, "window")]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ViewerError(f"window: expected (x0, x1, y0, y1) or (x0, x1), numbers, got {value!r}") from None
    return parse_window(",".join(repr(v) for v in items))
