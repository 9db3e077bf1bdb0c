"""Picture files of 2D jobs (issue 12): what a reader sees must be true.

Each test checks one thing a published figure gets wrong easily: a point lands where the tick
labels say, undefined points are neither coloured nor covered by arrows, colour limits do not
depend on the picture's size, arrows sit at data points, defaults agree with the job, and the
vector formats are valid and searchable. Figures are built in memory (``build_map``) and read
back through matplotlib's own transforms and pixels. Arrows here stay vector (few of them), so
only the raster-arrow test needs GL.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradbatch
from gradbatch.cli import main
from gradbatch.config import parse_config

pytest.importorskip("matplotlib")


def _run(tmp: Path, text: str, name: str = "f") -> Path:
    out = tmp / f"{name}.h5"
    gradbatch.run_jobs(parse_config(text, output=out), overwrite=True)
    return out


def _build(path: Path, **options: Any) -> Any:
    from gradbatch.store import FieldReader
    from gradbatch.viewer.figure import figure_context
    from gradbatch.viewer.figure2d import build_map
    from gradbatch.viewer.options import RenderOptions
    from gradbatch.viewer.render import settle

    opt = RenderOptions(**{"size": (600, 450), "dpi": 100, **options})
    reader = FieldReader(path, options.get("job"))
    try:
        settled, decided = settle(opt, reader)
        with figure_context(settled.theme):
            m = build_map(reader, settled, decided)
            m.fig.canvas.draw()
            return m
    finally:
        reader.close()


def _pixels(m: Any) -> np.ndarray:
    """The drawn figure as RGBA (rows from the top)."""
    return np.asarray(m.fig.canvas.buffer_rgba())


def _tick_fit(labels: list[Any], axis: int) -> tuple[float, float]:
    """(a, b) with display coordinate = a * value + b, from the tick labels' text and place."""
    vals, pos = [], []
    for t in labels:
        text = t.get_text().replace("\u2212", "-")
        if not text:
            continue
        box = t.get_window_extent()
        vals.append(float(text))
        pos.append((box.x0 + box.x1) / 2 if axis == 0 else (box.y0 + box.y1) / 2)
    a, b = np.polyfit(vals, pos, 1)
    return float(a), float(b)


def _legend_texts(m: Any) -> list[str]:
    """The legend's entries, each on one line (long ones are wrapped in the figure)."""
    return [" ".join(t.get_text().split()) for leg in m.fig.legends for t in leg.get_texts()]


def test_a_peak_at_a_known_point_lands_where_the_tick_labels_say(tmp_path: Path) -> None:
    path = _run(
        tmp_path, "name: f\nfunction: '1/((x-1)^2 + (y+0.5)^2 + 0.001)'\ngrid: {x: [-2, 2, 201], y: [-2, 2, 201]}\n"
    )
    m = _build(path, layers=("image",), colormap="grays", colorbar=False, scale="linear")
    img = _pixels(m)
    lum = img[..., :3].astype(float).sum(axis=2)
    box = m.ax.get_window_extent()
    h = img.shape[0]
    inside = np.zeros_like(lum, dtype=bool)
    inside[int(h - box.y1) + 2 : int(h - box.y0) - 2, int(box.x0) + 2 : int(box.x1) - 2] = True
    row, col = np.unravel_index(np.where(inside, lum, -1).argmax(), lum.shape)
    ax_, bx = _tick_fit(m.ax.get_xticklabels(), 0)
    ay, by = _tick_fit(m.ax.get_yticklabels(), 1)
    x = (col + 0.5 - bx) / ax_
    y = (h - row - 0.5 - by) / ay
    step = 4 / 200
    assert abs(x - 1.0) <= 2 * step and abs(y + 0.5) <= 2 * step, (x, y)


