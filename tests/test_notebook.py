"""gradbatch.explore: the window's view as a Jupyter widget (vispy's jupyter_rfb backend), driven
here as the browser would drive it: resize, wheel and key events to the widget, frames back."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config

pytestmark = pytest.mark.gl

JOB = """
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 1024], y: [-5, 5, 1024]}
paths: {starts: [[-4, 0], [1, 1]], steps: 120, optimizers: [{name: adam, lr: 0.05}]}
"""


@pytest.fixture(scope="module")
def hb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nb") / "hb.h5"
    gradbatch.run_jobs(parse_config(JOB, output=out))
    return out


async def _frames(
    widget: object, n: int, until: Callable[[], bool] = lambda: True, limit_s: float = 20.0
) -> np.ndarray:
    """At least ``n`` frames, and more until ``until()`` holds (a loaded machine reads slower)."""
    frame, drawn, t0 = None, 0, time.monotonic()
    while drawn < n or (not until() and time.monotonic() - t0 < limit_s):
        await asyncio.sleep(0.03)  # the view's timer and the loader run while the loop does
        frame = widget.get_frame()  # type: ignore[attr-defined]
        drawn += 1
    assert frame is not None
    return frame


def test_explore_is_a_widget_that_streams_a_finer_level_when_zoomed_in(hb: Path) -> None:
    pytest.importorskip("jupyter_rfb")
    ipywidgets = pytest.importorskip("ipywidgets")

    async def drive() -> None:
        box = gradbatch.explore(hb, size=(640, 480))
        assert isinstance(box, ipywidgets.VBox) and box.children[0] is box.frame
        fv, widget = box.view, box.frame
        levels: list[int] = []
        poll = fv.poll

        def recording() -> object:
            r = poll()
            if r is not None:
                levels.append(r.level)
            return r

        fv.poll = recording
        try:
            widget.handle_event({"type": "resize", "width": 640, "height": 480, "ratio": 1})
            frame = await _frames(widget, 40, lambda: bool(levels) and fv.decor.revealed)
            assert frame.shape == (480, 640, 4) and levels and levels[-1] >= 1  # 1024^2 in ~500 px: a coarse level
            assert len(np.unique(frame.reshape(-1, 4), axis=0)) > 50  # a picture, not a blank frame
            coarse, window = levels[-1], fv.window
            for _ in range(4):  # the wheel, as the browser sends it: zoom in at the middle
                widget.handle_event({"type": "wheel", "x": 300, "y": 240, "dx": 0, "dy": -300, "modifiers": []})
            await _frames(widget, 40, lambda: levels[-1] < coarse)
            assert fv.window[1] - fv.window[0] < (window[1] - window[0]) / 4
            assert levels[-1] < coarse  # the view streamed a finer level of the pyramid
            # the path slider steps the paths, and the view's own stepping moves the slider
            assert box.slider is not None and box.slider.max == fv.state.path_steps > 0
            box.slider.value = 10
            assert fv.state.path_step == 10
            widget.handle_event({"type": "key_down", "key": "]", "modifiers": []})
            await _frames(widget, 3)
            assert box.slider.value == fv.state.path_step > 10
            widget.handle_event({"type": "key_down", "key": "a", "modifiers": []})  # the window's keys
            assert "arrows" not in fv.state.visible
        finally:
            fv.close()

    asyncio.run(drive())


def test_explore_without_the_widgets_gives_the_static_picture(hb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jupyter_rfb", None)
    with pytest.warns(UserWarning, match="jupyter_rfb is not installed.*static picture"):
        fig = gradbatch.explore(hb, size=(600, 450), layers=["image"])
    assert isinstance(fig, gradbatch.viewer.render.Figure) and fig.options.layers == ("image",)
    assert fig.png[:4] == b"\x89PNG"


def test_explore_of_a_1d_job_gives_its_curve_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    gradbatch.run_jobs(parse_config("name: c\nfunction: 'x**3 + 2*x**2 - x'\ngrid: {x: [-3, 2, 200]}", output=out))

    async def call() -> object:
        return gradbatch.explore(out, size=(600, 450))

    with pytest.warns(UserWarning, match="a 1D job is drawn as a curve"):
        fig = asyncio.run(call())
    assert fig.png[:4] == b"\x89PNG"
