"""The ``render:`` section of a job: a picture (PNG, SVG or PDF) drawn once the job's file is complete."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checks import Choice, bad_character, boolean, is_int, member, show, unknown_keys

__all__ = [
    "RenderConfig",
    "Scale",
    "Layer",
    "Theme",
    "Aspect",
    "VISPY_COLORMAPS",
    "MAX_CONTOURS",
    "parse_render",
    "check_path_text",
]

MAX_CONTOURS = 1000

# vispy 0.17's colormaps (vispy.color.get_colormaps()), listed here because importing
# vispy.color loads its GL modules; tests/reliability/test_config_limits.py keeps it in step.
VISPY_COLORMAPS = (
    "GrBu",
    "GrBu_d",
    "HiLo",
    "PuGr",
    "RdBu",
    "RdYeBuCy",
    "autumn",
    "blues",
    "cool",
    "coolwarm",
    "cubehelix",
    "diverging",
    "fire",
    "grays",
    "greens",
    "hot",
    "hsl",
    "husl",
    "ice",
    "light_blues",
    "orange",
    "reds",
    "single_hue",
    "spring",
    "summer",
    "viridis",
    "winter",
)

_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")


class Scale(Choice):
    """How field values map to colours."""

    AUTO = "auto"  # log for a non-negative field spanning several decades, else linear
    LINEAR = "linear"
    SYMMETRIC = "symmetric"  # symmetric about zero
    LOG = "log"  # log10 of the positive values


class Layer(Choice):
    """What a picture draws, in drawing order."""

    IMAGE = "image"
    CONTOURS = "contours"
    BASINS = "basins"
    MINIMA = "minima"
    ARROWS = "arrows"
    STREAMLINES = "streamlines"
    PATHS = "paths"


class Theme(Choice):
    LIGHT = "light"
    DARK = "dark"


class Aspect(Choice):
    AUTO = "auto"  # fill the picture
    EQUAL = "equal"  # one unit is as long on both axes


DEFAULT_LAYERS = (Layer.IMAGE, Layer.MINIMA, Layer.ARROWS, Layer.STREAMLINES, Layer.PATHS)
PICTURE_SUFFIXES = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class RenderConfig:
    """A picture to draw once the job's file is complete (``render:`` in a job). ``None``:
    decided from the job, as ``gradbatch render`` decides (see gradbatch.viewer.options)."""

    output: Path
    size: tuple[int, int] = (1200, 900)
    layers: tuple[Layer, ...] = DEFAULT_LAYERS
    field: str | None = None  # value, or magnitude for a vector job
    colormap: str = "viridis"  # vispy's names, or matplotlib's where it is installed: not a fixed list
    descent: bool | None = None  # downhill arrows when the job descends
    scale: Scale = Scale.AUTO
    colorbar: bool = True
    surface: bool = False
    contours: int = 10  # contour lines (layer contours)
    clim: tuple[float, float] | None = None
    robust: float | None = None  # percentile P: limits at P and 100 - P
    theme: Theme = Theme.LIGHT
    aspect: Aspect | None = None
    title: str | None = None
    dpi: int = 150
    legend: bool = True


_KEYS = (
    "output", "size", "layers", "field", "colormap", "descent", "scale", "colorbar", "surface", "contours",
    "clim", "robust", "theme", "aspect", "title", "dpi", "legend",
)  # fmt: skip


def check_path_text(raw: Any, where: str) -> None:
    """A file path from the job file: text, not blank, no control characters (a newline, NUL)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: expected a file path, got {show(raw)}")
    bad = bad_character(raw)
    if bad:
        raise ConfigError(f"{where}: the path {show(raw)} has {bad} in it")


