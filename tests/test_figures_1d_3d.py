"""Picture files of 1D jobs (figure1d: the curve, f' as arrows on the input axis) and of
surfaces (figure3d: mplot3d, the arrows in the input plane below). matplotlib only: no GL."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import ViewerError
from gradbatch.store import FieldReader, job_layout
from gradbatch.viewer.figure import figure_context, new_figure
from gradbatch.viewer.figure1d import CurveFigure, _read_curve, axis_arrows, render_curve
from gradbatch.viewer.figure3d import PLANE_GAP, SHADE, SurfaceFigure, render_surface, surface_mesh
from gradbatch.viewer.limits import colour_limits, estimate_stats
from gradbatch.viewer.options import RenderOptions, Resolved

pytest.importorskip("matplotlib")


def _job(tmp: Path, function: str, grid: str, name: str = "f") -> Path:
    out = tmp / f"{name}.h5"
    gradbatch.run_jobs(
        parse_config(f"name: {name}\nfunction: '{function}'\ngrid: {grid}\noutputs: [value, gradient]\n", output=out),
        overwrite=True,
    )
    return out


def _curve(path: Path, opt: RenderOptions, descent: bool = False) -> tuple[Any, CurveFigure]:
    """A drawn 1D figure and its composer (for its artists), as render_curve draws it."""
    layout = job_layout(path)
    assert layout is not None
    x, y, g = _read_curve(path, layout, "value", opt)
    with figure_context(opt.theme):
        fig = new_figure(opt)
        cf = CurveFigure(fig, layout, opt, {}, "value", descent)
        cf.draw(x, y, g)
        fig.canvas.draw()
    return fig, cf


# -- 1D ------------------------------------------------------------------------------------------
def test_axis_arrow_lengths_are_proportional_to_the_derivative() -> None:
    """Issue 12 item 8: every arrow had the same length (the clip was below |f'| almost
    everywhere). Now length / f' is one constant, except the few clipped at the maximum."""
    x = np.linspace(-1.0, 1.0, 201)
    g = 3 * x**2 - 0.5  # f = x^3 - x/2
    a = axis_arrows(x, g, (-1.0, 1.0), 800, RenderOptions(), descent=False)
    assert len(a.x) >= 10
    ratio = a.du[~a.clipped] / a.slope[~a.clipped]
    finite = np.isfinite(ratio)
    assert finite.sum() >= 0.8 * len(a.x)  # most arrows carry their magnitude
    np.testing.assert_allclose(ratio[finite], ratio[finite][0], rtol=1e-9)
    assert ratio[0] > 0  # uphill: along f'
    full = np.abs(a.du).max()
    np.testing.assert_allclose(np.abs(a.du[a.clipped]), full)  # clipped only at the maximum
    assert (np.abs(a.slope[a.clipped]) > a.scale.reference).all()
    assert a.clipped.mean() <= 0.15
    assert len(np.unique(np.round(np.abs(a.du), 12))) > len(a.x) // 2  # not one length for all
    down = axis_arrows(x, g, (-1.0, 1.0), 800, RenderOptions(), descent=True)
    np.testing.assert_allclose(down.du, -a.du)  # descent flips them


def test_axis_arrows_drawn_on_the_input_axis_from_the_figures_artists(tmp_path: Path) -> None:
    path = _job(tmp_path, "x^3 + 2*x^2 - x", "{x: [-3, 1.5, 1001]}")
    _, cf = _curve(path, RenderOptions(size=(800, 500)))
    q = cf.axis_quiver
    xs, ys = q.X, q.Y
    assert np.all(ys == 0.0)  # on y = 0: the input axis (the cubic crosses 0)
    slope = 3 * xs**2 + 4 * xs - 1
    u = np.asarray(q.U)
    free = np.abs(u) < np.abs(u).max() - 1e-12
    np.testing.assert_allclose(u[free] / slope[free], (u[free] / slope[free])[0], rtol=1e-3)
    # the tangent over each arrow: same x step, rising f' times it
    t = cf.tangent_quiver
    np.testing.assert_allclose(np.asarray(t.U), u, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(t.V), u * slope, rtol=1e-3, atol=1e-9)
    labels = [h.get_label() for h in cf.handles]
    assert any("length ∝ f′, clipped at" in s for s in labels)
    assert any("tangent" in s for s in labels)
    assert any(t.get_text().startswith("|f′| = ") for t in cf.ax.texts)  # the key


