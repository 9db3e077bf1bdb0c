"""The streaming view, driven through its camera headless (EGL): what is requested and drawn."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import gradbatch
from gradbatch.config import parse_config

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("view") / "big.h5"
    gradbatch.run_jobs(
        parse_config("name: big\nfunction: 'sin(x) * cos(y)'\ngrid: {x: [0, 16, 4096], y: [0, 8, 2048]}\n", output=out)
    )
    return out


def _wait(fv, timeout: float = 30.0):  # noqa: ANN001, ANN202
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        resp = fv.poll()
        if resp is not None:
            return resp
        time.sleep(0.01)
    raise AssertionError("no response from the loader")


def test_camera_changes_stream_the_right_level_and_window(big: Path) -> None:
    from gradbatch.viewer.canvas import FieldView

    fv = FieldView(big, app="egl", show=False, size=(400, 200))
    first = _wait(fv)
    assert first.level >= 3  # 4096 points on 400 pixels: a coarse level, never the full grid
    assert first.data["value"].shape[1] <= 2 * 400 + 2
    assert fv.bar is not None and not fv.bar.visible  # the colour bar joins after the first frame
    for _ in range(fv.decor.STAGES):  # a group of words a frame: axes, colour bar, title and legend
        fv._tick()
    assert fv.layers.colorbar is fv.bar and fv.bar.visible and fv.decor.revealed
    lo, hi = fv.layers.clim
    assert -1.01 <= lo < -0.9 and 0.9 < hi <= 1.01  # sin(x) cos(y) over the whole view
    fv.view.camera.rect = (2.0, 1.0, 0.5, 0.25)  # zoom far in: x 2..2.5, y 1..1.25
    resp = _wait(fv)
    # what is on screen is read: an equal aspect may show more than the rect along one axis
    while not fv.responses.empty() or resp.request.window[1] - resp.request.window[0] > 1:
        resp = _wait(fv)
    x0, x1, _, _ = fv.window
    assert x0 <= 2.0 + 1e-6 and x1 >= 2.5 - 1e-6 and resp.request.window == pytest.approx(fv.window)
    assert resp.level == 0 and resp.x[0] <= x0 and resp.x[-1] >= x1 - 1e-9
    assert fv.layers.last is resp
    img = fv.canvas.render()
    assert img.shape[:2] == (200, 400) and len(set(img[..., 0].ravel().tolist())) > 10
    fv.close()


def test_keys_toggle_layers_and_readout(big: Path) -> None:
    from gradbatch.viewer.canvas import FieldView

    fv = FieldView(big, app="egl", show=False, size=(200, 100))
    _wait(fv)
    assert fv.layers.arrows.visible
    fv.canvas.events.key_press(key="a", text="a")
    assert not fv.layers.arrows.visible and "arrows" not in fv.layers.visible
    fv.canvas.events.key_press(key="i", text="i")
    assert not fv.layers.image.visible
    values = fv.layers.value_at(1.0, 1.0)
    assert values is not None and set(values) == {"value", "grad_x", "grad_y"}
    fv.close()


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two jobs in one file: a 2D one with descent paths, then a 3D one."""
    out = tmp_path_factory.mktemp("multi") / "multi.h5"
    gradbatch.run_jobs(
        parse_config(
            "jobs:\n"
            "  - name: bowl\n    function: 'x^2 + y^2'\n    grid: {x: [-2, 2, 64], y: [-2, 2, 64]}\n"
            "    paths: {starts: [[1.5, 1.5], [-1, 1.8]], steps: 100, optimizers: [{name: sgd, lr: 0.05}]}\n"
            "  - name: cube\n    function: 'x + 10*y + 100*z'\n"
            "    grid: {x: [0, 1, 32], y: [0, 1, 32], z: [-1, 1, 9]}\n",
            output=out,
        )
    )
    return out


def test_paths_step_and_play_then_switch_to_a_3d_job_and_move_its_plane(multi: Path) -> None:
    import numpy as np

    from gradbatch.viewer.canvas import FieldView

    fv = FieldView(multi, app="egl", show=False, size=(200, 200))
    _wait(fv)
    layers = fv.layers
    assert layers.path_steps == 100 and layers.path_step == 100  # whole paths at first
    fv.canvas.events.key_press(key="[", text="[")
    assert layers.path_step == 98
    assert fv.step_paths(0) == 0
    pos, line, ends = layers.path_sets[0]
    np.testing.assert_allclose(ends._data["a_position"][:, :2], pos[:, 0], rtol=1e-6)  # the stars sit at the starts
    fv.canvas.events.key_press(key=" ", text=" ")
    assert fv.playing
    for _ in range(3):
        fv._tick()
    assert layers.path_step == 3 and "step 3/100" in fv.canvas.title
    np.testing.assert_allclose(ends._data["a_position"][:, :2], pos[:, 3], rtol=1e-6)
    fv.canvas.events.key_press(key="j", text="j")  # the next job: the 3D cube, cut at z's middle
    assert fv.reader.job == "cube" and fv.reader.slice_axis == "z" and fv.plane == pytest.approx(0.0)
    resp = _wait(fv)
    np.testing.assert_allclose(resp.data["value"], resp.x[None, :] + 10 * resp.y[:, None] + 100 * resp.plane, atol=1e-4)
    fv.canvas.events.key_press(key=".", text=".")
    assert fv.plane == pytest.approx(0.25) and "z = 0.25" in fv.canvas.title
    resp = _wait(fv)
    while resp.request.plane != pytest.approx(0.25):
        resp = _wait(fv)
    assert resp.plane == pytest.approx(0.25)
    np.testing.assert_allclose(resp.data["value"], resp.x[None, :] + 10 * resp.y[:, None] + 25, atol=1e-4)
    assert fv.next_job() == "bowl"  # and round again
    fv.close()


def test_surface_mode_in_the_window(multi: Path) -> None:
    from gradbatch.viewer.canvas import FieldView
    from gradbatch.viewer.visuals import SurfaceLayers

    fv = FieldView(multi, app="egl", show=False, size=(300, 200), surface=True)
    assert isinstance(fv.layers, SurfaceLayers) and fv.request() is None
    assert fv.view.camera.__class__.__name__ == "TurntableCamera"
    img = fv.canvas.render()
    assert len(set(img[..., 1].ravel().tolist())) > 20
    fv.canvas.events.key_press(key="a", text="a")
    assert fv.layers.arrows is not None and not fv.layers.arrows.visible
    fv.close()


def test_the_surface_of_a_3d_job_follows_its_plane(multi: Path) -> None:
    from gradbatch.viewer.canvas import FieldView

    fv = FieldView(multi, job="cube", app="egl", show=False, size=(300, 200), surface=True)
    assert fv.plane == pytest.approx(0.0) and fv.layers.last.plane == pytest.approx(0.0)
    assert fv.move_plane(1) == pytest.approx(0.25)
    assert fv.plane == pytest.approx(0.25) and fv.layers.last.plane == pytest.approx(0.25)  # read again there
    fv.canvas.events.key_press(key="d", text="d")  # arrows flipped: drawn again, same plane
    assert fv.layers.last.plane == pytest.approx(0.25)
    fv.close()
