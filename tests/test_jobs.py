"""Whole jobs into HDF5: the file's layout, crash safety, resume, and overwrite rules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import FunctionError, StoreError
from gradbatch.store import partial_path

from .conftest import assert_files_equal, compute_fields

JOB = (
    "name: wave\nfunction: 'sin(3*x) * cos(2*y) + x*y'\n"
    "grid: {x: [-2, 2, 300], y: [-1, 1, 200]}\ntile: 64\n"
    "outputs: [value, gradient, magnitude, check]\n"
)


def _run(text: str, out: Path, **kw: object) -> list[gradbatch.JobReport]:
    return gradbatch.run_jobs(parse_config(text, output=out), **kw)


def test_run_writes_a_complete_self_describing_file(in_tmp: Path) -> None:
    (report,) = _run(JOB, in_tmp / "wave.h5")
    assert report.points == 60_000 and report.tiles_computed == 20 and report.tiles_resumed == 0
    assert report.check is not None and report.check.max_abs_error < 1e-6
    assert not partial_path(in_tmp / "wave.h5").exists()
    with h5py.File(in_tmp / "wave.h5", "r") as f:
        assert f.attrs["gradbatch_format"] == "gradbatch/1"
        g = f["wave"]
        assert g.attrs["complete"] and list(g.attrs["axes"]) == ["x", "y"]
        assert list(g.attrs["fields"]) == ["value", "grad_x", "grad_y", "magnitude"]
        assert g["value"].shape == (200, 300) and g["value"].chunks == (64, 64)
        assert [d.label for d in g["value"].dims] == ["y", "x"]
        assert g["value"].dims[0][0].name == "/wave/y" and g["value"].dims[1][0].name == "/wave/x"
        assert "sin(3*x)" in g.attrs["job_yaml"] and g.attrs["torch_version"]
        assert g["_tiles/done"][...].all()
        np.testing.assert_array_equal(g["x"][...], np.linspace(-2, 2, 300, dtype=np.float32))
    expected = compute_fields(JOB)
    for name, arr in expected.items():
        np.testing.assert_array_equal(gradbatch.read_field(in_tmp / "wave.h5", "wave", name), arr)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_device_attribute_names_the_threads_the_job_computed_with(in_tmp: Path, threads: int) -> None:
    before = torch.get_num_threads()
    (report,) = _run(f"function: x*y\ngrid: {{x: [0, 1, 8], y: [0, 1, 8]}}\nthreads: {threads}\n", in_tmp / "t.h5")
    assert torch.get_num_threads() == before  # the caller's setting is given back
    expected = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    assert report.device == expected
    with h5py.File(in_tmp / "t.h5", "r") as f:
        assert f["job"].attrs["device"] == expected


def test_threads_default_to_the_cores_and_tiles_computed_side_by_side_make_the_same_file(in_tmp: Path) -> None:
    """threads: auto (the default) computes as many tiles at once as this process has cores;
    the file is the one a single thread writes, tile for tile, pyramid and summaries included."""
    from gradbatch.engine import cores

    text = "function: 'sin(x*y) + log(x)'\ngrid: {x: [-1, 3, 200], y: [-2, 2, 150]}\ntile: 32\n"
    (one,) = _run(text + "threads: 1\n", in_tmp / "one.h5")
    (four,) = _run(text + "threads: 4\n", in_tmp / "four.h5")
    (auto,) = _run(text, in_tmp / "auto.h5")
    assert four.device == "cpu (4 threads)" and auto.device == f"cpu ({cores()} thread{'s' if cores() > 1 else ''})"
    with h5py.File(in_tmp / "one.h5", "r") as a, h5py.File(in_tmp / "four.h5", "r") as b:
        names: list[str] = []
        a["job"].visit(names.append)
        for name in names:
            if isinstance(a["job"][name], h5py.Dataset):
                np.testing.assert_array_equal(a["job"][name][...], b["job"][name][...], err_msg=name)
        assert np.isnan(a["job/value"][...]).any()  # log(x) below 0: the NaN paths ran too


def test_xarray_reads_fields_with_named_dims_and_coordinates(in_tmp: Path) -> None:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    import hdf5plugin  # noqa: F401  (registers the Blosc2 filter for HDF5)

    _run(JOB.replace("300]", "600]"), in_tmp / "wave.h5")
    ds = xr.open_dataset(in_tmp / "wave.h5", engine="h5netcdf", group="wave")
    assert ds["value"].dims == ("y", "x") and ds.sizes == {"y": 200, "x": 600}
    assert float(ds["x"][0]) == -2.0 and float(ds["y"][-1]) == 1.0
    point = ds["value"].sel(x=0.5, y=-0.5, method="nearest")
    x, y = float(point["x"]), float(point["y"])
    assert float(point) == pytest.approx(np.sin(3 * x) * np.cos(2 * y) + x * y, abs=1e-5)
    level = xr.open_dataset(in_tmp / "wave.h5", engine="h5netcdf", group="wave/levels/1")
    assert level["value"].dims == ("y", "x") and level.sizes == {"y": 100, "x": 300}


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd", "lz4"])
def test_every_compression_stores_the_same_numbers(in_tmp: Path, compression: str) -> None:
    _run(JOB + f"compression: {compression}\n", in_tmp / "c.h5")
    np.testing.assert_array_equal(
        gradbatch.read_field(in_tmp / "c.h5", "wave", "grad_y"), compute_fields(JOB)["grad_y"]
    )


def test_several_jobs_in_one_file(in_tmp: Path) -> None:
    text = (
        "output: two.h5\ngrid: {x: [0, 1, 50]}\njobs:\n"
        "  - {name: a, function: 'x^2'}\n  - {name: b, function: 'exp(x)', outputs: [gradient]}\n"
    )
    gradbatch.run_jobs(parse_config(text))
    info = gradbatch.inspect(in_tmp / "two.h5")
    assert [j.name for j in info.jobs] == ["a", "b"] and all(j.complete for j in info.jobs)
    assert [f.name for f in info.jobs[1].fields] == ["grad_x"]


def test_existing_output_is_kept_unless_overwrite(in_tmp: Path) -> None:
    out = in_tmp / "wave.h5"
    out.write_bytes(b"precious")
    with pytest.raises(StoreError, match="exists; pass --overwrite"):
        _run(JOB, out)
    assert out.read_bytes() == b"precious"
    _run(JOB, out, overwrite=True)
    assert gradbatch.inspect(out).jobs[0].complete


def test_bad_function_fails_before_anything_is_written(in_tmp: Path) -> None:
    text = JOB + "jobs:\n  - {name: ok}\n  - {name: bad, function: {callable: 'nowhere_mod:f'}}\n"
    with pytest.raises(gradbatch.ConfigError, match="cannot import module"):
        gradbatch.run_jobs(parse_config(text.replace("name: wave\n", ""), output=in_tmp / "w.h5"))
    assert list(in_tmp.iterdir()) == []


def test_interrupted_run_leaves_a_partial_file_and_resume_matches(in_tmp: Path) -> None:
    out = in_tmp / "wave.h5"

    def stop_after_7(p: gradbatch.Progress) -> None:
        if p.tiles_done >= 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(JOB, out, progress=stop_after_7)
    assert not out.exists() and partial_path(out).exists()
    info = gradbatch.inspect(partial_path(out))
    assert not info.jobs[0].complete and 0 < info.jobs[0].tiles_done < 20

    with pytest.raises(StoreError, match="pass --resume to finish it"):
        _run(JOB, out)
    with pytest.raises(StoreError, match="different settings"):
        _run(JOB.replace("cos(2*y)", "cos(3*y)"), out, resume=True)
    (report,) = _run(JOB, out, resume=True)
    assert report.tiles_resumed == info.jobs[0].tiles_done
    assert report.tiles_computed == 20 - report.tiles_resumed
    (straight,) = _run(JOB, in_tmp / "straight.h5")
    assert_files_equal(out, in_tmp / "straight.h5", "wave")
    # the ratio is the whole job's, not the points this run computed over the whole file
    assert report.compression_ratio == pytest.approx(straight.compression_ratio, rel=0.05)


def test_the_compression_ratio_counts_each_value_at_its_size(in_tmp: Path) -> None:
    for dtype in ("float32", "float64"):
        text = (
            f"name: r\nfunction: 'x*y'\ngrid: {{x: [0, 1, 300], y: [0, 1, 200]}}\ndtype: {dtype}\ncompression: none\n"
        )
        (report,) = _run(text, in_tmp / f"{dtype}.h5")
        assert report.compression_ratio == pytest.approx(1.0, rel=0.01)  # uncompressed: as stored


def test_failure_mid_run_leaves_no_complete_looking_file(in_tmp: Path) -> None:
    (in_tmp / "flaky.py").write_text(
        "import torch\ncalls = 0\n"
        "def f(x, y):\n    global calls\n    calls += 1\n"
        "    if calls == 6:\n        raise RuntimeError('sensor offline')\n    return x * y\n"
    )
    text = "name: flaky\nfunction: {callable: 'flaky:f'}\ngrid: {x: [0, 1, 256], y: [0, 1, 256]}\ntile: 64\n"
    with pytest.raises(FunctionError, match="sensor offline"):
        gradbatch.run_jobs(parse_config(text, source=in_tmp / "job.yaml", output=in_tmp / "flaky.h5"))
    assert not (in_tmp / "flaky.h5").exists()
    assert not gradbatch.inspect(partial_path(in_tmp / "flaky.h5")).jobs[0].complete


SLOW_MODULE = "import time, torch\ndef slow(x, y):\n    time.sleep(0.04)\n    return torch.sin(x) * y + x**2\n"


def _tiles_done(path: Path) -> int:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return int(f["slow/_tiles/done"][...].sum())
    except (OSError, KeyError):
        return 0


def test_killed_process_leaves_no_complete_file_and_resume_is_identical(in_tmp: Path) -> None:
    """SIGKILL the real CLI mid-run: the output name never appears; --resume finishes it."""
    (in_tmp / "slowmod.py").write_text(SLOW_MODULE)
    job = in_tmp / "slow.yaml"
    job.write_text(
        "name: slow\nfunction: {callable: 'slowmod:slow'}\ngrid: {x: [-1, 1, 256], y: [-1, 1, 256]}\ntile: 32\n"
    )
    out, part = in_tmp / "slow.h5", partial_path(in_tmp / "slow.h5")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradbatch", "run", str(job), "-q"],
        cwd=in_tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while _tiles_done(part) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and part.exists()
    done_before = _tiles_done(part)
    assert 5 <= done_before < 64

    (report,) = gradbatch.run(job, resume=True)
    assert report.tiles_resumed >= done_before
    assert out.exists() and not part.exists()
    gradbatch.run(job, output=in_tmp / "straight.h5")
    assert_files_equal(out, in_tmp / "straight.h5", "slow")


def test_resume_without_a_partial_file_and_with_a_complete_output(in_tmp: Path) -> None:
    out = in_tmp / "wave.h5"
    _run(JOB, out, resume=True)  # nothing to resume: a fresh run
    assert gradbatch.inspect(out).jobs[0].complete
    assert _run(JOB, out, resume=True) == []  # complete already: nothing to do


@pytest.mark.slow
def test_compiled_kernel_matches_eager(in_tmp: Path) -> None:
    text = JOB.replace("check]", "check]\ncompile: on\ndtype: float64")
    plan = gradbatch.plan_job(parse_config(text).jobs[0], "cpu")
    compiled = gradbatch.compute(plan)
    eager = compute_fields(text.replace("compile: on", "compile: off"))
    for k in eager:
        np.testing.assert_allclose(compiled[k], eager[k], rtol=1e-9, atol=1e-12)


def test_gpu_job_file_matches_cpu(in_tmp: Path, device: str) -> None:
    _run(JOB + "dtype: float64\n", in_tmp / "cpu.h5", device="cpu")
    _run(JOB + "dtype: float64\n", in_tmp / "dev.h5", device=device)
    a = gradbatch.read_field(in_tmp / "cpu.h5", "wave", "grad_x")
    b = gradbatch.read_field(in_tmp / "dev.h5", "wave", "grad_x")
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error where CUDA is absent")
def test_cuda_requested_without_cuda_is_an_error(in_tmp: Path) -> None:
    with pytest.raises(gradbatch.DeviceError, match="CUDA is not available"):
        _run(JOB + "device: cuda\n", in_tmp / "x.h5")
    assert list(in_tmp.iterdir()) == []


PYRAMID_JOB = (
    "name: deep\nfunction: 'sin(x) * cos(3*y) + where(x > 2.5, sqrt(-x), 0)'\n"
    "grid: {x: [-3, 3, 1100], y: [-2, 2, 700]}\ntile: 64\noutputs: [value, gradient]\n"
)


def test_stored_pyramid_levels_equal_the_engines_levels(in_tmp: Path) -> None:
    _run(PYRAMID_JOB, in_tmp / "deep.h5")
    expected = compute_fields(PYRAMID_JOB, levels=True)
    info = gradbatch.inspect(in_tmp / "deep.h5").jobs[0]
    assert info.levels == ((350, 550), (175, 275), (88, 138))  # 3 levels: sides > 256 get halved
    with h5py.File(in_tmp / "deep.h5", "r") as f:
        for k in (1, 2, 3):
            lg = f[f"deep/levels/{k}"]
            assert lg["value"].chunks == (64 >> k, 64)  # rows halved, one chunk per 2^k tiles
            for name in ("value", "grad_x", "grad_y"):
                np.testing.assert_array_equal(lg[name][...], expected[f"{name}@{k}"], err_msg=f"{name}@{k}")


def test_resume_mid_row_with_pyramid_groups_is_identical(in_tmp: Path) -> None:
    """Interrupt inside a row and inside a deepest-level chunk group (8 tiles wide here)."""
    out = in_tmp / "deep.h5"

    def stop_after_27(p: gradbatch.Progress) -> None:
        if p.tiles_done >= 27:  # 18 tiles a row: row 1, inside its first group of 8
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(PYRAMID_JOB, out, progress=stop_after_27)
    done = gradbatch.inspect(partial_path(out)).jobs[0].tiles_done
    assert done >= 18 and done % 18 in (0, 8, 16)  # only whole groups (8, 8, 2 a row) are done
    (report,) = _run(PYRAMID_JOB, out, resume=True)
    assert report.tiles_resumed == done
    _run(PYRAMID_JOB, in_tmp / "straight.h5")
    assert_files_equal(out, in_tmp / "straight.h5", "deep")


@pytest.mark.parametrize(
    "grid, tile",
    [
        ("{x: [-3, 3, 200000]}", 4096),  # 1D: 10 levels, deepest chunk groups span every tile
        ("{x: [-1, 1, 300], y: [-1, 1, 90], z: [0, 1, 40]}", 32),
    ],  # 3D: one level
)
def test_stored_pyramid_in_1d_and_3d(in_tmp: Path, grid: str, tile: int) -> None:
    names = [a.split(":")[0].strip(" {") for a in grid.split("],")]
    expr = " + ".join(f"sin({i + 1}*{n})" for i, n in enumerate(names))
    text = f"name: nd\nfunction: '{expr}'\ngrid: {grid}\ntile: {tile}\noutputs: [value, gradient]\n"
    _run(text, in_tmp / "nd.h5")
    expected = compute_fields(text, levels=True)
    info = gradbatch.inspect(in_tmp / "nd.h5").jobs[0]
    assert info.complete and len(info.levels) == (10 if len(names) == 1 else 1)
    with h5py.File(in_tmp / "nd.h5", "r") as f:
        for k in range(1, len(info.levels) + 1):
            np.testing.assert_array_equal(f[f"nd/levels/{k}/grad_x"][...], expected[f"grad_x@{k}"])


def test_resume_a_file_of_several_jobs_interrupted_in_the_second(in_tmp: Path) -> None:
    text = (
        "output: two.h5\ngrid: {x: [-1, 1, 300], y: [0, 1, 200]}\ntile: 64\njobs:\n"
        "  - {name: first, function: 'x*y'}\n  - {name: second, function: 'sin(x) + y'}\n"
    )
    out = in_tmp / "two.h5"

    def stop_in_second(p: gradbatch.Progress) -> None:
        if p.job == "second" and p.tiles_done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gradbatch.run_jobs(parse_config(text), progress=stop_in_second)
    states = {j.name: j.complete for j in gradbatch.inspect(partial_path(out)).jobs}
    assert states == {"first": True, "second": False}
    reports = gradbatch.run_jobs(parse_config(text), resume=True)
    assert [r.name for r in reports] == ["second"] and reports[0].tiles_resumed > 0
    gradbatch.run_jobs(parse_config(text, output=in_tmp / "straight.h5"))
    for job in ("first", "second"):
        assert_files_equal(out, in_tmp / "straight.h5", job)


def test_unwritable_output_folder_is_a_store_error(in_tmp: Path) -> None:
    (in_tmp / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create its folder"):
        _run(JOB, in_tmp / "file" / "out.h5")


def test_write_failure_mid_run_is_a_store_error_and_keeps_the_partial(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradbatch.store import JobWriter

    real = JobWriter._write_tile
    calls = {"n": 0}

    def failing(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(JobWriter, "_write_tile", failing)
    with pytest.raises(StoreError, match=r"writing tile .* failed \(OSError: .*No space left on device.*--resume"):
        _run(JOB, in_tmp / "wave.h5")
    assert not (in_tmp / "wave.h5").exists() and partial_path(in_tmp / "wave.h5").exists()


def test_user_code_and_networks_are_computed_on_one_thread(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's callable may keep state and a network's functional_call swaps the module's
    parameters while it runs: their tiles are computed one at a time (torch's threads inside)."""
    import threading

    from gradbatch.engine import runner

    (in_tmp / "userfn.py").write_text("def f(x, y):\n    return x * y + x\n")
    seen: set[str] = set()
    real = runner.TileComputer.host

    def host(self: runner.TileComputer, tile: object) -> object:
        seen.add(threading.current_thread().name)
        return real(self, tile)  # type: ignore[arg-type]

    monkeypatch.setattr(runner.TileComputer, "host", host)
    text = "grid: {x: [0, 1, 100], y: [0, 1, 100]}\ntile: 16\nthreads: 4\n"
    cfg = parse_config("function: {callable: 'userfn:f'}\n" + text, output=in_tmp / "u.h5", source=in_tmp / "j.yaml")
    (report,) = gradbatch.run_jobs(cfg)
    assert seen == {threading.current_thread().name} and report.device == "cpu (4 threads)"
    seen.clear()
    _run("function: 'x*y + x'\n" + text, in_tmp / "e.h5")
    assert len(seen) > 1  # an expression's tiles side by side


