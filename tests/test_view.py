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
    gradbatch.run_jobs(parse_config("name: big\nfunction: 'sin(x) * cos(y)'\n"
                                    "grid: {x: [0, 16, 4096], y: [0, 8, 2048]}\n", output=out))
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
    fv.view.camera.rect = (2.0, 1.0, 0.5, 0.25)  # zoom far in: x 2..2.5, y 1..1.25
    resp = _wait(fv)
    while not fv.responses.empty() or resp.request.window[0] != pytest.approx(2.0):
        resp = _wait(fv)
    assert resp.level == 0 and resp.x[0] <= 2.0 and resp.x[-1] >= 2.5 - 1e-9
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
