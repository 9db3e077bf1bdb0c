"""Jobs as xarray Datasets: gradbatch.open (a file), gradbatch.compute (memory), read_field."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import ConfigError, StoreError
from gradbatch.records import REASONS

xr = pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")

HB = """
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 512], y: [-5, 5, 384]}
outputs: [value, gradient, check]
paths:
  starts: [[-4, 0], [0, 0], [1, 1]]
  steps: 200
  optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.002, label: plain}]
basins: {resolution: 16, steps: 200, optimizer: {name: adam, lr: 0.05}}
streamlines: {seeds: {grid: 3}, step: 0.05}
"""


def _run(text: str, out: Path) -> Path:
    gradbatch.run_jobs(parse_config(text, output=out), overwrite=True)
    return out


def test_open_is_what_xarray_reads_plus_the_overlays(tmp_path: Path) -> None:
    import hdf5plugin  # noqa: F401

    path = _run(HB, tmp_path / "hb.h5")
    ds = gradbatch.open(path)
    direct = xr.open_dataset(path, engine="h5netcdf", group="hb")
    xr.testing.assert_identical(ds[list(direct.data_vars)], direct.assign_attrs(job="hb"))
    assert ds["value"].dims == ("y", "x") and ds.sizes["x"] == 512 and ds.attrs["job"] == "hb"
    assert list(ds["optimizer"].values) == ["adam", "plain"] and list(ds["axis"].values) == ["x", "y"]
    pos = ds["path_position"].sel(optimizer="adam")
    np.testing.assert_allclose(pos.isel(path=0, step=0), [-4, 0])
    assert ds.sizes["step"] == 201  # the longest run's steps + 1
    assert ds["path_stop_reason"].sel(optimizer="adam").values.tolist()[0] in REASONS
    with h5py.File(path, "r") as f:
        first = f["hb/paths/adam/positions"][...]
        np.testing.assert_array_equal(pos.values, first)
        basins = f["hb/basins/label"][...]
        np.testing.assert_array_equal(ds["basin_label"].values, basins)
        pts, offsets = f["hb/streamlines/points"][...], f["hb/streamlines/offsets"][...]
    assert ds["basin_label"].dims == ("basin_y", "basin_x")
    assert int(ds["critical_kind"].isin(["minimum"]).sum()) == 4 and ds["critical_known"].all()
    np.testing.assert_array_equal(ds["streamline_points"].values, pts)
    np.testing.assert_array_equal(np.cumsum(ds["streamline_point_count"].values), offsets[1:])
    level = gradbatch.open(path, level=1)
    assert level.sizes == {"y": 192, "x": 256} and "path_position" not in level


def test_compute_gives_the_dataset_of_the_run_file(tmp_path: Path) -> None:
    """Fields, coordinates, the check's result and every overlay, from memory, equal to the
    file's."""
    ds = gradbatch.compute(HB)
    path = _run(HB, tmp_path / "hb.h5")
    opened = gradbatch.open(path).load()
    xr.testing.assert_equal(ds, opened)
    for key in ("function", "check_max_abs_error", "job", "dtype", "complete"):
        assert np.array_equal(np.asarray(ds.attrs[key]), np.asarray(opened.attrs[key])), key


def test_runs_of_different_lengths_are_padded() -> None:
    """A network's training path (one path, its own steps) sits beside the optimisers' runs."""
    from gradbatch.datasets import overlay_variables
    from gradbatch.records import Descent, Overlays, Stored

    def run(n: int, steps: int) -> Descent:
        pos = np.arange(n * (steps + 1) * 2, dtype=np.float32).reshape(n, steps + 1, 2)
        vals = pos[..., 0].copy()
        return Descent(pos[:, -1], vals[:, -1], np.full(n, steps), np.zeros(n, np.uint8), pos, vals, vals)

    out = overlay_variables(Overlays({"adam": Stored(run(3, 10)), "training": Stored(run(1, 4))}), ("x", "y"))
    ds = xr.Dataset(out)
    assert ds["path_position"].shape == (2, 3, 11, 2)
    assert ds["path_stop_step"].sel(optimizer="training").values.tolist() == [4, -1, -1]
    assert ds["path_stop_reason"].sel(optimizer="training").values.tolist() == ["converged", "", ""]
    assert np.isnan(ds["path_position"].sel(optimizer="training").values[0, 5:]).all()
    assert np.isnan(ds["path_value"].sel(optimizer="training").values[1:]).all()


def test_compute_of_a_data_landscape_keeps_its_makings(tmp_path: Path) -> None:
    text = (
        "name: d\nfunction: {landscape: {data: {synthetic: {n: 20}}}}\n"
        "grid: {m: [-1, 1, 5], b: [-1, 1, 5]}\npaths: {starts: [[0, 0]], steps: 3}\n"
    )
    ds = gradbatch.compute(text)
    assert ds["landscape_x"].shape == (20,) and ds["value"].dims == ("b", "m")
    xr.testing.assert_equal(ds, gradbatch.open(_run(text, tmp_path / "d.h5")).load())


