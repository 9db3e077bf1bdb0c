"""Every small config shipped in configs/ runs, and gives a complete file."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradbatch
from gradbatch.config import load_config

from .conftest import CONFIGS

SMALL_ENOUGH = 4_000_000  # points per job; bigger configs are benchmarks


def _small_configs() -> list[Path]:
    out = []
    for p in sorted(CONFIGS.glob("*.yaml")):
        if all(j.grid.size <= SMALL_ENOUGH for j in load_config(p).jobs):
            out.append(p)
    return out


def test_the_big_benchmark_config_is_left_out() -> None:
    names = {p.name for p in _small_configs()}
    assert "bench_8192.yaml" not in names and "seed004_himmelblau.yaml" in names


@pytest.mark.parametrize("path", _small_configs(), ids=lambda p: p.stem)
def test_config_runs(path: Path, in_tmp: Path) -> None:
    reports = gradbatch.run(path, output=in_tmp / "out.h5", device="cpu")
    info = gradbatch.inspect(in_tmp / "out.h5")
    assert [j.name for j in info.jobs] == [r.name for r in reports]
    assert all(j.complete and j.tiles_done == j.tiles_total for j in info.jobs)
    for r in reports:
        if r.check is not None:
            assert r.check.max_abs_error < 1e-4, (r.name, r.check)
