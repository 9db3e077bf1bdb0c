"""A whole field's statistics (FieldStats) read from the file: exact full-resolution range and
counts from the per-tile tables, percentiles from one fixed pyramid level, and older files
(no tables, no percentile attributes) read from that level."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import gradbatch
import gradbatch.store.stats as store_stats
from gradbatch.config import parse_config
from gradbatch.errors import StoreError
from gradbatch.store import FieldReader, partial_path, read_field, read_stats

# log(x) * y: NaN for x < 0, -inf/+inf/NaN at x = 0 (y > 0, y < 0, y = 0), finite and of both
# signs elsewhere; 1/(y - 0.3) adds a pole in the gradient fields' neighbourhood
PLANTED = (
    "name: planted\nfunction: 'log(x) * y'\ngrid: {x: [-1, 1, 41], y: [-1, 1, 33]}\ntile: 16\n"
    "outputs: [value, gradient]\n"
)
WIDE = "name: w\nfunction: 'sin(5*x) * y'\ngrid: {x: [0, 1, 600], y: [0, 1, 40]}\ntile: 64\n"


def _run(text: str, out: Path, device: str | None = None) -> Path:
    gradbatch.run_jobs(parse_config(text, output=out), device=device)
    return out


def _numpy_stats(a: np.ndarray) -> dict[str, float]:
    finite = a[np.isfinite(a)]
    positive = finite[finite > 0]
    return {
        "nan": int(np.isnan(a).sum()),
        "posinf": int(np.isposinf(a).sum()),
        "neginf": int(np.isneginf(a).sum()),
        "minimum": float(finite.min()),
        "maximum": float(finite.max()),
        "min_positive": float(positive.min()) if positive.size else float("nan"),
        "nonpositive": int(finite.size - positive.size),
    }


def test_stats_equal_numpy_on_the_full_field_with_nan_and_inf_planted(tmp_path: Path, device: str) -> None:
    out = _run(PLANTED, tmp_path / "p.h5", device)
    for name in ("value", "grad_x", "grad_y"):
        a = read_field(out, "planted", name)
        s = read_stats(out, "planted", name)
        want = _numpy_stats(a)
        got = {k: getattr(s, k) for k in want}
        assert np.allclose(list(got.values()), list(want.values()), rtol=0, atol=0, equal_nan=True), (name, got, want)
        assert s.points == a.size and s.field == name
        assert s.percentile_level == 0 and s.exact  # 41 x 33 points: level 0 is the fixed level
        finite = a[np.isfinite(a)].astype(np.float64)
        np.testing.assert_allclose(
            [v for _, v in s.percentiles], np.percentile(finite, [q for q, _ in s.percentiles]), rtol=1e-12
        )
    value = read_stats(out, "planted", "value")
    assert value.nan > 0 and value.posinf > 0 and value.neginf > 0 and value.nonpositive > 0
    assert np.isnan(read_stats(out, "planted", "grad_y").min_positive)  # log(x) <= 0 where finite


def test_field_reader_stats_is_read_stats_and_refuses_unknown_fields(tmp_path: Path) -> None:
    out = _run(PLANTED, tmp_path / "p.h5")
    reader = FieldReader(out)
    try:
        assert reader.stats("value") == read_stats(out, "planted", "value")
        assert reader.stats("value") is reader.stats("value")  # read once
        with pytest.raises(StoreError, match="no field 'nope'"):
            reader.stats("nope")
    finally:
        reader.close()
    with pytest.raises(StoreError, match="no field 'nope'"):
        read_stats(out, "planted", "nope")


@pytest.mark.parametrize(("limit", "level"), [(10_000, 1), (2_000, 2)])
def test_percentiles_come_from_the_finest_level_of_at_most_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, level: int
) -> None:
    monkeypatch.setattr(store_stats, "STATS_MAX_POINTS", limit)  # levels of 24,000, 6,000 and 1,500 points
    out = _run(WIDE, tmp_path / "w.h5")
    s = read_stats(out, "w", "value")
    assert s.percentile_level == level
    values = read_field(out, "w", "value", level=level).astype(np.float64)
    np.testing.assert_allclose([v for _, v in s.percentiles], np.percentile(values, store_stats.PERCENTS), rtol=1e-12)
    assert [q for q, _ in s.percentiles] == list(store_stats.PERCENTS)


def test_stats_level_picks_the_finest_level_that_fits_or_a_stride() -> None:
    assert store_stats.stats_level([(8192, 8192), (4096, 4096), (2048, 2048), (1024, 1024)]) == (2, 1)
    assert store_stats.stats_level([(100, 100)]) == (0, 1)
    level, stride = store_stats.stats_level([(8192, 8192)])  # no pyramid
    assert level == 0 and stride == 4 and (8192 // stride) ** 2 <= store_stats.STATS_MAX_POINTS


def test_a_file_without_the_tile_tables_reads_its_stats_from_the_level(tmp_path: Path) -> None:
    out = _run(PLANTED, tmp_path / "p.h5")
    with h5py.File(out, "r+") as f:
        del f["planted/_tiles/nonfinite"]
    s = read_stats(out, "planted", "value")
    a = read_field(out, "planted", "value")
    want = _numpy_stats(a)
    assert (s.nan, s.posinf, s.neginf, s.minimum, s.maximum) == (
        want["nan"],
        want["posinf"],
        want["neginf"],
        want["minimum"],
        want["maximum"],
    )


def test_a_3d_job_reports_the_whole_volume(tmp_path: Path) -> None:
    out = _run(
        "name: v\nfunction: 'log(x + y) * z'\ngrid: {x: [-1, 1, 17], y: [-1, 1, 9], z: [-1, 1, 5]}\ntile: 8\n",
        tmp_path / "v.h5",
    )
    a = read_field(out, "v", "value")
    reader = FieldReader(out)
    try:
        s = reader.stats("value")
    finally:
        reader.close()
    want = _numpy_stats(a)
    assert s.points == 17 * 9 * 5
    got = {k: getattr(s, k) for k in want}
    assert np.allclose(list(got.values()), list(want.values()), rtol=0, atol=0, equal_nan=True), (got, want)


# -- exact statistics written with the tiles ---------------------------------------------------------

SPIKE_X, SPIKE_Y = float(np.linspace(0, 1, 600)[301]), float(np.linspace(0, 1, 40)[21])
SPIKE = (
    f"name: s\nfunction: 'exp(-1e7 * ((x - {SPIKE_X!r})**2 + (y - {SPIKE_Y!r})**2))'\n"
    "grid: {x: [0, 1, 600], y: [0, 1, 40]}\ntile: 64\ndtype: float64\n"
)


def test_a_single_spike_at_full_resolution_is_the_maximum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_stats, "STATS_MAX_POINTS", 2_000)  # the fixed level: 2 (10 x 150)
    out = _run(SPIKE, tmp_path / "s.h5")
    s = read_stats(out, "s", "value")
    level = read_field(out, "s", "value", level=s.percentile_level)
    assert s.percentile_level == 2 and level.max() < 0.1  # block means average the spike away
    assert s.exact and s.maximum == 1.0 == read_field(out, "s", "value").max()
    assert s.minimum == float(read_field(out, "s", "value").min())
    np.testing.assert_allclose([v for _, v in s.percentiles], np.percentile(level, store_stats.PERCENTS), rtol=1e-12)
    with h5py.File(out, "r") as f:  # written when the job finished: the reader reads, not recomputes
        d = f["s/value"]
        assert d.attrs["percentile_level"] == 2 and d.attrs["percentile_stride"] == 1
        np.testing.assert_array_equal(d.attrs["percentile_ranks"], store_stats.PERCENTS)
        assert f["s/_tiles/range"].shape == (10, 3, 3) and (f["s/_tiles/nonpositive"][...] >= 0).all()


def test_a_file_without_range_tables_falls_back_to_the_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older file (written before the range tables and percentiles) still reads: from the
    fixed level, marked inexact (the spike is averaged away there)."""
    monkeypatch.setattr(store_stats, "STATS_MAX_POINTS", 2_000)
    out = _run(SPIKE, tmp_path / "s.h5")
    with h5py.File(out, "r+") as f:
        del f["s/_tiles/range"], f["s/_tiles/nonpositive"]
        for key in ("percentiles", "percentile_ranks", "percentile_level", "percentile_stride"):
            del f["s/value"].attrs[key]
    s = read_stats(out, "s", "value")
    level = read_field(out, "s", "value", level=2)
    assert not s.exact and s.percentile_level == 2 and s.maximum == float(level.max()) < 0.1
    assert (s.nan, s.posinf, s.neginf) == (0, 0, 0) and s.points == 24_000


