"""The ``render:`` section of a job: a PNG drawn once the job's file is complete."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checks import Choice, bad_character, boolean, is_int, member, show, unknown_keys

__all__ = ["RenderConfig", "Scale", "Layer", "VISPY_COLORMAPS", "MAX_CONTOURS", "parse_render", "check_path_text"]

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

    LINEAR = "linear"
    SYMMETRIC = "symmetric"  # symmetric about zero
    LOG = "log"  # log10 of the positive values


class Layer(Choice):
    """What a picture draws, in drawing order."""

    IMAGE = "image"
    CONTOURS = "contours"
    BASINS = "basins"
    ARROWS = "arrows"
    STREAMLINES = "streamlines"
    PATHS = "paths"


@dataclass(frozen=True)
class RenderConfig:
    """A PNG to draw once the job's file is complete (``render:`` in a job)."""

    output: Path
    size: tuple[int, int] = (1200, 900)
    layers: tuple[Layer, ...] = (Layer.IMAGE, Layer.BASINS, Layer.ARROWS, Layer.STREAMLINES, Layer.PATHS)
    field: str = "value"
    colormap: str = "viridis"  # vispy's names, or matplotlib's where it is installed: not a fixed list
    descent: bool = False
    scale: Scale = Scale.LINEAR
    colorbar: bool = True
    surface: bool = False
    contours: int = 10  # contour lines (layer contours)


_KEYS = ("output", "size", "layers", "field", "colormap", "descent", "scale", "colorbar", "surface", "contours")


def check_path_text(raw: Any, where: str) -> None:
    """A file path from the job file: text, not blank, no control characters (a newline, NUL)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: expected a file path, got {show(raw)}")
    bad = bad_character(raw)
    if bad:
        raise ConfigError(f"{where}: the path {show(raw)} has {bad} in it")


def parse_render(raw: Any, where: str, output: Path, name: str, ndim: int) -> RenderConfig:
    """``render: true`` or a mapping of the settings above; the PNG goes beside ``output``."""
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected true or a mapping ({', '.join(_KEYS)}), got {show(raw)}")
    unknown_keys(raw, where, _KEYS)
    if ndim != 2:
        raise ConfigError(f"{where}: renders are for 2D jobs; this grid has {ndim} axes")
    out = raw.get("output", str(output.with_name(f"{output.stem}-{name}.png")))
    if not isinstance(out, str) or not out.endswith(".png"):
        raise ConfigError(f"{where}.output: expected a path ending in .png, got {show(out)}")
    check_path_text(out, f"{where}.output")
    size = raw.get("size", [1200, 900])
    if not isinstance(size, list) or len(size) != 2 or not all(is_int(v) and 16 <= v <= 16384 for v in size):
        raise ConfigError(f"{where}.size: expected [width, height] in pixels (16 to 16384), got {show(size)}")
    layers = _layers(raw.get("layers", [x.value for x in Layer if x is not Layer.CONTOURS]), f"{where}.layers")
    flags = {
        key: boolean(raw.get(key, default), f"{where}.{key}")
        for key, default in (("descent", False), ("colorbar", True), ("surface", False))
    }
    scale = member(Scale, raw.get("scale", "linear"))
    if scale is None:
        raise ConfigError(f"{where}.scale: expected linear, symmetric or log, got {show(raw.get('scale'))}")
    fld = raw.get("field", "value")
    if not isinstance(fld, str) or not _FIELD_NAME.fullmatch(fld):
        raise ConfigError(f"{where}.field: expected a field name such as value, magnitude or grad_x, got {show(fld)}")
    colormap = _colormap(raw.get("colormap", "viridis"), f"{where}.colormap")
    contours = raw.get("contours", 10)
    if not is_int(contours) or not 1 <= contours <= MAX_CONTOURS:
        raise ConfigError(
            f"{where}.contours: expected a number of contour lines from 1 to {MAX_CONTOURS}, got {show(contours)}"
        )
    return RenderConfig(Path(out), (size[0], size[1]), layers, fld, colormap, scale=scale, contours=contours, **flags)


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
