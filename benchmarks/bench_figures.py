"""Picture files as users meet them: whole processes, several runs, medians and ratios.

``gradbatch render`` of a million arrows (GL raster inside matplotlib's axes, with axes, colour
bar and legend) against the script a user writes instead: h5py reads the same gradient, and
matplotlib's ``quiver`` draws a million arrows to a PNG. Also a default render (about a
thousand vector arrows, every layer) and the SVG and PDF of it.

    python benchmarks/bench_figures.py [--side 2048] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gradbatch
from gradbatch.config import parse_config

USER_SCRIPT = """
import sys, h5py, hdf5plugin, numpy as np, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
with h5py.File(sys.argv[1], "r") as f:
    g = f["v"]
    x, y = g["x"][::2], g["y"][::2]
    u, v = g["grad_x"][::2, ::2], g["grad_y"][::2, ::2]
X, Y = np.meshgrid(x, y)
fig, ax = plt.subplots(figsize=(8.67, 8.67), dpi=150)
ax.quiver(X, Y, u, v)
fig.savefig(sys.argv[2])
"""


def _timed(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _in_process(h5: Path, args: argparse.Namespace) -> dict[str, float]:
    """The same million arrows in this process, imports and GL context warm: gradbatch's picture
    (read, sample, GL raster, matplotlib axes, PNG) against matplotlib's quiver of the same
    arrows to a PNG, in the same run."""
    import h5py
    import hdf5plugin  # noqa: F401  (the file's filters)
    import matplotlib
    import numpy as np

    from gradbatch.viewer.options import RenderOptions
    from gradbatch.viewer.render import render

    opts = RenderOptions(size=(1300, 1300), pixels_per_arrow=1, layers=("arrows",), arrow_mode="normalize")
    render(h5, args.dir / "warm.png", options=RenderOptions(size=(480, 360)), overwrite=True)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        render(h5, args.dir / "m.png", options=opts, overwrite=True)
        times.append(time.perf_counter() - t0)
    t_gb = statistics.median(times)
    print(f"in process: gradbatch picture of ~1.08M arrows {t_gb:.2f} s", flush=True)
    res = {"in_process_gradbatch_million_s": t_gb}
    if args.skip_matplotlib:
        return res
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with h5py.File(h5, "r") as f:
        x, y = f["v/x"][::2], f["v/y"][::2]
        u, v = f["v/grad_x"][::2, ::2], f["v/grad_y"][::2, ::2]
    gx, gy = np.meshgrid(x, y)
    # the arrow layer alone: the same arrows as one GL raster of the picture's size (what a
    # picture file composites into its axes), coloured by magnitude as gradbatch colours them
    from gradbatch.viewer.prepare import colormap_lut, map_colors
    from gradbatch.viewer.raster import draw_arrows

    centres = np.stack([gx.ravel(), gy.ravel()], 1)
    mag = np.hypot(u, v).ravel()
    cell = float(x[1] - x[0])
    vectors = np.stack([u.ravel(), v.ravel()], 1) * (0.85 * cell / max(float(mag.max()), 1e-30))
    window = (float(x[0]), float(x[-1]), float(y[0]), float(y[-1]))
    layer = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        colors = map_colors(mag / max(float(mag.max()), 1e-30), colormap_lut("viridis"))
        draw_arrows(centres, vectors, colors, window, (1300, 1300))
        layer.append(time.perf_counter() - t0)
    t_layer = statistics.median(layer)
    res["in_process_gl_arrow_layer_s"] = t_layer
    t0 = time.perf_counter()
    fig, ax = plt.subplots(figsize=(1300 / 150, 1300 / 150), dpi=150)
    ax.quiver(gx, gy, u, v)
    fig.savefig(args.dir / "q.png")
    plt.close(fig)
    t_mpl = time.perf_counter() - t0
    print(f"in process: matplotlib quiver of {u.size:,} arrows {t_mpl:.2f} s -> {t_mpl / t_gb:.1f}x", flush=True)
    print(
        f"in process: the arrow layer alone (GL raster of the same arrows, 1300^2) {t_layer:.2f} s "
        f"-> {t_mpl / t_layer:.1f}x",
        flush=True,
    )
    res.update(
        in_process_matplotlib_million_s=t_mpl,
        in_process_speedup=t_mpl / t_gb,
        in_process_arrow_layer_speedup=t_mpl / t_layer,
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=2048, help="grid side of the job (default 2048)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--skip-matplotlib", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    h5 = args.dir / f"figures{args.side}.h5"
    if not h5.exists():
        text = (
            f"name: v\nfunction: 'sin(sqrt((0.75*x)**2 + y**2 + 0.01))'\n"
            f"grid: {{x: [-5, 5, {args.side}], y: [-5, 5, {args.side}]}}\n"
            "paths: {starts: {grid: 3}, steps: 300, optimizers: [{name: adam, lr: 0.05}]}\n"
            "streamlines: {seeds: {even: 2}}\n"
        )
        gradbatch.run_jobs(parse_config(text, output=h5))
    gb = [sys.executable, "-m", "gradbatch", "render", str(h5), "--overwrite"]
    out: dict[str, float] = {}
    million = [*gb, "-o", str(args.dir / "m.png"), "--size", "1300x1300", "--pixels-per-arrow", "1"]
    million += ["--layers", "arrows", "--arrows", "normalize"]
    out["gradbatch_million_arrows_s"] = t_gb = _timed(million, args.runs)
    print(f"gradbatch render, ~1.08M arrows, axes + legend, PNG: {t_gb:.2f} s (median of {args.runs})", flush=True)
    for suffix in ("png", "svg", "pdf"):
        t = _timed([*gb, "-o", str(args.dir / f"d.{suffix}")], args.runs)
        out[f"gradbatch_default_{suffix}_s"] = t
        print(f"gradbatch render, default layers, {suffix.upper()}: {t:.2f} s", flush=True)
    out.update(_in_process(h5, args))
    if not args.skip_matplotlib:
        script = args.dir / "user_quiver.py"
        script.write_text(USER_SCRIPT)
        t_mpl = _timed([sys.executable, str(script), str(h5), str(args.dir / "q.png")], args.runs)
        out.update(matplotlib_million_quiver_s=t_mpl, million_arrows_speedup=t_mpl / t_gb)
        print(f"h5py + matplotlib quiver of 1.05M arrows to a PNG: {t_mpl:.2f} s -> {t_mpl / t_gb:.1f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