def _interrupted(text: str, out: Path, after: int) -> Path:
    def stop(p: gradbatch.Progress) -> None:
        if p.tiles_done >= after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradbatch.run_jobs(parse_config(text, output=out), progress=stop)
    return partial_path(out)


def _same_stats(a: Path, b: Path, job: str, fields: tuple[str, ...]) -> None:
    for name in fields:
        sa, sb = read_stats(a, job, name), read_stats(b, job, name)
        assert sa.exact and sb.exact
        assert repr(sa) == repr(sb), name  # NaN-safe equality of every number


@pytest.mark.parametrize("older", [False, True])
def test_a_resumed_job_has_the_stats_of_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, older: bool
) -> None:
    monkeypatch.setattr(store_stats, "STATS_MAX_POINTS", 2_000)  # percentiles from level 2: not exact there
    part = _interrupted(SPIKE, tmp_path / "s.h5", after=5)
    done = gradbatch.inspect(part).jobs[0].tiles_done
    assert 0 < done < 10
    assert read_stats(part, "s", "grad_x").exact  # over the done tiles only
    if older:  # a partial file of a gradbatch before the range tables: the done tiles' rows are made at the end
        with h5py.File(part, "r+") as f:
            del f["s/_tiles/range"], f["s/_tiles/nonpositive"]
        assert not read_stats(part, "s", "value").exact
    (report,) = gradbatch.run_jobs(parse_config(SPIKE, output=tmp_path / "s.h5"), resume=True)
    assert report.tiles_resumed == done
    _same_stats(tmp_path / "s.h5", _run(SPIKE, tmp_path / "whole.h5"), "s", ("value", "grad_x", "grad_y"))
    assert read_stats(tmp_path / "s.h5", "s", "value").maximum == 1.0


