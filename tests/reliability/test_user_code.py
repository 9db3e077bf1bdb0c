"""User callables are checked on every tile, not only on a 4-point probe; their code is part of
the job for --resume; sys.exit in them cannot end a run with exit code 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._util import gradbatch, kill_at_write, leftovers, one_line_error

MODULE = """
import sys
import torch

def no_grad(x, y):
    with torch.no_grad():
        return torch.sin(x) * y

def detached(x, y):
    return (x * y).detach()

def via_numpy(x, y):
    return torch.as_tensor((x * y).detach().cpu().numpy())

def wrong_shape_on_real_tiles(x, y):
    out = x * y
    return out if x.numel() <= 4 else out[:1]     # right on the probe, a row on real tiles

def wrong_dtype_on_real_tiles(x, y):
    out = x * y
    return out if x.numel() <= 4 else out.double()

def exits(x, y):
    if x.numel() > 4:
        sys.exit(0)
    return x * y

def raises_on_real_tiles(x, y):
    if x.numel() > 4:
        raise ValueError("boom")
    return x * y

def fine(x, y):
    return torch.sin(x) * y

_w = torch.ones((), requires_grad=True)

def graph_not_to_inputs(x, y):          # a graph through a weight, none to x and y
    inp = torch.tensor(torch.stack([x, y], -1).tolist(), dtype=x.dtype)
    return (inp.sum(-1) * _w).reshape(x.shape)

class MyBase(BaseException):
    pass

def generator_exit(x, y):
    if x.numel() > 4:
        raise GeneratorExit("user")
    return x * y

def own_base_exception(x, y):
    if x.numel() > 4:
        raise MyBase("custom")
    return x * y

def sparse_on_real_tiles(x, y):
    v = x * y
    return v.to_sparse() if x.numel() > 4 else v
"""


def _job(ref: str, outputs: str = "[value, gradient]") -> str:
    return (
        f"name: user\nfunction: {{callable: 'ufuncs:{ref}'}}\ngrid: {{x: [-1, 1, 64], y: [-1, 1, 48]}}\n"
        f"tile: 32\noutputs: {outputs}\n"
    )


@pytest.mark.parametrize(
    ("ref", "needles"),
    [
        ("no_grad", ["without an autograd graph", "torch.no_grad()"]),
        ("detached", ["without an autograd graph"]),
        ("via_numpy", ["without an autograd graph"]),
        ("wrong_shape_on_real_tiles", ["shape (1, 32)", "shaped like its inputs"]),
        ("wrong_dtype_on_real_tiles", ["torch.float64", "shaped like its inputs, of their dtype"]),
        ("exits", ["called sys.exit(0)"]),
        ("raises_on_real_tiles", ["ValueError: boom", "tile"]),
        ("graph_not_to_inputs", ["autograd graph to its inputs"]),
        ("generator_exit", ["GeneratorExit: user"]),
        ("own_base_exception", ["MyBase: custom"]),
        ("sparse_on_real_tiles", ["shaped like its inputs"]),
    ],
)
def test_misbehaving_callables_fail_with_one_line_and_no_file(tmp_path: Path, ref: str, needles: list[str]) -> None:
    (tmp_path / "ufuncs.py").write_text(MODULE)
    (tmp_path / "job.yaml").write_text(_job(ref))
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    one_line_error(p, "FunctionError", f"ufuncs:{ref}", *needles)
    assert "out.h5" not in leftovers(tmp_path)


def test_a_no_grad_callable_is_fine_for_values_only(tmp_path: Path) -> None:
    (tmp_path / "ufuncs.py").write_text(MODULE)
    (tmp_path / "job.yaml").write_text(_job("no_grad", "[value]"))
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    assert p.returncode == 0, p.stderr


def test_resume_refuses_a_callable_whose_code_changed(tmp_path: Path) -> None:
    (tmp_path / "ufuncs.py").write_text(MODULE)
    (tmp_path / "job.yaml").write_text(_job("fine"))
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, prelude=kill_at_write(2)).returncode == -9
    (tmp_path / "ufuncs.py").write_text(MODULE.replace("torch.sin(x) * y", "torch.cos(x) * y"))
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    one_line_error(p, "StoreError", "other code for its callable", "--overwrite")
    (tmp_path / "ufuncs.py").write_text(MODULE)  # the code it started with: resumes
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    assert p.returncode == 0, p.stderr


def test_resume_refuses_a_callable_whose_helper_module_changed(tmp_path: Path) -> None:
    (tmp_path / "ufuncs.py").write_text(MODULE)
    (tmp_path / "helper.py").write_text("def g(x, y):\n    return x * y\n")
    (tmp_path / "ufuncs.py").write_text("from helper import g\n\ndef uses_helper(x, y):\n    return g(x, y)\n")
    (tmp_path / "job.yaml").write_text(_job("uses_helper"))
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, prelude=kill_at_write(2)).returncode == -9
    (tmp_path / "helper.py").write_text("def g(x, y):\n    return x + y + 100\n")
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    one_line_error(p, "StoreError", "other code for its callable")


def test_a_callables_code_hash_covers_what_it_imports_and_nothing_else_loaded(tmp_path: Path) -> None:
    """The hash is the callable's module and the project modules it imports (also inside a
    function, also through a package): never another module that happens to be loaded from the
    same folder, or `--resume` would refuse a file depending on what else a run imported."""
    import importlib
    import sys

    from gradbatch.functions.callable import code_hash, import_callable

    (tmp_path / "hashmod.py").write_text(
        "import hashpkg.tool\n\ndef f(x, y):\n    from hashhelper import g\n    return g(x, y)\n"
    )
    (tmp_path / "hashhelper.py").write_text("def g(x, y):\n    return x * y\n")
    (tmp_path / "hashpkg").mkdir()
    (tmp_path / "hashpkg" / "__init__.py").write_text("")
    (tmp_path / "hashpkg" / "tool.py").write_text("from . import deep\n")
    (tmp_path / "hashpkg" / "deep.py").write_text("K = 1\n")
    (tmp_path / "hashother.py").write_text("OTHER = 1\n")
    try:
        fn = import_callable("hashmod:f", tmp_path)
        first = code_hash(fn)
        sys.path.insert(0, str(tmp_path))
        try:
            importlib.import_module("hashother")  # another job's module from the same folder
        finally:
            sys.path.remove(str(tmp_path))
        assert code_hash(fn) == first
        for changed in ("hashhelper.py", "hashpkg/deep.py", "hashpkg/tool.py"):
            path = tmp_path / changed
            path.write_text(path.read_text() + "\n# changed\n")
            assert code_hash(fn) != first, changed
            first = code_hash(fn)
        (tmp_path / "hashother.py").write_text("OTHER = 2\n")
        assert code_hash(fn) == first
    finally:
        for name in [m for m in sys.modules if m.startswith(("hashmod", "hashhelper", "hashpkg", "hashother"))]:
            del sys.modules[name]
