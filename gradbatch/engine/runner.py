"""The tile loop: plan a job, then stream :class:`TileResult` objects, one per tile.

Memory does not grow with the grid: one tile (plus the results waiting for the writer) is alive
at a time. On CUDA, tile i's results are copied to pinned host memory on a side stream while
tile i+1 computes; a CUDA out-of-memory error splits the tile into more pieces and retries.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch

from ..config import DEFAULT_SCALAR_OUTPUTS, DEFAULT_VECTOR_OUTPUTS, CompileMode, JobConfig, Output, check_outputs
from ..errors import EngineError, FunctionError, GradbatchError
from ..functions.field import FieldFunction
from ..functions.registry import BuiltFunction, build_function
from ..grid import Block, Tile, TileLayout, axis_values, blocks, layout, level_count, tiles_per_block
from . import aot
from .coords import block_axes, expand_axes
from .device import resolve_device
from .kernel import (
    CheckStats,
    Kernel,
    TileSummary,
    block_summary,
    build_kernel,
    check_steps,
    field_names,
    finite_difference_check,
    needs_derivatives,
    tile_summary,
    warm_up,
)
from .pyramid import tile_levels

__all__ = [
    "JobPlan",
    "TileResult",
    "EvalStats",
    "plan_job",
    "resolve_function",
    "evaluate",
    "compute",
    "COMPUTE_MAX_POINTS",
]

COMPUTE_MAX_POINTS = 64 * 1024 * 1024
"""Largest job :func:`compute` assembles in memory; bigger ones belong in a file."""

BLOCK_POINTS = 1 << 24
"""On a GPU, the most points computed as one block of tiles (4096 x 4096 in 2D). A 512^2 tile
costs a GPU kernel launches and small copies more than arithmetic: a block of 64 pays them once,
then hands the writer its tiles (the file's chunks) one by one."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class JobPlan:
    """Everything needed to compute a job, resolved and validated. ``built`` is what building the
    function produced besides it (a loss landscape's makings, a network's training path): the
    job's flows write it after the tiles, without building anything again."""

    job: JobConfig
    function: FieldFunction
    device: torch.device
    dtype: torch.dtype
    outputs: tuple[Output, ...]
    fields: tuple[str, ...]
    layout: TileLayout
    levels: int
    axes: tuple[np.ndarray, ...]  # coordinates per axis, grid order, job dtype
    built: BuiltFunction

    @property
    def check(self) -> bool:
        return Output.CHECK in self.outputs


@dataclass(frozen=True)
class TileResult:
    """One computed tile: host arrays of its valid shape, and its pyramid pieces. A cluster
    worker sends ``chunks`` instead of ``fields``: each field's HDF5 chunk, already compressed
    (filter mask, bytes), for the writer to store as it is."""

    tile: Tile
    fields: dict[str, np.ndarray]
    levels: list[dict[str, np.ndarray]]
    chunks: dict[str, tuple[int, bytes]] | None = None
    nonfinite: np.ndarray | None = None  # (fields, 3): NaN, +inf, -inf points of the tile
    check: CheckStats | None = None  # this tile's gradient check, if the job asks for one
    ranges: np.ndarray | None = None  # (fields, 3) float64: finite min, max, min positive (NaN: none)
    nonpositive: np.ndarray | None = None  # (fields,) int64: finite values <= 0


@dataclass
class EvalStats:
    """Filled in while :func:`evaluate` runs."""

    tiles: int = 0
    points: int = 0
    compute_s: float = 0.0
    compile_s: float = 0.0
    compiled: bool = False
    splits: int = 1
    check: CheckStats | None = None


def resolve_function(job: JobConfig) -> FieldFunction:
    """The job's function, built from its ``function:`` settings (not yet probed)."""
    return build_function(job).function


def plan_job(job: JobConfig, device: str | torch.device | None = None) -> JobPlan:
    """Resolve device and function, check the function on a few points, fix the outputs.

    ``device`` overrides the job's own setting (as the CLI's ``--device`` does).
    """
    dev = resolve_device(device if device is not None else job.device)
    dtype = _DTYPES[job.dtype]
    built = build_function(job)
    ff = built.check(job.grid.ndim, dtype, dev)
    where = f"{job.where}.outputs" if job.where else "outputs"
    outputs: tuple[Output, ...]
    if job.outputs is None:
        outputs = DEFAULT_SCALAR_OUTPUTS if ff.kind == "scalar" else DEFAULT_VECTOR_OUTPUTS
        if ff.kind == "vector" and job.grid.ndim == 1:
            outputs = tuple(o for o in outputs if o is not Output.CURL)
    else:
        outputs = job.outputs
        check_outputs(outputs, ff.kind, job.grid.ndim, where)
    if needs_derivatives(ff, outputs):
        built.check_graph(ff, job.grid.ndim, dtype, dev)
    names = tuple(field_names(ff, job.grid.names, outputs))
    if not names:
        raise EngineError(f"{where}: nothing to write; add value, gradient or another field")
    lay = layout(job.grid, job.tile)
    levels = level_count(lay) if job.pyramid else 0
    axes = tuple(axis_values(job.grid, job.dtype))
    return JobPlan(job, ff, dev, dtype, tuple(outputs), names, lay, levels, axes, built)


def _run_split(kernel: Kernel, axes1d: tuple[torch.Tensor, ...], parts: int) -> dict[str, torch.Tensor]:
    """Run the kernel on the tile in ``parts`` slabs along array dimension 0 (the last axis).
    Slabs run eagerly: a kernel compiled for the tile's shape (``dynamic=False``) would compile
    again for each new slab shape, tens of seconds for the last, shorter one."""
    if parts == 1:
        return kernel(axes1d)
    *rest, last = axes1d
    pieces = [kernel.eager(*rest, last[sl]) for sl in _slices(last.shape[0], parts)]
    return {k: torch.cat([p[k] for p in pieces], dim=0) for k in pieces[0]}


def _slices(n: int, parts: int) -> list[slice]:
    step = -(-n // parts)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _compute(kernel: Kernel, axes1d: tuple[torch.Tensor, ...], stats: EvalStats) -> dict[str, torch.Tensor]:
    """The kernel's fields for the tile, split into more slabs each time the device runs out of
    memory. The cache is emptied after the ``except`` block: inside it, the exception's frames
    still hold the failed attempt's tensors, so there would be nothing to free."""
    while True:
        try:
            return _run_split(kernel, axes1d, stats.splits)
        except torch.cuda.OutOfMemoryError:
            pass
        if stats.splits >= axes1d[-1].shape[0]:
            raise EngineError(
                f"CUDA out of memory even with the tile split into {stats.splits} pieces; use a smaller tile: setting"
            )
        _free_cuda_cache()
        stats.splits *= 2


def _free_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _crop(t: torch.Tensor, valid: tuple[int, ...]) -> torch.Tensor:
    return t[tuple(slice(0, n) for n in valid)]


@dataclass
class TileComputer:
    """What one process needs to compute any tile of a plan: the kernel (compiled on first use
    where the job asks), the axes on the device, the check's steps. :func:`evaluate` uses one;
    so does each worker of a cluster (``gradbatch.distributed``)."""

    plan: JobPlan
    stats: EvalStats
    points: int  # points this process is expected to compute: decides compile: auto
    workers: int = 1  # threads that may run the kernel at once

    def __post_init__(self) -> None:
        plan = self.plan
        self.axes_dev = [torch.as_tensor(a, device=plan.device) for a in plan.axes]
        self.kernel = build_kernel(plan.function, plan.job.grid.names, plan.outputs, plan.job.compile, self.points)
        if plan.job.compile is not CompileMode.OFF:
            self.kernel = aot.load(plan, self.kernel, self.workers) or self.kernel
        self.steps = check_steps(plan.axes) if plan.check else ()
        if plan.check and self.stats.check is None:
            self.stats.check = CheckStats()
        self.warm = not self.kernel.compiled or bool(self.kernel.cached)
        self.verified = not self.kernel.cached  # a cached kernel: not until it met eager autograd
        self._lock = threading.Lock()  # stats, when several threads compute tiles

    def fields(
        self, tile: Tile
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], TileSummary, CheckStats | None]:
        """The tile's fields (valid shape), pyramid pieces and summary (non-finite counts, finite
        ranges), on the plan's device, and its gradient check. The device running out of memory
        in the kernel splits the tile (:func:`_compute`); anywhere else (the float64 gradient
        check, the pyramid) it is one line saying what to change."""
        fields, levels, summary, check = self.block(blocks(self.plan.layout, [tile], 1)[0])
        return fields, levels, TileSummary(*(t[0] for t in summary)), check

    def block(
        self, blk: Block
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], TileSummary, CheckStats | None]:
        """:meth:`fields` of a block of tiles computed as one: its fields and levels (the
        block's valid shape), each tile's summary (one row per tile of the block) and, for a
        block of one tile, its gradient check."""
        try:
            return self._block(blk)
        except torch.cuda.OutOfMemoryError:
            pass
        _free_cuda_cache()
        plan = self.plan
        raise EngineError(
            f"{plan.device.type.upper()} out of memory on {blk.label} after its kernel ran "
            f"({'x'.join(map(str, reversed(blk.padded)))} points on {plan.device}, {plan.job.dtype}, "
            f"{'with' if plan.check else 'without'} the gradient check, {plan.levels} pyramid levels); "
            "use a smaller tile: setting" + (" or leave out check" if plan.check else "")
        )

    def _block(
        self, blk: Block
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], TileSummary, CheckStats | None]:
        plan, stats = self.plan, self.stats
        axes1d = block_axes(self.axes_dev, blk.start, blk.padded)
        if not self.warm:
            t0 = time.perf_counter()
            self.kernel = warm_up(self.kernel, axes1d, plan.job.compile)
            stats.compile_s += time.perf_counter() - t0
            self.warm = True
        if not self.verified:
            with self._lock:
                if not self.verified:
                    self._verify(axes1d)
        stats.compiled = self.kernel.compiled
        single = len(blk.tiles) == 1 and blk.padded == plan.layout.tile
        try:
            out = _compute(self.kernel, axes1d, stats)
            check = self._check(blk.tiles[0], axes1d) if single else None
        except (GradbatchError, torch.cuda.OutOfMemoryError, KeyboardInterrupt):
            raise
        except SystemExit as exc:  # user code (a model, a loss) must not end the run with its code
            raise FunctionError(
                f"evaluating {plan.function.source} {plan.function.text!r} on {blk.label} called sys.exit({exc.code!r})"
            ) from None
        except BaseException as exc:  # GeneratorExit or a user's own BaseException too: one line
            raise FunctionError(
                f"evaluating {plan.function.source} {plan.function.text!r} on {blk.label} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc
        out = {k: v.detach() for k, v in out.items()}
        levels = tile_levels(out, blk.valid, plan.levels)
        cropped = {k: _crop(v, blk.valid) for k, v in out.items()}
        if single:  # on the CPU numpy summarises a tile faster than torch
            summary = TileSummary(*(t.unsqueeze(0) for t in tile_summary([cropped[k] for k in plan.fields])))
        else:
            summary = block_summary([out[k] for k in plan.fields], blk.valid, plan.layout.tile)
        return cropped, levels, summary, check

    def _check(self, tile: Tile, axes1d: tuple[torch.Tensor, ...]) -> CheckStats | None:
        """The tile's gradient check (None when the job has none), merged into the stats."""
        if not self.plan.check:
            return None
        assert self.stats.check is not None
        check = finite_difference_check(self.plan.function, expand_axes(axes1d), tile.shape, self.steps)
        with self._lock:
            self.stats.check.merge(check)
        return check

    def _verify(self, axes1d: tuple[torch.Tensor, ...]) -> None:
        """Compare a cached compiled kernel with eager autograd on this tile. A kernel that
        disagrees is removed from the cache, said, and the job goes on eagerly; one that agrees
        is trusted once a tile had finite values to compare (a tile of NaN proves nothing)."""
        kernel = self.kernel
        try:
            differs, compared = aot.agrees(kernel, axes1d, self.plan.dtype)
        except Exception as exc:  # a library that loads but cannot run these inputs
            differs, compared = f"{type(exc).__name__}: {exc}", True
        if differs is None:
            self.verified = compared
            return
        aot.discard(kernel)
        warnings.warn(
            f"the cached compiled kernel {kernel.cached} disagrees with autograd ({differs}); "
            "removed it, computing eagerly",
            stacklevel=2,
        )
        self.kernel = Kernel(kernel.eager, kernel.eager, False)
        self.stats.compiled = False
        self.verified = True

    def host(self, tile: Tile) -> TileResult:
        """The tile as host arrays (CPU tensors are shared, not copied)."""
        t0, compiling = time.perf_counter(), self.stats.compile_s
        fields, levels, summary, check = self.fields(tile)
        result = TileResult(
            tile,
            {k: v.cpu().numpy() for k, v in fields.items()},
            [{k: v.cpu().numpy() for k, v in lv.items()} for lv in levels],
            nonfinite=summary.nonfinite.cpu().numpy(),
            check=check,
            ranges=summary.ranges.cpu().numpy(),
            nonpositive=summary.nonpositive.cpu().numpy(),
        )
        with self._lock:
            self.stats.tiles += 1
            self.stats.points += tile.size
            self.stats.compute_s += time.perf_counter() - t0 - (self.stats.compile_s - compiling)
        return result


def evaluate(
    plan: JobPlan,
    skip: set[int] | frozenset[int] = frozenset(),
    stats: EvalStats | None = None,
    workers: int = 1,
    per_block: int | None = None,
) -> Iterator[TileResult]:
    """Compute every tile of ``plan`` not in ``skip`` (flat tile numbers).

    On the CPU, tiles come in order, ``workers`` computing whole tiles side by side. On CUDA,
    blocks of tiles (:data:`BLOCK_POINTS`) are computed as one and their tiles come block by
    block. ``per_block``: tiles per side of a block instead (1: tile by tile, on any device;
    the tests use it to take the GPU's way on the CPU)."""
    stats = stats if stats is not None else EvalStats()
    dev = plan.device
    todo = [t for t in plan.layout if t.flat not in skip]
    if not todo:
        return
    computer = TileComputer(plan, stats, sum(t.size for t in todo), workers if dev.type != "cuda" else 1)
    if per_block is None:
        per_block = tiles_per_block(plan.layout, BLOCK_POINTS) if dev.type == "cuda" else 1
    if plan.check or computer.kernel.cached:  # the check is per tile; a cached kernel has the tile's shape
        per_block = 1
    if dev.type != "cuda" and per_block == 1:
        yield from _host_tiles(computer, todo, workers)
        return
    yield from _block_tiles(computer, todo, per_block)


def _block_tiles(computer: TileComputer, todo: list[Tile], per_block: int) -> Iterator[TileResult]:
    """Blocks of tiles computed as one, on the device; on CUDA block i's results are copied to
    pinned host memory on a side stream while block i+1 computes. A block the device has no
    memory for outside its kernel (the pyramid, the summary) is computed as smaller blocks."""
    plan, stats = computer.plan, computer.stats
    copies = _Copies(plan.device)
    lay = plan.layout
    fixed = computer.kernel.compiled  # a compiled kernel has one shape: every block the same
    todo_blocks = blocks(lay, todo, per_block, fixed)
    pending: _Pending | None = None
    i = 0
    while i < len(todo_blocks):
        blk = todo_blocks[i]
        t_block, compiling = time.perf_counter(), stats.compile_s
        result = computer.block(blk) if per_block == 1 else _unless_out_of_memory(computer, blk)
        if result is None:  # smaller blocks from this one on
            _free_cuda_cache()
            per_block //= 2
            rest = [t for b in todo_blocks[i:] for t in b.tiles]
            todo_blocks = todo_blocks[:i] + blocks(lay, rest, per_block, fixed)
            continue
        fields, levels, summary, check = result
        stats.compute_s += time.perf_counter() - t_block - (stats.compile_s - compiling)
        started = _Pending(blk, *copies.start(fields, levels, summary), check)
        if pending is not None:
            yield from _finish(pending, stats)
        pending = started
        i += 1
    if pending is not None:
        yield from _finish(pending, stats)


def _host_tiles(computer: TileComputer, todo: list[Tile], workers: int) -> Iterator[TileResult]:
    """CPU tiles in order, ``workers`` computing at once (each tile on one thread: torch's
    kernels release the GIL). The first tile runs alone: it compiles the kernel where the job
    asks. At most 2 x workers results wait, so memory stays flat."""
    if workers <= 1 or len(todo) < 2:
        for tile in todo:
            yield computer.host(tile)
        return
    yield computer.host(todo[0])
    pool = ThreadPoolExecutor(workers, thread_name_prefix="gradbatch-compute")
    waiting: deque[Future[TileResult]] = deque()
    try:
        rest = iter(todo[1:])
        for tile in islice(rest, 2 * workers):
            waiting.append(pool.submit(computer.host, tile))
        while waiting:
            result = waiting.popleft().result()
            for tile in islice(rest, 1):
                waiting.append(pool.submit(computer.host, tile))
            yield result
    finally:
        for f in waiting:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _group_to_pinned(group: dict[str, torch.Tensor], stream: torch.cuda.Stream) -> dict[str, torch.Tensor]:
    """Tensors of one shape and dtype (a tile's fields, or one pyramid level of them) copied to
    pinned host memory as one: stacked on the device, one copy, then a view per name. One
    copy instead of one per field (21 a tile for value, gradient and 5 levels before)."""
    names = list(group)
    for v in group.values():
        v.record_stream(stream)
    host = _to_pinned(torch.stack([group[n] for n in names]), stream)
    return {n: host[i] for i, n in enumerate(names)}


def _to_pinned(v: torch.Tensor, stream: torch.cuda.Stream) -> torch.Tensor:
    host = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
    host.copy_(v, non_blocking=True)
    v.record_stream(stream)
    return host


def _unless_out_of_memory(
    computer: TileComputer, blk: Block
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], TileSummary, CheckStats | None] | None:
    """The block, or None where the device ran out of memory (its memory is free again once
    this returns: the exception's frames are gone)."""
    try:
        return computer._block(blk)
    except torch.cuda.OutOfMemoryError:
        return None


