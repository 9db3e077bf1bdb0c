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

from ..errors import ConfigError, StoreError, ViewerError
from ..store import FieldReader, job_layout
from .limits import JobFacts, default_field, resolve
from .options import LAYERS, NEEDS_VISPY, LayerOptions, RenderOptions, Resolved, picture_options

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
    stats = reader.stats(name) if name in reader.fields else None
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
        from .figure1d import render_curve

        return render_curve(path, layout, out, options, None)
    reader = FieldReader(path, job, options.slice_axis)
    try:
        options, decided = settle(options, reader)
        if options.surface:
            from .figure3d import render_surface

            return render_surface(reader, out, options, decided)
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


class Figure:
    """A picture of a job for a notebook cell (:func:`show`): it displays itself as a PNG in
    IPython and Jupyter (drawn when first shown, again if the file changed since) and saves to
    PNG, SVG or PDF anywhere."""

    def __init__(self, path: Path, job: str | None, options: RenderOptions) -> None:
        self.path, self.job, self.options = path, job, options
        self._png: bytes | None = None
        self._drawn_from: tuple[int, int] | None = None

    @property
    def png(self) -> bytes:
        """The picture as PNG bytes (of the file as it is now)."""
        try:
            st = self.path.stat()
            now: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            now = None  # render says what is wrong with the file
        if self._png is None or now is None or now != self._drawn_from:
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                self._png = render(self.path, Path(folder) / "view.png", self.job, self.options).read_bytes()
            self._drawn_from = now
        return self._png

    def _repr_png_(self) -> bytes:
        return self.png

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Draw to ``out`` (.png, .svg or .pdf; an existing picture is replaced, any other file
        only with ``overwrite``, as ``gradbatch render`` does); returns its path."""
        if not isinstance(out, (str, os.PathLike)):
            raise ViewerError(f"save: expected a file path ending in .png, .svg or .pdf, got {out!r}")
        return render(self.path, out, self.job, self.options, overwrite=overwrite)

    def __repr__(self) -> str:
        w, h = self.options.size
        return f"<gradbatch.Figure of {self.path}{':' + self.job if self.job else ''}, {w}x{h}>"


def show(source: Any, job: str | None = None, options: RenderOptions | None = None, **kw: Any) -> Figure:
    """A job's picture for a notebook: ``source`` a gradbatch file or a Dataset that
    ``gradbatch.open`` gave (its file's job is drawn); keyword options as ``gradbatch render``
    takes them (``descent=True``, ``layers=["image", "arrows"]``, ``clim=(lo, hi)``,
    ``size=(800, 600)``, ...; see :func:`~gradbatch.viewer.options.picture_options`), over
    ``options`` if given. ``job``: None for a file's only job. The options are checked against
    the job now (its fields, axes and extent); the picture is drawn when shown or saved."""
    path, job = _source(source, job)
    opts = picture_options(options, **kw)
    job, _ = checked(path, job, opts)
    return Figure(path, job, opts)


def checked(path: Path, job: str | None, opts: RenderOptions) -> tuple[str, int]:
    """The job to draw (None: the file's only one) and its number of axes, with ``opts``
    checked against it: the field exists, a slice is for a 3D job, the window overlaps the grid."""
    from ..datasets import the_job
    from ..store import read_coords

    try:
        lay = the_job(path, job)
    except StoreError as exc:
        raise ViewerError(str(exc)) from None
    name, axes = lay.name, lay.axes
    if opts.field is not None and opts.field not in lay.fields:
        raise ViewerError(f"field: job {name!r} has no field {opts.field!r}; fields: {', '.join(lay.fields)}")
    if opts.slice_axis is not None and len(axes) != 3:
        raise ViewerError(f"slice: job {name!r} has {len(axes)} axes; a slice cuts a 3D job")
    if opts.window is not None:
        coords = read_coords(path, name)
        x0, x1, y0, y1 = opts.window
        spans = [(x0, x1, axes[0], coords[0])]
        if y0 == y0 and len(axes) > 1:
            spans.append((y0, y1, axes[1], coords[1]))
        for lo, hi, axis, values in spans:
            first, last = float(min(values[0], values[-1])), float(max(values[0], values[-1]))
            if max(abs(lo), abs(hi)) > 1e300 or hi < first or lo > last:
                raise ViewerError(
                    f"window: {axis} from {lo:g} to {hi:g} is outside the job's {axis} axis ({first:g} to {last:g})"
                )
    return name, len(axes)


def _source(source: Any, job: str | None) -> tuple[Path, str | None]:
    """The file and job a picture is drawn from: a path, or a Dataset opened from a file (whose
    file's job is drawn: the same sizes are checked, not values changed in memory)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source), job
    encoding = getattr(source, "encoding", None)
    attrs = getattr(source, "attrs", None)
    if not (isinstance(encoding, dict) and isinstance(attrs, dict) and hasattr(source, "data_vars")):
        raise ViewerError(
            f"expected a gradbatch file's path or a Dataset from gradbatch.open, got {type(source).__name__}"
        )
    found = encoding.get("source")
    if not found:
        raise ViewerError(
            "this Dataset was computed in memory (gradbatch.compute) or built anew, not opened from a "
            "file: pictures are drawn from files; run the job into one (gradbatch.run) and open it"
        )
    name = job or attrs.get("job")
    from ..store import job_layout

    lay = job_layout(found, name) if name else None
    if lay is None:
        raise ViewerError(f"this Dataset does not say which job of {found} it holds: pass job=")
    shape = dict(zip(reversed(lay.axes), lay.shapes[0]))
    sizes = {k: v for k, v in source.sizes.items() if k in shape}
    if sizes != shape:
        raise ViewerError(
            f"this Dataset is part of job {name!r} of {found} ({sizes} of {shape}): pictures draw the "
            "file's whole job; pass the Dataset gradbatch.open gave, and window= for a part"
        )
    return Path(found), name
