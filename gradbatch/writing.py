"""Tiles from the engine into the store: computing tile i+1 overlaps encoding tiles i, i-1, ...
on a pool of threads (one a core: the codecs release the GIL) and writing them, in order, on one
writer thread (h5py takes one call at a time, and a chunk stored as it is costs it a copy).
Bounded queues keep memory flat. And what the store writes beside them for pictures: each
axis's name and units.

    compute (this thread) --> encoders (pool) --> writer thread --> the file
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from .engine import JobPlan, TileResult, cores
from .store import JobWriter

__all__ = ["write_tiles", "axis_attrs", "encoder_count"]

Encoded = dict[str, tuple[int, bytes]]


def encoder_count() -> int:
    """Threads encoding chunks by default: the cores this process may use."""
    return cores()


def write_tiles(
    writer: JobWriter, tiles: Iterable[TileResult], written: Callable[[int, int], None], encoders: int | None = None
) -> float:
    """Write every result of ``tiles`` (computed on this thread while ``encoders`` threads encode
    and the writer thread writes), then close the writer; ``written(tiles, points)`` after each
    tile is queued. Returns the writer's busy seconds. On any failure the writer is drained and
    the file abandoned."""
    n = encoders or encoder_count()
    pool = ThreadPoolExecutor(n, thread_name_prefix="gradbatch-encode")
    writer.encoders = pool  # the pyramid's chunks too
    thread = _WriterThread(writer, depth=n + 1)
    thread.start()
    try:
        for result in tiles:
            encoded = (
                None
                if result.chunks is not None
                else pool.submit(writer.prepare_tile, result.tile, result.fields, result.levels)
            )
            thread.put((result, encoded))
            written(thread.written, thread.points)
        thread.put(None)
        thread.join()
        if thread.error is not None:
            raise thread.error
        writer.close()
    except BaseException:
        if thread.is_alive():
            thread.error = thread.error or RuntimeError("stopped")  # drain without writing more
            thread.queue.put(None)
            thread.join(timeout=60)
        writer.abandon()
        raise
    finally:
        writer.encoders = None
        pool.shutdown(wait=True, cancel_futures=True)
    return thread.busy_s


class _WriterThread(threading.Thread):
    """Writes tile results from a bounded queue, in order, each once its chunks are encoded."""

    def __init__(self, writer: JobWriter, depth: int = 2) -> None:
        super().__init__(name="gradbatch-writer", daemon=True)
        self.writer = writer
        self.queue: queue.Queue[tuple[TileResult, Future[Encoded] | None] | None] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.written = 0
        self.points = 0
        self.busy_s = 0.0

    def run(self) -> None:
        while True:
            entry = self.queue.get()
            if entry is None:
                return
            if self.error is not None:
                continue
            item, encoded = entry
            try:
                chunks = encoded.result() if encoded is not None else item.chunks
                t0 = time.perf_counter()
                self.writer.write_tile(
                    item.tile,
                    item.fields,
                    item.levels,
                    chunks,
                    item.nonfinite,
                    item.check.row(len(item.tile.shape)) if item.check is not None else None,
                    ranges=item.ranges,
                    nonpositive=item.nonpositive,
                    placed=encoded is not None,
                )
                self.busy_s += time.perf_counter() - t0
            except BaseException as exc:  # handed to the main thread, which re-raises it
                self.error = exc
            self.written += 1
            self.points += item.tile.size

    def put(self, item: tuple[TileResult, Future[Encoded] | None] | None) -> None:
        while True:
            if self.error is not None and item is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


def axis_attrs(plan: JobPlan) -> dict[str, dict[str, str]]:
    """Each axis's ``long_name`` and ``units`` for pictures: the job's ``labels:``/``units:``,
    else what a landscape's axes are (its model's parameters, or directions in weight space)."""
    names = _landscape_names(plan)
    out: dict[str, dict[str, str]] = {}
    for i, a in enumerate(plan.job.grid.axes):
        long_name = a.label or (names[i] if i < len(names) else "")
        out[a.name] = {k: v for k, v in (("long_name", long_name), ("units", a.unit)) if v}
    return out


def _landscape_names(plan: JobPlan) -> list[str]:
    """A loss landscape's names for its axes, in grid order ([] for other functions)."""
    making = plan.built.landscape
    if making is None:
        return []
    axes = plan.job.grid.names
    a = making.attrs
    if a.get("kind") == "data":  # a two-parameter model: slope, then bias
        return [f"{role} {name}" for role, name in zip(("slope", "bias"), axes)]
    variance = a.get("explained_variance") or []
    kinds = {"random": "random direction", "filter": "filter-normalised direction", "checkpoints": "direction"}
    names = []
    for i in range(len(axes)):
        if a.get("directions") == "pca":
            share = f" ({float(variance[i]):.1%} of the training's variance)" if i < len(variance) else ""
            names.append(f"principal direction {i + 1}{share}")
        else:
            names.append(f"{kinds.get(str(a.get('directions')), 'direction')} {i + 1}")
    return names