def test_the_dask_path_writes_the_same_stats(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from gradbatch.distributed import ClusterOptions

    single = _run(PLANTED, tmp_path / "single.h5")
    gradbatch.run_jobs(parse_config(PLANTED, output=tmp_path / "multi.h5"), cluster=ClusterOptions(workers=1))
    _same_stats(tmp_path / "multi.h5", single, "planted", ("value", "grad_x", "grad_y"))
    with h5py.File(tmp_path / "multi.h5", "r") as f, h5py.File(single, "r") as g:
        for table in ("range", "nonpositive"):
            np.testing.assert_array_equal(f[f"planted/_tiles/{table}"][...], g[f"planted/_tiles/{table}"][...])


def test_all_nan_fields_have_nan_ranges_and_no_percentiles(tmp_path: Path) -> None:
    out = _run("name: n\nfunction: 'log(-1 - x*x) + y'\ngrid: {x: [0, 1, 20], y: [0, 1, 10]}\n", tmp_path / "n.h5")
    s = read_stats(out, "n", "value")
    assert s.exact and s.nan == 200 and s.percentiles == () and np.isnan([s.minimum, s.maximum, s.min_positive]).all()
    assert np.isnan(s.percentile(50))


def test_info_reports_each_fields_range_and_json_the_stats(tmp_path: Path) -> None:
    out = _run(PLANTED, tmp_path / "p.h5")
    from gradbatch.summary import describe, info_as_dict

    text = describe(out)
    assert "  stats      value: finite range -2.99573 .. 2.99573 (exact), 661 NaN, 16 +inf, 16 -inf" in text
    assert "             grad_x: finite range -20 .. 20 (exact), 693 NaN" in text
    value = info_as_dict(gradbatch.inspect(out))["jobs"][0]["stats"]["value"]
    assert value["nan"] == 661 and value["exact"] is True and value["percentile_level"] == 0
    assert [q for q, _ in value["percentiles"]] == list(store_stats.PERCENTS)


def test_the_cuda_summary_in_torch_equals_the_cpu_one_in_numpy() -> None:
    """The torch path (what a CUDA tile takes) computed here on CPU tensors."""
    import torch

    from gradbatch.engine.kernel import _summary_torch, tile_summary

    base = torch.linspace(-3, 5, 600, dtype=torch.float64).reshape(20, 30)
    planted = base.clone()
    planted[0, :3] = float("nan")
    planted[1, 1] = float("inf")
    planted[2, 2:4] = -float("inf")
    fields = [
        base,
        planted,
        base.abs() + 1,  # positive
        -base.abs(),  # <= 0
        torch.full((4, 5), float("nan"), dtype=torch.float64),
        planted.to(torch.float32),
    ]
    a = [t.numpy() for t in tile_summary(fields)]
    for x, y in zip(a, _summary_torch(fields)):
        np.testing.assert_array_equal(x, y.numpy())
    # a tile's fields (one shape and dtype) are summarised stacked, in one go
    for x, y in zip(tile_summary(fields[:4]), _summary_torch(fields[:4])):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    nonfinite, ranges, nonpositive = a
    assert nonfinite[1].tolist() == [3, 1, 2] and nonpositive[3] == 600 and np.isnan(ranges[3, 2])
    assert np.isnan(ranges[4]).all() and nonpositive[4] == 0 and nonfinite[4, 0] == 20
    assert ranges[0].tolist() == [-3.0, 5.0, float(base[base > 0].min())] and nonpositive[0] == int((base <= 0).sum())


def test_a_block_summarises_each_of_its_tiles_as_that_tile_alone() -> None:
    """A GPU's block of tiles is summarised in one go, one row per tile: each row equals the
    tile's own summary, padding past the grid left out (and rows of tiles wholly past it empty)."""
    import torch

    from gradbatch.engine.kernel import block_summary, tile_summary

    g = torch.Generator().manual_seed(5)
    a = torch.randn((64, 96), generator=g, dtype=torch.float32)
    a[3, 5] = float("nan")
    a[40, 70] = float("inf")
    b = a.abs() + 1
    b[50:, :] = -float("inf")  # in the padding too: must not be counted
    valid = (60, 70)
    rows = block_summary([a, b], valid, (32, 32))
    assert rows.nonfinite.shape == (6, 2, 3)
    for r, (i, j) in enumerate((i, j) for i in range(2) for j in range(3)):
        tile = (slice(32 * i, min(32 * i + 32, valid[0])), slice(32 * j, min(32 * j + 32, valid[1])))
        alone = tile_summary([a[tile], b[tile]])
        for got, want in zip(rows, alone):
            np.testing.assert_array_equal(got[r].numpy(), want.numpy(), err_msg=f"tile {i, j}")
    assert rows.nonfinite[0, 0, 0] == 1 and rows.nonfinite[5, 1, 2] == 10 * 6  # rows 50-59, columns 64-69
