"""Tiles on a local Dask cluster (2 worker processes on 127.0.0.1): the file is the one a single
process writes, even when a worker is killed mid-job. Skipped without the `dask` extra."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config

pytest.importorskip("distributed")

import h5py  # noqa: E402

JOB = (
    "name: w\nfunction: 'sin(x*y) + x^2'\ngrid: {x: [-3, 3, 700], y: [-3, 3, 600]}\ntile: 128\n"
    "outputs: [value, gradient, magnitude, check]\n"
    "paths: {starts: [[1, 1]], steps: 50, optimizers: [{name: adam, lr: 0.05}]}\n"
    "basins: {resolution: 40, steps: 200, optimizer: {name: adam, lr: 0.05}}\n"
)
TIMING_ATTRS = {"timings", "created", "finished", "points_per_s"}


def _differences(a: Path, b: Path) -> list[str]:
    """Every dataset and attribute that differs between two files, timings aside."""
    out: list[str] = []

    def walk(g: h5py.Group, h: h5py.Group, path: str) -> None:
        if set(g) != set(h):
            out.append(f"{path}: members {sorted(set(g) ^ set(h))}")
        for k in g.attrs:
            if k not in TIMING_ATTRS and not np.array_equal(np.asarray(g.attrs[k]), np.asarray(h.attrs.get(k))):
                out.append(f"{path}@{k}")
        for k in set(g) & set(h):
            if isinstance(g[k], h5py.Dataset):
                a, b = g[k][...], h[k][...]
                if not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
                    out.append(f"{path}/{k}")
            else:
                walk(g[k], h[k], f"{path}/{k}")

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        walk(fa, fb, "")
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from gradbatch.distributed import ClusterOptions, connect

    c = connect(ClusterOptions(workers=2))
    yield c
    c.close()


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "single.h5"
    gradbatch.run_jobs(parse_config(JOB, output=out))
    return out


def test_a_two_worker_cluster_writes_the_single_process_file_basins_included(
    cluster, single: Path, tmp_path: Path
) -> None:  # noqa: ANN001
    out = tmp_path / "multi.h5"
    reports = gradbatch.run_jobs(parse_config(JOB, output=out), cluster=cluster)
    assert reports[0].tiles_computed == 30 and reports[0].check is not None
    assert _differences(single, out) == []
    import json

    with h5py.File(out, "r") as f:  # the cluster is recorded with the timings, which may differ
        assert json.loads(f["w"].attrs["timings"])["cluster_workers"] == 2
    workers = set(cluster.client.run(os.getpid).values())  # type: ignore[attr-defined]
    assert len(workers) == 2 and os.getpid() not in workers  # the tiles ran in other processes


def test_a_worker_killed_mid_job_leaves_a_complete_identical_file(cluster, single: Path, tmp_path: Path) -> None:  # noqa: ANN001
    client = cluster.client  # type: ignore[attr-defined]
    pids = client.run(os.getpid)  # worker address -> process id
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def progress(p: gradbatch.Progress) -> None:
        if p.tiles_done >= 4 and not killed:
            os.kill(victim, signal.SIGKILL)  # the worker process, mid-job: its nanny starts another
            killed.append(victim)

    out = tmp_path / "killed.h5"
    gradbatch.run_jobs(parse_config(JOB, output=out), cluster=cluster, progress=progress)
    assert killed and not (tmp_path / "killed.h5.partial").exists()
    assert _differences(single, out) == []
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()  # it really died and was replaced


def test_cluster_options_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradbatch.cli import main

    (tmp_path / "j.yaml").write_text("function: x\ngrid: {x: [0, 1, 8]}\n")
    with pytest.raises(SystemExit, match="--workers: expected at least 1, got 0"):
        main(["run", str(tmp_path / "j.yaml"), "--workers", "0"])
    with pytest.raises(SystemExit, match="not both"):
        main(["run", str(tmp_path / "j.yaml"), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert (
        main(["run", str(tmp_path / "j.yaml"), "-o", str(tmp_path / "x.h5"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    )
    assert "ClusterError: --scheduler: cannot reach tcp://127.0.0.1:1" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.partial").exists()


def test_gpu_workers_get_the_parents_own_devices() -> None:
    """Under Slurm or on a shared node the parent sees only its share (CUDA_VISIBLE_DEVICES=2,3):
    its workers must get 2 and 3, not 0 and 1."""
    from gradbatch.distributed import visible_devices

    assert visible_devices(None, 2) == ["0", "1"]
    assert visible_devices("", 2) == ["0", "1"]
    assert visible_devices("2,3", 2) == ["2", "3"]
    assert visible_devices(" 5, 7 ,", 1) == ["5"]
    assert visible_devices("GPU-aa11,GPU-bb22", 2) == ["GPU-aa11", "GPU-bb22"]
