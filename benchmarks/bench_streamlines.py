"""Evenly spaced streamlines against matplotlib's streamplot, and basins, in one run.

    python benchmarks/bench_streamlines.py [--size 1024] [--density 4] [--basins 1024]

Streamlines: the descent field of seed 000's ripple sin(sqrt((0.75x)^2 + y^2 + 0.01)) on
[-5, 5]^2. matplotlib gets the engine's gradient on a size x size grid (what a user would hand
it) and integrates with ``streamplot(density=D)``; gradbatch integrates the exact field with
``seeds: {even: D}``. Both compute lines only (no rendering). Basins: Himmelblau, a
B x B grid of starts x 1000 Adam steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import gradbatch
from gradbatch.config import parse_basins, parse_streamlines
from gradbatch.functions import BUILTINS, from_builtin
from gradbatch.trajectories.basins import compute_basins
from gradbatch.trajectories.streamlines import compute_streamlines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--density", type=float, default=4)
    ap.add_argument("--basins", type=int, default=1024, help="starts per axis (0: skip)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out: dict[str, float] = {}
    box = ((-5.0, 5.0), (-5.0, 5.0))
    ff = from_builtin("ripple", 2, {})

    cfg = parse_streamlines({"seeds": {"even": args.density}}, "s", box, False)
    compute_streamlines(
        ff, parse_streamlines({"seeds": {"even": 0.5}}, "s", box, False), box, torch.float32, torch.device("cpu")
    )  # warm-up
    times = []
    for _ in range(3):  # best of three warm runs (matplotlib's one run takes tens of seconds)
        t0 = time.perf_counter()
        lines = compute_streamlines(ff, cfg, box, torch.float32, torch.device("cpu"))
        times.append(time.perf_counter() - t0)
    t_gb = min(times)
    print(
        f"gradbatch even streamlines, density {args.density:g}: {t_gb:.2f} s (best of "
        f"{', '.join(f'{t:.2f}' for t in times)}), {len(lines.seeds)} lines, {len(lines.points):,} points",
        flush=True,
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    job = gradbatch.parse_config(
        f"function: {{builtin: ripple}}\ngrid: {{x: [-5, 5, {args.size}], y: [-5, 5, {args.size}]}}\n"
        "outputs: [gradient]\npyramid: false\n"
    ).jobs[0]
    g = gradbatch.compute(gradbatch.plan_job(job, "cpu"))
    x = np.linspace(-5, 5, args.size)
    fig, ax = plt.subplots()
    t0 = time.perf_counter()
    ax.streamplot(x, x, -g["grad_x"], -g["grad_y"], density=args.density)
    t_mpl = time.perf_counter() - t0
    plt.close(fig)
    print(
        f"matplotlib streamplot, {args.size}^2 grid, density {args.density:g}: {t_mpl:.2f} s "
        f"-> gradbatch is {t_mpl / t_gb:.0f}x faster",
        flush=True,
    )
    out.update(gradbatch_s=t_gb, matplotlib_s=t_mpl, speedup=t_mpl / t_gb, lines=len(lines.seeds))

    if args.basins:
        hb = from_builtin("himmelblau", 2, {})
        bcfg = parse_basins(
            {"resolution": args.basins, "steps": 1000, "tol": 0, "optimizer": {"name": "adam", "lr": 0.05}}, "b", 2
        )
        t0 = time.perf_counter()
        r = compute_basins(hb, bcfg, box, BUILTINS["himmelblau"].minima(2), torch.float32, torch.device("cpu"))
        dt = time.perf_counter() - t0
        ps = args.basins**2 * 1000 / dt
        print(
            f"basins of Himmelblau, {args.basins}^2 starts x 1000 Adam steps: {dt:.1f} s, "
            f"{ps / 1e6:.1f} M point-steps/s, starts per basin {list(r.counts)}",
            flush=True,
        )
        out.update(basins_s=dt, basins_point_steps_per_s=ps)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
