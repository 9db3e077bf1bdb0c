"""End-to-end `gradbatch run` against raw disk writes, and peak memory by grid size.

    python benchmarks/bench_run.py [--size 8192] [--dir /tmp] [--memory-sizes 1024,16384]

1. Writes the same number of raw bytes as the job's fields (value, grad_x, grad_y: 12 bytes a
   point) to the same disk with fsync: the disk's durable write time.
2. Runs `gradbatch run` on configs/bench_8192.yaml (compressed, pyramid on) in a fresh process,
   which fsyncs its output before renaming it; wall time of the run itself (as the job records
   it) and of the whole process.
3. Peak resident memory (ru_maxrss) of `gradbatch run` processes at each --memory-sizes grid.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def raw_write(path: Path, nbytes: int, block: int = 16 << 20) -> float:
    buf = os.urandom(block)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, buf[: min(block, left)])
        os.fsync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t0
    path.unlink()
    return dt


_CHILD = """
import json, sys, time
import gradbatch
t0 = time.perf_counter()
(report,) = gradbatch.run(sys.argv[1], output=sys.argv[2], overwrite=True)
run_s = time.perf_counter() - t0  # plan + compute + write + finalize + fsync + rename
hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"job_wall_s": run_s, "tiles_wall_s": report.wall_s, "peak_rss": hwm}))
"""


def run_job(config: Path, out: Path) -> tuple[float, float, int]:
    """(process wall s, job wall s, peak RSS bytes) of one run in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(config), str(out)], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    out.unlink()
    return wall, data["job_wall_s"], data["peak_rss"]


def _size_config(folder: Path, size: int) -> Path:
    cfg = folder / f"gradbatch_mem{size}.yaml"
    cfg.write_text(
        f"name: mem\nfunction: 'sin((0.75*x)**2 + y**2 + 0.01)'\n"
        f"grid: {{x: [-5, 5, {size}], y: [-5, 5, {size}]}}\noutputs: [value, gradient]\n"
    )
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--memory-sizes", default="1024,16384")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n = 8192
    nbytes = n * n * 12
    result: dict[str, object] = {"size": n, "raw_bytes": nbytes}

    t_raw = raw_write(args.dir / "gradbatch_raw.bin", nbytes)
    print(f"raw durable write of {nbytes / 1e6:.0f} MB: {t_raw:.2f} s ({nbytes / t_raw / 1e6:.0f} MB/s)", flush=True)
    out = args.dir / "gradbatch_bench.h5"
    proc_wall, job_wall, _ = run_job(ROOT / "configs" / "bench_8192.yaml", out)
    print(
        f"gradbatch run {n}^2 (lz4, pyramid): run() {job_wall:.2f} s including the final fsync, "
        f"process {proc_wall:.2f} s (incl. Python/torch start) -> {job_wall / t_raw:.2f}x the raw write",
        flush=True,
    )
    result.update(raw_write_s=t_raw, job_wall_s=job_wall, process_wall_s=proc_wall, ratio_job_to_raw=job_wall / t_raw)

    for size in [int(s) for s in args.memory_sizes.split(",")]:
        cfg = _size_config(args.dir, size)
        wall, job_s, peak = run_job(cfg, args.dir / f"gradbatch_mem{size}.h5")
        cfg.unlink()
        print(
            f"peak RSS of a {size}^2 run ({size * size / 1e6:.0f} Mpts, job {job_s:.1f} s): {peak / 2**20:.0f} MiB",
            flush=True,
        )
        result[f"peak_rss_mib_{size}"] = peak / 2**20
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