BLOCKS_JOB = "function: 'sin(x*y) + log(x)'\ngrid: {x: [-1, 3, 200], y: [-2, 2, 150]}\ntile: 32\nthreads: 1\n"


def _in_blocks(monkeypatch: pytest.MonkeyPatch, per_block: int, fixed: bool | None = None) -> None:
    """Run jobs the GPU's way on the CPU: blocks of ``per_block`` tiles a side computed as one."""
    import gradbatch.engine.runner as runner
    import gradbatch.jobs as jobs
    from gradbatch import grid

    real = runner.evaluate
    monkeypatch.setattr(jobs, "evaluate", lambda *a, **k: real(*a, per_block=per_block, **k))
    if fixed is not None:  # what a compiled kernel's one shape asks for
        monkeypatch.setattr(runner, "blocks", lambda lay, tiles, g, _fixed: grid.blocks(lay, tiles, g, fixed))


@pytest.mark.parametrize(("per_block", "fixed"), [(2, None), (4, None), (4, True)], ids=["2", "4", "4-padded"])
def test_blocks_of_tiles_computed_as_one_make_the_same_file(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, per_block: int, fixed: bool | None
) -> None:
    """On a GPU blocks of tiles are computed as one (kernel, pyramid, summaries) and handed to
    the writer tile by tile, block by block: the file is the one tile-by-tile computing writes,
    bit for bit (NaN of log(x) below 0, edge tiles, blocks past the grid's edge)."""
    (one,) = _run(BLOCKS_JOB, in_tmp / "one.h5")
    _in_blocks(monkeypatch, per_block, fixed)
    (blocked,) = _run(BLOCKS_JOB, in_tmp / "blocked.h5")
    assert blocked.tiles_computed == one.tiles_computed == 35
    assert_files_equal(in_tmp / "one.h5", in_tmp / "blocked.h5", "job")
    with h5py.File(in_tmp / "one.h5", "r") as a, h5py.File(in_tmp / "blocked.h5", "r") as b:
        assert np.isnan(a["job/value"][...]).any()
        for name in ("tile_nonfinite", "tile_ranges", "tile_nonpositive"):
            if name in a["job"]:
                np.testing.assert_array_equal(a["job"][name][...], b["job"][name][...], err_msg=name)