def parse_render(raw: Any, where: str, output: Path, name: str, ndim: int) -> RenderConfig:
    """``render: true`` or a mapping of the settings above; the picture goes beside ``output``."""
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected true or a mapping ({', '.join(_KEYS)}), got {show(raw)}")
    unknown_keys(raw, where, _KEYS)
    if ndim != 2:
        raise ConfigError(f"{where}: renders are for 2D jobs; this grid has {ndim} axes")
    out = raw.get("output", str(output.with_name(f"{output.stem}-{name}.png")))
    if not isinstance(out, str) or not out.lower().endswith(PICTURE_SUFFIXES):
        raise ConfigError(f"{where}.output: expected a path ending in .png, .svg or .pdf, got {show(out)}")
    check_path_text(out, f"{where}.output")
    size = raw.get("size", [1200, 900])
    if not isinstance(size, list) or len(size) != 2 or not all(is_int(v) and 16 <= v <= 16384 for v in size):
        raise ConfigError(f"{where}.size: expected [width, height] in pixels (16 to 16384), got {show(size)}")
    layers = _layers(raw.get("layers", [x.value for x in DEFAULT_LAYERS]), f"{where}.layers")
    flags = {
        key: boolean(raw.get(key, default), f"{where}.{key}")
        for key, default in (("colorbar", True), ("surface", False), ("legend", True))
    }
    descent = None if raw.get("descent") is None else boolean(raw["descent"], f"{where}.descent")
    choices = {key: _choice(cls, raw, key, default, where) for key, cls, default in _CHOICES}
    fld = raw.get("field")
    if fld is not None and (not isinstance(fld, str) or not _FIELD_NAME.fullmatch(fld)):
        raise ConfigError(f"{where}.field: expected a field name such as value, magnitude or grad_x, got {show(fld)}")
    colormap = _colormap(raw.get("colormap", "viridis"), f"{where}.colormap")
    contours = raw.get("contours", 10)
    if not is_int(contours) or not 1 <= contours <= MAX_CONTOURS:
        raise ConfigError(
            f"{where}.contours: expected a number of contour lines from 1 to {MAX_CONTOURS}, got {show(contours)}"
        )
    return RenderConfig(
        Path(out), (size[0], size[1]), layers, fld, colormap, descent, contours=contours,
        clim=_clim(raw.get("clim"), f"{where}.clim", choices["scale"]),
        robust=_robust(raw.get("robust"), f"{where}.robust"),
        title=_title(raw.get("title"), f"{where}.title"), dpi=_dpi(raw.get("dpi", 150), f"{where}.dpi"),
        **choices, **flags,  # type: ignore[arg-type]
    )  # fmt: skip


_CHOICES = (("scale", Scale, Scale.AUTO), ("theme", Theme, Theme.LIGHT), ("aspect", Aspect, None))


def _choice(cls: Any, raw: dict[str, Any], key: str, default: Any, where: str) -> Any:
    if raw.get(key) is None:
        return default
    value = member(cls, raw[key])
    if value is None:
        names = cls.names()
        raise ConfigError(f"{where}.{key}: expected {', '.join(names[:-1])} or {names[-1]}, got {show(raw[key])}")
    return value


def _number(raw: Any) -> bool:
    return isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw == raw and abs(raw) != float("inf")


def _clim(raw: Any, where: str, scale: Scale) -> tuple[float, float] | None:
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and all(_number(v) for v in raw) and raw[0] < raw[1]):
        raise ConfigError(f"{where}: expected [lo, hi], two finite numbers with lo < hi, got {show(raw)}")
    if scale is Scale.LOG and raw[0] <= 0:
        raise ConfigError(f"{where}: a log scale needs a positive lower limit, got {show(raw)}")
    return float(raw[0]), float(raw[1])


def _robust(raw: Any, where: str) -> float | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return 2.0
    if not (_number(raw) and 0 <= raw < 50):
        raise ConfigError(f"{where}: expected true (2%) or a percentile from 0 to 50, got {show(raw)}")
    return float(raw)


def _title(raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 300 or bad_character(raw.replace("\n", "")):
        raise ConfigError(f"{where}: expected a line of text (at most 300 characters), got {show(raw)}")
    return raw


def _dpi(raw: Any, where: str) -> int:
    if not (is_int(raw) and 20 <= raw <= 1200):
        raise ConfigError(f"{where}: expected dots per inch from 20 to 1200, got {show(raw)}")
    return int(raw)


def _layers(raw: Any, where: str) -> tuple[Layer, ...]:
    layers = [member(Layer, x) for x in raw] if isinstance(raw, list) else None
    if layers is None or None in layers:
        raise ConfigError(f"{where}: expected a list of {', '.join(Layer.names())}, got {show(raw)}")
    return tuple(x for x in layers if x is not None)


def _colormap(raw: Any, where: str) -> str:
    """vispy's colormap names, and matplotlib's where matplotlib is installed (vispy falls back
    to it): checked now, not after the job has been computed."""
    if isinstance(raw, str) and raw in VISPY_COLORMAPS:
        return raw
    if isinstance(raw, str) and importlib.util.find_spec("matplotlib") is not None:
        import matplotlib

        if raw in matplotlib.colormaps:
            return raw
    raise ConfigError(
        f"{where}: unknown colormap {show(raw)}; allowed: {', '.join(VISPY_COLORMAPS)}"
        + (" and matplotlib's colormaps" if importlib.util.find_spec("matplotlib") else "")
    )
