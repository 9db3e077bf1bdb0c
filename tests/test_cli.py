"""The command line: thin, with errors as `Name: message` and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gradbatch.cli import main

SMALL = "name: tiny\nfunction: 'x^2 + y'\ngrid: {x: [-1, 1, 40], y: [0, 1, 30]}\noutputs: [value, gradient, check]\n"


def test_run_then_info(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "tiny.yaml").write_text(SMALL)
    assert main(["run", "tiny.yaml"]) == 0
    out, err = capsys.readouterr()
    assert "tiny.h5:tiny: 1,200 points" in out and "gradient check" in out
    assert "tiny: tiles 1/1 (100%)" in err and "wrote tiny.h5" in err
    assert main(["info", "tiny.h5"]) == 0
    out, _ = capsys.readouterr()
    assert "job tiny  [complete]" in out and "axis x      -1 .. 1, 40 points" in out
    assert "grad_y       (y, x) 30 x 40 float32" in out
    assert main(["info", "tiny.h5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"][0]["fields"][0]["name"] == "value"


def test_run_without_a_file_runs_the_embedded_example(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-q"]) == 0
    assert (in_tmp / "ripple.h5").exists()
    assert "embedded example" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, files, message",
    [
        (["run", "missing.yaml"], {}, "ConfigError: missing.yaml: no such job file"),
        (
            ["run", "bad.yaml"],
            {"bad.yaml": "function: 'x.y'\ngrid: {x: [0, 1, 4]}\n"},
            "ExpressionError: bad.yaml: function: attribute access is not allowed: '.y' at column 2",
        ),
        (
            ["run", "bad.yaml"],
            {"bad.yaml": "function: x\ngrid: {x: [0, 1, -4]}\n"},
            "ConfigError: bad.yaml: grid.x[2]: expected a positive integer of at least 2, got -4",
        ),
        (["info", "nothere.h5"], {}, "StoreError: nothere.h5: no such file"),
        (["info", "text.h5"], {"text.h5": "not hdf5"}, "StoreError: text.h5: not an HDF5 file"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], argv: list[str], files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (in_tmp / name).write_text(text)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_foreign_hdf5_file_is_refused(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import h5py

    with h5py.File(in_tmp / "other.h5", "w") as f:
        f["data"] = [1, 2, 3]
    assert main(["info", "other.h5"]) == 2
    assert "not a gradbatch file (no 'gradbatch_format' attribute" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error where CUDA is absent")
def test_device_override_to_missing_cuda(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "tiny.yaml").write_text(SMALL)
    assert main(["run", "tiny.yaml", "--device", "cuda"]) == 2
    assert "DeviceError: device 'cuda' was asked for but CUDA is not available" in capsys.readouterr().err


def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--sizes", "64", "--methods", "eager", "--repeat", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    cpu = [r for r in rows if r["device"].startswith("cpu")]
    assert cpu[0]["size"] == 64 and cpu[0]["points_per_s"] > 0 and cpu[0]["speedup_vs_cpu"] == 1.0


def test_bench_keeps_every_row_when_one_fails(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # noqa: ANN001
    """A compile that fails (no C compiler or Python headers for Triton) is that row's result:
    the eager rows are still measured and the output is strict JSON."""
    from gradbatch import bench
    from gradbatch.errors import EngineError

    real = bench._plan

    def plan(size: int, method: str, *args: object) -> object:
        if method == "compiled":
            raise EngineError("torch.compile failed (InvalidCxxCompiler: No working C++ compiler found)")
        return real(size, method, *args)

    monkeypatch.setattr(bench, "_plan", plan)
    assert main(["bench", "--sizes", "64", "--methods", "eager,compiled", "--repeat", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert [r["method"] for r in rows] == ["eager", "compiled"]
    assert rows[0]["error"] is None and rows[0]["points_per_s"] > 0
    assert "No working C++ compiler" in rows[1]["error"] and rows[1]["points_per_s"] is None
    assert main(["bench", "--sizes", "64", "--methods", "eager,compiled", "--repeat", "1"]) == 0
    assert "failed: torch.compile failed" in capsys.readouterr().out


def test_builtins_lists_every_function(capsys: pytest.CaptureFixture[str]) -> None:
    from gradbatch.functions import BUILTINS

    assert main(["builtins"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BUILTINS)


def test_module_entry_point_prints_no_traceback(in_tmp: Path) -> None:
    (in_tmp / "bad.yaml").write_text("function: '__import__(\"os\")'\ngrid: {x: [0, 1, 4]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gradbatch", "run", "bad.yaml"], cwd=in_tmp, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ExpressionError: bad.yaml: function: unknown function '__import__'")
    assert "Traceback" not in proc.stderr


def test_the_command_leaves_at_once_with_its_files_whole_and_its_output_flushed(in_tmp: Path) -> None:
    """`gradbatch` ends with os._exit once a command that imported torch has returned (torch's
    teardown costs about a second); what it wrote and printed is all there, and its exit
    status is the command's."""
    import h5py

    (in_tmp / "tiny.yaml").write_text(SMALL)
    run = [sys.executable, "-m", "gradbatch", "run", "tiny.yaml"]
    proc = subprocess.run(run, cwd=in_tmp, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tiny.h5:tiny: 1,200 points" in proc.stdout and "wrote tiny.h5" in proc.stderr
    with h5py.File(in_tmp / "tiny.h5", "r") as f:
        assert bool(f["tiny"].attrs["complete"]) and f["tiny/value"].shape == (30, 40)
    again = subprocess.run(run, cwd=in_tmp, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr  # the command's own status


def test_an_open_hdf5_file_keeps_the_normal_exit(tmp_path: Path) -> None:
    import gc

    import h5py

    from gradbatch.cli import _hdf5_files_open

    gc.collect()  # files other tests left to the garbage collector
    assert not _hdf5_files_open()
    with h5py.File(tmp_path / "a.h5", "w"):
        assert _hdf5_files_open()
    assert not _hdf5_files_open()


def test_a_closed_stderr_silences_the_progress_and_the_job_still_finishes(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gradbatch run job.yaml 2>&1 | head -1`: the pipe closes after the first line. The news
    stops; the job does not end half-way with exit status 0 and a .partial file."""
    import io

    import h5py

    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def isatty(self) -> bool:
            return False

    (in_tmp / "tiny.yaml").write_text(SMALL)
    monkeypatch.setattr(sys, "stderr", Closed())
    assert main(["run", "tiny.yaml"]) == 0
    with h5py.File(in_tmp / "tiny.h5", "r") as f:
        assert bool(f["tiny"].attrs["complete"])
    assert not (in_tmp / "tiny.h5.partial").exists()


def test_output_to_a_full_disk_is_one_line(in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    """`gradbatch info f.h5 > /dev/full`: one line and status 1, not a traceback."""
    import errno
    import io

    (in_tmp / "tiny.yaml").write_text(SMALL)
    assert main(["run", "tiny.yaml", "-q"]) == 0
    capsys.readouterr()

    class Full(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["info", "tiny.h5"]) == 1
    assert capsys.readouterr().err.strip() == "error: cannot write the output: No space left on device (errno 28)"
