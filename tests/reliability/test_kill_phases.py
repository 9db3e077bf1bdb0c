"""``kill -9`` in every phase a run writes in, then ``--resume``: the result equals a straight
run, bit for bit. The phases outside SWMR mode (paths, basins, streamlines, final attributes)
left "open for writing" flags that the read-only completeness check tripped on before the
flags were cleared, so such a partial file could never be resumed."""

from __future__ import annotations

from pathlib import Path

import hdf5plugin  # noqa: F401  (the Blosc2 filter, for the comparison)
import pytest

from ..conftest import assert_files_equal
from ._util import FULL_JOB, gradbatch, leftovers

_KILL = "import os, signal\ndef _die():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
PHASES = {
    # the third tile, inside SWMR mode
    "tiles": _KILL
    + """
from gradbatch.store import JobWriter
_real, _n = JobWriter._write_tile, [0]
def _f(self, *a, **k):
    _n[0] += 1
    if _n[0] == 3:
        _die()
    return _real(self, *a, **k)
JobWriter._write_tile = _f
""",
    # after an overlay's group is made, before its data is written: the file open outside SWMR
    **{
        phase: _KILL
        + f"""
import gradbatch.store.overlays as s
_real = s._fresh_group
def _f(f, path):
    g = _real(f, path)
    if "/{phase}" in path:
        f.flush()
        _die()
    return g
s._fresh_group = _f
"""
        for phase in ("paths", "basins", "streamlines")
    },
    # while the final attributes are written
    "finalize": _KILL
    + """
import h5py
_real = h5py.AttributeManager.__setitem__
def _f(self, name, value):
    _real(self, name, value)
    if name == "complete" and value is True:
        _die()
h5py.AttributeManager.__setitem__ = _f
""",
    # the file complete, just before its rename
    "rename": _KILL
    + """
import os as _os
_real = _os.replace
def _f(a, b):
    if str(a).endswith(".partial"):
        _die()
    return _real(a, b)
_os.replace = _f
""",
}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("straight")
    (folder / "job.yaml").write_text(FULL_JOB)
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], folder)
    assert p.returncode == 0, p.stderr
    return folder / "out.h5"


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_in_every_phase_then_resume_gives_the_straight_file(tmp_path: Path, straight: Path, phase: str) -> None:
    (tmp_path / "job.yaml").write_text(FULL_JOB)
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, prelude=PHASES[phase])
    assert p.returncode == -9, (p.returncode, p.stderr[-2000:])
    # nothing complete-looking; the lock file may stay, unlocked (the kernel's lock died with the process)
    assert [n for n in leftovers(tmp_path) if n != "out.h5.lock"] == ["out.h5.partial"]
    info = gradbatch(["info", "out.h5.partial"], tmp_path)  # a reader copes with it
    assert info.returncode in (0, 2) and "Traceback" not in info.stderr, info.stderr
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert leftovers(tmp_path) == ["out.h5"]
    assert_files_equal(tmp_path / "out.h5", straight, "himmel")
