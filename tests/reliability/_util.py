"""Helpers for the reliability tests: gradbatch as a user meets it, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A small job with every phase gradbatch writes: tiles (SWMR), then paths, basins and
# streamlines (outside SWMR mode), then the final attributes, then the rename.
FULL_JOB = """\
name: himmel
function: {builtin: himmelblau}
grid: {x: [-6, 6, 96], y: [-6, 6, 80]}
tile: 32
outputs: [value, gradient, check]
paths:
  starts: [[-4, 0], [1, 1]]
  steps: 300
  optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.002}]
basins: {resolution: 24, steps: 300, optimizer: {name: adam, lr: 0.05}}
streamlines: {field: descent, seeds: {even: 2}}
"""


def kill_at_write(n: int) -> str:
    """A prelude that SIGKILLs the run as it starts writing its ``n``-th tile."""
    return (
        "import os, signal\nfrom gradbatch.store import JobWriter\n_r, _n = JobWriter._write_tile, [0]\n"
        "def _f(self, *a, **k):\n    _n[0] += 1\n"
        f"    if _n[0] == {n}:\n        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _r(self, *a, **k)\nJobWriter._write_tile = _f\n"
    )


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("EGL_PLATFORM", None)
    return e


def gradbatch(
    args: Sequence[str], cwd: Path, timeout: float = 120, prelude: str = "", preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m gradbatch ARGS`` in ``cwd``; ``prelude`` is Python run first in that process
    (a fault injected into gradbatch's own functions)."""
    code = prelude + "\nimport sys\nfrom gradbatch.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=cwd,
            env=env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gradbatch {' '.join(args)} hung for {timeout}s; output so far: {exc.stderr!r}")


def start(args: Sequence[str], cwd: Path, prelude: str = "") -> subprocess.Popen[str]:
    code = prelude + "\nimport sys\nfrom gradbatch.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line_error(p: subprocess.CompletedProcess[str], kind: str, *needles: str) -> str:
    """The run failed with exit code 2 and exactly one stderr line ``Kind: ...`` holding the needles."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
    assert len(lines) == 1, p.stderr[-3000:]
    assert lines[0].startswith(f"{kind}: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """What a run left in ``folder`` besides job files and Python modules."""
    return sorted(p.name for p in folder.iterdir() if p.suffix not in (".yaml", ".py") and p.name != "__pycache__")
