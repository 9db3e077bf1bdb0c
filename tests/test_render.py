"""Headless renders through vispy: orientation, arrows, overlays, and errors. Marked `gl`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradbatch
from gradbatch.cli import main
from gradbatch.config import parse_config

pytestmark = pytest.mark.gl


def _png(path: Path) -> np.ndarray:
    from vispy.io import read_png

    return read_png(str(path))


def _decode(png: bytes) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(png)).convert("RGBA"))


def _job(tmp: Path, function: str, extra: str = "") -> Path:
    out = tmp / "f.h5"
    gradbatch.run_jobs(
        parse_config(f"name: f\nfunction: '{function}'\ngrid: {{x: [0, 2, 101], y: [0, 1, 51]}}\n{extra}", output=out),
        overwrite=True,
    )
    return out


def _brightness(img: np.ndarray) -> np.ndarray:
    return img[..., :3].astype(float).sum(axis=2)


def _map(path: Path, size: tuple[int, int] = (400, 200), **options: object) -> tuple[object, np.ndarray]:
    """The map figure of ``path`` drawn in memory, and the pixels inside its axes (rows from the top)."""
    from gradbatch.store import FieldReader
    from gradbatch.viewer.figure import figure_context
    from gradbatch.viewer.figure2d import build_map
    from gradbatch.viewer.options import RenderOptions
    from gradbatch.viewer.render import settle

    reader = FieldReader(path, None, options.pop("slice_axis", None))  # type: ignore[arg-type]
    try:
        opt, decided = settle(RenderOptions(size=size, dpi=100, aspect="auto", **options), reader)  # type: ignore[arg-type]
        with figure_context(opt.theme):
            m = build_map(reader, opt, decided)
            m.fig.canvas.draw()
    finally:
        reader.close()
    img = np.asarray(m.fig.canvas.buffer_rgba())
    box = m.ax.get_window_extent()
    h = img.shape[0]
    return m, img[int(h - box.y1) + 1 : int(h - box.y0) - 1, int(box.x0) + 1 : int(box.x1) - 1]


def test_image_is_not_transposed_x_right_y_up(tmp_path: Path) -> None:
    _, img = _map(_job(tmp_path, "x"), layers=("image",), colormap="grays", colorbar=False)
    b = _brightness(img)
    w = b.shape[1]
    assert b[:, 3 * w // 4].mean() > b[:, w // 4].mean() + 100  # value grows to the right
    _, img = _map(_job(tmp_path, "y"), layers=("image",), colormap="grays", colorbar=False)
    b = _brightness(img)
    h = b.shape[0]
    assert b[h // 5, :].mean() > b[4 * h // 5, :].mean() + 100  # and upwards: row 0 of the picture is the top


def test_arrows_point_uphill_unless_descent(tmp_path: Path) -> None:
    """f = x: every gradient arrow points +x (this job has no paths: ascent by default)."""
    path = _job(tmp_path, "x")
    for descent, sign in ((None, 1), (True, -1)):
        m, _ = _map(path, layers=("arrows",), pixels_per_arrow=50, descent=descent)
        (q,) = [c for c in m.ax.collections if type(c).__name__ == "Quiver"]  # type: ignore[attr-defined]
        assert len(q.U) and (np.sign(q.U) == sign).all() and np.allclose(q.V, 0)


def test_full_render_with_overlays_via_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hb.h5"
    gradbatch.run_jobs(
        parse_config(
            "name: hb\nfunction: {builtin: himmelblau}\ngrid: {x: [-5, 5, 128], y: [-5, 5, 128]}\n"
            "paths: {starts: [[-4, 0]], steps: 300, optimizers: [{name: adam, lr: 0.05}]}\n"
            "streamlines: {seeds: {grid: 5}}\n",
            output=out,
        )
    )
    assert main(["render", str(out), "-o", str(tmp_path / "hb.png"), "--size", "300x300", "--descent"]) == 0
    img = _png(tmp_path / "hb.png")
    assert img.shape == (300, 300, 4) and len(np.unique(img[..., 0])) > 50
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "big"], "--size: expected WIDTHxHEIGHT"),
        (["--window", "1,0,0,1"], "--window: expected x0 < x1"),
        (["--layers", "image,bogus"], "--layers: unknown layer 'bogus'"),
        (["--job", "nope"], "no job 'nope'"),
        (["--field", "curl"], "has no field 'curl'"),
    ],
)
def test_render_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    path = _job(tmp_path, "x")
    assert main(["render", str(path), "-o", str(tmp_path / "o.png"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_job_can_ask_for_a_png_at_the_end(tmp_path: Path) -> None:
    text = (
        "name: r\nfunction: 'x*y'\ngrid: {x: [-1, 1, 64], y: [-1, 1, 64]}\n"
        "render: {size: [120, 100], layers: [image, arrows]}\n"
    )
    gradbatch.run_jobs(parse_config(text, output=tmp_path / "r.h5"))
    img = _png(tmp_path / "r-r.png")
    assert img.shape == (100, 120, 4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("render: {size: [10, 10]}", "render.size: expected [width, height] in pixels"),
        ("render: {layers: [image, sky]}", "render.layers: expected a list of image, contours, basins"),
        ("render: {output: pic.jpg}", "render.output: expected a path ending in .png"),
    ],
)
def test_render_settings_errors(text: str, message: str) -> None:
    from gradbatch.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config("function: x\ngrid: {x: [0, 1, 4], y: [0, 1, 4]}\n" + text)


def test_show_takes_renders_options_as_keywords_and_displays_itself(tmp_path: Path) -> None:
    """show(path, **options) draws what `gradbatch render` draws with the same options; the
    result displays itself in IPython (_repr_png_) and saves anywhere; bad options and jobs are
    one clear error at the call."""
    from gradbatch.errors import ViewerError
    from gradbatch.viewer.options import RenderOptions
    from gradbatch.viewer.render import render

    path = _job(tmp_path, "x*y")
    fig = gradbatch.show(path, descent=True, layers=["image", "arrows"], clim=(-0.5, 0.5), size=(320, 240))
    assert fig.options == RenderOptions(
        size=(320, 240), layers=("image", "arrows"), descent=True, clim=(-0.5, 0.5)
    )  # the keywords as gradbatch render would take them, over render's defaults
    assert (
        gradbatch.show(path, layers="image,arrows", clim="-0.5,0.5", size="320x240", descent=True).options
        == fig.options
    )
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    reference = render(path, tmp_path / "ref.png", None, fig.options).read_bytes()
    assert _decode(png).shape == _decode(reference).shape == (240, 320, 4)
    np.testing.assert_array_equal(_decode(png), _decode(reference))
    pdf = fig.save(tmp_path / "fig.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert "320x240" in repr(fig)
    with pytest.raises(ViewerError, match="colour: unknown option; allowed: .*colormap"):
        gradbatch.show(path, colour="red")
    with pytest.raises(ViewerError, match="layers: unknown layer 'imgae'"):
        gradbatch.show(path, layers=["imgae"])
    with pytest.raises(ViewerError, match="no job 'nope'"):
        gradbatch.show(path, job="nope")


def test_show_draws_a_dataset_opened_from_a_file_and_says_why_not_a_computed_one(tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    from gradbatch.errors import ViewerError

    path = _job(tmp_path, "x*y")
    fig = gradbatch.show(gradbatch.open(path), size=(400, 300))
    assert fig.path == path and fig.png[:4] == b"\x89PNG"
    with pytest.raises(ViewerError, match="computed in memory"):
        gradbatch.show(gradbatch.compute("function: 'x*y'\ngrid: {x: [0, 1, 8], y: [0, 1, 8]}"))


def test_contours_symmetric_and_log_scales(tmp_path: Path) -> None:
    path = _job(tmp_path, "x - 1")  # from -1 to 1 over the grid: zero in the middle
    _, sym = _map(path, layers=("image",), colormap="grays", scale="symmetric", colorbar=False)
    b = _brightness(sym)
    r, w = b.shape[0] // 2, b.shape[1]
    assert abs(b[r, w // 2] - (b[r, 2] + b[r, w - 3]) / 2) < 60  # zero sits at the middle grey
    m, _ = _map(path, layers=("image", "contours"), contours=3, colorbar=False)
    assert len(m.contour_set.levels) == 3  # type: ignore[attr-defined]
    _, log = _map(_job(tmp_path, "exp(4*x)"), layers=("image",), colormap="grays", scale="log", colorbar=False)
    row = _brightness(log)[log.shape[0] // 2]
    q = len(row) // 4
    assert row[3 * q] - row[2 * q] == pytest.approx(row[2 * q] - row[q], abs=40)  # log of exp: linear ramp


def test_colorbar_runs_from_low_at_the_bottom_to_high_at_the_top(tmp_path: Path) -> None:
    m, _ = _map(_job(tmp_path, "x"), layers=("image",), colormap="grays")
    img = np.asarray(m.fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
    box = m.bar.ax.get_window_extent()  # type: ignore[attr-defined]
    h = img.shape[0]
    c = int((box.x0 + box.x1) / 2)
    column = _brightness(img)[:, c]
    top, bottom = column[int(h - box.y1) + 3], column[int(h - box.y0) - 4]
    assert top > bottom + 300  # white (high) on top, black (low) at the bottom


def test_a_plane_of_a_3d_job_renders_unmixed(tmp_path: Path) -> None:
    """f = 100x + z, cut at y: z runs up the picture, x (a hundred times steeper) to the right."""
    out = tmp_path / "cube.h5"
    gradbatch.run_jobs(
        parse_config(
            "name: cube\nfunction: '100*x + z'\ngrid: {x: [0, 1, 32], y: [0, 1, 8], z: [0, 1, 32]}\n", output=out
        )
    )
    png = tmp_path / "cut.png"
    args = ["render", str(out), "-o", str(png), "--slice", "y=0.5", "--size", "300x300", "--layers", "image"]
    assert main(args) == 0
    _, img = _map(out, size=(300, 300), slice_axis="y", plane=0.5, layers=("image",), colormap="grays", colorbar=False)
    b = _brightness(img)
    h, w = b.shape
    assert b[h // 2, 9 * w // 10] > b[h // 2, w // 10] + 300  # x to the right
    assert abs(b[h // 10, w // 2] - b[9 * h // 10, w // 2]) < 60  # z (a hundredth as steep) barely shows


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--slice", "=3"], "--slice: expected AXIS or AXIS=VALUE"),
        (["--slice", "z=high"], "--slice: expected a number"),
        (["--slice", "w"], "no axis 'w' to slice"),
        (["--colormap", "rainbowz"], "colormap: unknown colormap 'rainbowz'"),
    ],
)
def test_slice_and_colormap_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "cube.h5"
    gradbatch.run_jobs(
        parse_config("name: cube\nfunction: 'x'\ngrid: {x: [0, 1, 8], y: [0, 1, 8], z: [0, 1, 8]}\n", output=out)
    )
    assert main(["render", str(out), "-o", str(tmp_path / "x.png"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_show_checks_its_options_and_the_job_at_the_call(tmp_path: Path) -> None:
    """Each wrong option is one ViewerError naming it, its value and what it takes; what can be
    checked against the job (field, slice, window) is checked before anything is drawn."""
    from gradbatch.errors import ViewerError

    path = _job(tmp_path, "x*y")
    for kw, message in (
        ({"contours": "ten"}, "contours: expected a whole number, got 'ten'"),
        ({"dpi": 150.5}, "dpi: expected a whole number"),
        ({"descent": "no"}, "descent: expected True or False, got 'no'"),
        ({"title": 5}, "title: expected text, got 5"),
        ({"elevation": float("nan")}, "elevation: expected a finite number"),
        ({"size": (800.7, 600.2)}, "size: expected two whole numbers"),
        ({"clim": (1e308, 1.7e308)}, "clim: expected finite limits lo < hi, within"),
        ({"field": "nope"}, "field: job 'f' has no field 'nope'; fields: value, grad_x, grad_y"),
        ({"slice": "z"}, "slice: job 'f' has 2 axes; a slice cuts a 3D job"),
        ({"window": (10, 20, 10, 20)}, r"window: x from 10 to 20 is outside the job's x axis \(0 to 2\)"),
        ({"window": (-1e301, 1e301)}, "window: x from"),
    ):
        with pytest.raises(ViewerError, match=message):
            gradbatch.show(path, **kw)
    with pytest.raises(ViewerError, match="options: expected a RenderOptions, got 5"):
        gradbatch.show(path, options=5)  # type: ignore[arg-type]
    from gradbatch.viewer.options import RenderOptions

    assert RenderOptions(layers="image,arrows").layers == ("image", "arrows")  # type: ignore[arg-type]


def test_show_draws_the_files_job_only_for_a_dataset_that_is_it(tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    from gradbatch.errors import ViewerError

    text = "jobs:\n  - {name: a, function: 'x*y', grid: {x: [0, 1, 40], y: [0, 1, 30]}}\n"
    text += "  - {name: b, function: 'x+y', grid: {x: [0, 1, 40], y: [0, 1, 30]}}\n"
    path = tmp_path / "two.h5"
    gradbatch.run_jobs(parse_config(text, output=path))
    with pytest.raises(ViewerError, match=r"holds 2 jobs \(a, b\); name one with job="):
        gradbatch.show(path)
    b = gradbatch.open(path, job="b")
    assert gradbatch.show(b, size=(600, 450)).job == "b"
    with pytest.raises(ViewerError, match="expected a gradbatch file's path or a Dataset"):
        gradbatch.show(b["value"])
    with pytest.raises(ViewerError, match="this Dataset is part of job 'b'"):
        gradbatch.show(b.isel(x=slice(0, 10)))
    with pytest.raises(ViewerError, match="does not say which job"):
        gradbatch.show(b.drop_attrs())


def test_a_figure_is_drawn_again_when_its_file_changed(tmp_path: Path) -> None:
    path = _job(tmp_path, "x*y")
    fig = gradbatch.show(path, layers=["image"], size=(300, 240), colorbar=False, legend=False)
    first = fig.png
    assert fig.png is first  # drawn once while the file is the same
    _job(tmp_path, "-x*y")  # the same file, other values
    assert fig.png != first
