"""The window's state without GL: keys, layers, jobs, planes, paths, requests and responses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradbatch.records import WindowRequest, WindowResponse
from gradbatch.viewer import KEYS
from gradbatch.viewer.options import LayerOptions
from gradbatch.viewer.state import KEY_ACTIONS, ShownJob, ViewState, key_action

FLAT = ShownJob("flat", ("x", "y"), ("value", "grad_x", "grad_y"), ("grad_x", "grad_y"), (0.0, 4.0, -1.0, 1.0))
CUBE = ShownJob("cube", ("x", "y"), ("value",), None, (0.0, 1.0, 0.0, 1.0), "z", (-1.0, 1.0, 0.25))


def _state(**kw: object) -> ViewState:
    s = ViewState(Path("/data/run.h5"), {"flat": 2, "cube": 3, "other": 2}, **kw)  # type: ignore[arg-type]
    s.enter(FLAT)
    return s


def _response(req: WindowRequest, level: int = 0) -> WindowResponse:
    return WindowResponse(req, level, np.linspace(0, 1, 3), np.linspace(0, 1, 2))


def test_the_state_imports_neither_vispy_nor_torch() -> None:
    code = "import sys, gradbatch.viewer.state; print(' '.join(sys.modules))"
    mods = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        ).stdout.split()
    )
    assert "gradbatch.viewer.state" in mods and "vispy" not in mods and "torch" not in mods


def test_every_documented_key_has_an_action() -> None:
    documented = {k for keys in KEYS for k in keys.split() if k != "space"} | {" "}
    assert documented == set(KEY_ACTIONS)
    assert key_action("A") == key_action("a") == "toggle arrows"
    assert key_action("", "Space") == key_action(" ") == "play"
    assert key_action(".") == "plane up" and key_action(",") == "plane down"
    assert key_action("x") is None and key_action("") is None


def test_toggles_switch_a_layer_off_and_back_on_last() -> None:
    s = _state(options=LayerOptions(layers=("image", "arrows", "paths")))
    assert s.visible == ("image", "arrows", "paths")
    assert s.toggle("arrows") == ("image", "paths")
    assert s.toggle("contours") == ("image", "paths", "contours")
    assert s.toggle("arrows") == ("image", "paths", "contours", "arrows")
    s.enter(FLAT)  # layers built again start as the options say
    assert s.visible == ("image", "arrows", "paths")


def test_next_job_wraps_and_slices_only_3d_jobs() -> None:
    s = _state(slice_axis="y")
    assert s.next_job() == ("cube", "y")
    s.enter(CUBE)
    assert s.next_job() == ("other", None)
    s.enter(ShownJob("other", ("x", "y"), ("value",), None, (0, 1, 0, 1)))
    assert s.next_job() == ("flat", None)
    s.enter(ShownJob("gone", ("x", "y"), ("value",), None, (0, 1, 0, 1)))
    assert s.next_job() == ("flat", None)  # a job not in the list: start from the first


def test_the_plane_starts_in_the_middle_steps_by_grid_steps_and_stays_in_bounds() -> None:
    s = _state()
    assert s.plane is None and s.move_plane(1) is None  # 2D: no plane
    s.enter(CUBE)
    assert s.plane == 0.0
    assert s.move_plane(1) == 0.25 and s.move_plane(2) == 0.75
    assert s.move_plane(5) == 1.0 and s.move_plane(-100) == -1.0
    s.move_plane(3)
    s.enter(CUBE)  # the same job again (a redraw) keeps its plane
    assert s.plane == pytest.approx(-0.25)
    s.enter(FLAT)
    s.enter(CUBE)  # back from another job: the middle again
    assert s.plane == 0.0
    down = ShownJob("down", ("x", "y"), ("value",), None, (0, 1, 0, 1), "z", (1.0, -1.0, -0.5))
    s.enter(down)  # a descending axis is bounded the same way
    assert s.move_plane(1) == -0.5 and s.move_plane(10) == -1.0 and s.move_plane(-10) == 1.0
    assert "z = 1" in s.title()


def test_paths_play_from_the_start_step_and_stop_at_the_end() -> None:
    s = _state()
    assert s.play() is None and not s.playing  # no paths: space does nothing
    s.paths_drawn(400, 400)
    assert s.play() == 0 and s.playing  # drawn whole: playing starts over
    s.paths_drawn(400, 0)
    assert s.tick() == 2  # a two-hundredth per tick
    s.paths_drawn(400, 399)
    assert s.tick() == 400 and not s.playing and s.tick() is None
    s.paths_drawn(400, 400)  # the canvas draws the step it was given
    assert s.play() == 0 and s.playing
    s.paths_drawn(400, 100)
    assert s.play() is None and not s.playing  # pause in the middle
    s.play()
    assert s.nudge(True) == 108 and not s.playing  # a fiftieth
    assert s.nudge(False) == 92
    s.paths_drawn(10, 5)
    assert s.nudge(True) == 6 and s.tick() is None  # at least one step
    s.enter(FLAT)
    assert (s.path_steps, s.path_step, s.playing) == (0, 0, False)


def test_requests_name_the_window_fields_arrows_and_plane() -> None:
    s = _state(options=LayerOptions(pixels_per_arrow=24))
    req = s.request((0.0, 2.0, -1.0, 1.0), (480, 240))
    assert req == WindowRequest(  # the value beside the arrows too: none where it is undefined
        "flat", (0.0, 2.0, -1.0, 1.0), (480, 240), ("value",), ("grad_x", "grad_y", "value"), (80, 40), None
    )
    s = _state(options=LayerOptions(field="speed"))
    s.enter(CUBE)
    req = s.request((0.0, 1.0, 0.0, 1.0), (100, 100))
    assert req is not None and req.fields == () and req.coarse_fields == () and req.plane == 0.0
    assert _state(surface=True).request((0, 1, 0, 1), (10, 10)) is None  # the surface is read once


def test_a_request_still_being_read_is_not_sent_twice() -> None:
    s = _state()
    wide, narrow = (0.0, 2.0, -1.0, 1.0), (0.0, 1.0, -1.0, 1.0)
    a = s.request(wide, (400, 200))
    assert a is not None and s.request(wide, (400, 200)) is None  # the camera moved nowhere new
    b = s.request(narrow, (400, 200))
    assert b is not None and b != a
    assert s.take(_response(a))  # an older answer is drawn; the newer request is still out
    assert s.request(narrow, (400, 200)) is None
    s.failed()  # the loader gave up: the same window may be asked again
    assert s.request(narrow, (400, 200)) == b
    assert s.take(_response(b))
    assert s.request(narrow, (400, 200)) == b  # answered: asked again (e.g. arrows flipped)
    s.enter(FLAT)  # a job shown again forgets what was out
    assert s.request(narrow, (400, 200)) == b


def test_responses_for_a_job_no_longer_shown_are_ignored_and_none_is_kept() -> None:
    s = _state()
    old = s.request((0.0, 2.0, -1.0, 1.0), (400, 200))
    assert old is not None
    s.enter(CUBE)
    assert not s.take(_response(old)) and s.applied == 0 and s.last_applied is None
    new = s.request((0.0, 1.0, 0.0, 1.0), (400, 200))
    assert new is not None
    for level in (3, 2, 1):
        assert s.take(_response(new, level))
    assert s.applied == 3 and s.last_applied is not None and s.last_applied.level == 1
    assert not any(
        isinstance(v, (list, tuple)) and v and isinstance(v[0], WindowResponse) for v in vars(s).values()
    )  # a count and the last one, never a growing list


def test_title_readout_home_screenshots_and_descent() -> None:
    s = _state()
    assert s.title() == "gradbatch: run.h5 [flat]" and s.home() == (0.0, -1.0, 4.0, 2.0)
    s.paths_drawn(100, 3)
    s.readout(1.5, 0.25, {"value": 2.0, "grad_x": -0.125})
    assert s.title() == "gradbatch: run.h5 [flat]  step 3/100  x 1.5, y 0.25: value 2, grad_x -0.125"
    assert s.readout(9.0, 9.0, None) == "x 9, y 9: outside"
    s.enter(CUBE)
    assert s.title() == "gradbatch: run.h5 [cube]  z = 0  x 9, y 9: outside"
    assert s.screenshot_path() == Path("/data/run-1.png") and s.screenshot_path() == Path("/data/run-2.png")
    assert not s.options.descent and s.flip_descent().descent and s.options.descent


def test_a_state_before_any_job_refuses_clearly() -> None:
    s = ViewState("x.h5", {"a": 2})
    assert s.next_job() == ("a", None)
    with pytest.raises(RuntimeError, match="enter"):
        s.title()