def test_undefined_points_are_neither_the_lowest_colour_nor_under_arrows(tmp_path: Path) -> None:
    """log(x) is NaN for x < 0 and -inf at 0: hatched, counted, and free of arrows."""
    path = _run(tmp_path, "name: f\nfunction: 'log(x)'\ngrid: {x: [-1, 1, 41], y: [-1, 1, 41]}\n")
    m = _build(path, layers=("image", "arrows"), scale="linear", pixels_per_arrow=12)
    lo_colour = np.asarray(m.ax.images[0].cmap(0.0)[:3]) * 255
    img = _pixels(m)
    px, py = m.ax.transData.transform((-0.5, 0.3))
    colour = img[int(img.shape[0] - py), int(px), :3].astype(float)
    assert np.abs(colour - lo_colour).max() > 40, colour  # not the colormap's lowest colour
    arrows = [c for c in m.ax.collections if type(c).__name__ == "Quiver"]
    assert arrows and (arrows[0].get_offsets()[:, 0] > 0).all()  # none over x <= 0
    legend = " ".join(_legend_texts(m))
    # 20 columns of NaN (x < 0) and one of -inf (x = 0), 41 rows each
    assert "undefined (NaN, ±inf): 861 points" in legend, legend
    assert m.limits.lo > -1e30 and np.isfinite(m.limits.lo)  # -inf did not drag the limits away


def test_colour_limits_do_not_depend_on_the_picture_size(tmp_path: Path) -> None:
    """A one-point spike that a coarse pyramid level averages away still sets the maximum."""
    path = _run(
        tmp_path,
        "name: f\nfunction: 'x + 1000*exp(-(x^2 + y^2)/1e-7)'\ngrid: {x: [-1, 1, 1025], y: [-1, 1, 1025]}\n",
    )
    small = _build(path, layers=("image",), size=(160, 120), scale="linear")
    large = _build(path, layers=("image",), size=(1600, 1200), scale="linear")
    assert (small.limits.lo, small.limits.hi) == (large.limits.lo, large.limits.hi)
    assert large.limits.hi > 900  # the spike's height, read at full resolution
    assert small.stats.exact


