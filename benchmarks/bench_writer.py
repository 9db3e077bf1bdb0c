"""The writer alone: how fast computed tiles reach the file, by the number of encoding threads.

The tiles of a job are computed once and kept in memory, then written again and again into a
fresh file by ``write_tiles`` with 1, 2, ... encoders (the compute is out of the timing): raw
field bytes (value and gradient, float32) per second, pyramid included, each run to a closed
file (in the page cache; the job's final fsync is the disk's, measured beside it as raw
durable writes of the same compressed size).

    python benchmarks/bench_writer.py [--side 4096] [--encoders 1,2] [--runs 3] [--compression lz4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from gradbatch.config import parse_config
from gradbatch.engine import EvalStats, evaluate, plan_job
from gradbatch.store import JobWriter
from gradbatch.writing import axis_attrs, write_tiles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=4096)
    ap.add_argument("--encoders", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compression", default="lz4")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    text = (
        f"name: w\nfunction: 'sin((0.75*x)**2 + y**2 + 0.01)'\ngrid: {{x: [-5, 5, {args.side}], "
        f"y: [-5, 5, {args.side}]}}\ncompression: {args.compression}\n"
    )
    (job,) = parse_config(text, output=args.dir / "w.h5").jobs
    plan = plan_job(job)
    t0 = time.perf_counter()
    tiles = list(evaluate(plan, set(), EvalStats()))
    raw = sum(sum(a.nbytes for a in r.fields.values()) for r in tiles)
    print(
        f"{len(tiles)} tiles of {args.side}^2 computed in {time.perf_counter() - t0:.1f} s: "
        f"{raw / 1e6:.0f} MB of fields"
    )
    out: dict[str, object] = {"side": args.side, "raw_mb": raw / 1e6}
    rates: dict[int, float] = {}
    for n in [int(s) for s in args.encoders.split(",")]:
        times = []
        for _ in range(args.runs):
            path = args.dir / "bench_writer.h5"
            if path.exists():
                path.unlink()
            writer = JobWriter(
                path, job.name, plan.fields, list(zip(job.grid.names, plan.axes)), plan.layout, plan.levels,
                job.compression.value, {}, axis_attrs=axis_attrs(plan),
            )  # fmt: skip
            writer.open()
            t0 = time.perf_counter()
            write_tiles(writer, tiles, lambda *_: None, encoders=n)
            times.append(time.perf_counter() - t0)
            stored = path.stat().st_size
        t = statistics.median(times)
        rates[n] = raw / t
        print(f"{n} encoder(s): {t:.2f} s, {raw / t / 1e6:.0f} MB/s of fields ({stored / 1e6:.0f} MB stored)")
        out[f"encoders_{n}_s"] = t
    first = min(rates)
    for n, r in rates.items():
        if n != first:
            print(f"{n} encoders / {first}: {r / rates[first]:.2f}x (target >= {0.8 * n / first:.1f}x)")
    # the disk: the same number of stored bytes written and fsynced
    buf = os.urandom(16 << 20)
    target = args.dir / "bench_writer.raw"
    t0 = time.perf_counter()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    left = stored
    while left > 0:
        left -= os.write(fd, buf[: min(len(buf), left)])
    os.fsync(fd)
    os.close(fd)
    disk = time.perf_counter() - t0
    target.unlink()
    print(f"the disk: {stored / 1e6:.0f} MB written and fsynced in {disk:.2f} s ({stored / disk / 1e6:.0f} MB/s)")
    out["disk_mb_s"] = stored / disk / 1e6
    (args.dir / "bench_writer.h5").unlink(missing_ok=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
