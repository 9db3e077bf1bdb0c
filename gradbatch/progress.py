"""Where a running job stands: one :class:`Progress` event after each step of each phase (its
tiles, then its paths, basins and streamlines), and :class:`Bars`, a progress bar per phase.

``run_jobs(progress=...)`` takes ``True`` (the bars), ``False``/``None`` (nothing) or a callable
that receives every event; an event prints as one line::

    ripple: tiles 12/20 (60%) in 1.2s, 10.4 Mpts/s, ETA 0.8s
    hb: basins 4,096/16,384 starts (25%) in 3.0s
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["Progress", "ProgressFn", "Bars", "progress_fn", "Throttle"]


@dataclass(frozen=True)
class Progress:
    """Where a running job stands. ``phase`` is the phase running, with ``done`` of ``total``
    ``unit`` (tiles; path steps over every optimiser; basin starts; streamline runs) and
    ``elapsed_s`` since it began. The job's tiles are counted in every phase: after the tiles
    phase they are all done."""

    job: str
    tiles_done: int
    tiles_total: int
    points_done: int
    points_total: int
    elapsed_s: float
    phase: str = "tiles"
    done: int = -1  # -1: the tiles phase's tiles_done
    total: int = -1
    unit: str = "tiles"
    points_resumed: int = 0  # of points_done, those an earlier run computed (not in the rate)

    def __post_init__(self) -> None:
        if self.done < 0:
            object.__setattr__(self, "done", self.tiles_done)
        if self.total < 0:
            object.__setattr__(self, "total", self.tiles_total)

    @property
    def points_per_s(self) -> float:
        """This run's rate over the tiles (points an earlier run computed left out)."""
        if self.elapsed_s <= 0 or self.phase != "tiles":
            return 0.0
        return (self.points_done - self.points_resumed) / self.elapsed_s

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 1.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left in this phase at its rate so far (None: no rate yet)."""
        if self.phase == "tiles":
            rate = self.points_per_s
            return (self.points_total - self.points_done) / rate if rate > 0 else None
        if self.done <= 0 or self.elapsed_s <= 0:
            return None
        return (self.total - self.done) * self.elapsed_s / self.done

    def __str__(self) -> str:
        line = f"{self.job}: {self.phase} {self.done:,}/{self.total:,}"
        if self.unit and self.unit != self.phase:
            line += f" {self.unit}"
        line += f" ({int(self.fraction * 100)}%) in {duration(self.elapsed_s)}"
        rate = self.points_per_s
        if rate >= 1e5:
            line += f", {rate / 1e6:.1f} Mpts/s"
        elif rate > 0:
            line += f", {rate:,.0f} points/s"
        if self.done < self.total and self.eta_s is not None:
            line += f", ETA {duration(self.eta_s)}"
        return line


ProgressFn = Callable[[Progress], None]


def duration(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


class Throttle:
    """Passes an event on when its phase starts or ends, or its whole percentage grows: at most
    about a hundred and two a phase, whatever the number of tiles or steps."""

    def __init__(self, fn: ProgressFn) -> None:
        self.fn = fn
        self._last: tuple[str, str, int] | None = None

    def __call__(self, p: Progress) -> None:
        pct = int(p.fraction * 100)
        key = (p.job, p.phase, pct)
        if key == self._last:  # the same whole percent (a start or an end said twice too)
            return
        self._last = key
        self.fn(p)


class Bars:
    """One progress bar per job and phase, through tqdm's ``tqdm.auto``: a widget in Jupyter (with
    ipywidgets), a text bar on a terminal's stderr."""

    def __init__(self, **tqdm_options: Any) -> None:
        self.options = tqdm_options
        self._bar: Any = None
        self._key: tuple[str, str] | None = None

    def __call__(self, p: Progress) -> None:
        key = (p.job, p.phase)
        if key != self._key:
            self.close()
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=p.total, desc=f"{p.job}: {p.phase}", unit=f" {p.unit}" if p.unit else "it", **self.options
            )
            self._key = key
        bar = self._bar
        bar.update(p.done - bar.n)
        if p.phase == "tiles" and p.points_per_s > 0:
            bar.set_postfix_str(f"{p.points_per_s / 1e6:.1f} Mpts/s", refresh=False)
        if p.done >= p.total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._key = None, None


def progress_fn(progress: bool | ProgressFn | None) -> ProgressFn | None:
    """What ``run_jobs(progress=...)`` hands each event to: the bars (True), nothing (False,
    None), or the caller's function, throttled alike."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return Throttle(Bars())
    if not callable(progress):
        raise ConfigError(f"progress: expected True, False or a function of one Progress event, got {progress!r}")
    return Throttle(progress)
