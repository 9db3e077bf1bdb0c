"""Compiled kernels kept on disk (engine/aot.py): what a kernel is kept for, that a job uses one
and still writes what eager autograd computes, and that a bad one is never used."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.cli import main
from gradbatch.config import parse_config
from gradbatch.engine import aot
from gradbatch.engine.kernel import Kernel

JOB = (
    "name: k\nfunction: 'sin(x*y) + log(x) * a'\nparams: {a: 0.5}\n"
    "grid: {x: [-1, 3, 600], y: [-2, 2, 80]}\ntile: 32\noutputs: [value, gradient, magnitude]\n"
)
needs_compiler = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="AOTInductor needs a C++ compiler"
)


def _plan(text: str = JOB) -> gradbatch.JobPlan:
    return gradbatch.plan_job(parse_config(text).jobs[0], "cpu")


def _fields(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {n: f[f"k/{n}"][...] for n in ("value", "grad_x", "grad_y", "magnitude")}


def test_the_key_names_everything_the_kernel_computes() -> None:
    key = aot.kernel_key(_plan())
    assert key is not None and key == aot.kernel_key(_plan())  # the same job: the same kernel
    changed = [
        JOB.replace("a: 0.5", "a: 0.25"),  # a parameter
        JOB.replace("tile: 32", "tile: 16"),  # the tile shape
        JOB + "dtype: float64\n",
        JOB.replace(", magnitude]", "]"),  # the outputs
        JOB.replace("sin(x*y)", "cos(x*y)"),
    ]
    keys = {aot.kernel_key(_plan(t)) for t in changed}
    assert len(keys) == len(changed) and key not in keys
    # where the grid lies and the check are not the kernel's: the same key
    assert aot.kernel_key(_plan(JOB.replace("[-1, 3, 600]", "[0, 9, 600]"))) == key
    assert aot.kernel_key(_plan(JOB.replace(", magnitude]", ", magnitude, check]"))) == key


def test_no_kernel_is_kept_for_user_code(tmp_path: Path) -> None:
    (tmp_path / "userfn.py").write_text("def f(x, y):\n    return x * y\n")
    text = "function: {callable: 'userfn:f'}\ngrid: {x: [0, 1, 8], y: [0, 1, 8]}\n"
    plan = gradbatch.plan_job(parse_config(text, source=tmp_path / "job.yaml").jobs[0], "cpu")
    assert aot.kernel_key(plan) is None


@pytest.mark.parametrize("meta", [None, "{not json", {"names": 5}, {"names": ["value"], "size": 26, "sha256": "0"}])
def test_a_damaged_kernel_is_not_loaded_and_is_removed(kernel_cache: Path, meta: object) -> None:
    """Loading a truncated library can kill the process (a bus error): a library that is not
    the size and SHA-256 its build recorded is never loaded, and its entry goes."""
    plan = _plan(JOB.replace("a: 0.5", "a: 0.125"))
    entry = kernel_cache / str(aot.kernel_key(plan))
    entry.mkdir()
    (entry / "kernel.so").write_bytes(b"\x7fELF not really a library")
    if meta is not None:
        (entry / "kernel.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    eager = Kernel(lambda *a: {}, lambda *a: {}, False)
    with pytest.warns(UserWarning, match="is damaged"):
        assert aot.load(plan, eager) is None
    assert not entry.exists()


def test_a_kernel_that_disagrees_with_autograd_is_removed_and_the_job_runs_eagerly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a cached kernel computes is checked against eager autograd on the job's first tile."""
    gone = tmp_path / "entry"
    gone.mkdir()

    def wrong(plan: object, eager: Kernel, workers: int = 1) -> Kernel:
        def fn(*axes1d: torch.Tensor) -> dict[str, torch.Tensor]:
            out = eager.eager(*axes1d)
            out["grad_y"] = out["grad_y"] * 1.001
            return out

        return Kernel(fn, eager.eager, True, cached=str(gone))

    monkeypatch.setattr(aot, "load", wrong)
    with pytest.warns(UserWarning, match=r"disagrees with autograd \(grad_y differs by"):
        (report,) = gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "a.h5"))
    assert not gone.exists() and not report.compiled
    (eager,) = gradbatch.run_jobs(parse_config(JOB + "compile: off\n", output=tmp_path / "b.h5"))
    for name, want in _fields(tmp_path / "b.h5").items():
        np.testing.assert_array_equal(_fields(tmp_path / "a.h5")[name], want, err_msg=name)


