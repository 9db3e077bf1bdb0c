"""What the window shows, kept apart from how it is drawn: no GL, no vispy, no file reads.

:class:`ViewState` is the window's model (napari keeps its layer model apart from the canvas the
same way): which job of the file and which plane of a 3D job, which layers are on, where the
descent paths are played to, which window request is out and which response was last applied.
The canvas (:mod:`gradbatch.viewer.canvas`) turns key presses and camera moves into calls here
and draws what the state says; everything here is plain Python, tested without a GL context.

It is a mutable object on purpose: the window changes it on every event, one thread (the GUI's)
owns it, and responses from the loader thread reach it only through the canvas's queue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..records import WindowRequest, WindowResponse
from .limits import default_field
from .options import LayerOptions
from .prepare import arrow_canvas
from .window_layout import check_plane, plane_words, snap_plane

__all__ = ["KEY_ACTIONS", "ShownJob", "ViewState", "key_action"]

KEY_ACTIONS = {  # key text -> action; the list a user reads is viewer.KEYS
    "i": "toggle image",
    "a": "toggle arrows",
    "s": "toggle streamlines",
    "p": "toggle paths",
    "b": "toggle basins",
    "o": "toggle contours",
    " ": "play",
    "[": "back",
    "]": "forward",
    ",": "plane down",
    ".": "plane up",
    "j": "next job",
    "r": "reset",
    "d": "descent",
    "c": "screenshot",
}


def key_action(text: str, name: str = "") -> str | None:
    """The action of a key press (``text``: the character typed, any case; ``name``: the key's
    name, for keys that type nothing useful such as ``Space``); None for a key with no action."""
    return KEY_ACTIONS.get(" " if name == "Space" else text.lower())


@dataclass(frozen=True)
class ShownJob:
    """What the state needs to know of a job it shows (from the file's reader of that job).

    ``axes``: the two axes on screen (x, y); ``slice_axis``: the axis a 3D job is cut across
    (None for 2D); ``plane_range``: (first, last, step) of that axis; ``extent``: (x0, x1, y0, y1)."""

    name: str
    axes: tuple[str, str]
    fields: tuple[str, ...]
    vectors: tuple[str, str] | None
    extent: tuple[float, float, float, float]
    slice_axis: str | None = None
    plane_range: tuple[float, float, float] | None = None


class ViewState:
    """The window's state for the file at ``path`` with ``jobs`` (name -> number of axes, the
    viewable ones in file order). ``slice_axis``: the axis to cut 3D jobs across (None: their
    last); ``surface``: seed 000's 3D picture, read once per plane, with no window requests;
    ``plane``: where the first 3D job shown is cut (None: its middle; refused outside its axis)."""

    def __init__(
        self,
        path: str | Path,
        jobs: dict[str, int],
        options: LayerOptions = LayerOptions(),
        slice_axis: str | None = None,
        surface: bool = False,
        plane: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.requested_plane = plane  # the plane asked for, until the user moves it
        self.jobs = dict(jobs)
        self.options = options
        self.slice_axis = slice_axis
        self.surface = surface
        self.job: ShownJob | None = None
        self.plane: float | None = None
        self.shown_plane: float | None = None  # the plane of the last response drawn (the file's own)
        self.visible: tuple[str, ...] = tuple(options.layers)
        self.playing = False
        self.path_steps = 0  # the longest descent path's steps (0: no paths drawn)
        self.path_step = 0  # the paths are drawn up to this step
        self.status = ""  # the mouse readout
        self.pending: WindowRequest | None = None  # sent to the loader, not answered yet
        self.last_applied: WindowResponse | None = None
        self.applied = 0  # responses applied so far (a count: the responses themselves are not kept)
        self.screenshots = 0

    # -- the job shown ------------------------------------------------------------------------
    def enter(self, job: ShownJob) -> None:
        """Show ``job`` (again): the same job keeps its plane, another starts at its middle plane.
        Layers start as the options say, the paths stopped; outstanding requests are forgotten."""
        same = self.job is not None and job.name == self.job.name
        r = job.plane_range
        if r is None:
            self.plane = None
        elif self.requested_plane is not None and (not same or self.plane is None):
            check_plane(job.slice_axis, self.requested_plane, r)
            self.plane = snap_plane(self.requested_plane, r)
        elif not same or self.plane is None:
            self.plane = (r[0] + r[1]) / 2
        if not same:
            self.shown_plane = None
        self.job = job
        self.visible = tuple(self.options.layers)
        self.playing = False
        self.path_steps = self.path_step = 0
        self.pending = None

    def next_job(self) -> tuple[str, str | None]:
        """The file's next viewable job after the one shown (wrapping round), and the slice axis
        to open it with (the one asked for if it is 3D, else None)."""
        names = list(self.jobs)
        now = self.job.name if self.job is not None else None
        job = names[(names.index(now) + 1) % len(names)] if now in names else names[0]
        return job, self.slice_axis if self.jobs[job] == 3 else None

    def home(self) -> tuple[float, float, float, float]:
        """The camera rectangle (x, y, width, height) that shows the whole job."""
        x0, x1, y0, y1 = self._shown().extent
        return x0, y0, x1 - x0, y1 - y0

    def move_plane(self, steps: int) -> float | None:
        """A 3D job: move the plane ``steps`` grid steps, kept within the axis; returns its
        coordinate (None for a 2D job)."""
        r = self._shown().plane_range
        if r is None or self.plane is None:
            return None
        lo, hi, d = r
        self.plane = min(max(self.plane + steps * d, min(lo, hi)), max(lo, hi))
        self.requested_plane = self.shown_plane = None  # moved by hand: the grid's own planes
        return self.plane

    # -- layers and options -------------------------------------------------------------------
    def toggle(self, layer: str) -> tuple[str, ...]:
        """Switch ``layer`` off if it is on, else on (drawn last); returns the layers on."""
        self.visible = tuple(x for x in self.visible if x != layer) if layer in self.visible else (*self.visible, layer)
        return self.visible

    def flip_descent(self, current: bool | None = None) -> LayerOptions:
        """Arrows downhill instead of uphill, or back (``current``: the direction drawn now, where
        the options left it to the job); returns the new options."""
        now = self.options.descent if current is None else current
        self.options = replace(self.options, descent=not now)
        return self.options

    # -- descent paths ------------------------------------------------------------------------
    def paths_drawn(self, steps: int, step: int) -> None:
        """The layers drew paths of ``steps`` steps up to ``step``."""
        self.path_steps, self.path_step = steps, step

    def play(self) -> int | None:
        """Start or pause playing the paths; returns 0 when they must first go back to their
        start (they were drawn whole), else None. Without paths, nothing happens."""
        if not self.path_steps:
            return None
        restart = 0 if self.path_step >= self.path_steps else None
        self.playing = not self.playing
        return restart

    def tick(self) -> int | None:
        """While playing: the step to draw next (a two-hundredth of the paths on); at the end,
        playing stops. None when not playing."""
        if not self.playing:
            return None
        step = self.path_step + max(1, self.path_steps // 200)
        if step >= self.path_steps:
            step, self.playing = self.path_steps, False
        return step

    def nudge(self, forward: bool) -> int:
        """Pause and return the step a fiftieth of the paths forward or back (the layers clip it)."""
        self.playing = False
        delta = max(1, self.path_steps // 50)
        return self.path_step + (delta if forward else -delta)

    # -- streaming ----------------------------------------------------------------------------
    def request(self, window: tuple[float, float, float, float], canvas: tuple[int, int]) -> WindowRequest | None:
        """The request for ``window`` (x0, x1, y0, y1) on a ``canvas`` (width, height) view, to send
        to the loader; None when there is nothing to send: the surface is read once, and the same
        request is still being read."""
        if self.surface:
            return None
        job = self._shown()
        opt = self.options
        name = opt.field or default_field(job.fields)
        fields = (name,) if name in job.fields else ()
        vectors = tuple(job.vectors or ())
        req = WindowRequest(
            job.name,
            window,
            canvas,
            fields,
            vectors + fields if vectors else (),  # the value beside each arrow: none where it is undefined
            arrow_canvas(canvas, opt.pixels_per_arrow),
            self.plane,
        )
        if req == self.pending:
            return None
        self.pending = req
        return req

    def take(self, resp: WindowResponse) -> bool:
        """Whether to draw ``resp``, the newest response that arrived: not when it was read for a
        job shown before a switch. A response drawn is counted and kept as the last one."""
        if self.job is None or resp.request.job != self.job.name:
            return False
        if resp.request == self.pending:
            self.pending = None
        if resp.plane is not None:
            self.shown_plane = resp.plane
        self.last_applied = resp
        self.applied += 1
        return True

    def failed(self) -> None:
        """The loader could not read the request out: the same window may be asked for again."""
        self.pending = None

    # -- words on screen ----------------------------------------------------------------------
    def readout(self, x: float, y: float, values: dict[str, float] | None) -> str:
        """The status line for the mouse at (x, y): the fields there, or 'outside'."""
        a, b = self._shown().axes
        where = f"{a} {x:.4g}, {b} {y:.4g}"
        self.status = f"{where}: " + (", ".join(f"{k} {v:.4g}" for k, v in values.items()) if values else "outside")
        return self.status

    def title(self) -> str:
        """The window's title: file, job, plane, path step and the mouse readout."""
        job = self._shown()
        parts = [f"gradbatch: {self.path.name} [{job.name}]"]
        if self.plane is not None:
            parts.append(self.plane_text())
        if self.path_steps:
            parts.append(f"step {self.path_step}/{self.path_steps}")
        if self.status:
            parts.append(self.status)
        return "  ".join(parts)

    def plane_text(self) -> str:
        """A 3D job's plane in words: its axis and actual coordinate, and what was asked when the
        grid has no plane there (``z = 0.0403 (nearest grid plane to 0)``); '' for 2D."""
        if self.plane is None:
            return ""
        shown = self.shown_plane if self.shown_plane is not None else self.plane
        return plane_words(self._shown().slice_axis, shown, self.requested_plane)

    def screenshot_path(self) -> Path:
        """Where the next screenshot goes: FILE-N.png beside the file, N counting from 1."""
        self.screenshots += 1
        return self.path.with_name(f"{self.path.stem}-{self.screenshots}.png")

    def _shown(self) -> ShownJob:
        if self.job is None:
            raise RuntimeError("no job shown yet: call enter() first")
        return self.job
