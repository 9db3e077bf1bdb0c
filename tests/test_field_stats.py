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
from gradbatch.store import FieldReader, read_field, read_stats

# log(x) * y: NaN for x < 0, -inf/+inf/NaN at x = 0 (y > 0, y < 0, y = 0), finite and of both
# signs elsewhere; 1/(y - 0.3) adds a pole in the gradient fields' neighbourhood
PLANTED = (
    "name: planted\nfunction: 'log(x) * y'\ngrid: {x: [-1, 1, 41], y: [-1, 1, 33]}\ntile: 16\n"
    "outputs: [value, gradient]\n"
)
WIDE = "name: w\nfunction: 'sin(5*x) * y'\ngrid: {x: [0, 1, 600], y: [0, 1, 40]}\ntile: 64\n"


def _run(text: str, out: Path) -> Path:
    gradbatch.run_jobs(parse_config(text, output=out))
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


def test_stats_equal_numpy_on_the_full_field_with_nan_and_inf_planted(tmp_path: Path) -> None:
    out = _run(PLANTED, tmp_path / "p.h5")
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