def test_read_field_is_a_data_array_of_the_only_job(tmp_path: Path) -> None:
    path = _run(HB, tmp_path / "hb.h5")
    v = gradbatch.read_field(path)
    assert isinstance(v, xr.DataArray) and v.dims == ("y", "x") and v.name == "value"
    x, y = float(v["x"][5]), float(v["y"][7])
    assert float(v.sel(x=x, y=y)) == pytest.approx((x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2, rel=1e-5)
    g = gradbatch.read_field(path, field="grad_y", level=1)
    assert g.shape == (192, 256) and float(g["x"][0]) == pytest.approx(float(v["x"][:2].mean()))


def test_a_file_of_several_jobs_needs_the_job_named(tmp_path: Path) -> None:
    text = "jobs:\n  - {name: a, function: 'x*y', grid: {x: [0, 1, 8], y: [0, 1, 8]}}\n"
    text += "  - {name: b, function: 'x+y', grid: {x: [0, 1, 8], y: [0, 1, 8]}}\n"
    path = tmp_path / "two.h5"
    gradbatch.run_jobs(parse_config(text, output=path))
    for call in (lambda: gradbatch.open(path), lambda: gradbatch.read_field(path)):
        with pytest.raises(StoreError, match=r"holds 2 jobs \(a, b\); name one with job="):
            call()
    with pytest.raises(StoreError, match="no job 'c'; jobs: a, b"):
        gradbatch.open(path, job="c")
    assert float(gradbatch.open(path, job="b")["value"].sel(x=1.0, y=1.0)) == 2.0
    with pytest.raises(ConfigError, match=r"compute\(\) takes one job; this file has 2 \(a, b\)"):
        gradbatch.compute(text)


def test_a_damaged_file_is_one_store_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    path.write_bytes(b"not an HDF5 file at all" * 100)
    for call in (lambda: gradbatch.open(path), lambda: gradbatch.read_field(path)):
        with pytest.raises(StoreError):
            call()


def test_levels_paths_and_jobs_of_the_wrong_kind_are_one_store_error(tmp_path: Path) -> None:
    path = _run(HB, tmp_path / "hb.h5")
    for level in (-1, True, "1", 10**20, 2):
        with pytest.raises(StoreError, match=r"has no pyramid level .*; levels: 0 to 1"):
            gradbatch.open(path, level=level)
    assert gradbatch.open(path, level=np.int64(1)).attrs["function"] == gradbatch.open(path).attrs["function"]
    assert gradbatch.read_field(path, level=np.int64(1)).shape == (192, 256)
    for bad in (None, 5, b"hb.h5"):
        with pytest.raises(StoreError, match="expected a gradbatch file's path"):
            gradbatch.open(bad)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="job: expected a job's name"):
        gradbatch.read_field(path, job=5)  # type: ignore[arg-type]


def test_compute_refuses_what_is_not_a_job(tmp_path: Path) -> None:
    for bad in (None, 5, b"function: x"):
        with pytest.raises(ConfigError, match=r"compute\(\) takes a job"):
            gradbatch.compute(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no such job file"):
        gradbatch.compute(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="device: expected auto, cpu, cuda or cuda:N, got 5"):
        gradbatch.compute("function: x\ngrid: {x: [0, 1, 4]}", device=5)  # type: ignore[arg-type]
    job = tmp_path / "job.YML"  # a path to a job file, whatever its suffix's case
    job.write_text("function: x\ngrid: {x: [0, 1, 4]}")
    assert gradbatch.compute(job)["value"].shape == (4,)
    assert gradbatch.compute(str(job))["value"].shape == (4,)


def test_a_partial_file_opened_here_says_to_close_it_before_resuming(tmp_path: Path) -> None:
    from gradbatch.store import partial_path

    out = tmp_path / "w.h5"
    text = "name: w\nfunction: 'x*y'\ngrid: {x: [0, 1, 256], y: [0, 1, 256]}\ntile: 32\n"

    def stop(p: gradbatch.Progress) -> None:
        if p.tiles_done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradbatch.run_jobs(parse_config(text, output=out), progress=stop)
    ds = gradbatch.open(partial_path(out))
    assert ds.attrs["complete"] in (False, 0) and float(ds["value"][0, 0]) == 0.0
    with pytest.raises(StoreError, match=r"held open, .* by this one \(a Dataset gradbatch.open gave of it"):
        gradbatch.run_jobs(parse_config(text, output=out), resume=True)
    ds.close()
    gradbatch.run_jobs(parse_config(text, output=out), resume=True)
    assert gradbatch.open(out).attrs["complete"]


def test_a_damaged_chunk_read_lazily_is_one_store_error(tmp_path: Path) -> None:
    """open() checks the file's structure; a chunk damaged inside it is found only when read,
    and that read is a StoreError naming the file and the field, not h5py's OSError."""
    path = _run("name: w\nfunction: 'sin(x*y)'\ngrid: {x: [0, 4, 256], y: [0, 4, 256]}\ntile: 64\n", tmp_path / "w.h5")
    import hdf5plugin  # noqa: F401

    with h5py.File(path, "r") as f:
        info = f["w/value"].id.get_chunk_info(5)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 16)
        fh.write(b"\xff" * (info.size - 16))
    ds = gradbatch.open(path)
    assert float(ds["value"][0, 0]) == 0.0  # other chunks read as before
    with pytest.raises(StoreError, match=r"w.h5: cannot read /w/value: the file is damaged"):
        _ = ds["value"].values
    with pytest.raises(StoreError, match="the file is damaged"):
        ds.load()
