"""Human-readable and JSON descriptions of a gradbatch file (what `gradbatch info` prints)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import StoreError
from .records import FieldStats
from .store import JobInfo, StoreInfo, inspect, plain

__all__ = ["describe", "info_as_dict", "human_size", "nonfinite_lines", "stats_line"]


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def info_as_dict(info: StoreInfo) -> dict[str, Any]:
    """``info`` as JSON-ready data: JSON attributes decoded, booleans as booleans, numbers as
    numbers, NaN and infinities as None (JSON has no such numbers)."""
    jobs = []
    for j in info.jobs:
        attrs = {k: _decode(v) for k, v in j.attrs.items()}
        jobs.append({**asdict(j), "attrs": attrs})
    return _json(
        {"path": str(info.path), "format": info.format, "version": info.version, "partial": info.partial, "jobs": jobs}
    )


def _json(v: Any) -> Any:
    v = plain(v)
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def _decode(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


@contextmanager
def _attribute(info: StoreInfo, job: JobInfo, key: str, value: Any) -> Iterator[None]:
    """A provenance attribute not shaped as gradbatch writes it ends in one StoreError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise StoreError(
            f"{info.path}: attribute {key!r} of job {job.name!r} is not as gradbatch writes it: {shown}"
        ) from None


def nonfinite_lines(counts: Any, points: int) -> list[str]:
    """``value: NaN at 20,100 of 40,401 points`` for each field with non-finite points.

    ``counts``: {field: {"nan": n, "posinf": n, "neginf": n}} (the job's ``nonfinite``
    attribute); ``points``: the grid's point count."""
    if not isinstance(counts, dict):
        raise TypeError("nonfinite: expected a mapping of fields")
    names = (("nan", "NaN"), ("posinf", "+inf"), ("neginf", "-inf"))
    lines = []
    for name, c in counts.items():
        n = {k: c.get(k, 0) for k, _ in names}
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= points for v in n.values())
            or sum(n.values()) > points
        ):
            raise ValueError(f"nonfinite: bad counts for {name!r}")
        found = [(label, n[k]) for k, label in names if n[k]]
        if not found:
            continue
        if sum(n.values()) == points:
            if len(found) == 1:
                label = found[0][0]
                what = "NaN" if label == "NaN" else f"infinite ({label})"
                why = "undefined everywhere" if label == "NaN" else "the function is infinite everywhere"
                lines.append(f"{name}: {what} at every point ({points:,}); {why}")
            else:
                parts = ", ".join(f"{label} at {k:,}" for label, k in found)
                lines.append(f"{name}: non-finite at every point ({points:,}): {parts}")
        else:
            lines.append(f"{name}: " + ", ".join(f"{label} at {k:,} of {points:,} points" for label, k in found))
    return lines


def stats_line(s: FieldStats) -> str:
    """``value: finite range -1.2 .. 3.4 (exact), 3 NaN``: a field's range and what is not finite."""
    if math.isfinite(s.minimum):
        how = "exact" if s.exact else f"from pyramid level {s.percentile_level}, block means"
        text = f"{s.field}: finite range {s.minimum:.6g} .. {s.maximum:.6g} ({how})"
    else:
        text = f"{s.field}: no finite values"
    counts = [(s.nan, "NaN"), (s.posinf, "+inf"), (s.neginf, "-inf")]
    return text + "".join(f", {n:,} {label}" for n, label in counts if n)


def describe(info: StoreInfo | str | Path) -> str:
    """What a file holds, as text: jobs, function, axes, device, timings, check, non-finite
    points, fields and their range, pyramid."""
    if not isinstance(info, StoreInfo):
        info = inspect(info)
    lines = [f"{info.path}  ({info.format}, written by gradbatch {info.version})"]
    for j in info.jobs:
        lines += ["", *_job_lines(info, j), *_field_lines(j), *_stats_lines(j), *_overlay_lines(info, j)]
        if j.levels:
            lines.append(
                f"  pyramid    {len(j.levels)} level{'s' if len(j.levels) > 1 else ''}: "
                + ", ".join(" x ".join(map(str, s)) for s in j.levels)
            )
    return "\n".join(lines)


