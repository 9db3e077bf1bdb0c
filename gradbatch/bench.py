"""Engine throughput per device and method: what ``gradbatch bench`` measures.

Compute only (nothing is written): the value and exact gradient of a 2D function over square
grids, tile by tile, exactly as a job computes them (pyramid off). Each device present is
measured eager and compiled; the compile time is reported apart from the steady-state rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import torch

from .config import parse_config
from .engine import EvalStats, JobPlan, available_devices, device_name, evaluate, plan_job
from .errors import GradbatchError

__all__ = ["BenchRow", "benchmark", "format_table", "BENCH_EXPRESSION"]

BENCH_EXPRESSION = "sin((0.75*x)**2 + y**2 + 0.01)"


@dataclass(frozen=True)
class BenchRow:
    device: str
    method: str  # "eager" | "compiled"
    size: int  # grid side
    points: int
    seconds: float  # best of the repeats, steady state
    points_per_s: float
    compile_s: float
    speedup_vs_cpu: float | None = None
    error: str | None = None  # why this row has no measurement (a compile that failed, OOM)

    def as_dict(self) -> dict[str, object]:
        """The row for JSON: a failed row's missing numbers are null, not NaN (not JSON)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}


def _plan(size: int, method: str, device: torch.device, expression: str, dtype: str) -> JobPlan:
    text = (
        f'function: "{expression}"\n'
        f"grid: {{x: [-5, 5, {size}], y: [-5, 5, {size}]}}\n"
        f"outputs: [value, gradient]\npyramid: false\ndtype: {dtype}\n"
        f"compile: {'on' if method == 'compiled' else 'off'}\n"
    )
    return plan_job(parse_config(text, name="bench").jobs[0], device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(
    sizes: Sequence[int] = (1024, 4096),
    methods: Sequence[str] = ("eager", "compiled"),
    devices: Sequence[torch.device] | None = None,
    expression: str = BENCH_EXPRESSION,
    dtype: str = "float32",
    repeat: int = 3,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Measure points/s of value + gradient for every (device, method, size).

    ``threads``: CPU intra-op threads while measuring (jobs use 1 by default: the writer
    thread has the other core).
    """
    say = log or (lambda msg: None)
    rows: list[BenchRow] = []
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = _measure(sizes, methods, devices or available_devices(), expression, dtype, repeat, say)
    finally:
        torch.set_num_threads(old_threads)
    cpu = {(r.method, r.size): r.points_per_s for r in rows if r.device.startswith("cpu") and r.error is None}
    return [
        replace(r, speedup_vs_cpu=r.points_per_s / cpu[(r.method, r.size)])
        if (r.method, r.size) in cpu and r.error is None
        else r
        for r in rows
    ]


def _measure(
    sizes: Sequence[int],
    methods: Sequence[str],
    devices: Sequence[torch.device],
    expression: str,
    dtype: str,
    repeat: int,
    say: Callable[[str], None],
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    for device in devices:
        for method in methods:
            for size in sizes:
                try:
                    row = _measure_one(size, method, device, expression, dtype, repeat)
                    say(f"  {row.device:<28} {method:<9} {size:>6}^2  {row.points_per_s / 1e6:8.1f} Mpts/s")
                except (GradbatchError, torch.cuda.OutOfMemoryError) as exc:
                    # one failure (no C compiler for Triton, a grid too large for the device)
                    # is that row's result, not the end of the others
                    nan = float("nan")
                    error = " ".join(str(exc).split()) or type(exc).__name__
                    row = BenchRow(device_name(device), method, size, size * size, nan, nan, nan, error=error)
                    say(f"  {row.device:<28} {method:<9} {size:>6}^2  failed: {error}")
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rows.append(row)
    return rows


def _measure_one(size: int, method: str, device: torch.device, expression: str, dtype: str, repeat: int) -> BenchRow:
    plan = _plan(size, method, device, expression, dtype)
    compile_s = 0.0
    best = float("inf")
    for i in range(repeat + 1):  # run 0 warms up (and compiles): not timed
        stats = EvalStats()
        t0 = time.perf_counter()
        for _result in evaluate(plan, stats=stats):
            pass
        _sync(device)
        dt = time.perf_counter() - t0
        if i == 0:
            compile_s = stats.compile_s
        else:  # later runs re-check the compiled graph once: not part of the rate
            best = min(best, dt - stats.compile_s)
    points = size * size
    return BenchRow(device_name(device), method, size, points, best, points / best, compile_s)


def format_table(rows: Sequence[BenchRow]) -> str:
    head = f"{'device':<30} {'method':<9} {'grid':>8} {'Mpts/s':>9} {'vs CPU':>7} {'compile s':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.error is not None:
            lines.append(f"{r.device:<30} {r.method:<9} {f'{r.size}^2':>8}  failed: {r.error}")
            continue
        speed = f"{r.speedup_vs_cpu:.1f}x" if r.speedup_vs_cpu is not None else "-"
        comp = f"{r.compile_s:.1f}" if r.method == "compiled" else "-"
        lines.append(
            f"{r.device:<30} {r.method:<9} {f'{r.size}^2':>8} {r.points_per_s / 1e6:9.1f} {speed:>7} {comp:>9}"
        )
    return "\n".join(lines)