def test_curve_point_lands_where_the_tick_labels_say(tmp_path: Path) -> None:
    """The curve's lowest pixel (f = (x - 0.3)^2, minimum at x = 0.3) is where the x tick
    labels, read as numbers at their drawn places, put 0.3."""
    import matplotlib.image

    path = _job(tmp_path, "(x - 0.3)^2 + 0.5", "{x: [-1, 1, 401]}")
    opt = RenderOptions(size=(600, 400), layers=("image",), legend=False)
    fig, cf = _curve(path, opt)
    png = tmp_path / "c.png"
    fig.savefig(png, dpi=fig.dpi)
    img = matplotlib.image.imread(png)[..., :3]
    blue = (img[..., 2] > 0.55) & (img[..., 0] < 0.3)  # the curve's colour, #1f77b4
    rows, cols = np.nonzero(blue)
    low = cols[rows == rows.max()]  # the lowest row of the curve: its minimum
    found = low.mean()
    r = fig.canvas.get_renderer()
    ticks = [(float(t.get_text().replace("−", "-")), t.get_window_extent(r)) for t in cf.ax.get_xticklabels()]
    ticks = [(v, (b.x0 + b.x1) / 2) for v, b in ticks if math.isfinite(v) and b.width > 0]
    (v0, p0), (v1, p1) = ticks[0], ticks[-1]
    at = v0 + (found - p0) * (v1 - v0) / (p1 - p0)
    assert abs(at - 0.3) < 0.01, (at, ticks)


def test_window_sets_both_axes_and_nan_y_keeps_the_whole_curve(tmp_path: Path) -> None:
    path = _job(tmp_path, "x^2", "{x: [-2, 2, 201]}")
    _, cf = _curve(path, RenderOptions(window=(-1.0, 1.5, -0.5, 3.0)))
    assert cf.ax.get_xlim() == (-1.0, 1.5) and cf.ax.get_ylim() == (-0.5, 3.0)
    _, cf = _curve(path, RenderOptions(window=(-1.0, 1.0, math.nan, math.nan)))
    assert cf.ax.get_xlim() == (-1.0, 1.0)
    lo, hi = cf.ax.get_ylim()
    assert lo < 0 < 1.0 < hi < 1.5  # the curve over [-1, 1]: 0 to 1, padded


def test_1d_nan_values_are_gaps_counted_in_the_legend(tmp_path: Path) -> None:
    path = _job(tmp_path, "sqrt(x) + 1", "{x: [-1, 4, 501]}")  # NaN for x < 0: 100 points
    out = render_curve(path, job_layout(path), tmp_path / "q.svg", RenderOptions(descent=True))  # type: ignore[arg-type]
    texts = _svg_texts(out)
    assert any("undefined (NaN, ±inf): 100 points" in t for t in texts)
    assert any(t.startswith("−f′(x) on the input axis") for t in texts)  # descent said
    _, cf = _curve(path, RenderOptions())
    line = cf.ax.get_lines()[-1]
    y = np.asarray(line.get_ydata(), float)
    assert np.isnan(y).sum() >= 1 and np.isfinite(y).sum() > 10  # a gap, not a value


@pytest.mark.parametrize(
    ("change", "option"),
    [
        (dict(surface=True), "--surface"),
        (dict(field="magnitude"), "--field"),
        (dict(slice_axis="z", plane=0.5), "--slice"),
        (dict(clim=(0.0, 1.0)), "--clim"),
        (dict(robust=2.0), "--robust"),
        (dict(scale="log"), "--scale"),
    ],
)
def test_options_a_curve_cannot_honour_are_refused(tmp_path: Path, change: dict[str, Any], option: str) -> None:
    path = _job(tmp_path, "x^2", "{x: [-1, 1, 21]}")
    out = tmp_path / "c.png"
    with pytest.raises(ViewerError, match=f"^{option}: .*'f'.*1D") as err:
        render_curve(path, job_layout(path), out, replace(RenderOptions(), **change))  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
    assert not out.exists()


def _svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return ["".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")]


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """A ToUnicode CMap's codes: bfchar pairs, bfrange with a start or with a list of values."""
    table: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
        for a, b in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            table[int(a, 16)] = bytes.fromhex(b.decode()).decode("utf-16-be")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
        for a, b, rest in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*(\[[^\]]*\]|<[0-9a-fA-F]+>)", block):
            lo, hi = int(a, 16), int(b, 16)
            values = re.findall(rb"<([0-9a-fA-F]+)>", rest)
            for k, code in enumerate(range(lo, hi + 1)):
                if rest.startswith(b"["):
                    table[code] = bytes.fromhex(values[k].decode()).decode("utf-16-be")
                else:
                    table[code] = chr(int(values[0], 16) + k)
    return table


