"""What may happen to an output file, decided before anything is computed.

The overwrite and resume rules (an existing output or ``.partial`` is never replaced unless the
user says so; a partial file is resumed only with the settings and code it was started with), the
output's folder, a job's ``render:`` field, and whether the disk has room. :mod:`gradbatch.jobs`
calls these under the output's lock.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import JobConfig
from .errors import ConfigError, StoreError
from .grid import level_shape
from .store import HeldJob, partial_jobs, partial_path, recover_partial
from .summary import human_size

if TYPE_CHECKING:
    from .engine import JobPlan

__all__ = [
    "by_output",
    "make_folder",
    "decide",
    "same_jobs",
    "same_code",
    "check_render",
    "planned_bytes",
    "check_space",
]


def by_output(jobs: Sequence[JobConfig]) -> dict[Path, list[JobConfig]]:
    """Jobs grouped by their output file, in order. One output named two ways (``out.h5``,
    ``./out.h5``) is one output: it gets one lock and one file."""
    groups: dict[Path, list[JobConfig]] = {}
    named: dict[Path, Path] = {}
    for job in jobs:
        try:
            real = Path(os.path.realpath(job.output))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{job.output}: not a usable output path ({exc})") from None
        groups.setdefault(named.setdefault(real, job.output), []).append(job)
    return groups


def make_folder(out: Path) -> None:
    try:
        if out.is_dir():
            raise StoreError(f"{out}: is a folder; give a file name for the output")
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{out}: cannot create its folder ({exc.strerror or exc})") from None


def decide(out: Path, group: list[JobConfig], resume: bool, overwrite: bool, say: Callable[[str], None]) -> bool:
    """Whether ``out`` needs work, checked under its lock, before anything is planned: the
    overwrite/resume rules, and a partial file to resume made openable (or refused, saying why)."""
    part = partial_path(out)
    has_part = part.exists() or part.is_symlink()
    if resume and out.exists() and not has_part:
        held = partial_jobs(out)
        extra = sorted(set(held) - {job.name for job in group})
        if extra:
            raise StoreError(
                f"{out}: holds job{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                "that the job file does not have; run again with --overwrite to replace it"
            )
        same_jobs(out, held, group, "was made with")
        say(f"{out}: complete already; nothing to resume")
        return False
    if out.exists() and not (overwrite or resume):
        raise StoreError(
            f"{out}: exists; pass --overwrite to replace it (the old file is kept until the new one is complete)"
        )
    if has_part and not resume and not overwrite:
        raise StoreError(
            f"{part}: an interrupted run left this; pass --resume to finish it or --overwrite to start again"
        )
    if has_part and resume:
        lost = recover_partial(part)
        if lost:
            say(
                f"{part}: {', '.join(lost)} could not be read (a write cut short); the file was rebuilt "
                "without them, and they are written again"
            )
        held = partial_jobs(part)
        extra = sorted(set(held) - {job.name for job in group})
        if extra:
            raise StoreError(
                f"{part}: holds job{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                "that the job file no longer has (renamed or removed?); it cannot be resumed "
                "with this job file: run again with --overwrite to start afresh"
            )
        same_jobs(part, held, [job for job in group if job.name in held], "was started with")
    return True


def same_jobs(path: Path, held: dict[str, HeldJob], group: Sequence[JobConfig], verb: str) -> None:
    """Each job of ``group`` is in ``held`` with the settings the job file gives it now."""
    missing = [job.name for job in group if job.name not in held]
    changed = [job.name for job in group if job.name in held and held[job.name].job_yaml != job.yaml]
    lost = [name for name in changed if not held[name].job_yaml]
    if lost:
        raise StoreError(
            f"{path}: job {', '.join(map(repr, lost))} has lost its recorded settings (the file was "
            "damaged, e.g. by a full disk as it was written); run again with --overwrite to start afresh"
        )
    if missing or changed:
        what = (
            f"holds no job {', '.join(map(repr, missing))}"
            if missing
            else f"job {', '.join(map(repr, changed))} {verb} different settings than the job file gives it now"
        )
        raise StoreError(f"{path}: {what}; run again with --overwrite to start afresh")


def same_code(path: Path, held: HeldJob, plan: JobPlan) -> None:
    if held.code_hash != plan.function.code_hash:
        raise StoreError(
            f"{path}: job {plan.job.name!r} was made with other code for its callable "
            f"{plan.function.text!r} (its source files changed); run again with --overwrite "
            "to start afresh"
        )


def check_render(plan: JobPlan) -> None:
    """A job's ``render:`` must name a field the job writes (known once it is planned)."""
    r = plan.job.render
    if r is None:
        return
    at = f"{plan.job.where}.render" if plan.job.where else "render"
    if r.field is not None and r.field not in plan.fields:
        raise ConfigError(f"{at}.field: the job writes no field {r.field!r}; its fields: {', '.join(plan.fields)}")


def planned_bytes(plan: JobPlan) -> int:
    """Upper bound of a job's bytes on disk: every field and pyramid level uncompressed (what
    incompressible data would take), plus the paths, basins and streamlines it records."""
    itemsize = plan.axes[0].dtype.itemsize
    points = plan.job.grid.size
    pyramid = sum(math.prod(level_shape(plan.layout.shape, k)) for k in range(1, plan.levels + 1))
    return (points + pyramid) * len(plan.fields) * itemsize


def check_space(out: Path, plans: list[JobPlan], force: bool, say: Callable[[str], None]) -> None:
    need = sum(planned_bytes(p) for p in plans)
    part = partial_path(out)
    if part.is_file():
        need = max(0, need - part.stat().st_size)
    free = shutil.disk_usage(out.parent).free
    for p in plans:
        say(
            f"{p.job.name}: planned {p.job.grid.size:,} points x {len(p.fields)} fields ({p.job.dtype}), "
            f"at most {human_size(planned_bytes(p))} on disk before compression"
        )
    if need > free and not force:
        raise StoreError(
            f"{out}: the jobs may need up to {human_size(need)} (uncompressed) and "
            f"{out.parent} has {human_size(free)} free; free some space, make the grid "
            "smaller, or pass --force if compression will make it fit"
        )