@pytest.mark.slow
@needs_compiler
def test_a_kernel_built_in_the_background_is_used_by_later_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A large job without a kernel starts a build in a process of its own and runs eagerly;
    the next run finds the kernel, checks it on its first tile and computes with it, and its
    file is eager autograd's up to float32 rounding, NaN where eager's is NaN."""
    monkeypatch.setattr(aot, "BACKGROUND_MIN_POINTS", 0)  # this small job counts as large
    monkeypatch.setenv("GRADBATCH_BACKGROUND_COMPILE", "1")
    plan = _plan()
    entry = aot.cache_dir() / str(aot.kernel_key(plan))
    said: list[str] = []
    (first,) = gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "first.h5"), log=said.append)
    assert not first.compiled and any("building a compiled kernel" in s for s in said), said
    deadline = time.monotonic() + 600
    while not (entry / "kernel.so").exists() and time.monotonic() < deadline:
        assert not entry.with_name(entry.name + ".failed").exists(), entry.with_name(entry.name + ".failed").read_text()
        time.sleep(1)
    assert (entry / "kernel.so").exists(), (entry.with_name(entry.name + ".log")).read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "disagrees" warning
        (second,) = gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "second.h5"))
    assert second.compiled
    with h5py.File(tmp_path / "second.h5", "r") as f:
        assert bool(f["k"].attrs["compiled"])
    eager, compiled = _fields(tmp_path / "first.h5"), _fields(tmp_path / "second.h5")
    for name in eager:
        np.testing.assert_array_equal(np.isnan(compiled[name]), np.isnan(eager[name]), err_msg=name)
        np.testing.assert_allclose(compiled[name], eager[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.isnan(eager["value"]).any()  # log(x) below 0
    # the pyramid and the tile tables (non-finite counts, ranges) came out of the kernel too
    with h5py.File(tmp_path / "first.h5", "r") as a, h5py.File(tmp_path / "second.h5", "r") as b:
        names: list[str] = []
        a["k"].visit(names.append)
        compared = 0
        for name in names:
            da, db = a["k"][name], b["k"][name]
            if isinstance(da, h5py.Dataset) and da.dtype.kind in "fiu":
                np.testing.assert_allclose(db[...], da[...], rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
                compared += 1
        assert compared > 10 and any("@" in n or "level" in n for n in names), names
    # gradbatch compile: nothing left to build
    (tmp_path / "job.yaml").write_text(JOB)
    assert main(["compile", str(tmp_path / "job.yaml")]) == 0
    assert f"k: already built: {entry}" in capsys.readouterr().out
    # a library cut short (a full disk, a copy that stopped) is never loaded: it could kill the
    # process; the job warns, runs eagerly, and the entry goes so that it is built again
    so = entry / "kernel.so"
    cut = entry / "cut.so"
    cut.write_bytes(so.read_bytes()[:200_000])
    # a new file in its place: this process still maps the library it loaded, and cutting that
    # very file short would make its pages fault (SIGBUS) wherever they are touched next
    os.replace(cut, so)
    with pytest.warns(UserWarning, match="is damaged"):
        (third,) = gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "third.h5"))
    assert not third.compiled and not entry.exists()
    np.testing.assert_array_equal(_fields(tmp_path / "third.h5")["value"], eager["value"])


def test_one_build_per_kernel_and_a_dead_builders_marker_is_taken_over(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    marker = tmp_path / "k.building"
    assert aot._claim(marker, {"key": "k"})
    assert not aot._claim(marker, {"key": "k"})  # being written, or built by a live process
    marker.write_text(json.dumps({"key": "k", "pid": os.getpid()}))
    assert not aot._claim(marker, {"key": "k"})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs: its build was killed
    marker.write_text(json.dumps({"key": "k", "pid": gone.pid}))
    assert aot._claim(marker, {"key": "k", "new": True})
    assert json.loads(marker.read_text()) == {"key": "k", "new": True}


def test_a_kernel_that_cannot_be_built_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    (tmp_path / "job.yaml").write_text(JOB)
    monkeypatch.setenv("GRADBATCH_CACHE_DIR", str(tmp_path / "file" / "kernels"))
    (tmp_path / "file").write_text("a file where the cache folder should be")
    assert main(["compile", str(tmp_path / "job.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("EngineError: cannot build the compiled kernel of") and "\n" not in err


def test_a_failed_background_build_is_said_and_compile_skips_compile_off(
    kernel_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRADBATCH_BACKGROUND_COMPILE", "1")
    plan = _plan(JOB.replace("a: 0.5", "a: 0.0625"))
    (kernel_cache / f"{aot.kernel_key(plan)}.failed").write_text("InductorError: InvalidCxxCompiler: no compiler\n")
    note = aot.start_background_build(plan, 1 << 30)
    assert note is not None and "failed (InductorError: InvalidCxxCompiler" in note and "gradbatch compile" in note
    (tmp_path / "off.yaml").write_text(JOB + "compile: off\n")
    assert main(["compile", str(tmp_path / "off.yaml")]) == 0
    assert "k: compile: off: not built" in capsys.readouterr().out
