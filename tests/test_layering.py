"""The layers stay apart: reading files never needs torch; the engine never touches HDF5."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import gradbatch


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["gradbatch", "gradbatch.store", "gradbatch.grid", "gradbatch.errors"])
def test_reading_side_does_not_import_torch(module: str) -> None:
    mods = _modules_after(f"import {module}")
    assert "torch" not in mods and "vispy" not in mods


def test_reading_a_file_does_not_import_torch(tmp_path) -> None:  # noqa: ANN001
    gradbatch.run_jobs(gradbatch.parse_config("function: x\ngrid: {x: [0, 1, 8]}", output=tmp_path / "a.h5"))
    mods = _modules_after(
        f"import gradbatch; gradbatch.inspect({str(tmp_path / 'a.h5')!r}); "
        f"gradbatch.read_field({str(tmp_path / 'a.h5')!r}, 'job', 'value')"
    )
    assert "torch" not in mods


def test_running_a_job_does_not_import_dask(tmp_path) -> None:  # noqa: ANN001
    mods = _modules_after(
        f"import gradbatch; gradbatch.run_jobs(gradbatch.parse_config('function: x\\ngrid: "
        f"{{x: [0, 1, 8]}}', output={str(tmp_path / 'b.h5')!r}))"
    )
    assert "dask" not in mods and "distributed" not in mods


def test_engine_and_config_do_not_import_hdf5_or_vispy() -> None:
    mods = _modules_after("import gradbatch.engine, gradbatch.config, gradbatch.expr")
    assert "h5py" not in mods and "vispy" not in mods


def test_lazy_attributes() -> None:
    assert callable(gradbatch.run_jobs) and "run_jobs" in dir(gradbatch)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gradbatch.nope  # noqa: B018


def test_the_viewer_does_not_import_torch() -> None:
    mods = _modules_after(
        "import gradbatch.viewer.render, gradbatch.viewer.canvas, gradbatch.viewer.visuals, "
        "gradbatch.viewer.loader, gradbatch.viewer.arrows, gradbatch.geometry"
    )
    assert "torch" not in mods


_LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts (the pipeline's layers, h5py only in the store, a
    torch-free config and viewer, an engine that knows no specific source) hold for this tree."""
    pytest.importorskip("importlinter", reason="import-linter is in the lint extra")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout


def test_public_functions_are_not_shadowed_by_submodules(tmp_path) -> None:  # noqa: ANN001
    """A submodule named like a public function (``gradbatch.describe``) would replace the
    function on the package as soon as anything imported it: after a run, say."""
    gradbatch.run_jobs(gradbatch.parse_config("function: x\ngrid: {x: [0, 1, 8]}", output=tmp_path / "c.h5"))
    text = gradbatch.describe(gradbatch.inspect(tmp_path / "c.h5"))
    assert "job job  [complete]" in text
    for name in gradbatch.__all__:
        assert not isinstance(getattr(gradbatch, name), types.ModuleType), name
