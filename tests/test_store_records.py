"""The store's reader gives back, as records, exactly what its writers were handed.

A real ``gradbatch run`` (two jobs: a data landscape with descent paths, basins and
streamlines; Himmelblau's basins with its known minima) is run with the overlay writers watched,
so the test holds what each writer got. The reader's records are then compared field by field
with it, and a window read at pyramid levels 0 and 1 with ``read_field``.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradbatch.trajectories.flows as flows
from gradbatch.cli import main
from gradbatch.records import BasinsResult, Descent, LandscapeMakings, Streamlines
from gradbatch.store import (
    FieldReader,
    WindowRequest,
    inspect,
    read_basins,
    read_field,
    read_landscape,
    read_overlays,
    read_paths,
    read_streamlines,
)

JOB = """\
output: rec.h5
jobs:
  - name: lin
    function: {landscape: {model: linear}}
    grid: {m: [-20, 20, 300], b: [-40, 40, 90]}
    tile: 64
    dtype: float64
    paths:
      starts: [[-15, -30], [10, 20], [0, 0]]
      steps: 40
      optimizers: [{name: adam, lr: 0.5}, {name: sgd, lr: 0.001}]
    basins: {resolution: 5, steps: 60, optimizer: {name: adam, lr: 0.5}}
    streamlines: {field: descent, seeds: {grid: 3}}
  - name: hb
    function: {builtin: himmelblau}
    grid: {x: [-5, 5, 40], y: [-5, 5, 40]}
    basins: {resolution: 8, steps: 200, optimizer: {name: adam, lr: 0.05}}
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[tuple[Any, ...]]]]:
    """The file, and the arguments each overlay writer was called with (in call order)."""
    folder = tmp_path_factory.mktemp("records")
    (folder / "job.yaml").write_text(JOB)
    calls: dict[str, list[tuple[Any, ...]]] = {}
    mp = pytest.MonkeyPatch()
    for name in ("write_paths", "write_basins", "write_streamlines", "write_landscape"):
        real = getattr(flows, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> None:
            calls.setdefault(_name, []).append(args[1:])  # (job, ...): the path is the .partial
            _real(*args)

        mp.setattr(flows, name, spy)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "job.yaml", "-q"]) == 0
    finally:
        os.chdir(cwd)
        mp.undo()
    return folder / "rec.h5", calls


def _same_array(a: np.ndarray | None, b: np.ndarray | None, what: str) -> None:
    assert (a is None) == (b is None), what
    if a is not None and b is not None:
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, a.dtype, b.shape, b.dtype)
        np.testing.assert_array_equal(a, b, err_msg=what)