def test_blocks_in_3d_and_a_resumed_job_in_blocks(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "function: 'x*y*z + sqrt(x)'\ngrid: {x: [-1, 1, 40], y: [-1, 1, 36], z: [0, 1, 20]}\ntile: 16\nthreads: 1\n"
    _run(text, in_tmp / "one.h5")
    _in_blocks(monkeypatch, 2)
    _run(text, in_tmp / "blocked.h5")
    assert_files_equal(in_tmp / "one.h5", in_tmp / "blocked.h5", "job")

    def stop_after_9(p: gradbatch.Progress) -> None:
        if p.tiles_done >= 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(BLOCKS_JOB, in_tmp / "resumed.h5", progress=stop_after_9)
    (report,) = _run(BLOCKS_JOB, in_tmp / "resumed.h5", resume=True)
    assert 0 < report.tiles_resumed < 35
    _run(BLOCKS_JOB, in_tmp / "straight.h5")
    assert_files_equal(in_tmp / "resumed.h5", in_tmp / "straight.h5", "job")


def test_a_block_the_device_has_no_memory_for_is_computed_as_smaller_blocks(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of memory after the kernel (in the pyramid) halves the blocks, down to single
    tiles, and the file is still the same."""
    import gradbatch.engine.runner as runner

    real = runner.tile_levels
    sizes: list[int] = []

    def small_device(fields, valid, levels):  # noqa: ANN001, ANN202
        size = next(iter(fields.values())).numel()
        sizes.append(size)
        if size > 64 * 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(fields, valid, levels)

    _run(BLOCKS_JOB, in_tmp / "one.h5")
    _in_blocks(monkeypatch, 4)
    monkeypatch.setattr(runner, "tile_levels", small_device)
    _run(BLOCKS_JOB, in_tmp / "blocked.h5")
    assert sizes[0] == 128 * 128 and max(sizes[1:]) == 64 * 64  # one try of 4 x 4 tiles, then 2 x 2
    assert len(sizes) == 1 + 4 * 3  # the 35 tiles (7 x 5) in blocks of 2 x 2: 4 x 3 blocks
    assert_files_equal(in_tmp / "one.h5", in_tmp / "blocked.h5", "job")