class _Copies:
    """A block's results on their way to the host: on CUDA, to pinned memory on a side stream
    (``start`` returns at once; the event says when they are there); on the CPU, as they are."""

    def __init__(self, device: torch.device) -> None:
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.device = device

    def start(
        self, fields: dict[str, torch.Tensor], levels: list[dict[str, torch.Tensor]], summary: TileSummary
    ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]], TileSummary, torch.cuda.Event | None]:
        stream = self.stream
        if stream is None:
            return fields, levels, summary, None
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            host_fields = _group_to_pinned(fields, stream)
            host_levels = [_group_to_pinned(lv, stream) for lv in levels]
            host_summary = TileSummary(*(_to_pinned(v, stream) for v in summary))
            event = torch.cuda.Event()
            event.record(stream)
        return host_fields, host_levels, host_summary, event


@dataclass
class _Pending:
    """A block whose results are on their way to host memory (see :class:`_Copies`)."""

    block: Block
    fields: dict[str, torch.Tensor]
    levels: list[dict[str, torch.Tensor]]
    summary: TileSummary
    event: torch.cuda.Event | None
    check: CheckStats | None


def _finish(p: _Pending, stats: EvalStats) -> Iterator[TileResult]:
    """The block's tiles, each as views of the block's host arrays."""
    if p.event is not None:
        p.event.synchronize()
    blk = p.block
    fields = {k: v.numpy() for k, v in p.fields.items()}
    levels = [{k: v.numpy() for k, v in lv.items()} for lv in p.levels]
    nonfinite, ranges, nonpositive = (t.numpy() for t in p.summary)
    for tile in blk.tiles:
        at = tuple(s - b for s, b in zip(tile.start, blk.start))
        row = blk.row(tile)
        stats.tiles += 1
        stats.points += tile.size
        yield TileResult(
            tile,
            {k: v[tuple(slice(a, a + n) for a, n in zip(at, tile.shape))] for k, v in fields.items()},
            [
                {
                    k: v[tuple(slice(a >> k_, (a >> k_) + -(-n // (1 << k_))) for a, n in zip(at, tile.shape))]
                    for k, v in lv.items()
                }
                for k_, lv in enumerate(levels, start=1)
            ],
            nonfinite=nonfinite[row],
            check=p.check,
            ranges=ranges[row],
            nonpositive=nonpositive[row],
        )


def compute(plan: JobPlan, levels: bool = False, stats: EvalStats | None = None) -> dict[str, np.ndarray]:
    """Every field of a (small) job as in-memory arrays (``gradbatch.compute`` makes them a
    Dataset, with the job's paths, basins and streamlines).

    Arrays are in array order (axes reversed, ``(y, x)``). With ``levels``, pyramid levels are
    added as ``"<field>@<k>"``. ``stats`` is filled in (the gradient check's result, ...). Jobs
    above :data:`COMPUTE_MAX_POINTS` points are refused: run them into an HDF5 file instead.
    """
    size = plan.job.grid.size
    if size > COMPUTE_MAX_POINTS:
        raise EngineError(
            f"compute() holds whole fields in memory and takes at most "
            f"{COMPUTE_MAX_POINTS:,} points; this job has {size:,}: use run_jobs()"
        )
    np_dtype = plan.axes[0].dtype
    out = {name: np.empty(plan.layout.shape, dtype=np_dtype) for name in plan.fields}
    shapes = {k: tuple(-(-n // (1 << k)) for n in plan.layout.shape) for k in range(1, plan.levels + 1)}
    if levels:
        for k, shape in shapes.items():
            for name in plan.fields:
                out[f"{name}@{k}"] = np.empty(shape, dtype=np_dtype)
    for r in evaluate(plan, stats=stats):
        for name, arr in r.fields.items():
            out[name][r.tile.slices] = arr
        if levels:
            for k, lv in enumerate(r.levels, start=1):
                f = 1 << k
                for name, arr in lv.items():
                    sl = tuple(slice(s // f, s // f + n) for s, n in zip(r.tile.start, arr.shape))
                    out[f"{name}@{k}"][sl] = arr
    return out
