"""The command line: argument parsing and error printing only; each command is one library call."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from ._version import __version__
from .errors import GradbatchError

if TYPE_CHECKING:
    from .jobs import Progress
    from .viewer.options import RenderOptions

__all__ = ["main"]


def note(message: str) -> None:
    """A line of news on stderr (progress, what a job does). A stderr that cannot be written (a
    pipe into ``head`` that closed, a full disk) silences the news; it does not stop the job."""
    _write_news(sys.stderr, message + "\n")


_SILENCED: set[int] = set()


def _write_news(stream: TextIO, text: str) -> None:
    if id(stream) in _SILENCED:
        return
    try:
        stream.write(text)
        stream.flush()
    except OSError:  # BrokenPipeError, ENOSPC
        _SILENCED.add(id(stream))


class ProgressBar:
    """``ripple  tiles  [#######.....]  57%  12.3 Mpts/s  11/20 tiles  ETA 4s`` on a terminal, a bar
    per phase (tiles, paths, basins, streamlines); sparse lines (one per tenth) otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._last_pct = -1
        self._phase: tuple[str, str] | None = None

    def __call__(self, p: Progress) -> None:
        from .progress import duration

        if (p.job, p.phase) != self._phase:
            self._phase, self._last_pct, self._last = (p.job, p.phase), -1, 0.0
        now = time.monotonic()
        finished = p.done >= p.total
        if p.done == 0 and not finished:  # nothing done yet: no rate, no ETA to show
            return
        pct = int(p.fraction * 100)
        if self.tty:
            if not finished and now - self._last < 0.1:
                return
            filled = int(p.fraction * self.width)
            eta = f"ETA {duration(p.eta_s)}" if p.eta_s is not None and not finished else f"in {duration(p.elapsed_s)}"
            rate = f"{p.points_per_s / 1e6:7.1f} Mpts/s  " if p.phase == "tiles" else ""
            line = (
                f"\r{p.job}  {p.phase:<11} [{'#' * filled}{'.' * (self.width - filled)}] {pct:3d}%  "
                f"{rate}{p.done:,}/{p.total:,} {p.unit}  {eta}   "
            )
            _write_news(self.stream, line + ("\n" if finished else ""))
        elif finished or pct // 10 > self._last_pct // 10 and now - self._last >= 2.0:
            _write_news(self.stream, f"{p}\n")
            self._last_pct = pct
        self._last = now


def _cmd_run(args: argparse.Namespace) -> int:
    # The job file is read and validated before anything imports torch (the engine, jobs,
    # the cluster): a bad one is refused in a fraction of a second.
    from .config import load_config

    if args.config is None:
        note("no job file given: running the embedded example (seed 000's ripple, 512 x 512)")
    if args.workers is not None and args.scheduler is not None:
        raise SystemExit("gradbatch run: give --workers N (a local cluster) or --scheduler ADDRESS, not both")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"gradbatch run: --workers: expected at least 1, got {args.workers}")
    jobs = load_config(args.config, output=args.output)
    cluster = None
    if args.workers is not None or args.scheduler is not None:
        from .distributed import ClusterOptions

        cluster = ClusterOptions(workers=args.workers or 0, scheduler=args.scheduler)
    from .api import run_jobs  # with the viewer's renderer for jobs that ask for a picture
    from .summary import human_size

    reports = run_jobs(
        jobs,
        resume=args.resume,
        overwrite=args.overwrite,
        force=args.force,
        device=args.device,
        progress=None if args.quiet else ProgressBar(),
        log=None if args.quiet else note,
        cluster=cluster,
    )
    for r in reports:
        check = ""
        if r.check is not None:
            check = f", gradient check: max |autograd - central difference| = {r.check.max_abs_error:.2e}"
        print(
            f"{r.output}:{r.name}: {r.points:,} points in {r.wall_s:.2f}s "
            f"({r.points_per_s / 1e6:.1f} Mpts/s on {r.device}), fields {', '.join(r.fields)}, "
            f"{human_size(r.stored_bytes)} stored ({r.compression_ratio:.2f}x smaller){check}"
        )
        for line in r.nonfinite_lines():
            print(f"{r.output}:{r.name}: {line}")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from .config import load_config

    jobs = load_config(args.config)
    from .jobs import compile_kernels

    for name, what in compile_kernels(jobs, args.device, log=note):
        print(f"{name}: {what}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .store import inspect
    from .summary import describe, info_as_dict

    info = inspect(args.file)
    print(json.dumps(info_as_dict(info), indent=2, allow_nan=False) if args.json else describe(info))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from .bench import benchmark, format_table
    from .engine import available_devices

    devices = available_devices()
    if not torch.cuda.is_available():
        print("no CUDA device here: benchmarking the CPU only", file=sys.stderr)
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    for m in methods:
        if m not in ("eager", "compiled"):
            raise SystemExit(f"gradbatch bench: --methods: unknown method {m!r}; allowed: eager, compiled")
    rows = benchmark(
        sizes,
        methods,
        devices,
        repeat=args.repeat,
        threads=args.threads,
        log=None if args.json else note,
    )
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .viewer.render import render

    out = render(args.file, args.output, args.job, _picture_options(args), overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from .viewer.canvas import view

    opts = _picture_options(args)
    view(
        args.file,
        args.job,
        opts,
        surface=opts.surface,
        slice_axis=opts.slice_axis,
        size=opts.size,
        window=opts.window,
        plane=opts.plane,
    )
    return 0


def _picture_arguments(p: argparse.ArgumentParser) -> None:
    """What to draw and how: the same options for render and view."""
    from .viewer.options import ARROW_MODES, DEFAULT_LAYERS, LAYERS, SCALES, THEMES

    p.add_argument("--job", help="job name (default: the file's first job)")
    p.add_argument(
        "--layers",
        default=",".join(DEFAULT_LAYERS),
        help=f"comma-separated, drawn in this order: {', '.join(LAYERS)} (default: {','.join(DEFAULT_LAYERS)})",
    )
    p.add_argument("--field", help="field drawn as the image (default: value, or magnitude for a vector job)")
    p.add_argument("--colormap", default="viridis", help="a vispy or matplotlib colormap name (default viridis)")
    p.add_argument(
        "--scale",
        default="auto",
        choices=SCALES,
        help="colour scale: auto (log for a non-negative field spanning several decades, else linear), "
        "linear, symmetric about zero, or log (values <= 0 masked and counted)",
    )
    p.add_argument("--clim", help="colour limits LO,HI (default: the field's finite range at full resolution)")
    p.add_argument(
        "--robust",
        nargs="?",
        type=float,
        const=2.0,
        help="colour limits at the P and 100-P percentiles (default P 2) instead of the minimum and maximum",
    )
    p.add_argument("--contours", type=int, default=10, help="number of contour lines (layer contours)")
    p.add_argument(
        "--arrows",
        default="clip",
        choices=ARROW_MODES,
        help="arrow lengths: clip (proportional to the magnitude, clipped at a cell; default), "
        "normalize (direction only) or scale (proportional)",
    )
    p.add_argument("--pixels-per-arrow", type=float, default=24.0, help="arrow spacing in pixels (default 24)")
    way = p.add_mutually_exclusive_group()
    way.add_argument(
        "--descent", action="store_true", default=None, help="arrows point downhill (default when the job descends)"
    )
    way.add_argument("--ascent", dest="descent", action="store_false", help="arrows point uphill (the gradient)")
    p.add_argument("--no-colorbar", action="store_true", help="leave the colour bar out")
    p.add_argument("--no-legend", action="store_true", help="leave the legend out")
    p.add_argument("--theme", choices=THEMES, help="light (default for files) or dark (default for the window)")
    p.add_argument("--aspect", choices=("auto", "equal"), help="equal units on both axes, or fill the picture "
                   "(default: equal unless the axes are different quantities)")  # fmt: skip
    p.add_argument("--title", help="the picture's title (default: the job's name and function)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT pixels (default 1200x900)")
    p.add_argument("--dpi", type=int, default=150, help="dots per inch of a file (default 150)")
    p.add_argument("--window", help="x0,x1,y0,y1 in data coordinates, or x0,x1 (default: the whole grid)")
    p.add_argument("--path-step", type=int, help="draw descent paths up to this step (default: whole)")
    p.add_argument("--panels", action="store_true", help="small multiples: one panel per optimiser")
    p.add_argument(
        "--surface",
        action="store_true",
        help="seed 000's 3D picture: the surface, with the arrows in the input plane below",
    )
    p.add_argument(
        "--slice",
        help="a 3D job: the axis cut by the drawn plane, with its coordinate: "
        "z or z=0.5 (default: the last axis, at its middle)",
    )


def _picture_options(args: argparse.Namespace) -> RenderOptions:
    from .viewer.options import picture_options

    return picture_options(
        layers=args.layers,
        field=args.field,
        colormap=args.colormap,
        scale=args.scale,
        clim=args.clim,
        robust=args.robust,
        contours=args.contours,
        arrows=args.arrows,
        pixels_per_arrow=args.pixels_per_arrow,
        descent=args.descent,
        colorbar=not args.no_colorbar,
        legend=not args.no_legend,
        theme=args.theme or ("dark" if args.command == "view" else "light"),
        aspect=args.aspect,
        title=args.title,
        dpi=args.dpi,
        window=args.window,
        path_step=args.path_step,
        panels=args.panels,
        surface=args.surface,
        slice=args.slice,
        size=args.size,
    )


def _cmd_builtins(args: argparse.Namespace) -> int:
    from .functions import BUILTINS

    for b in BUILTINS.values():
        n = 2 if 2 in b.dims else b.dims[0]
        text, _ = b.template(n)
        dims = "/".join(f"{d}D" for d in b.dims)
        print(f"{b.name:<16} {dims:<9} {b.description}\n{'':<26} {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .viewer import KEYS

    p = argparse.ArgumentParser(prog="gradbatch", description="Exact gradient fields on large grids.")
    p.add_argument("--version", action="version", version=f"gradbatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the jobs of a YAML job file")
    r.add_argument("config", nargs="?", help="job file (default: the embedded ripple example)")
    r.add_argument("-o", "--output", help="output HDF5 path for every job (overrides output:)")
    r.add_argument("--resume", action="store_true", help="finish an interrupted run's .partial file")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument(
        "--force", action="store_true", help="run even if the planned size (uncompressed) exceeds the free disk space"
    )
    r.add_argument("--device", help="override every job's device: auto, cpu, cuda, cuda:N")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    r.add_argument(
        "--workers",
        type=int,
        help="compute tiles on a local Dask cluster of N worker processes (pip install 'gradbatch[dask]')",
    )
    r.add_argument("--scheduler", help="compute tiles on a running Dask cluster, e.g. tcp://HOST:8786")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser(
        "compile",
        help="build the jobs' compiled kernels now (20-40 s each; later runs compute them several times faster)",
    )
    c.add_argument("config", help="job file")
    c.add_argument("--device", help="the device the kernels are for (default: each job's own)")
    c.set_defaults(func=_cmd_compile)

    i = sub.add_parser("info", help="describe what a gradbatch HDF5 file holds")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_info)

    b = sub.add_parser("bench", help="engine throughput on every device present (CPU vs GPU)")
    b.add_argument("--sizes", default="1024,4096", help="grid sides, comma-separated (default 1024,4096)")
    b.add_argument("--methods", default="eager,compiled", help="eager, compiled or both")
    b.add_argument("--repeat", type=int, default=3, help="timed repeats per case (best is kept)")
    b.add_argument("--threads", type=int, default=1, help="CPU threads while measuring (default 1, as jobs use)")
    b.add_argument("--json", action="store_true", help="print the results as JSON")
    b.set_defaults(func=_cmd_bench)

    rn = sub.add_parser("render", help="draw a job to a picture file (PNG, SVG or PDF by suffix), headless")
    rn.add_argument("file")
    rn.add_argument(
        "-o", "--output", default="render.png", help="picture path: .png, .svg or .pdf (default render.png)"
    )
    rn.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output that is not a picture of its kind (never the input file)",
    )
    _picture_arguments(rn)
    rn.set_defaults(func=_cmd_render)

    vw = sub.add_parser(
        "view",
        help="open a window on a job (pan/zoom stream from the file)",
        epilog="keys: " + "; ".join(f"{k}: {v}" for k, v in KEYS.items()),
    )
    vw.add_argument("file")
    _picture_arguments(vw)
    vw.set_defaults(func=_cmd_view)

    f = sub.add_parser("builtins", help="list the built-in functions")
    f.set_defaults(func=_cmd_builtins)
    return p


def _write_failures() -> int:
    store = sys.modules.get("gradbatch.store")
    return store.write_failures() if store is not None else 0


def _exit_now_if_a_write_failed(code: int, before: int) -> None:
    """After a failed HDF5 write (full disk) in this command, leave without freeing h5py's
    objects: HDF5 would retry the failed flushes, print thousands of lines and crash. The
    partial file on disk is what ``--resume`` recovers; nothing is lost by not closing it."""
    if _write_failures() > before:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    from .viewer.options import join_negative_values

    args = build_parser().parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    failures = _write_failures()
    try:
        return int(args.func(args))
    except GradbatchError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        _exit_now_if_a_write_failed(2, failures)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted; an unfinished output stays as <output>.partial: run again with --resume to finish it",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the command's own output could not be written (`> /dev/full`)
        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
            raise
        note(f"error: cannot write the output: {exc.strerror} (errno {exc.errno})")
        return 1


def entry() -> None:
    """The ``gradbatch`` command: :func:`main`, then leave without tearing torch down.

    A process that imported torch spends about a second at exit freeing its modules (measured
    here: 1.0-1.2 s after the last line, against 0.2 s with ``os._exit``), longer than many a
    whole job. Once the command has returned, every file it wrote is closed, synced and renamed,
    and its output flushed, so the atexit handlers are run and the process ends at once. Where an
    HDF5 file is still open (nothing of gradbatch's leaves one, but a library might), the normal
    exit closes it."""
    code = main()
    if "torch" in sys.modules and not _hdf5_files_open():
        import atexit

        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
        except OSError as exc:  # the last of the output could not be written
            note(f"error: cannot write the output: {exc.strerror} (errno {exc.errno})")
            code = code or 1
        with contextlib.suppress(OSError):
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _hdf5_files_open() -> bool:
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return False
    return bool(h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE))


if __name__ == "__main__":
    entry()