def test_a_17x17_job_draws_289_arrows_at_its_data_points(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: f\nfunction: 'x^2 + 2*y^2'\ngrid: {x: [-2, 2, 17], y: [-2, 2, 17]}\n")
    m = _build(path, layers=("image", "arrows"), size=(1200, 900))
    q = [c for c in m.ax.collections if type(c).__name__ == "Quiver"][0]
    offsets = np.asarray(q.get_offsets())
    assert len(offsets) == 289
    grid = np.linspace(-2, 2, 17)
    assert np.allclose(np.sort(np.unique(offsets[:, 0])), grid) and np.allclose(np.sort(np.unique(offsets[:, 1])), grid)


def test_arrow_lengths_carry_the_magnitude_with_a_key(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: f\nfunction: 'x^2'\ngrid: {x: [-2, 2, 17], y: [-2, 2, 17]}\n")
    m = _build(path, layers=("arrows",), arrow_mode="scale")
    q = [c for c in m.ax.collections if type(c).__name__ == "Quiver"][0]
    x, u = np.asarray(q.get_offsets())[:, 0], np.asarray(q.U)
    ok = np.abs(x) > 0.1
    ratio = u[ok] / (2 * x[ok])  # the gradient is 2x: the drawn length is proportional to it
    assert np.allclose(ratio, ratio[0])
    assert any("|∇f| = " in t.get_text() for t in m.ax.texts)  # the key names a magnitude


def test_defaults_follow_the_job_descent_and_leave_basins_off(tmp_path: Path) -> None:
    path = _run(
        tmp_path,
        "name: hb\nfunction: {builtin: himmelblau}\ngrid: {x: [-5, 5, 33], y: [-5, 5, 33]}\n"
        "paths: {starts: [[-4, 0]], steps: 50, optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.001}]}\n"
        "basins: {resolution: 8, steps: 100, optimizer: {name: adam, lr: 0.1}}\n"
        "streamlines: {field: descent, seeds: {grid: 3}}\n",
    )
    m = _build(path)
    assert m.resolved.descent and "basins" not in m.opt.layers
    q = [c for c in m.ax.collections if type(c).__name__ == "Quiver" and len(c.get_offsets()) > 100][0]
    x, y = np.asarray(q.get_offsets()).T
    gx = 4 * x * (x**2 + y - 11) + 2 * (x + y**2 - 7)
    big = np.abs(gx) > 50
    assert (np.sign(q.U[big]) == -np.sign(gx[big])).all()  # downhill, as the paths go
    legend = _legend_texts(m)
    assert any(t.startswith("adam, lr 0.05") for t in legend) and any(t.startswith("sgd, lr 0.001") for t in legend)
    assert any("streamlines of −∇f" in t for t in legend) and any("minimum" in t for t in legend)
    with_basins = _build(path, layers=("image", "basins"))
    assert np.array_equal(  # the basins outline, never tint: the image's colours stay the colour bar's
        np.ma.getdata(with_basins.ax.images[0].get_array()), np.ma.getdata(m.ax.images[0].get_array())
    )
    assert sum("basin of the minimum" in t for t in _legend_texts(with_basins)) >= 1


def test_log_scale_masks_nonpositive_values_and_says_how_many(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: f\nfunction: 'x'\ngrid: {x: [-1, 1, 21], y: [0, 1, 11]}\n")
    m = _build(path, layers=("image",), scale="log")
    legend = " ".join(_legend_texts(m))
    assert "≤ 0, not on a log scale: 121 points" in legend, legend  # x <= 0: 11 columns of 11
    assert m.limits.lo > 0


def test_auto_scale_picks_log_for_rosenbrock_and_says_so(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: r\nfunction: {builtin: rosenbrock}\ngrid: {x: [-2, 2, 65], y: [-1, 3, 65]}\n")
    m = _build(path, layers=("image",))
    assert m.resolved.scale == "log"
    assert any("log colour scale" in t for t in _legend_texts(m))
    assert _build(path, layers=("image",), scale="linear").resolved.scale == "linear"
    # limits from zero (the README's clim=(0, 500)): a linear scale, not a log one it cannot draw
    assert _build(path, layers=("image",), clim=(0.0, 100.0)).resolved.scale == "linear"


def test_the_legend_notes_only_what_is_drawn(tmp_path: Path) -> None:
    """A picture of basins and paths alone says nothing of arrows or a colour scale it has not."""
    path = _run(
        tmp_path,
        "name: r\nfunction: {builtin: rosenbrock}\ngrid: {x: [-2, 2, 65], y: [-1, 3, 65]}\n"
        "paths: {starts: [[-1, 2]], steps: 20, optimizers: [{name: adam, lr: 0.05}]}\n",
    )
    drawn = " ".join(_legend_texts(_build(path, layers=("image", "arrows", "paths"))))
    assert "arrows point downhill" in drawn and "log colour scale" in drawn
    bare = " ".join(_legend_texts(_build(path, layers=("paths",))))
    assert "arrows point" not in bare and "colour scale" not in bare, bare


def test_clim_and_robust_set_the_limits(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: f\nfunction: 'x'\ngrid: {x: [0, 100, 101], y: [0, 1, 3]}\n")
    assert (_build(path, clim=(10.0, 20.0)).limits.lo, _build(path, clim=(10.0, 20.0)).limits.hi) == (10.0, 20.0)
    r = _build(path, robust=5.0, layers=("image",)).limits
    assert 3 < r.lo < 7 and 93 < r.hi < 97 and r.extend == "both"


def test_aspect_is_free_for_ranges_of_different_size_and_equal_otherwise(tmp_path: Path) -> None:
    wide = _run(tmp_path, "name: f\nfunction: 'x*y'\ngrid: {x: [0, 100, 11], y: [0, 1, 11]}\n", "wide")
    square = _run(tmp_path, "name: f\nfunction: 'x*y'\ngrid: {x: [0, 2, 11], y: [0, 1, 11]}\n", "square")
    assert _build(wide).ax.get_aspect() == "auto"
    assert _build(square).ax.get_aspect() == 1.0
    assert _build(wide, aspect="equal").ax.get_aspect() == 1.0


def test_a_vector_job_draws_its_magnitude_by_default(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: v\nfunction: ['-y', 'x']\ngrid: {x: [-1, 1, 17], y: [-1, 1, 17]}\n")
    m = _build(path)
    assert m.resolved.field == "magnitude" and not m.resolved.descent
    assert m.bar.ax.get_ylabel() == "|v|"


def test_a_3d_slice_says_its_plane_and_refuses_one_outside(tmp_path: Path) -> None:
    from gradbatch.errors import ViewerError

    path = _run(tmp_path, "name: c\nfunction: 'x + y + z'\ngrid: {x: [0, 1, 9], y: [0, 1, 9], z: [0, 1, 5]}\n")
    m = _build(path, plane=0.3)
    assert "z = 0.25, the grid plane nearest 0.3" in " ".join(m.ax.get_title().split())  # wrapped to fit
    with pytest.raises(ViewerError, match=r"--slice: z=2 is outside the z axis \(0 to 1\)"):
        _build(path, plane=2.0)


def test_svg_and_pdf_are_valid_and_hold_the_axis_names(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: lab\nfunction: 'slope*bias'\ngrid: {slope: [-2, 2, 33], bias: [-1, 1, 17]}\n")
    svg, pdf = tmp_path / "p.svg", tmp_path / "p.pdf"
    for out in (svg, pdf):
        assert main(["render", str(path), "-o", str(out), "--size", "600x450"]) == 0
    root = ET.parse(svg).getroot()  # well-formed XML
    assert root.tag.endswith("svg")
    texts = "".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "slope" in texts and "bias" in texts
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    shown = b""
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            continue
        for arr in re.findall(rb"\[(.*?)\]\s*TJ", content, re.S):  # the text shown, kerning aside
            shown += b"".join(re.findall(rb"\((.*?)\)", arr, re.S)).replace(b"\x00", b"") + b" "
    assert b"slope" in shown and b"bias" in shown


def test_the_window_option_takes_negative_numbers_as_typed(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: f\nfunction: 'x*y'\ngrid: {x: [-3, 3, 33], y: [-3, 3, 33]}\n")
    assert main(["render", str(path), "-o", str(tmp_path / "w.png"), "--window", "-2,2,-2,2", "--size", "300x200"]) == 0
    assert main(["render", str(path), "-o", str(tmp_path / "c.png"), "--clim", "-1,1", "--size", "300x200"]) == 0


@pytest.mark.gl
def test_a_dense_arrow_field_is_one_raster_inside_vector_axes(tmp_path: Path) -> None:
    path = _run(tmp_path, "name: f\nfunction: 'x^2 + y^2'\ngrid: {x: [-1, 1, 257], y: [-1, 1, 257]}\n")
    m = _build(path, layers=("image", "arrows"), pixels_per_arrow=4, size=(800, 600))
    assert not [c for c in m.ax.collections if type(c).__name__ == "Quiver"]
    raster = m.ax.images[-1]
    rgba = np.asarray(raster.get_array())
    box = m.ax.get_window_extent()
    assert abs(rgba.shape[1] - box.width) <= 1 and abs(rgba.shape[0] - box.height) <= 1  # one texel a pixel
    assert (rgba[..., 3] > 0).mean() > 0.05  # arrows drawn
    from gradbatch.viewer.figure import figure_context, save_figure

    with figure_context("light"):
        save_figure(m.fig, tmp_path / "dense.png")  # saved with the layout the raster was sized to (colour bar and all)
    after = m.ax.get_window_extent()
    assert (after.x0, after.y0, after.width, after.height) == (box.x0, box.y0, box.width, box.height)


def test_small_multiples_give_each_optimiser_its_panel(tmp_path: Path) -> None:
    path = _run(
        tmp_path,
        "name: hb\nfunction: {builtin: himmelblau}\ngrid: {x: [-5, 5, 33], y: [-5, 5, 33]}\n"
        "paths: {starts: [[-4, 0], [0, 4]], steps: 50, optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.001}]}\n",
    )
    m = _build(path, panels=True, layers=("image", "paths"))
    panels = [ax for ax in m.fig.axes if ax.get_title().startswith(("adam", "sgd"))]
    assert sorted(ax.get_title() for ax in panels) == ["adam, lr 0.05", "sgd, lr 0.001"]  # each titled by its optimiser
    for ax in panels:  # each panel draws its own optimiser's two paths, in its colour only
        colours = {line.get_color() for line in ax.lines if line.get_linestyle() == "-"}
        assert len(colours) == 1
    legend = _legend_texts(m)
    assert not any(t.startswith(("adam", "sgd")) for t in legend)  # the panels' titles name them
    assert legend.count("path start") == 1  # what the panels share, once
