"""The cluster path's overhead: the 8192^2 benchmark job in one process, then on local Dask
clusters of 1 and 2 workers (single-threaded each), same machine, same run.

    python benchmarks/bench_cluster.py [--size 8192] [--workers 1,2] [--dir /tmp] [--json out.json]

Times are the job's own wall time (from its first tile to its file closed, as `gradbatch info`
records it), so starting the cluster is left out; it is printed separately. Each cluster file is
checked to hold exactly the single-process data.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the files' LZ4 filter)
import numpy as np

import gradbatch
from gradbatch.config import load_config
from gradbatch.distributed import ClusterOptions, connect

ROOT = Path(__file__).resolve().parent.parent


def _same(a: Path, b: Path, job: str) -> bool:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in fa[job].attrs["fields"]:
            da, db = fa[job][name], fb[job][name]
            for s in range(0, da.shape[0], 1024):  # in slabs: bounded memory
                if not np.array_equal(da[s : s + 1024], db[s : s + 1024], equal_nan=True):
                    return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    jobs = load_config(ROOT / "configs" / "bench_8192.yaml")
    job = jobs.jobs[0]
    if args.size != 8192:
        from dataclasses import replace

        from gradbatch.config import Axis, Grid

        job = replace(job, grid=Grid(tuple(Axis(a.name, a.start, a.stop, args.size) for a in job.grid.axes)))
    res: dict[str, float] = {"points": job.grid.size}
    single = args.dir / "cluster-single.h5"
    job1 = __import__("dataclasses").replace(job, output=single)
    r = gradbatch.run_jobs([job1], overwrite=True)[0]
    base = r.wall_s
    res["single_s"] = base
    print(
        f"single process (1 compute thread + the writer): {base:.2f} s, {job.grid.size / base / 1e6:.1f} Mpts/s",
        flush=True,
    )
    for n in (int(v) for v in args.workers.split(",")):
        t0 = time.perf_counter()
        cluster = connect(ClusterOptions(workers=n))
        start = time.perf_counter() - t0
        out = args.dir / f"cluster-{n}.h5"
        try:
            r = gradbatch.run_jobs(
                [__import__("dataclasses").replace(job, output=out)], overwrite=True, cluster=cluster
            )[0]
        finally:
            cluster.close()
        same = _same(single, out, job.name)
        res[f"workers_{n}_s"] = r.wall_s
        res[f"workers_{n}_start_s"] = start
        print(
            f"{n} worker{'s' if n > 1 else ''}: {r.wall_s:.2f} s ({r.wall_s / base:.2f}x the single process, "
            f"{job.grid.size / r.wall_s / 1e6:.1f} Mpts/s; cluster start {start:.1f} s); "
            f"file {'identical' if same else 'DIFFERENT'}",
            flush=True,
        )
        out.unlink()
    single.unlink()
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