def _same_attrs(stored: Any, given: Any, what: str) -> None:
    """Attributes as the writer got them: tuples come back as lists, arrays as lists."""

    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray)):
            return [norm(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    assert set(stored) == set(given), what
    for k in given:
        assert norm(stored[k]) == norm(given[k]), (what, k, stored[k], given[k])


def test_paths_come_back_as_the_descents_written(written: tuple[Path, dict[str, list[tuple[Any, ...]]]]) -> None:
    path, calls = written
    paths = read_paths(path, "lin")
    given = [c for c in calls["write_paths"] if c[0] == "lin"]
    assert list(paths) == [c[1] for c in given] == ["adam", "sgd"]  # the optimisers' order
    for _job, label, descent, attrs in given:
        got = paths[label]
        assert isinstance(got.record, Descent)
        for f in fields(Descent):
            _same_array(getattr(got.record, f.name), getattr(descent, f.name), f"{label}.{f.name}")
        _same_attrs(got.attrs, attrs, label)
    assert read_paths(path, "hb") == {}


def test_basins_come_back_with_their_table(written: tuple[Path, dict[str, list[tuple[Any, ...]]]]) -> None:
    path, calls = written
    for job, result, axes, attrs in calls["write_basins"]:
        got = read_basins(path, job)
        assert got is not None
        b = got.record
        assert isinstance(b, BasinsResult) and len(b.axes) == len(result.axes) == len(axes)
        for mine, theirs in zip(b.axes, result.axes):
            _same_array(mine, theirs, f"{job} basins axes")
        for name in ("label", "steps", "reason"):
            _same_array(getattr(b, name), getattr(result, name), f"{job} basins {name}")
        assert b.points == result.points and b.counts == result.counts
        _same_attrs(got.attrs, attrs, f"{job} basins")
    known = read_basins(path, "hb")
    assert known is not None and sum(p.known for p in known.record.points) == 4  # Himmelblau's four minima
    assert [p.known for p in known.record.points][:4] == [True] * 4


def test_streamlines_and_the_landscape_come_back(written: tuple[Path, dict[str, list[tuple[Any, ...]]]]) -> None:
    path, calls = written
    ((job, lines, attrs),) = calls["write_streamlines"]
    got = read_streamlines(path, job)
    assert got is not None and isinstance(got.record, Streamlines)
    for f in fields(Streamlines):
        _same_array(getattr(got.record, f.name), getattr(lines, f.name), f"streamlines.{f.name}")
    _same_attrs(got.attrs, attrs, "streamlines")
    assert read_streamlines(path, "hb") is None

    ((job, makings),) = calls["write_landscape"]
    land = read_landscape(path, job)
    assert isinstance(land, LandscapeMakings) and list(land.arrays) == list(makings.arrays) == ["x", "y"]
    for name in makings.arrays:
        _same_array(land.arrays[name], np.asarray(makings.arrays[name]), f"landscape.{name}")
    _same_attrs(land.attrs, makings.attrs, "landscape")
    assert read_landscape(path, "hb") is None


def test_overlays_together_match_each_reader(written: tuple[Path, dict[str, list[tuple[Any, ...]]]]) -> None:
    path, _ = written
    every = read_overlays(path, "lin")
    assert list(every.paths) == ["adam", "sgd"] and every.basins is not None and every.landscape is not None
    r = FieldReader(path, "lin")
    try:
        mine = r.overlays()
    finally:
        r.close()
    _same_array(mine.paths["sgd"].record.positions, every.paths["sgd"].record.positions, "reader paths")
    assert mine.streamlines is not None and every.streamlines is not None
    _same_array(mine.streamlines.record.points, every.streamlines.record.points, "reader streamlines")


@pytest.mark.parametrize("level", [0, 1])
def test_a_window_at_a_level_is_that_part_of_read_field(
    written: tuple[Path, dict[str, list[tuple[Any, ...]]]], level: int
) -> None:
    path, _ = written
    assert len(inspect(path).jobs[0].levels) == 1  # the level-1 case reads a real pyramid level
    whole = read_field(path, "lin", "value", level)
    r = FieldReader(path, "lin")
    try:
        lev = r.levels[level]
        x0, x1, y0, y1 = float(lev.x[20]), float(lev.x[60]), float(lev.y[10]), float(lev.y[30])
        # a canvas of one pixel per data point at level 0, half that for level 1
        canvas = (41 >> level, 21 >> level) if level else (400, 200)
        resp = r.read(WindowRequest("lin", (x0, x1, y0, y1), canvas, ("value", "grad_m")))
        assert resp.level == level
        i = np.searchsorted(lev.x, resp.x)
        j = np.searchsorted(lev.y, resp.y)
        assert resp.x[0] <= x0 and resp.x[-1] >= x1 and resp.y[0] <= y0 and resp.y[-1] >= y1
        np.testing.assert_array_equal(resp.data["value"], whole[j[0] : j[-1] + 1, i[0] : i[-1] + 1])
        np.testing.assert_array_equal(
            resp.data["grad_m"], read_field(path, "lin", "grad_m", level)[j[0] : j[-1] + 1, i[0] : i[-1] + 1]
        )
    finally:
        r.close()


def test_config_refuses_every_name_the_store_layout_uses() -> None:
    """The config (torch- and h5py-free, below the store) keeps its own list of names an axis may
    not take; it must cover every name the store's layout puts beside the axes."""
    from gradbatch.config import axes as config_axes
    from gradbatch.store import layout

    assert set(layout.GROUP_NAMES) <= set(config_axes._STORE_NAMES)
    assert set(layout.BASINS_NAMES) <= set(config_axes._BASINS_NAMES)
