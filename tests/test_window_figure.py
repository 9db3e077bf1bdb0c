"""The window as a figure (headless EGL): axes that follow the camera, colour limits that do not,
undefined points shown as such, arrows at the data, a legend, 3D planes and a readable surface."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import ViewerError

pytestmark = pytest.mark.gl


def _job(folder: Path, text: str) -> Path:
    out = folder / "w.h5"
    gradbatch.run_jobs(parse_config(text, output=out))
    return out


def _wait(fv: Any, until: Any = None, timeout: float = 30.0) -> Any:
    """Poll until a response is applied (and ``until(response)`` holds); returns it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        resp = fv.poll()
        if resp is not None and (until is None or until(resp)):
            return resp
        time.sleep(0.01)
    raise AssertionError("no response from the loader")


def _view(path: Path, **kw: Any) -> Any:
    from gradbatch.viewer.canvas import FieldView

    kw.setdefault("size", (900, 700))
    return FieldView(path, app="egl", show=False, **kw)


@pytest.fixture(scope="module")
def wave(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wave")
    return _job(folder, "name: wave\nfunction: 'sin(x) * cos(y)'\ngrid: {x: [0, 8, 512], y: [0, 4, 256]}\n")


def _ticks(axis: Any) -> list[float]:
    return [float(t.replace("\u2212", "-")) for t in axis.axis._text.text if t.strip()]


def test_tick_labels_follow_the_camera(wave: Path) -> None:
    fv = _view(wave)
    _wait(fv)
    fv.decor.reveal()
    fv.canvas.render()
    xs = _ticks(fv.decor.xaxis)
    assert min(xs) >= -1e-9 and max(xs) <= 8 + 1e-9 and max(xs) - min(xs) >= 4  # data units, the whole job
    assert fv.decor.xaxis.axis.axis_label == "x" and fv.decor.yaxis.axis.axis_label == "y"
    assert "wave: sin(x) * cos(y)" in fv.decor.title.text
    fv.view.camera.rect = (2.0, 1.0, 0.5, 0.25)
    fv.canvas.render()
    xs, ys = _ticks(fv.decor.xaxis), _ticks(fv.decor.yaxis)
    x0, x1, y0, y1 = fv.window  # equal aspect: the camera widens y to the view's shape
    assert y1 - y0 < 0.6 and x0 == pytest.approx(2.0, abs=0.01) and x1 == pytest.approx(2.5, abs=0.01)
    assert len(xs) >= 3 and min(xs) >= x0 - 1e-9 and max(xs) <= x1 + 1e-9
    assert len(ys) >= 3 and min(ys) >= y0 - 1e-9 and max(ys) <= y1 + 1e-9
    fv.close()


def test_colour_limits_do_not_change_when_zooming_into_a_sub_window(wave: Path) -> None:
    fv = _view(wave, size=(600, 400))
    _wait(fv)
    fv.decor.reveal()
    whole = fv.layers.clim
    assert whole[0] == pytest.approx(-1, abs=0.02) and whole[1] == pytest.approx(1, abs=0.02)
    fv.view.camera.rect = (0.5, 0.1, 0.3, 0.1)  # sin(x) cos(y) is 0.47..0.71 here
    resp = _wait(fv, lambda r: r.request.window[1] - r.request.window[0] < 1)
    assert float(np.nanmax(resp.data["value"])) < 0.8
    assert fv.layers.clim == whole and fv.bar.clim == whole
    fv.canvas.render()
    bar_ticks = _ticks(fv.bar.axis)  # the bar's own ticks, made after the first frame, in the field's units
    assert min(bar_ticks) >= whole[0] - 1e-3 and max(bar_ticks) <= whole[1] + 1e-3  # labels are rounded
    assert max(bar_ticks) - min(bar_ticks) >= 1.0
    fv.close()


def test_a_nan_region_is_not_the_lowest_colour_and_holds_no_arrows(tmp_path: Path) -> None:
    from gradbatch.viewer.options import LayerOptions

    path = _job(tmp_path, "name: half\nfunction: 'sqrt(x) + y'\ngrid: {x: [-1, 1, 41], y: [-1, 1, 41]}\n")
    fv = _view(path, options=LayerOptions(theme="dark", layers=("image", "arrows")))
    _wait(fv)
    fv.decor.reveal()
    img = fv.canvas.render()
    to_canvas = fv.view.scene.node_transform(fv.canvas.scene)
    px, py = to_canvas.map([-0.5, 0.3])[:2]  # x < 0: sqrt is NaN
    colour = img[int(round(py)), int(round(px)), :3].astype(float) / 255
    lowest = np.array(fv.layers.cmap.map(np.array([[0.0]]))[0, :3])
    assert np.abs(colour - lowest).max() > 0.2  # not viridis' dark purple
    np.testing.assert_allclose(colour, fv.theme.undefined[:3], atol=0.03)
    centres = fv.layers.arrows.centres
    assert len(centres) and (centres[:, 0] >= 0).all()  # no arrow where the value is undefined
    assert fv.limits is not None and fv.limits.undefined == 20 * 41
    assert any(e.text.startswith("undefined") for e in fv.decor.entries)
    fv.close()


def test_a_17x17_job_shows_289_arrows_at_the_data_points(tmp_path: Path) -> None:
    path = _job(tmp_path, "name: bowl\nfunction: 'x^2 + y^2'\ngrid: {x: [-2, 2, 17], y: [-2, 2, 17]}\n")
    fv = _view(path)
    _wait(fv)
    arrows = fv.layers.arrows
    assert arrows.count == 289  # was 1,369: a 24-px screen grid reading the next point
    g = np.linspace(-2, 2, 17)
    want = {(round(a, 6), round(b, 6)) for a in g for b in g}
    assert {(round(float(a), 6), round(float(b), 6)) for a, b in arrows.centres} == want
    fv.close()


def test_the_legend_has_one_entry_per_optimiser_and_basins_start_off(tmp_path: Path) -> None:
    path = _job(
        tmp_path,
        "name: bowl\nfunction: 'x^2 + 3*y^2'\ngrid: {x: [-2, 2, 64], y: [-2, 2, 64]}\n"
        "paths: {starts: [[1.5, 1.5], [-1, 1.8]], steps: 30, optimizers: "
        "[{name: sgd, lr: 0.05}, {name: adam, lr: 0.1}, {name: momentum, lr: 0.02, momentum: 0.9}]}\n"
        "basins: {resolution: 16, steps: 50, optimizer: {name: sgd, lr: 0.1}}\n",
    )
    fv = _view(path, size=(1000, 700))
    _wait(fv)
    paths = [e for e in fv.decor.entries if e.kind == "path"]
    assert [e.text for e in paths] == ["sgd", "adam", "momentum"] and len({str(e.color) for e in paths}) == 3
    assert "basins" not in fv.layers.visible and not any(v.visible for v in fv.layers.overlays["basins"])
    assert any(e.text == "minimum" for e in fv.decor.entries)
    assert any(e.text.startswith("-grad") for e in fv.decor.entries)  # the job descends: arrows downhill
    fv.canvas.events.key_press(key="b", text="b")
    assert any(e.text.startswith("basin outlines") for e in fv.decor.entries)
    fv.close()


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cube")
    return _job(
        folder, "name: cube\nfunction: 'x + 10*y + 100*z'\ngrid: {x: [0, 1, 16], y: [0, 1, 16], z: [-1, 1, 9]}\n"
    )


def test_a_plane_out_of_range_is_refused_and_a_snapped_one_is_said(cube: Path) -> None:
    from gradbatch.viewer.canvas import view

    with pytest.raises(ViewerError, match=r"--slice: z=5 is outside the z axis \(-1 to 1\)"):
        _view(cube, plane=5.0)
    with pytest.raises(ViewerError, match="outside the z axis"):
        view(cube, plane=-3.0)  # refused before looking for a display
    fv = _view(cube, plane=0.1)
    resp = _wait(fv)
    assert resp.plane == pytest.approx(0.0)
    assert "z = 0 (nearest grid plane to 0.1)" in fv.canvas.title
    fv.decor.reveal()  # the frame's words are made after the first frame
    assert "z = 0 (nearest grid plane to 0.1)" in fv.decor.title.text
    fv.close()


def test_the_surface_keeps_its_colours_readable(tmp_path: Path) -> None:
    from gradbatch.viewer.options import LayerOptions

    path = _job(tmp_path, "name: e\nfunction: 'x^2 + 10*y^2'\ngrid: {x: [-2, 2, 64], y: [-2, 2, 64]}\n")
    fv = _view(path, size=(400, 300), surface=True, options=LayerOptions(layers=("image",), colorbar=False))
    fv.canvas.bgcolor = "black"
    img = fv.canvas.render()[..., :3].astype(float)
    lit = img.sum(axis=2) > 0
    assert lit.mean() > 0.05 and img[lit].mean() > 85  # was 65: shaded nearly black
    fv.close()


def test_the_window_opens_on_the_window_asked_for(wave: Path) -> None:
    fv = _view(wave, window=(2.0, 3.0, 1.0, 2.0))
    resp = _wait(fv)
    x0, x1, y0, y1 = resp.request.window
    assert x0 <= 2.0 + 1e-6 and x1 >= 3.0 - 1e-6 and y0 <= 1.0 + 1e-6 and y1 >= 2.0 - 1e-6 and x1 - x0 < 1.5
    fv.close()
