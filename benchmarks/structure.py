"""The shape of a gradbatch tree: modules, imports, imports going up the pipeline, largest units.

    python benchmarks/structure.py [TREE]      # TREE: a checkout's root (default: this one)

Imports are runtime imports (grimp, as `lint-imports` sees them; `if TYPE_CHECKING:` ones left
out), counted against the pipeline's layers (pyproject.toml's layers contract, with the module
names older trees used mapped to their layer). Needs the lint extra (import-linter brings grimp).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LAYERS = [  # bottom first; old module names sit with their successors
    {"errors", "_version"},
    {"records"},
    {"lock", "geometry", "builtins"},
    {"config", "config_yaml", "config_trajectories", "config_landscape"},
    {"expr", "derivatives", "grid"},
    {"functions", "landscape"},
    {"store", "_h5clear", "engine", "pyramid"},
    {"describe", "summary", "trajectories", "paths", "basins", "streamlines", "integrate", "flows"},
    {"outputs", "distributed", "writing"},
    {"jobs", "viewer", "render"},
    {"api", "bench"},
    {"cli"},
    {"__main__"},
    {"__init__"},
]


def _layer(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return next(i for i, names in enumerate(LAYERS) if name in names)


def _imports(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    import grimp

    sys.path.insert(0, str(root))
    # an editable install's finder would answer for "gradbatch" before sys.path does
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    g = grimp.build_graph("gradbatch", exclude_type_checking_imports=True)
    mods = sorted(m for m in g.modules if m.startswith("gradbatch"))
    edges = [(a, b) for a in mods for b in sorted(g.find_modules_directly_imported_by(a)) if b.startswith("gradbatch")]
    return mods, edges


def _units(root: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[tuple[int, str]]]:
    files, funcs, classes = [], [], []
    for p in sorted((root / "gradbatch").rglob("*.py")):
        text = p.read_text()
        name = str(p.relative_to(root))
        files.append((len(text.splitlines()), name))
        for n in ast.walk(ast.parse(text)):
            size = (getattr(n, "end_lineno", 0) or 0) - getattr(n, "lineno", 0) + 1
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((size, f"{name}:{n.name}"))
            elif isinstance(n, ast.ClassDef):
                classes.append((size, f"{name}:{n.name}"))
    return sorted(files, reverse=True), sorted(funcs, reverse=True), sorted(classes, reverse=True)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
    mods, edges = _imports(root)
    up = [(a, b) for a, b in edges if _layer(b) > _layer(a)]
    print(f"{root}: {len(mods)} modules, {len(edges)} internal imports, {len(up)} going up the pipeline")
    for a, b in up:
        print(f"    {a} -> {b}")
    files, funcs, classes = _units(root)
    print(f"lines: {sum(n for n, _ in files)}; files over 400 lines: {[f'{f} {n}' for n, f in files if n > 400]}")
    print(f"functions over 60 lines: {[f'{f} {n}' for n, f in funcs if n > 60]}")
    print(f"largest classes: {[f'{f} {n}' for n, f in classes[:3]]}")


if __name__ == "__main__":
    main()
