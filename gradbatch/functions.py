"""Where a job's function comes from: expressions, built-ins, user callables.

Every source becomes a :class:`FieldFunction`: an elementwise torch function of one coordinate
tensor per grid axis that returns either one tensor (a scalar field, whose gradient the engine
takes) or one tensor per axis (a vector field, drawn as it is, whose divergence and curl the
engine takes).

Built-ins are written in the same safe expression language as user expressions, with their
usual domain and their known minima as metadata.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import ConfigError, FunctionError
from .builtins import BUILTINS, Builtin
from .expr import Expr, parse
from .records import Minimum

__all__ = ["Minimum", "Builtin", "BUILTINS", "FieldFunction", "from_expression", "code_hash",
           "from_vector", "from_builtin", "from_callable", "import_callable", "probe", "probe_graph"]


TensorFn = Callable[..., "torch.Tensor | tuple[torch.Tensor, ...]"]


@dataclass(frozen=True)
class FieldFunction:
    """An elementwise function of the grid coordinates, ready for the engine.

    ``fn(*coords)`` takes one tensor per axis (same shape, dtype, device) and returns one tensor
    of that shape (``kind == "scalar"``) or a tuple of ``ncomp`` of them (``kind == "vector"``).
    """

    fn: TensorFn
    kind: str
    ncomp: int
    source: str  # "expression" | "vector" | "builtin" | "callable"
    text: str  # what it is, for provenance: the expression(s), builtin name or callable ref
    minima: tuple[Minimum, ...] = ()
    code_hash: str | None = None  # a callable's source files, hashed: part of the job for --resume

    def scalar(self, *coords: torch.Tensor) -> torch.Tensor:
        """The value of a scalar field at the points (one tensor per axis)."""
        out = self.fn(*coords)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{self.text!r} is a vector field, not a scalar one")
        return out


def from_expression(text: str, axes: Sequence[str], params: Mapping[str, float]) -> FieldFunction:
    expr = parse(text, axes, params)
    return FieldFunction(expr, "scalar", 1, "expression", text)


def from_vector(
    texts: Sequence[str], axes: Sequence[str], params: Mapping[str, float]
) -> FieldFunction:
    exprs: tuple[Expr, ...] = tuple(parse(t, axes, params) for t in texts)

    def vector(*coords: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(e(*coords) for e in exprs)

    return FieldFunction(vector, "vector", len(exprs), "vector", "[" + ", ".join(texts) + "]")


def from_builtin(name: str, ndim: int, params: Mapping[str, float]) -> FieldFunction:
    b = BUILTINS[name]
    text, variables = b.template(ndim)
    expr = parse(text, variables, params)
    return FieldFunction(expr, "scalar", 1, "builtin", f"{name}: {text}", b.minima(ndim))


@contextmanager
def _importable_from(base: Path | None) -> Iterator[None]:
    if base is None:
        yield
        return
    entry = str(base)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass


def import_callable(ref: str, base_dir: Path | None = None, where: str = "function.callable") -> Callable[..., Any]:
    """Import ``"package.module:function"`` (user code: an explicit opt-in).

    ``base_dir`` (the job file's folder) is searched first, so a ``myfuncs.py`` beside the job
    file can be named as ``"myfuncs:f"``.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{where}: expected 'package.module:function', got {ref!r}")
    with _importable_from(base_dir):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{where}: cannot import module {module_name!r} ({exc})") from None
        except SystemExit as exc:  # must not end the run, least of all with exit code 0
            raise FunctionError(f"{where}: importing {module_name!r} called sys.exit({exc.code!r})") from None
        except Exception as exc:  # the user's module raised while importing
            raise FunctionError(
                f"{where}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{where}: {ref!r} is a {type(obj).__name__}, not a function")
    return obj


def code_hash(obj: object) -> str:
    """SHA-256 over the source files of the module defining ``obj`` (and of the function's own
    module, if another): a resumed job whose callable's code changed is refused."""
    import hashlib
    import inspect as _inspect

    h = hashlib.sha256()
    files = []
    for mod_name in {getattr(obj, "__module__", None), getattr(_inspect.getmodule(obj), "__name__", None)}:
        mod = sys.modules.get(mod_name) if mod_name else None
        path = getattr(mod, "__file__", None)
        if path:
            files.append(path)
            files += _helpers(Path(path).resolve().parent, mod_name or "")
    for path in sorted(set(files)):
        try:
            h.update(Path(path).read_bytes())
        except OSError:
            h.update(path.encode())
    if not files:  # defined interactively: its code object is all there is
        code = getattr(obj, "__code__", None)
        h.update(code.co_code if code is not None else repr(obj).encode())
    return h.hexdigest()[:32]


def _helpers(folder: Path, mod_name: str) -> list[str]:
    """Source files of the loaded modules that live in the callable's project: its own folder
    (or, for a package, the package's top folder) and below, outside any installed package. A
    callable's helpers (``from helper import g``) are part of its code."""
    import sysconfig

    depth = mod_name.count(".")
    root = folder.parents[depth - 1] if depth else folder
    installed = {Path(p).resolve() for k, p in sysconfig.get_paths().items() if k in ("stdlib", "purelib", "platlib")}
    installed.add(Path(__file__).resolve().parent)  # gradbatch itself, even run from its checkout
    out = []
    for mod in list(sys.modules.values()):
        path = getattr(mod, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        p = Path(path).resolve()
        if p.is_relative_to(root) and not any(p.is_relative_to(i) for i in installed) \
                and "site-packages" not in p.parts:
            out.append(str(p))
    return out


def _guarded(user: Callable[..., Any], ref: str) -> TensorFn:
    """The user's callable, checked on every call (every real tile, not only the probe): it must
    return floating-point tensors of its inputs' shape, dtype and device, and cannot end the
    run through ``sys.exit``."""

    def call(*coords: torch.Tensor) -> "torch.Tensor | tuple[torch.Tensor, ...]":
        try:
            out = user(*coords)
        except SystemExit as exc:
            raise FunctionError(f"callable {ref!r} called sys.exit({exc.code!r}) on inputs of shape "
                                f"{tuple(coords[0].shape)}") from None
        parts = out if isinstance(out, (tuple, list)) else (out,)
        for p in parts:
            if not isinstance(p, torch.Tensor) or p.shape != coords[0].shape or p.dtype != coords[0].dtype \
                    or p.device != coords[0].device or p.layout != torch.strided:
                got = (f"a {p.dtype} tensor of shape {tuple(p.shape)} on {p.device}" if isinstance(p, torch.Tensor)
                       else f"a {type(p).__name__}")
                raise FunctionError(
                    f"callable {ref!r} returned {got} for inputs of shape {tuple(coords[0].shape)}, "
                    f"{coords[0].dtype}, on {coords[0].device}; it must return tensors shaped like its "
                    "inputs, of their dtype and device (elementwise, no broadcasting)")
        return out

    return call


def from_callable(ref: str, base_dir: Path | None = None, where: str = "function.callable") -> FieldFunction:
    """A user's function of the coordinates, ``"package.module:function"``."""
    kind, ncomp = "scalar", 1  # refined by probe()
    user = import_callable(ref, base_dir, where)
    return FieldFunction(_guarded(user, ref), kind, ncomp, "callable", ref, code_hash=code_hash(user))


def probe(ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> FieldFunction:
    """Call ``ff`` on a few points and check what it returns; fix ``kind`` for callables.

    Raises :class:`FunctionError` naming the function when it fails or returns something that
    is not one tensor per point (scalar) or one tensor per axis (vector).
    """
    coords = tuple(torch.linspace(0.1, 0.9, 4, dtype=dtype, device=device) for _ in range(ndim))
    try:
        out = ff.fn(*coords)
    except FunctionError:
        raise
    except SystemExit as exc:
        raise FunctionError(f"{ff.source} {ff.text!r} called sys.exit({exc.code!r})") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise FunctionError(f"{ff.source} {ff.text!r} failed: {type(exc).__name__}: {exc}") from exc
    shape = coords[0].shape
    if isinstance(out, torch.Tensor):
        parts: tuple[object, ...] = (out,)
        kind = "scalar"
    elif isinstance(out, (tuple, list)):
        parts = tuple(out)
        kind = "vector"
    else:
        raise FunctionError(
            f"{ff.source} {ff.text!r} returned {type(out).__name__}; expected a tensor "
            f"(scalar field) or a tuple of {ndim} tensors (vector field)"
        )
    if kind == "vector" and len(parts) != ndim:
        raise FunctionError(
            f"{ff.source} {ff.text!r} returned {len(parts)} components; a vector field on a "
            f"{ndim}-axis grid needs {ndim}, one per axis"
        )
    for p in parts:
        if not isinstance(p, torch.Tensor) or p.shape != shape or not p.is_floating_point():
            got = f"{p.dtype} tensor of shape {tuple(p.shape)}" if isinstance(p, torch.Tensor) \
                else type(p).__name__
            raise FunctionError(
                f"{ff.source} {ff.text!r} must return floating-point tensors shaped like its "
                f"inputs ({tuple(shape)}, elementwise); got {got}"
            )
    if ff.source == "callable":
        return FieldFunction(ff.fn, kind, len(parts), ff.source, ff.text, ff.minima, ff.code_hash)
    return ff


def probe_graph(ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> None:
    """A callable's result must carry an autograd graph back to its inputs, or every gradient
    the engine takes of it is zero (checked again on every tile that takes derivatives)."""
    coords = tuple(torch.linspace(0.1, 0.9, 4, dtype=dtype, device=device) for _ in range(ndim))
    with torch.enable_grad():
        leaves = [c.detach().requires_grad_(True) for c in coords]
        try:
            out = ff.fn(*leaves)
        except FunctionError:
            raise
        except Exception as exc:
            raise FunctionError(f"callable {ff.text!r} failed on inputs that require grad: "
                                f"{type(exc).__name__}: {exc}") from exc
    parts = out if isinstance(out, (tuple, list)) else (out,)
    reaches = False
    if any(p.requires_grad for p in parts):
        with torch.enable_grad():
            total = torch.stack([p.sum() for p in parts if p.requires_grad]).sum()
            grads = torch.autograd.grad(total, leaves, allow_unused=True)
        reaches = any(g is not None for g in grads)
    if not reaches:
        raise FunctionError(
            f"callable {ff.text!r} returned a tensor without an autograd graph to its inputs (computed "
            "under torch.no_grad(), .detach(), or through numpy or a list?), so its gradient would be "
            "stored as zero; "
            "compute it with torch operations on the inputs (a constant field: return e.g. 0 * x + c)")
