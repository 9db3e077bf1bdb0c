"""Compiled tile kernels kept on disk, so that compiling pays on every run after the first.

``torch.compile`` in the process costs 7-10 s on a 2-core CPU even with torch's own caches warm
(Dynamo and AOTAutograd trace the function again in every process), so ``compile: auto`` only
compiled jobs of 3e8 points and more. An AOTInductor kernel is built once (the traced value and
gradient of the tile, compiled to C++: about 40 s here) and afterwards loads in a millisecond
without importing Inductor, and computes value and gradient in one pass: 1.06 ms a 512² tile
against 6.3 ms eager for the 8192² ripple job here.

A kernel is kept per *key*: the function's settings and parameters, the outputs, dtype, tile
shape, axes, the device type, the torch build, this CPU's instruction set (kernels are built for
the machine they run on) and gradbatch's version. Only functions the job's text defines whole are
kept (expressions, vector fields, built-ins): a callable's code or a model can change behind the
same name. CPU only for now: the CUDA runner has not run on a GPU here.

    cache_dir()/<key>/kernel.so     the AOTInductor model (its wrapper library)
    cache_dir()/<key>/kernel.json   what it was built from, its output names in order, and the
                                    library's size and SHA-256 (checked before it is loaded)
    cache_dir()/<key>.failed        why a build failed (not retried for that key)

A job that finds its kernel uses it (checked against eager autograd on its first tile: a kernel
that disagrees is removed and the job runs eagerly). A large job that does not find one starts
a background build (``nice 19``, one process per key) and runs eagerly; ``gradbatch compile``
builds in the foreground. ``GRADBATCH_CACHE_DIR`` moves the cache; ``GRADBATCH_BACKGROUND_COMPILE=0``
turns background builds off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._version import __version__
from ..config import CompileMode, Output
from ..errors import EngineError
from .coords import expand_axes, tile_axes
from .kernel import Coords, Kernel, _assemble

if TYPE_CHECKING:
    from .runner import JobPlan

__all__ = [
    "KERNEL_FORMAT",
    "BACKGROUND_MIN_POINTS",
    "cache_dir",
    "kernel_key",
    "load",
    "build",
    "start_background_build",
    "agrees",
]

KERNEL_FORMAT = 1
"""Part of every key: raised when what a kernel computes or how it is stored changes."""

BACKGROUND_MIN_POINTS = 1 << 24
"""Jobs of at least this many points start a background build when they find no kernel: about
0.4 s of eager compute here, so smaller jobs (every test) never start a 40 s compile."""

CACHEABLE_SOURCES = ("expression", "vector", "builtin")
STALE_BUILD_S = 3600.0  # a build marker older than this is a build that died


def cache_dir() -> Path:
    """``$GRADBATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradbatch/kernels`` (``~/.cache``)."""
    env = os.environ.get("GRADBATCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradbatch" / "kernels"


@functools.cache
def _cpu() -> str:
    """This CPU's instruction set: kernels are compiled with ``-march=native``, so a cache
    shared by machines of several kinds (a home directory on a cluster) keeps one per kind."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"{platform.machine()}/{torch.backends.cpu.get_cpu_capability()}/{digest}"


def _kernel_outputs(plan: JobPlan) -> tuple[Output, ...]:
    return tuple(o for o in plan.outputs if o is not Output.CHECK)


