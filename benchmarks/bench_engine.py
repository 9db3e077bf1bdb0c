"""Compute-only throughput: the engine against the seeds' ways (one CPU thread each).

    python benchmarks/bench_engine.py [--size 8192] [--loop-size 256] [--json out.json]

f = sin((0.75x)^2 + y^2 + 0.01), float32, value + gradient, nothing written. The engine runs
exactly as a job does (tiles of 512^2, pyramid off), eager and torch.compile'd; the compile time
is reported apart. Seed 003's loop runs on a small grid and is extrapolated per point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import numpy_analytic, numpy_meshgrid, seed003_loop  # noqa: E402

from gradbatch.bench import benchmark  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--loop-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = args.size
    pts = n * n

    print(f"grid {n}^2 = {pts / 1e6:.1f} Mpts, float32, 1 thread", flush=True)
    t_np = min(numpy_meshgrid(n) for _ in range(args.repeat))
    np_rate = pts / t_np
    print(f"numpy, seeds' way (meshgrid) : {np_rate / 1e6:8.1f} Mpts/s ({t_np:.2f} s)", flush=True)
    t_chunk = min(numpy_analytic(n) for _ in range(args.repeat))
    chunk_rate = pts / t_chunk
    print(f"numpy, chunked (stronger)    : {chunk_rate / 1e6:8.1f} Mpts/s ({t_chunk:.2f} s)", flush=True)
    t_loop = seed003_loop(args.loop_size)
    loop_rate = args.loop_size**2 / t_loop
    print(
        f"seed 003 per-point loop      : {loop_rate / 1e6:8.4f} Mpts/s (at {args.loop_size}^2, "
        f"{t_loop:.1f} s; extrapolated {pts / loop_rate / 3600:.1f} h for {n}^2)",
        flush=True,
    )

    result = {
        "size": n,
        "numpy_meshgrid_pts_per_s": np_rate,
        "numpy_chunked_pts_per_s": chunk_rate,
        "seed003_loop_pts_per_s": loop_rate,
    }
    rows = benchmark(
        [n], ["eager", "compiled"], [torch.device("cpu")], repeat=args.repeat, log=lambda m: print(m, flush=True)
    )
    both = benchmark(
        [n], ["compiled"], [torch.device("cpu")], repeat=args.repeat, threads=2, log=lambda m: print(m, flush=True)
    )
    result["engine_compiled_2threads_pts_per_s"] = both[0].points_per_s
    print(
        f"engine compiled, 2 threads   : {both[0].points_per_s / 1e6:8.1f} Mpts/s "
        f"= {both[0].points_per_s / np_rate:5.2f}x numpy (seeds' way, which uses one core)",
        flush=True,
    )
    for r in rows:
        result[f"engine_{r.method}_pts_per_s"] = r.points_per_s
        result[f"engine_{r.method}_compile_s"] = r.compile_s
        print(
            f"engine {r.method:<8}              : {r.points_per_s / 1e6:8.1f} Mpts/s  "
            f"= {r.points_per_s / np_rate:5.2f}x numpy (seeds' way), {r.points_per_s / chunk_rate:5.2f}x "
            f"chunked numpy, {r.points_per_s / loop_rate:6.0f}x seed 003's loop"
            + (f"  (compile {r.compile_s:.1f} s, once)" if r.method == "compiled" else ""),
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
