"""Two runs on one output: the second stops at once with one line, and never touches the
first run's partial file (before the lock, --overwrite deleted it and --resume opened it as a
second writer, which crashed and left a file `info` called complete but could not read)."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the Blosc2 filter)
import numpy as np
import pytest

from gradbatch.errors import StoreError
from gradbatch.lock import OutputLock, lock_path

from ._util import gradbatch, one_line_error, start

JOB = "name: wave\nfunction: 'sin(3*x) * cos(2*y)'\ngrid: {x: [-2, 2, 256], y: [-1, 1, 256]}\ntile: 32\n"
# The first run waits in a phase until the test creates the file "go": the second run is
# sure to meet it there, however slowly either process starts.
_WAIT = """
import os, time
def _wait_for_go():
    t0 = time.monotonic()
    while not os.path.exists("go") and time.monotonic() - t0 < 60:
        time.sleep(0.02)
"""
SLOW_WRITES = (
    _WAIT
    + """
from gradbatch.store import JobWriter
_real = JobWriter._write_tile
def _slow(self, *a, **k):
    _wait_for_go()
    return _real(self, *a, **k)
JobWriter._write_tile = _slow
"""
)
SLOW_PLANNING = (
    _WAIT
    + """
import gradbatch.jobs as j
_real = j.plan_job
def _slow(*a, **k):
    _wait_for_go()
    return _real(*a, **k)
j.plan_job = _slow
"""
)


def _wait_for(path: Path, proc, timeout: float = 60) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def _complete(path: Path) -> None:
    with h5py.File(path, "r") as f:
        assert f["wave"].attrs["complete"]
        v = f["wave/value"][...]
        assert not np.isnan(v).any()


@pytest.mark.parametrize("second", [[], ["--overwrite"], ["--resume"]])
@pytest.mark.parametrize("first_phase", ["planning", "writing"])
def test_a_second_run_on_a_live_output_stops_and_leaves_the_first_alone(
    tmp_path: Path, first_phase: str, second: list[str]
) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    out = tmp_path / "out.h5"
    first = start(
        ["run", "job.yaml", "-o", "out.h5", "-q"],
        tmp_path,
        prelude=SLOW_PLANNING if first_phase == "planning" else SLOW_WRITES,
    )
    try:
        # while planning, only the lock exists; while writing, the partial file too
        _wait_for(lock_path(out) if first_phase == "planning" else out.with_name("out.h5.partial"), first)
        p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", *second], tmp_path)
        line = one_line_error(p, "StoreError", "another gradbatch run is writing it", f"pid {first.pid}")
        assert "out.h5" in line
        assert first.poll() is None
    finally:
        (tmp_path / "go").touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    _complete(out)
    assert not lock_path(out).exists() and not out.with_name("out.h5.partial").exists()


def test_the_lock_is_released_by_a_killed_run(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    first = start(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, prelude=SLOW_WRITES)
    _wait_for(tmp_path / "out.h5.partial", first)
    time.sleep(0.3)
    first.kill()
    first.communicate()
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    assert p.returncode == 0, p.stderr
    _complete(tmp_path / "out.h5")


def test_lock_in_process_names_the_holder_and_refuses_a_symlink(tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    with OutputLock(out):
        assert lock_path(out).exists()
        with pytest.raises(StoreError, match="another gradbatch run is writing it"):
            OutputLock(out).acquire()
    assert not lock_path(out).exists()
    (tmp_path / "elsewhere").write_text("precious")
    lock_path(out).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError, match="symbolic link"):
        OutputLock(out).acquire()
    assert (tmp_path / "elsewhere").read_text() == "precious"