def kernel_key(plan: JobPlan) -> str | None:
    """The kernel's name in the cache; None where a kernel is not kept (see the module)."""
    if plan.function.source not in CACHEABLE_SOURCES or plan.device.type != "cpu":
        return None
    if not hasattr(torch._C, "_aoti"):
        return None
    job = plan.job
    parts: dict[str, Any] = {
        "format": KERNEL_FORMAT,
        "gradbatch": __version__,
        "torch": f"{torch.__version__} {torch.version.git_version}",
        "cpu": _cpu(),
        "function": repr(job.function),
        "params": sorted((str(k), float(v)) for k, v in job.params.items()),
        "axes": list(job.grid.names),
        "outputs": [o.value for o in _kernel_outputs(plan)],
        "dtype": str(plan.dtype),
        "tile": list(plan.layout.tile),
        "device": "cpu",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _example(plan: JobPlan) -> Coords:
    axes = [torch.as_tensor(a) for a in plan.axes]
    return tile_axes(axes, plan.layout, next(iter(plan.layout)))


def entry_names(entry: Path) -> list[str] | None:
    """The output names of a whole cache entry; None if it is absent. A damaged one (its
    library not the size and SHA-256 its build recorded: loading a truncated library can kill
    the process with a bus error) is removed, with a warning, so that it is built again."""
    so, meta = entry / "kernel.so", entry / "kernel.json"
    if not entry.exists():
        return None
    why = ""
    try:
        info = json.loads(meta.read_text())
        names = info["names"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            why = "its kernel.json names no outputs"
        elif so.stat().st_size != info.get("size") or _sha256(so) != info.get("sha256"):
            why = "kernel.so is not the library that was built"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    if not why:
        return list(names)
    warnings.warn(f"the cached compiled kernel {entry} is damaged ({why}); removed it", stacklevel=2)
    shutil.rmtree(entry, ignore_errors=True)
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(plan: JobPlan, eager: Kernel, workers: int = 1) -> Kernel | None:
    """The job's kernel from the cache (``workers`` may run it at once), or None."""
    key = kernel_key(plan)
    if key is None:
        return None
    entry = cache_dir() / key
    names = entry_names(entry)
    if names is None:
        return None
    try:
        runner = torch._C._aoti.AOTIModelContainerRunnerCpu(str(entry / "kernel.so"), max(1, workers))
    except Exception:  # a library this torch cannot load: not used, eager instead
        return None

    def cached(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(names, runner.run(list(axes1d))))

    return Kernel(cached, eager.eager, True, cached=str(entry))


def agrees(kernel: Kernel, axes1d: Coords, dtype: torch.dtype) -> tuple[str | None, bool]:
    """Whether a cached kernel's fields on this tile match eager autograd's (NaN where it is
    NaN, else within a few units in the last place of the field's scale): (what differs, or
    None; whether any finite value was compared: a tile that is NaN everywhere proves little)."""
    got = kernel(axes1d)
    want = kernel.eager(*axes1d)
    if list(got) != list(want):
        return f"fields {list(got)}, expected {list(want)}", True
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    compared = False
    for name, w in want.items():
        g = got[name]
        if g.shape != w.shape:
            return f"{name} has shape {tuple(g.shape)}, expected {tuple(w.shape)}", True
        if not torch.equal(torch.isnan(g), torch.isnan(w)):
            return f"{name} is NaN at other points", True
        ok = torch.isfinite(w)
        if not bool(ok.any()):
            continue
        compared = True
        scale = float(w[ok].abs().max())
        err = float((g[ok] - w[ok]).abs().max())
        if err > rtol * max(scale, 1e-30):
            return f"{name} differs by {err:.3g} (scale {scale:.3g})", True
    return None, compared


def discard(kernel: Kernel) -> None:
    """Remove a cached kernel that disagreed with eager autograd."""
    if kernel.cached:
        shutil.rmtree(kernel.cached, ignore_errors=True)


def build(plan: JobPlan, log: Any = None) -> Path:
    """Build the job's kernel into the cache now (tens of seconds) and return its folder. Any
    failure (no C++ compiler, a cache folder that cannot be written) is one EngineError."""
    key = kernel_key(plan)
    if key is None:
        raise EngineError(f"no compiled kernel is kept for a {plan.function.source} function on {plan.device}")
    try:
        return _build(plan, key, log or (lambda msg: None))
    except EngineError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise EngineError(
            f"cannot build the compiled kernel of {plan.function.text!r} in {cache_dir()}: "
            f"{type(exc).__name__}: {first} (it needs a C++ compiler and a cache folder it can write; "
            "GRADBATCH_CACHE_DIR moves the cache)"
        ) from exc


def _build(plan: JobPlan, key: str, say: Any) -> Path:
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    if entry_names(entry) is not None:
        return entry
    from torch.fx.experimental.proxy_tensor import make_fx

    t0 = time.perf_counter()
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # one tile a thread: the generated loops must not start their own
    try:
        example = _example(plan)
        ff, axes, outputs = plan.function, plan.job.grid.names, _kernel_outputs(plan)
        names = list(_assemble(ff, axes, outputs, expand_axes(example)))

        def traced(*axes1d: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = _assemble(ff, axes, outputs, expand_axes(axes1d), functional=True)
            return tuple(out[n] for n in names)

        say("tracing value and gradient")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations, not ours
            graph = make_fx(traced)(*example)
            program = torch.export.export(graph, tuple(example))
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
        try:
            say("compiling (C++)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                package = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp / "kernel.pt2"))
            with zipfile.ZipFile(package) as z:
                libs = [n for n in z.namelist() if n.endswith(".so")]
                if len(libs) != 1:
                    raise RuntimeError(f"the AOTInductor package holds {len(libs)} libraries, expected 1")
                with z.open(libs[0]) as src, open(tmp / "kernel.so", "wb") as dst:
                    shutil.copyfileobj(src, dst)
            os.remove(package)
            meta = {
                "names": names,
                "size": (tmp / "kernel.so").stat().st_size,
                "sha256": _sha256(tmp / "kernel.so"),
                "function": plan.function.text,
                "outputs": [o.value for o in outputs],
                "dtype": str(plan.dtype),
                "tile": list(plan.layout.tile),
                "torch": torch.__version__,
                "gradbatch": __version__,
                "build_s": round(time.perf_counter() - t0, 1),
            }
            (tmp / "kernel.json").write_text(json.dumps(meta, indent=1))
            try:
                os.rename(tmp, entry)
            except OSError:  # another process built it first
                shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(OSError):
                (root / f"{key}.failed").unlink()  # an earlier failure is history now
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        torch.set_num_threads(old)
    return entry


def start_background_build(plan: JobPlan, points: int) -> str | None:
    """Start building the job's kernel in a process of its own (``nice 19``) when the job is
    large, may compile, keeps kernels, finds none and none is being built; what to tell the
    user, or None."""
    if plan.job.compile is CompileMode.OFF or points < BACKGROUND_MIN_POINTS:
        return None
    if os.environ.get("GRADBATCH_BACKGROUND_COMPILE", "1") == "0":
        return None
    key = kernel_key(plan)
    if key is None or not plan.job.yaml:
        return None
    root = cache_dir()
    if entry_names(root / key) is not None:
        return None
    failed = root / f"{key}.failed"
    if failed.exists():
        with contextlib.suppress(OSError):
            why = (failed.read_text().strip().splitlines() or [""])[0][:200]
            return (
                f"an earlier background build of this function's compiled kernel failed ({why}); "
                "`gradbatch compile` with this job file tries again and says why"
            )
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None:
        return None  # AOTInductor needs a C++ compiler
    marker = root / f"{key}.building"
    request = {"key": key, "name": plan.job.name, "yaml": plan.job.yaml}
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not _claim(marker, request):
            return None  # another process is building it
        log = open(root / f"{key}.log", "w")  # noqa: SIM115  (the child keeps it)
    except OSError:
        return None
    with log:
        child = subprocess.Popen(
            [sys.executable, "-c", _BUILDER, str(marker)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the job's terminal (Ctrl-C), not waited for
        )
    with contextlib.suppress(OSError):
        marker.write_text(json.dumps({**request, "pid": child.pid}))
    return (
        f"building a compiled kernel for this function in the background (nice 19, about a minute; "
        f"later runs compute several times faster): {root / key}"
    )


# not `python -m gradbatch.engine.aot`: the engine package imports this module first, and runpy
# warns about running a module that is already imported
_BUILDER = "import sys; from gradbatch.engine.aot import main; sys.exit(main(sys.argv[1:]))"


def _claim(marker: Path, request: dict[str, Any]) -> bool:
    """Create the build marker, unless a live build holds it. A marker whose process is gone
    (killed) or older than :data:`STALE_BUILD_S` is taken over."""
    for _ in range(2):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(marker):
                return False
            with contextlib.suppress(OSError):
                marker.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(request))
        return True
    return False


def _stale(marker: Path) -> bool:
    try:
        if time.time() - marker.stat().st_mtime > STALE_BUILD_S:
            return True
        pid = json.loads(marker.read_text()).get("pid")
    except (OSError, ValueError):
        return False  # being written: its build has just started
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _build_from_request(marker: Path) -> int:
    """The background build (:data:`_BUILDER` ``<marker>``)."""
    with contextlib.suppress(OSError):
        os.nice(19)
    request = json.loads(marker.read_text())
    key = request["key"]
    failed = marker.parent / f"{key}.failed"
    try:
        from ..config import parse_config
        from .runner import plan_job

        job = parse_config(request["yaml"], name=request["name"]).jobs[0]
        plan = plan_job(job, "cpu")
        if kernel_key(plan) != key:
            raise RuntimeError("the job's kernel key changed between the job and its build")
        entry = build(plan, log=lambda m: print(m, flush=True))
        print(f"built {entry}", flush=True)
        return 0
    except Exception as exc:
        failed.write_text(f"{type(exc).__name__}: {exc}\n")
        print(f"failed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        with contextlib.suppress(OSError):
            marker.unlink()


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m gradbatch.engine.aot <build marker>", file=sys.stderr)
        return 2
    return _build_from_request(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
