"""Shared fixtures: the device parametrisation, job helpers and skips for missing hardware."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.config import parse_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _headless_gl() -> str | None:
    """None if a headless OpenGL canvas works here, else why not (checked in a subprocess, so
    a broken driver cannot take the test run down)."""
    import subprocess
    import sys

    code = (
        "import os; os.environ.setdefault('EGL_PLATFORM', 'surfaceless'); import vispy; "
        "vispy.use(app='egl', gl='gl2'); from vispy import scene; "
        "c = scene.SceneCanvas(size=(8, 8), show=False); c.render(); print('ok')"
    )
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "headless OpenGL timed out"
    return None if r.stdout.strip().endswith("ok") else f"no headless OpenGL ({r.stderr.strip()[-200:]})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA; none on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
    if any("gl" in item.keywords for item in items):
        why = _headless_gl()
        if why is not None:
            for item in items:
                if "gl" in item.keywords:
                    item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled-kernel cache of this test run: empty at the start (no kernel a user built
    changes what a test computes), shared by its tests and their subprocesses, and never
    built in the background (a test that wants a kernel builds it)."""
    import os

    path = tmp_path_factory.mktemp("kernels")
    os.environ["GRADBATCH_CACHE_DIR"] = str(path)
    os.environ["GRADBATCH_BACKGROUND_COMPILE"] = "0"
    return path


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def job_from(text: str, name: str = "job", **kw: object) -> gradbatch.JobConfig:
    return parse_config(text, name=name, **kw).jobs[0]


def compute_fields(text: str, device: str = "cpu", levels: bool = False) -> dict[str, np.ndarray]:
    """All fields of a small YAML job, in memory, as plain arrays (``"<field>@<k>"``: levels)."""
    from gradbatch.engine import compute

    return compute(gradbatch.plan_job(job_from(text), device), levels=levels)


def assert_files_equal(a: Path, b: Path, job: str) -> None:
    """Every dataset of ``job`` (fields, coordinates, levels, done map) is bitwise equal."""
    import h5py

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names: list[str] = []
        fa[job].visit(lambda n: names.append(n) if isinstance(fa[job][n], h5py.Dataset) else None)
        other: list[str] = []
        fb[job].visit(lambda n: other.append(n) if isinstance(fb[job][n], h5py.Dataset) else None)
        assert sorted(names) == sorted(other)
        for n in names:
            np.testing.assert_array_equal(fa[job][n][...], fb[job][n][...], err_msg=n)
        for k in ("function", "fields", "axes", "job_yaml", "tile", "levels", "complete"):
            assert np.array_equal(np.asarray(fa[job].attrs[k]), np.asarray(fb[job].attrs[k])), k
