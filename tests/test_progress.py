"""Progress: an event per step of each phase, a line each, and tqdm bars for progress=True."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import ConfigError
from gradbatch.progress import Bars, Progress, Throttle

JOB = """
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 256], y: [-5, 5, 256]}
tile: 32
paths: {starts: [[-4, 0], [1, 1]], steps: 300, optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.002}]}
basins: {resolution: 32, steps: 100, batch: 128, optimizer: {name: adam, lr: 0.05}}
streamlines: {seeds: {grid: 3}, step: 0.05}
"""


def test_every_phase_is_reported_in_order_without_repeats(tmp_path: Path) -> None:
    events: list[Progress] = []
    gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "hb.h5"), progress=events.append)
    phases = [e.phase for e in events]
    assert list(dict.fromkeys(phases)) == ["tiles", "paths", "basins", "streamlines"]
    for phase, unit, total in (("tiles", "tiles", 64), ("paths", "steps", 602), ("basins", "starts", 1024)):
        mine = [e for e in events if e.phase == phase]
        assert all(e.unit == unit and e.total == total for e in mine), phase
        done = [e.done for e in mine]
        assert done == sorted(done) and done[-1] == total, phase  # it ends, and never goes back
        assert len(mine) == len({(e.done * 100) // total for e in mine}) <= 102, phase  # one a percent
    assert [e.done for e in events if e.phase == "streamlines"] == [0, 1]
    assert all(e.tiles_done == e.tiles_total == 64 for e in events if e.phase != "tiles")
    last_tile = [e for e in events if e.phase == "tiles"][-1]
    line = str(last_tile)
    assert (
        line.startswith("hb: tiles 64/64 (100%) in ") and ("Mpts/s" in line or "points/s" in line) and "\n" not in line
    )
    basins = str([e for e in events if e.phase == "basins"][1])
    assert basins.startswith("hb: basins ") and " starts (" in basins


def test_progress_true_draws_a_tqdm_bar_per_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "hb.h5"), progress=True)
    err = capsys.readouterr().err
    for phase in ("tiles", "paths", "basins", "streamlines"):
        assert f"hb: {phase}: 100%" in err, phase
    assert "64/64" in err and "1024/1024" in err


def test_progress_false_says_nothing_and_a_wrong_value_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gradbatch.run_jobs(
        parse_config("function: x*y\ngrid: {x: [0, 1, 8], y: [0, 1, 8]}", output=tmp_path / "a.h5"), progress=False
    )
    assert capsys.readouterr().err == ""
    with pytest.raises(ConfigError, match="progress: expected True, False or a function"):
        gradbatch.run_jobs(parse_config("function: x\ngrid: {x: [0, 1, 8]}", output=tmp_path / "b.h5"), progress="yes")  # type: ignore[arg-type]


def test_the_throttle_passes_starts_ends_and_each_new_percent() -> None:
    seen: list[int] = []
    t = Throttle(lambda p: seen.append(p.done))
    for done in [0, 1, 2, 3, 10, 11, 500, 999, 1000, 1000]:
        t(Progress("j", 1, 1, 1, 1, 1.0, "basins", done, 1000, "starts"))
    assert seen == [0, 10, 500, 999, 1000]


def test_bars_close_at_the_end_of_each_phase() -> None:
    import io

    out = io.StringIO()
    bars = Bars(file=out)
    for phase in ("tiles", "paths"):
        for done in (0, 5, 10):
            bars(Progress("j", 10, 10, 10, 10, 1.0, phase, done, 10, "tiles" if phase == "tiles" else "steps"))
    assert bars._bar is None
    text = out.getvalue()
    assert "j: tiles: 100%" in text and "j: paths: 100%" in text


def test_a_callbacks_own_error_comes_back_as_it_was_in_every_phase(tmp_path: Path) -> None:
    for phase in ("tiles", "paths", "basins", "streamlines"):

        def boom(p: Progress, phase: str = phase) -> None:
            if p.phase == phase and p.done > 0:
                raise ValueError(f"stop at {phase}")

        out = tmp_path / f"{phase}.h5"
        with pytest.raises(ValueError, match=f"stop at {phase}"):
            gradbatch.run_jobs(parse_config(JOB, output=out), progress=boom)
        assert not out.exists()  # nothing complete-looking: the .partial stays for --resume


def test_a_resumed_runs_rate_counts_only_its_own_points_and_time_never_runs_back(tmp_path: Path) -> None:
    out = tmp_path / "hb.h5"
    text = "name: hb\nfunction: {builtin: himmelblau}\ngrid: {x: [-5, 5, 256], y: [-5, 5, 256]}\ntile: 32\n"

    def stop(p: Progress) -> None:
        if p.tiles_done >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradbatch.run_jobs(parse_config(text, output=out), progress=stop)
    events: list[Progress] = []
    gradbatch.run_jobs(parse_config(text, output=out), resume=True, progress=events.append)
    tiles = [e for e in events if e.phase == "tiles" and e.done < e.total]
    resumed = {e.points_resumed for e in tiles}
    assert len(resumed) == 1 and 40 * 1024 <= resumed.pop() < 64 * 1024  # the tiles the first run left
    for e in tiles:
        assert e.points_per_s == pytest.approx((e.points_done - e.points_resumed) / e.elapsed_s)
    events.clear()
    gradbatch.run_jobs(parse_config(JOB, output=tmp_path / "p.h5"), progress=events.append)
    assert all(e.elapsed_s >= 0 for e in events) and "in -" not in " ".join(map(str, events))