def _pdf_text(data: bytes) -> str:
    """The text a PDF of matplotlib's shows (Type 42 fonts: glyph ids mapped back through each
    font's ToUnicode map), concatenated per text object: enough to find a word."""
    objs = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}

    def stream(body: bytes) -> bytes:
        m = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
        assert m is not None
        return zlib.decompress(m[1]) if b"FlateDecode" in body else m[1]

    fonts: dict[bytes, dict[int, str]] = {}
    for body in objs.values():
        for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", body):
            tu = re.search(rb"/ToUnicode (\d+) 0 R", objs[int(ref)])
            if tu is None:
                continue
            fonts[name] = _to_unicode(stream(objs[int(tu[1])]))
    text = []
    for body in objs.values():
        if b"stream" not in body or b"/FontFile" in body or b"ToUnicode" in body:
            continue
        try:
            content = stream(body)
        except zlib.error:
            continue
        font: dict[int, str] = {}
        for tf, s, end in re.findall(rb"/(F\d+) [\d.]+ Tf|\((.*?)(?<!\\)\)|\b(ET)\b", content, re.S):
            if tf:
                font = fonts.get(tf, {})
            elif end:
                text.append(" ")  # one text object (a label) ends
            elif s and font:
                raw = re.sub(rb"\\([()\\])", rb"\1", s)
                raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), raw)
                text.append("".join(font.get(int.from_bytes(raw[i : i + 2], "big"), "") for i in range(0, len(raw), 2)))
    return "".join(text)


def test_1d_svg_and_pdf_are_valid_and_hold_the_axis_names(tmp_path: Path) -> None:
    path = _job(tmp_path, "speed^2 - 1", "{speed: [-1, 1, 51]}", name="drag")
    layout = job_layout(path)
    svg = render_curve(path, layout, tmp_path / "d.svg", RenderOptions())  # type: ignore[arg-type]
    texts = _svg_texts(svg)  # parses: valid XML
    assert "speed" in texts and "f(speed)" in texts and any(t.startswith("drag: speed^2 - 1") for t in texts)
    pdf = render_curve(path, layout, tmp_path / "d.pdf", RenderOptions())  # type: ignore[arg-type]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    text = _pdf_text(data)
    assert "speed" in text and "f(speed)" in text


# -- surface -------------------------------------------------------------------------------------
def _surface(path: Path, opt: RenderOptions, resolved: Resolved) -> SurfaceFigure:
    reader = FieldReader(path)
    try:
        from gradbatch.records import WindowRequest

        pair = reader.vectors or ()
        resp = reader.read(WindowRequest(reader.job, reader.extent, (100, 100), ("value",), tuple(pair), (20, 20)))
        limits = colour_limits(estimate_stats("value", resp.data["value"]), resolved.scale, None, None)
        with figure_context(opt.theme):
            fig = new_figure(opt)
            s = SurfaceFigure(fig, reader, opt, resolved, reader.extent, limits)
            s.draw(resp)
            fig.canvas.draw()
        return s
    finally:
        reader.close()


LINEAR = Resolved("value", False, "linear", "auto")


def _luminance(rgba: np.ndarray) -> np.ndarray:
    return np.asarray(0.2126 * rgba[:, 0] + 0.7152 * rgba[:, 1] + 0.0722 * rgba[:, 2])


def test_surface_keeps_its_colours_not_near_black(tmp_path: Path) -> None:
    """Seed 002's loss landscape (a steep quadratic bowl over slope and bias) came out nearly
    black: now the light dims a face by at most a quarter, the colours stay the colour bar's."""
    path = _job(tmp_path, "(2*m + b - 3)^2 * 40 + 30*m^2", "{m: [-20, 20, 81], b: [-40, 40, 81]}")
    s = _surface(path, RenderOptions(size=(600, 450), surface=True), LINEAR)
    lum, base = _luminance(s.surface_rgba), _luminance(s.surface_base)
    assert lum.mean() >= 0.85 * base.mean()  # the picture's mean brightness: the colours' own, nearly
    assert (lum >= (1 - SHADE) * base - 1e-9).all()  # and no face darker than 3/4 of its colour
    assert (lum < base - 1e-3).mean() > 0.2  # yet lit: the shape shows


