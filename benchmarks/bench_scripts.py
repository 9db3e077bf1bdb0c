"""`gradbatch run` against the scripts a user would write instead, as whole processes.

The 8192² ripple job (configs/bench_8192.yaml: value and gradient, default settings: LZ4,
pyramid, fsync before the rename) against three short scripts that compute the same three
fields over the whole grid at once and write them with h5py, uncompressed, no pyramid, no fsync:

- ``numpy``: numpy with the gradient derived by hand (the seeds' way);
- ``np.gradient``: numpy's value, then ``np.gradient`` of it (central differences);
- ``torch``: torch autograd over the whole grid.

Each command runs ``--runs`` times in fresh processes, interleaved (one of each, then again), so
the machine's drift touches all alike; medians, ratios to gradbatch, and peak memory.

    python benchmarks/bench_scripts.py [--side 8192] [--runs 4] [--dir /tmp] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPTS = {
    "numpy": """
import sys, numpy as np, h5py
n = int(sys.argv[2])
x = np.linspace(-5, 5, n, dtype=np.float32)
X, Y = np.meshgrid(x, x)
u = (0.75 * X) ** 2 + Y ** 2 + np.float32(0.01)
value = np.sin(u)
c = np.cos(u)
gx = c * (np.float32(2 * 0.5625) * X)
gy = c * (np.float32(2.0) * Y)
with h5py.File(sys.argv[1], "w") as f:
    f["x"], f["y"] = x, x
    f["value"], f["grad_x"], f["grad_y"] = value, gx, gy
""",
    "np.gradient": """
import sys, numpy as np, h5py
n = int(sys.argv[2])
x = np.linspace(-5, 5, n, dtype=np.float32)
X, Y = np.meshgrid(x, x)
value = np.sin((0.75 * X) ** 2 + Y ** 2 + np.float32(0.01))
gy, gx = np.gradient(value, x, x)
with h5py.File(sys.argv[1], "w") as f:
    f["x"], f["y"] = x, x
    f["value"], f["grad_x"], f["grad_y"] = value, gx, gy
""",
    "torch": """
import sys, torch, h5py
n = int(sys.argv[2])
x = torch.linspace(-5, 5, n)
Y, X = torch.meshgrid(x, x, indexing="ij")
X.requires_grad_(True); Y.requires_grad_(True)
value = torch.sin((0.75 * X) ** 2 + Y ** 2 + 0.01)
gx, gy = torch.autograd.grad(value.sum(), (X, Y))
with h5py.File(sys.argv[1], "w") as f:
    f["x"], f["y"] = x.numpy(), x.numpy()
    f["value"], f["grad_x"], f["grad_y"] = value.detach().numpy(), gx.numpy(), gy.numpy()
""",
}


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes of the child) of one fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAP, *cmd], check=True, capture_output=True, text=True, cwd=ROOT, env=env
    )
    wall, peak = proc.stdout.split()[-2:]
    return float(wall), int(peak)


# runs the command in a child: its wall time, and its peak RSS (ru_maxrss of waited-for children)
_WRAP = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=8192)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    job = args.dir / f"bench_scripts_{args.side}.yaml"
    job.write_text((ROOT / "configs" / "bench_8192.yaml").read_text().replace("8192", str(args.side)))
    run = [sys.executable, "-m", "gradbatch", "run", str(job), "-o", str(args.dir / "gb.h5"), "--overwrite", "-q"]
    commands = {"gradbatch run": run, "gradbatch, no kernel": run}
    # the compiled kernel built once beforehand (what every run after a job's first finds), in a
    # cache of the benchmark's own; "no kernel" is a first run: eager, its background build off
    cache = args.dir / "bench_scripts_kernels"
    envs: dict[str, dict[str, str] | None] = {name: None for name in SCRIPTS}
    envs["gradbatch run"] = {**os.environ, "GRADBATCH_CACHE_DIR": str(cache)}
    envs["gradbatch, no kernel"] = {
        **os.environ,
        "GRADBATCH_CACHE_DIR": str(args.dir / "bench_scripts_no_kernels"),
        "GRADBATCH_BACKGROUND_COMPILE": "0",
    }
    built = subprocess.run(
        [sys.executable, "-m", "gradbatch", "compile", str(job)],
        env=envs["gradbatch run"],
        capture_output=True,
        text=True,
    )
    print(built.stdout.strip() or built.stderr.strip(), flush=True)
    for name, text in SCRIPTS.items():
        script = args.dir / f"user_{name.replace('.', '_')}.py"
        script.write_text(text)
        commands[name] = [sys.executable, str(script), str(args.dir / "user.h5"), str(args.side)]
    walls: dict[str, list[float]] = {k: [] for k in commands}
    peaks: dict[str, int] = {k: 0 for k in commands}
    for i in range(args.runs):
        for name, cmd in commands.items():
            wall, peak = _run(cmd, envs[name])
            walls[name].append(wall)
            peaks[name] = max(peaks[name], peak)
            print(f"run {i + 1}: {name}: {wall:.2f} s", flush=True)
    for path in (args.dir / "gb.h5", args.dir / "user.h5"):
        if path.exists():
            os.unlink(path)
    gb = statistics.median(walls["gradbatch run"])
    out = {}
    print(f"\n{args.side}^2, median of {args.runs} fresh processes each, interleaved")
    print(f"{'command':<22} {'wall':>8} {'gradbatch / it':>15} {'peak memory':>12}")
    for name in commands:
        t = statistics.median(walls[name])
        out[name] = {"wall_s": t, "runs": walls[name], "peak_rss_mib": peaks[name] / 2**20, "gradbatch_ratio": gb / t}
        print(f"{name:<22} {t:>7.2f}s {gb / t:>14.2f}x {peaks[name] / 2**20:>9.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
