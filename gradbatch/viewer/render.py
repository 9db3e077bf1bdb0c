"""Headless PNG renders of a 2D job through vispy (Mesa EGL works without a display).

Layers: the value as a colormapped image, gradient (or vector-field) arrows on a
level-of-detail grid, stored streamlines and descent paths. Geometry comes from
:mod:`gradbatch.geometry`; the data window from :mod:`gradbatch.store.window`. GL only draws.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import ConfigError, StoreError, ViewerError
from ..store import FieldReader, JobLayout, WindowRequest, job_layout, read_coords, read_field
from .limits import JobFacts, default_field, resolve
from .options import LAYERS, NEEDS_VISPY, LayerOptions, RenderOptions, Resolved
from .prepare import arrow_canvas
from .visuals import FieldLayers, SurfaceLayers, field_view

if TYPE_CHECKING:  # a type only: the config module is not the viewer's to import at run time
    from ..config import JobConfig

__all__ = [
    "RenderOptions",
    "render",
    "check_output",
    "show",
    "ViewerError",
    "LAYERS",
    "vispy_scene",
    "IMAGE_SUFFIXES",
    "JobPictures",
]

IMAGE_SUFFIXES = (".png", ".svg", ".pdf")
"""What a render writes (by suffix, any case)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Opts = TypeVar("Opts", bound=LayerOptions)


def vispy_scene(app: str | None = "egl") -> Any:
    """``vispy.scene`` with a backend chosen: ``egl`` (headless) or None (vispy picks a window
    backend). Must run before anything else imports vispy.scene."""
    try:
        import vispy
    except ImportError:
        raise ViewerError(NEEDS_VISPY) from None
    if app == "egl":
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    try:
        vispy.use(app=app, gl="gl2")
    except Exception as exc:  # vispy raises several types when a backend cannot load
        raise ViewerError(f"no OpenGL through vispy's {app or 'default'} backend: {exc}") from None
    from vispy import scene

    return scene


def reader_facts(reader: FieldReader) -> JobFacts:
    """What :func:`~gradbatch.viewer.limits.resolve` needs to know of ``reader``'s job."""
    ov = reader.overlays()
    flows = ov.streamlines is not None and ov.streamlines.attrs.get("field") == "descent"
    vectors = reader.vectors
    return JobFacts(
        tuple(reader.fields),
        gradient=vectors is not None and vectors[0].startswith("grad_"),
        descends=bool(ov.paths) or ov.basins is not None or flows,
        landscape=ov.landscape is not None,
        extent=reader.extent,
    )


def settle(options: Opts, reader: FieldReader) -> tuple[Opts, Resolved]:
    """``options`` with what was left to the job decided for ``reader``'s job (see :func:`resolve`)."""
    name = options.field or default_field(tuple(reader.fields))
    stats_of = getattr(reader, "stats", None)
    stats = stats_of(name) if stats_of is not None and name in reader.fields else None
    r = resolve(options, reader_facts(reader), stats)
    return replace(options, field=r.field, descent=r.descent, scale=r.scale, aspect=r.aspect), r


def render(
    path: str | Path,
    out: str | Path,
    job: str | None = None,
    options: RenderOptions = RenderOptions(),
    overwrite: bool = False,
) -> Path:
    """Render ``job`` of the file at ``path`` to the PNG ``out``; returns ``out``.

    ``out`` is checked first (:func:`check_output`): never the input, never an existing file
    that is not a PNG unless ``overwrite``."""
    options.check()
    out = check_output(out, [path], overwrite)
    layout = job_layout(path, job)
    if layout is not None and len(layout.axes) == 1:
        return _render_1d(path, layout, out, options)
    reader = FieldReader(path, job, options.slice_axis)
    try:
        options, decided = settle(options, reader)
        if options.surface:
            return _render_surface(reader, out, options)
        from .figure2d import render_map

        return render_map(reader, out, options, decided)
    finally:
        reader.close()