def test_arrow_plane_lies_below_the_surface_and_shows(tmp_path: Path) -> None:
    path = _job(tmp_path, "sin(3*x) * cos(3*y)", "{x: [0, 2, 41], y: [0, 1, 41]}")
    s = _surface(path, RenderOptions(size=(600, 450), surface=True), LINEAR)
    segs = np.asarray(s.arrow_collection._segments3d)
    lo, hi = s.z_range
    assert lo == pytest.approx(float(np.nanmin(s.mesh[2])))  # type: ignore[index]
    assert np.all(segs[..., 2] == s.plane_z)
    assert s.plane_z < lo - 0.5 * PLANE_GAP * (hi - lo)  # well below the surface's minimum
    assert 200 <= s.arrow_count <= 441  # about 20 x 20 arrows at data points
    # most arrows are not covered by the surface's projection (drawn after them; 22% for the ripple)
    from matplotlib.path import Path as MPath
    from mpl_toolkits.mplot3d import proj3d

    centres = segs[::3, 0, :]  # each arrow's shaft start
    px, py, _ = proj3d.proj_transform(centres[:, 0], centres[:, 1], centres[:, 2], s.ax.get_proj())
    screen = np.stack([px, py], 1)  # the projected 2D coordinates the surface's drawn paths are in
    covered = np.zeros(len(screen), bool)
    for p in s.surface_collection.get_paths():
        covered |= MPath(p.vertices).contains_points(screen)
    assert 0 < covered.mean() < 0.3, covered.mean()  # (0 would mean the check sees nothing)


def test_surface_nan_points_are_holes_counted_and_arrows_skip_them(tmp_path: Path) -> None:
    path = _job(tmp_path, "sqrt(x) * (y + 2) + 0.1", "{x: [-1, 2, 31], y: [-1, 1, 21]}")
    s = _surface(path, RenderOptions(size=(600, 450), surface=True), LINEAR)
    x, y, values = s.mesh  # type: ignore[misc]
    corners = np.isfinite(values)
    quads = corners[:-1, :-1] & corners[:-1, 1:] & corners[1:, :-1] & corners[1:, 1:]
    assert len(s.surface_rgba) == quads.sum() < quads.size
    labels = [h.get_label() for h in s.handles]
    assert any(lab.startswith("undefined (NaN, ±inf): 210 points") for lab in labels), labels  # x < 0: 10 x 21
    segs = np.asarray(s.arrow_collection._segments3d)
    assert segs[::3, 0, 0].min() >= -0.05  # no arrow starts over the undefined half (x < 0)


def test_surface_mesh_is_at_most_100_points_a_side_and_spans_the_window() -> None:
    x, y = np.linspace(0, 1, 1001), np.linspace(0, 2, 37)
    mx, my, mz = surface_mesh(x, y, np.zeros((37, 1001)))
    assert len(mx) <= 101 and mx[0] == 0 and mx[-1] == 1 and len(my) == 37 and mz.shape == (37, len(mx))


def test_surface_svg_and_pdf_hold_the_axis_names_and_a_colour_bar(tmp_path: Path) -> None:
    path = _job(tmp_path, "mass * speed", "{mass: [0, 2, 21], speed: [-1, 1, 21]}", name="momentum")
    opt = RenderOptions(size=(700, 500), surface=True)
    reader = FieldReader(path)
    try:
        svg = render_surface(reader, tmp_path / "m.svg", opt, LINEAR)
        pdf = render_surface(reader, tmp_path / "m.pdf", opt, LINEAR)
        png = render_surface(reader, tmp_path / "m.png", replace(opt, elevation=60, azimuth=10), LINEAR)
    finally:
        reader.close()
    texts = _svg_texts(svg)
    for name in ("mass", "speed", "f(mass, speed)"):
        assert name in texts
    assert "momentum: mass * speed" in texts  # the title: the job and its function
    text = _pdf_text(pdf.read_bytes())
    assert "mass" in text and "speed" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_1d_vector_jobs_curve_is_its_magnitude_by_default(tmp_path: Path) -> None:
    """The default field of a vector job is its magnitude, |v| (not a gradient's |∇f|)."""
    import gradbatch
    from gradbatch.config import parse_config

    out = tmp_path / "v.h5"
    text = "name: v\nfunction: ['sin(x)']\ngrid: {x: [-1, 1, 20]}\noutputs: [components, divergence, magnitude]\n"
    gradbatch.run_jobs(parse_config(text, output=out))
    fig = gradbatch.show(out, size=(600, 450))
    assert fig.png[:4] == b"\x89PNG"
    from gradbatch.store import job_layout
    from gradbatch.viewer.figure1d import check_curve_options

    lay = job_layout(out)
    assert lay is not None and check_curve_options(fig.options, lay) == "magnitude"
