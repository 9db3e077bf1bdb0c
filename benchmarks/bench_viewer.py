"""The viewer's targets: first frame of a big file, frame time with every layer, a million
arrows against matplotlib's quiver, and memory by file size (headless, Mesa llvmpipe here).

    python benchmarks/bench_viewer.py [--size 8192] [--arrows 1000000] [--skip-matplotlib]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import gradbatch
from gradbatch.config import parse_config


def _file(folder: Path, n: int, extras: bool) -> Path:
    out = folder / f"view{n}.h5"
    if not out.exists():
        text = (
            f"name: v\nfunction: 'sin(sqrt((0.75*x)**2 + y**2 + 0.01))'\ngrid: {{x: [-5, 5, {n}], y: [-5, 5, {n}]}}\n"
        )
        if extras:
            text += (
                "paths: {starts: {grid: 4}, steps: 500, optimizers: [{name: adam, lr: 0.02}]}\n"
                "streamlines: {seeds: {even: 2}}\n"
            )
        gradbatch.run_jobs(parse_config(text, output=out))
    return out


def _median_s(f: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


_MEMORY = """
import sys, time
from gradbatch.viewer.canvas import FieldView
fv = FieldView(sys.argv[1], app="egl", show=False, size=(1200, 900))
end = time.time() + 60
while fv.poll() is None and time.time() < end:
    time.sleep(0.01)
fv.canvas.render()
for rect in [(-4, -4, 1, 1), (0, 0, 0.2, 0.2), (-5, -5, 10, 10)]:
    fv.view.camera.rect = rect
    n = fv.state.applied
    while fv.state.applied == n and time.time() < end:
        fv.poll(); time.sleep(0.01)
    fv.canvas.render()
# VmHWM belongs to this process's own address space (ru_maxrss would carry the parent's peak
# across fork and exec)
print(next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--arrows", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--skip-matplotlib", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, float] = {}
    from gradbatch.viewer.canvas import FieldView

    # memory first, in fresh processes
    for n in (1024, 16384):
        path = _file(args.dir, n, extras=False)
        rss = int(
            subprocess.run([sys.executable, "-c", _MEMORY, str(path)], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        print(f"viewer peak memory, {n}^2 file, four views: {rss / 2**20:.0f} MiB", flush=True)
        out[f"viewer_rss_mib_{n}"] = rss / 2**20

    big = _file(args.dir, args.size, extras=True)
    t0 = time.perf_counter()
    fv = FieldView(big, app="egl", show=False, size=(1200, 900))
    while fv.poll() is None:
        time.sleep(0.002)
    fv.canvas.render()
    first = time.perf_counter() - t0
    print(
        f"first frame of a {args.size}^2 file (open, read level {fv.state.last_applied.level}, draw): {first:.2f} s",
        flush=True,
    )
    # the frame's words (axes, colour bar, title, legend) join a group a frame after the first,
    # as the window's timer does it; then a steady frame has every layer and every word
    t0 = time.perf_counter()
    while not fv.decor.revealed:
        fv.decor.reveal_step()
        fv.canvas.render()
    words = time.perf_counter() - t0
    print(f"the frame's words joined in {words:.2f} s over {fv.decor.STAGES} frames", flush=True)
    from vispy import gloo

    def window_frame() -> None:  # what a shown window does: draw into its own surface, wait for it
        fv.canvas.set_current()
        fv.canvas.on_draw(None)
        gloo.gl.glFinish()

    frame, readback = (_median_s(f, 15) for f in (window_frame, fv.canvas.render))
    print(
        f"frame with image, arrows, streamlines, paths, axes, colour bar and legend at 1200x900: "
        f"{frame * 1e3:.0f} ms (median of 15; {readback * 1e3:.0f} ms rendered to an array and read back)",
        flush=True,
    )
    out.update(first_frame_s=first, words_s=words, frame_s=frame, frame_readback_s=readback)

    # a million arrows, forced: one point-sprite draw (what the viewer uses) against matplotlib's
    # quiver, each arrow coloured by its magnitude as the viewer does
    from gradbatch.viewer.arrows import ArrowField
    from gradbatch.viewer.prepare import colormap_lut, map_colors
    from gradbatch.viewer.render import vispy_scene

    scene = vispy_scene("egl")
    side = int(np.sqrt(args.arrows))
    g = np.linspace(0, 1, side)
    gx, gy = np.meshgrid(g, g)
    u, v = np.cos(6 * gy) * 0.5 / side, np.sin(6 * gx) * 0.5 / side
    canvas = scene.SceneCanvas(size=(1024, 1024), show=False)
    view = canvas.central_widget.add_view()
    view.camera = scene.PanZoomCamera(rect=(0, 0, 1, 1))
    canvas.render()  # the GL context exists already in a running viewer
    t0 = time.perf_counter()
    mag = np.hypot(u, v).ravel()
    colors = map_colors(mag / mag.max(), colormap_lut("autumn"))
    arrows = ArrowField(parent=view.scene)
    arrows.set_data(np.stack([gx.ravel(), gy.ravel()], 1), np.stack([u.ravel(), v.ravel()], 1), colors)
    t_build = time.perf_counter() - t0
    canvas.render()
    t_gb = time.perf_counter() - t0
    t1 = time.perf_counter()
    canvas.render()
    t_frame = time.perf_counter() - t1
    print(
        f"{side * side:,} arrows: coloured and uploaded {t_build:.2f} s, + drawn {t_gb:.2f} s, "
        f"next frame {t_frame:.2f} s",
        flush=True,
    )
    out.update(million_arrows_s=t_gb, million_arrows_build_s=t_build, million_arrows_frame_s=t_frame)
    # the same arrows at 10x the length (about 3 pixels each) and 10x the sprite area
    arrows.set_data(np.stack([gx.ravel(), gy.ravel()], 1), np.stack([10 * u.ravel(), 10 * v.ravel()], 1), colors)
    t1 = time.perf_counter()
    canvas.render()
    print(f"the same arrows 10x longer: a frame in {time.perf_counter() - t1:.2f} s", flush=True)
    if not args.skip_matplotlib:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t0 = time.perf_counter()
        fig, ax = plt.subplots(figsize=(10.24, 10.24), dpi=100)
        ax.quiver(gx, gy, u, v)
        fig.canvas.draw()
        t_mpl = time.perf_counter() - t0
        plt.close(fig)
        print(f"matplotlib quiver of the same arrows: {t_mpl:.2f} s -> {t_mpl / t_gb:.0f}x", flush=True)
        out.update(matplotlib_quiver_s=t_mpl, quiver_speedup=t_mpl / t_gb)

    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
