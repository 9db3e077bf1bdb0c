"""Callable sources: the user's own torch function of the coordinates, ``"package.module:function"``.

User code is an explicit opt-in. It is imported with the job file's folder searched first,
checked on every call (it must return tensors shaped like its inputs), kept from ending the run
through ``sys.exit``, and hashed (its source files) so that ``--resume`` refuses changed code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..config import CallableSource
from ..errors import ConfigError, FunctionError
from .field import FieldFunction, TensorFn
from .probing import probe_graph
from .registry import BuildContext, BuiltFunction, SourceBuilder

__all__ = ["import_callable", "code_hash", "from_callable", "CallableBuilder"]


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
            raise FunctionError(f"{where}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
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
            files += _helpers(Path(path).resolve(), mod_name or "")
    for path in sorted(set(files)):
        try:
            h.update(Path(path).read_bytes())
        except OSError:
            h.update(path.encode())
    if not files:  # defined interactively: its code object is all there is
        code = getattr(obj, "__code__", None)
        h.update(code.co_code if code is not None else repr(obj).encode())
    return h.hexdigest()[:32]


def _helpers(start: Path, mod_name: str) -> list[str]:
    """Source files of the project modules the callable's module imports, directly or through
    each other: those under its own folder (or, for a package, the package's top folder),
    outside any installed package. Found by reading their ``import`` statements, so the hash is
    the same whatever else this process happened to load (another job's module from the same
    folder, say). A callable's helpers (``from helper import g``) are part of its code."""
    import sysconfig

    depth = mod_name.count(".") + (start.name == "__init__.py")  # a package's own folder is one deeper
    root = start.parents[min(depth, len(start.parents) - 1)]  # the folder on the import path
    installed = {Path(p).resolve() for k, p in sysconfig.get_paths().items() if k in ("stdlib", "purelib", "platlib")}
    installed.add(Path(__file__).resolve().parents[1])  # gradbatch itself, even run from its checkout

    def ours(p: Path) -> bool:
        return (
            p.is_relative_to(root)
            and not any(p.is_relative_to(i) for i in installed)
            and "site-packages" not in p.parts
        )

    seen: set[Path] = set()
    todo = [(start, mod_name)]
    while todo:
        path, name = todo.pop()
        if path in seen or not path.is_file() or not ours(path):
            continue
        seen.add(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imports(path, package):
            found = _module_file(root, imported)
            if found is not None:
                todo.append((found.resolve(), imported))
    seen.discard(start)
    return sorted(str(p) for p in seen)


def _imports(path: Path, package: str) -> set[str]:
    """Module names ``path``'s import statements may load (relative ones resolved in ``package``;
    ``from m import a`` gives ``m`` and ``m.a``, which may be a submodule)."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parent = parts[: len(parts) - node.level + 1] if node.level <= len(parts) + 1 else []
                base = ".".join([*parent, base] if base else parent)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _module_file(root: Path, name: str) -> Path | None:
    """The source file of module ``name`` under ``root``, where ``root`` is on the import path."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _guarded(user: Callable[..., Any], ref: str) -> TensorFn:
    """The user's callable, checked on every call (every real tile, not only the probe): it must
    return floating-point tensors of its inputs' shape, dtype and device, and cannot end the
    run through ``sys.exit``."""

    def call(*coords: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        try:
            out = user(*coords)
        except SystemExit as exc:
            raise FunctionError(
                f"callable {ref!r} called sys.exit({exc.code!r}) on inputs of shape {tuple(coords[0].shape)}"
            ) from None
        parts = out if isinstance(out, (tuple, list)) else (out,)
        for p in parts:
            if (
                not isinstance(p, torch.Tensor)
                or p.shape != coords[0].shape
                or p.dtype != coords[0].dtype
                or p.device != coords[0].device
                or p.layout != torch.strided
            ):
                got = (
                    f"a {p.dtype} tensor of shape {tuple(p.shape)} on {p.device}"
                    if isinstance(p, torch.Tensor)
                    else f"a {type(p).__name__}"
                )
                raise FunctionError(
                    f"callable {ref!r} returned {got} for inputs of shape {tuple(coords[0].shape)}, "
                    f"{coords[0].dtype}, on {coords[0].device}; it must return tensors shaped like its "
                    "inputs, of their dtype and device (elementwise, no broadcasting)"
                )
        return out

    return call


def from_callable(ref: str, base_dir: Path | None = None, where: str = "function.callable") -> FieldFunction:
    """A user's function of the coordinates, ``"package.module:function"``."""
    kind, ncomp = "scalar", 1  # refined by probe()
    user = import_callable(ref, base_dir, where)
    return FieldFunction(_guarded(user, ref), kind, ncomp, "callable", ref, code_hash=code_hash(user))


class CallableBuilder(SourceBuilder):
    def build(self, settings: CallableSource, ctx: BuildContext) -> BuiltFunction:
        return BuiltFunction(from_callable(settings.ref, settings.base_dir, f"{ctx.where}.callable"), self)

    def check_graph(self, ff: FieldFunction, ndim: int, dtype: torch.dtype, device: torch.device) -> None:
        probe_graph(ff, ndim, dtype, device)