def check_output(out: str | Path, inputs: Sequence[str | Path] = (), overwrite: bool = False) -> Path:
    """Refuse a render output that would destroy data; returns ``out`` as a Path.

    A render writes PNG, SVG or PDF by the suffix, so ``out`` must end in one of
    :data:`IMAGE_SUFFIXES`. It is never one of ``inputs`` (compared by device and inode: a
    symlink or hard link to the input is the input), even with ``overwrite``; and an existing
    file that is not a picture of its suffix's kind (not one a render made) is replaced only
    with ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ViewerError(
            f"{out}: a render is written as PNG, SVG or PDF by its suffix; the output's suffix must be one of "
            f"{', '.join(IMAGE_SUFFIXES)} (any case), got "
            f"{repr(out.suffix) if out.suffix else 'no suffix'}"
        )

    def no_link() -> None:  # written through, a link would replace its target
        if out.is_symlink():
            raise StoreError(
                f"{out}: is a symbolic link; give the render's output as a plain path "
                f"(the link's target: {os.readlink(out)})"
            )

    try:
        st = os.stat(out)
    except FileNotFoundError:
        no_link()  # a dangling one
        return out
    except OSError as exc:
        raise StoreError(f"{out}: cannot check the render's output ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{out}: is a folder; the render's output must be a file")
    for src in inputs:
        try:
            same = os.path.samestat(st, os.stat(src))
        except OSError:
            continue  # an input that is not there cannot be overwritten
        if same:
            raise StoreError(
                f"{out}: is the input file {src}; the render would overwrite it (give another output path)"
            )
    no_link()
    if not stat.S_ISREG(st.st_mode):  # a pipe would block the render forever, a device take it
        raise StoreError(
            f"{out}: exists and is not a regular file (a pipe or a device?); a render writes picture files only"
        )
    if overwrite:
        return out
    try:
        with open(out, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise StoreError(
            f"{out}: exists and cannot be read to check it ({exc.strerror or exc}); give --overwrite to replace it"
        ) from None
    kind = out.suffix.lower()[1:].upper()
    if not _is_picture(head, kind):
        raise StoreError(
            f"{out}: exists and is not a {kind} picture; a render replaces only pictures of its output's kind "
            "(give --overwrite to replace it anyway)"
        )
    return out


def _is_picture(head: bytes, kind: str) -> bool:
    """Whether ``head`` (a file's first KiB) starts a picture of ``kind`` (PNG, SVG, PDF)."""
    if kind == "PNG":
        return head.startswith(PNG_SIGNATURE)
    if kind == "PDF":
        return head.startswith(b"%PDF-")
    return head.lstrip().startswith(b"<?xml") and b"<svg" in head or head.lstrip().startswith(b"<svg")


class JobPictures:
    """The pictures jobs ask for with ``render:``, drawn once their file is complete.

    :mod:`gradbatch.jobs` sits below the viewer and never imports it: the public
    ``gradbatch.run``/``run_jobs`` and the CLI hand it one of these (its ``renderer``)."""

    def check(self, job: JobConfig, inputs: Sequence[Path], overwrite: bool) -> None:
        """Refuse, before anything is computed, a picture that cannot be drawn (no vispy) or
        whose output would destroy data (:func:`check_output`; ``inputs``: the job's files)."""
        import importlib.util

        r = job.render
        assert r is not None
        if importlib.util.find_spec("vispy") is None:
            raise ConfigError(
                f"{job.where + '.' if job.where else ''}render: drawing needs vispy, which is "
                "not installed (pip install 'gradbatch[viewer]'); or remove render:"
            )
        check_output(r.output, inputs, overwrite)

    def render(self, job: JobConfig, source: Path) -> Path:
        """Draw ``job`` of the finished file ``source`` to its ``render.output``; returns that path."""
        r = job.render
        assert r is not None
        opts = RenderOptions(
            size=r.size,
            layers=tuple(str(x) for x in r.layers),
            field=r.field,
            colormap=r.colormap,
            descent=r.descent,
            scale=str(r.scale),
            colorbar=r.colorbar,
            surface=r.surface,
            contours=r.contours,
            clim=r.clim,
            robust=r.robust,
            theme=str(r.theme),
            aspect=None if r.aspect is None else str(r.aspect),
            title=r.title,
            dpi=r.dpi,
            legend=r.legend,
        )
        return render(source, r.output, job.name, opts, overwrite=True)  # checked before the run, with its flags


def _render_surface(reader: FieldReader, out: Path, opt: RenderOptions) -> Path:
    """Seed 000's 3D picture, headless (see :class:`SurfaceLayers`)."""
    scene = vispy_scene("egl")
    canvas = scene.SceneCanvas(size=opt.size, show=False, bgcolor="black")
    view = canvas.central_widget.add_view()
    SurfaceLayers(scene, view, reader, opt, opt.window, opt.elevation, opt.azimuth, opt.plane)
    return _save(canvas, out)


def _render_1d(path: str | Path, layout: JobLayout, out: Path, opt: RenderOptions) -> Path:
    """A 1D job: the curve, the gradient's arrows on the input axis below it (clipped, as in
    seed 000) and slope arrows along the curve (seed 002)."""
    scene = vispy_scene("egl")

    from ..geometry import arrow_segments, choose_level

    axis = layout.axes[0]
    fields = layout.fields
    if "value" not in fields:
        raise StoreError(f"job {layout.name!r} has no value field to draw as a curve")
    w, h = opt.size
    level = choose_level(layout.shapes[0][0], w, len(layout.shapes) - 1)
    x = read_coords(path, layout.name, level)[0].astype(np.float64)
    y = read_field(path, layout.name, "value", level).astype(np.float64)
    dy = read_field(path, layout.name, f"grad_{axis}", level).astype(np.float64) if f"grad_{axis}" in fields else None
    ok = np.isfinite(y)
    ymin, ymax = (float(y[ok].min()), float(y[ok].max())) if ok.any() else (0.0, 1.0)
    pad = 0.15 * (ymax - ymin or 1.0)
    base = ymin - pad  # the input axis, drawn under the curve
    x0, x1 = (opt.window[0], opt.window[1]) if opt.window else (float(x[0]), float(x[-1]))
    canvas = scene.SceneCanvas(size=(w, h), show=False, bgcolor="black")
    view = canvas.central_widget.add_view()
    view.camera = scene.PanZoomCamera(rect=(x0, base - pad, x1 - x0, ymax - base + 2 * pad))
    scene.visuals.Line(
        pos=np.stack([x[ok], y[ok]], 1).astype(np.float32), color="white", width=2, method="gl", parent=view.scene
    )
    scene.visuals.Line(
        pos=np.array([[x0, base], [x1, base]], np.float32), color=(0.6, 0.6, 0.6, 1), method="gl", parent=view.scene
    )
    if dy is not None and "arrows" in opt.layers:
        n = max(2, int(w // (2 * opt.pixels_per_arrow)))  # 1D: fewer, larger arrows
        idx = np.linspace(0, len(x) - 1, n).round().astype(int)
        xs, g1, ys = x[idx], dy[idx], y[idx]
        if opt.descent:
            g1 = -g1
        cell = (x1 - x0) / n
        sx = w / (x1 - x0)  # pixels per data unit
        sy = h / (ymax - base + 2 * pad)
        # arrows on the input axis: the gradient itself, clipped to 0.8 of a cell (seed 000)
        u = np.clip(g1, -0.8 * cell, 0.8 * cell)
        lift = 0.25 * pad  # just above the axis line, so both show
        axis_arrows = arrow_segments((xs - u / 2) * sx, np.full_like(xs, (base + lift) * sy), u * sx, np.zeros_like(u))
        axis_arrows = type(axis_arrows)(axis_arrows.vertices / np.array([sx, sy], np.float32), axis_arrows.values)
        scene.visuals.Line(
            pos=axis_arrows.vertices, connect="segments", color="#ff7f50", method="gl", parent=view.scene
        )
        # slope arrows along the curve: the tangent (1, f'), 0.6 of a cell long on screen (seed 002)
        tx, ty = np.full_like(xs, sx), sy * dy[idx]  # the tangent in screen pixels
        norm = np.hypot(tx, ty)
        length_px = 0.8 * cell * sx
        ux, uy = tx / norm * length_px / sx, ty / norm * length_px / sy
        # barbs are built in screen pixels (the axes are scaled differently), then mapped back
        slope = arrow_segments(xs * sx, ys * sy, ux * sx, uy * sy)
        slope = type(slope)(slope.vertices / np.array([sx, sy], np.float32), slope.values)
        scene.visuals.Line(pos=slope.vertices, connect="segments", color="#4fc3ff", method="gl", parent=view.scene)
    return _save(canvas, out)


def _render(reader: FieldReader, out: Path, opt: RenderOptions) -> Path:
    scene = vispy_scene("egl")

    if "image" in opt.layers and opt.field not in reader.fields:
        raise StoreError(
            f"{reader.path}: job {reader.job!r} has no field {opt.field!r}; fields: {', '.join(reader.fields)}"
        )
    window = opt.window or reader.extent
    w, h = opt.size
    pair = reader.vectors
    wanted = (opt.field,) if "image" in opt.layers and opt.field else ()
    vectors = tuple(pair) if "arrows" in opt.layers and pair else ()
    resp = reader.read(
        WindowRequest(
            reader.job, window, (w, h), wanted, vectors, arrow_canvas((w, h), opt.pixels_per_arrow), opt.plane
        )
    )
    canvas = scene.SceneCanvas(size=(w, h), show=False, bgcolor="black")
    view, bar = field_view(scene, canvas, opt)
    x0, x1, y0, y1 = window
    view.camera = scene.PanZoomCamera(rect=(x0, y0, x1 - x0, y1 - y0), aspect=1)
    layers = FieldLayers(scene, view.scene, reader.overlays(), pair, opt, bar, reader.plane_axes)
    layers.update(resp, window, (w, h))
    return _save(canvas, out)


def show(path: str | Path, job: str | None = None, options: RenderOptions = RenderOptions(size=(800, 600))) -> Any:
    """A render for a notebook cell: an ``IPython.display.Image`` (PNG bytes without IPython)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = render(path, Path(folder) / "view.png", job, options).read_bytes()
    try:
        from IPython.display import Image
    except ImportError:
        return data
    return Image(data=data)


def _save(canvas: Any, out: Path) -> Path:
    """Draw ``canvas`` once, close it and write the PNG ``out``."""
    from vispy.io import write_png

    img = canvas.render()
    canvas.close()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_png(str(out), img)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the picture ({exc.strerror or exc})") from None
    return out