def _job_lines(info: StoreInfo, j: JobInfo) -> list[str]:
    """The job's state, function, axes, settings, timings, check, minima, non-finite points."""
    a = {k: _decode(v) for k, v in j.attrs.items()}
    state = "complete" if j.complete else f"INCOMPLETE: {j.tiles_done}/{j.tiles_total} tiles done"
    lines = [
        f"job {j.name}  [{state}]",
        f"  function   {a.get('function', '?')}  ({a.get('function_source', '?')}, {a.get('kind', '?')})",
    ]
    lines += [f"  axis {name:<6} {first:g} .. {last:g}, {n} points{_label(j, name)}" for name, first, last, n in j.axes]
    lines.append(
        f"  dtype      {a.get('dtype', '?')}   device {a.get('device', a.get('device_requested', '?'))}"
        f"   compression {a.get('compression', '?')}   tile {a.get('tile')}"
    )
    t = a.get("timings")
    if t is not None:
        with _attribute(info, j, "timings", t):
            lines.append(
                f"  timings    wall {t['wall_s']:.2f}s, compute {t['compute_s']:.2f}s, "
                f"write {t['write_s']:.2f}s, compile {t['compile_s']:.2f}s"
                f"   ({float(a.get('points_per_s', 0)) / 1e6:.1f} Mpts/s)"
            )
    c = a.get("check")
    if c is not None:
        with _attribute(info, j, "check", c):
            lines.append(
                f"  check      max |autograd - central difference| = {c['max_abs_error']:.3e} "
                f"at {tuple(round(v, 6) for v in c['at'])}"
            )
    minima = a.get("minima") or []
    if minima:
        with _attribute(info, j, "minima", minima):
            lines.append("  minima     " + "; ".join(f"{tuple(m['point'])} = {m['value']:g}" for m in minima))
    if "nonfinite" in a:
        points = math.prod(j.fields[0].shape) if j.fields else 0
        with _attribute(info, j, "nonfinite", a["nonfinite"]):
            lines += [f"  non-finite {line}" for line in nonfinite_lines(a["nonfinite"], points)]
    lines.append(f"  versions   torch {a.get('torch_version', '?')}, gradbatch {a.get('gradbatch_version', '?')}")
    return lines


def _label(j: JobInfo, axis: str) -> str:
    """``   "slope m" [m]``: an axis's name and units for pictures, where the file has them."""
    long_name, units = j.labels.get(axis, ("", ""))
    return (f"   {long_name!r}" if long_name else "") + (f" [{units}]" if units else "")


def _field_lines(j: JobInfo) -> list[str]:
    lines = ["  fields"]
    for f in j.fields:
        raw = math.prod(f.shape) * (4 if f.dtype == "float32" else 8)
        lines.append(
            f"    {f.name:<12} ({', '.join(f.dims)}) {' x '.join(map(str, f.shape))} {f.dtype}, "
            f"{human_size(f.stored_bytes)} on disk ({raw / max(f.stored_bytes, 1):.2f}x)"
        )
    return lines


def _stats_lines(j: JobInfo) -> list[str]:
    return [f"  {'stats' if i == 0 else '':<10} {stats_line(s)}" for i, s in enumerate(j.stats.values())]


def _overlay_lines(info: StoreInfo, j: JobInfo) -> list[str]:
    """The landscape's makings, paths, basins and streamlines, one line each."""
    lines = []
    t = j.trajectories
    if "landscape" in t:
        la = t["landscape"]
        with _attribute(info, j, "landscape", la):
            lines.append(_landscape_line(la))
    for label, p in t.get("paths", {}).items():
        stopped = ", ".join(f"{k} {v}" for k, v in p["stopped"].items())
        lines.append(
            f"  paths      {label} ({p['optimizer']}): {p['paths']} paths, up to {p['steps']} steps; stopped: {stopped}"
        )
    if "basins" in t:
        b = t["basins"]
        found = "; ".join(
            f"{kind} at {tuple(round(v, 4) for v in pt)} ({n} starts)"
            for kind, pt, n in zip(b["kinds"], b["points"], b["counts"])
        )
        lines.append(f"  basins     {' x '.join(map(str, b['resolution']))} starts, {b['minima']} found: {found}")
    if "streamlines" in t:
        s_ = t["streamlines"]
        lines.append(f"  streamlines {s_['lines']} lines of the {s_['field']} field, {s_['points']:,} points")
    return lines


def _landscape_line(la: dict[str, Any]) -> str:
    if la.get("kind") == "data":
        fit = f"; least squares: slope {la['lstsq'][0]:.6g}, bias {la['lstsq'][1]:.6g}" if "lstsq" in la else ""
        return f"  landscape  {la.get('model')} regression, {la.get('loss')} loss over {la.get('rows')} rows{fit}"
    var = la.get("explained_variance")
    ev = f"; explained variance {', '.join(f'{v:.1%}' for v in var)}" if var is not None else ""
    return (
        f"  landscape  {la.get('directions')} directions, loss at the centre "
        f"{la.get('loss_at_theta', float('nan')):.6g}{ev}"
    )
