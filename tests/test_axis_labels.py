"""Axis names and units for pictures: ``labels:``/``units:`` under ``grid:``, checked in the
config, stored as CF attributes (long_name, units) on the axes' coordinates, read back by the
readers; a landscape's axes named by what they are."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import ConfigError, StoreError
from gradbatch.store import FieldReader, job_layout
from gradbatch.summary import describe
from gradbatch.writing import axis_attrs

LABELLED = (
    "name: lab\nfunction: 'x * y + z'\n"
    "grid: {x: [0, 1, 8], y: [0, 2, 6], z: [0, 1, 3], labels: {x: 'slope m', z: 'Zeit τ'}, units: {x: m, y: 's'}}\n"
)


def _run(text: str, out: Path) -> Path:
    gradbatch.run_jobs(parse_config(text, output=out))
    return out


def test_labels_and_units_round_trip_to_the_axes_and_their_readers(tmp_path: Path) -> None:
    out = _run(LABELLED, tmp_path / "l.h5")
    want = {"x": ("slope m", "m"), "y": ("", "s"), "z": ("Zeit τ", "")}
    reader = FieldReader(out)
    try:
        assert reader.axis_labels == want
        assert reader.function_text == "x * y + z"
    finally:
        reader.close()
    layout = job_layout(out)
    assert layout is not None and layout.labels == want and layout.function == "x * y + z"
    with h5py.File(out, "r") as f:  # CF attributes, absent where not given
        assert f["lab/x"].attrs["long_name"] == "slope m" and f["lab/x"].attrs["units"] == "m"
        assert "long_name" not in f["lab/y"].attrs and f["lab/y"].attrs["units"] == "s"
    assert "axis x      0 .. 1, 8 points   'slope m' [m]" in describe(out)


def test_labels_reach_every_pyramid_level(tmp_path: Path) -> None:
    out = _run(
        "name: p\nfunction: 'x + y'\ngrid: {x: [0, 1, 600], y: [0, 1, 20], labels: {x: 'position'}}\ntile: 64\n",
        tmp_path / "p.h5",
    )
    with h5py.File(out, "r") as f:
        assert [f[f"p/levels/{k}/x"].attrs["long_name"] for k in (1, 2)] == ["position", "position"]


def test_a_1d_job_and_a_file_without_labels_read_empty_strings(tmp_path: Path) -> None:
    out = _run("name: one\nfunction: 'x^3'\ngrid: {x: [-1, 1, 11], units: {x: V}}\n", tmp_path / "one.h5")
    layout = job_layout(out)
    assert layout is not None and layout.labels == {"x": ("", "V")}
    plain = _run("name: two\nfunction: 'x*y'\ngrid: {x: [0, 1, 4], y: [0, 1, 4]}\n", tmp_path / "two.h5")
    reader = FieldReader(plain)
    try:
        assert reader.axis_labels == {"x": ("", ""), "y": ("", "")}
    finally:
        reader.close()


def test_a_stored_label_that_is_not_text_is_a_store_error(tmp_path: Path) -> None:
    out = _run(LABELLED, tmp_path / "l.h5")
    with h5py.File(out, "r+") as f:
        f["lab/x"].attrs["long_name"] = 3
    with pytest.raises(StoreError, match="attribute 'long_name' of /lab/x is 3; expected text"):
        FieldReader(out)


def test_a_builtin_keeps_its_domain_when_only_labels_are_given() -> None:
    (job,) = parse_config("function: {builtin: himmelblau}\ngrid: {labels: {x: a, y: b}}\n").jobs
    assert [(a.start, a.stop, a.label) for a in job.grid.axes] == [(-5.0, 5.0, "a"), (-5.0, 5.0, "b")]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("labels: {z: a}", "grid.labels: 'z' is not an axis of the grid; axes: x, y$"),
        ("units: {xx: m}", "grid.units: 'xx' is not an axis of the grid; axes: x, y; did you mean 'x'\\?"),
        ("labels: [a, b]", "grid.labels: expected a mapping of axis names to text"),
        ("units: {x: 3}", "grid.units.x: expected text \\(quote numbers: '1'\\), got 3"),
        ('labels: {x: "a\\nb"}', "grid.labels.x: expected one line of plain text; it holds character U\\+000A"),
        ('labels: {x: "a\\u202eb"}', "grid.labels.x: expected one line of plain text; it holds character U\\+202E"),
        (f"labels: {{x: {'a' * 101}}}", "grid.labels.x: 101 characters; at most 100 are allowed"),
        ("labels: {x: a}", "grid: expected a mapping of 1 to 3 axes"),  # labels alone are no grid
    ],
)
def test_bad_labels_are_refused_with_one_line(grid: str, message: str) -> None:
    axes = "" if grid == "labels: {x: a}" else "x: [0, 1, 5], y: [0, 1, 5], "
    with pytest.raises(ConfigError, match=message):
        parse_config(f"function: x*y\ngrid: {{{axes}{grid}}}\n")


def test_a_data_landscape_names_its_axes_slope_and_bias_unless_labelled(tmp_path: Path) -> None:
    text = (
        "name: lin\nfunction: {landscape: {model: linear, data: {synthetic: {n: 20, seed: 1}}}}\n"
        "grid: {m: [-3, 3, 9], b: [-3, 3, 7]%s}\n"
    )
    reader = FieldReader(_run(text % "", tmp_path / "a.h5"))
    try:
        assert reader.axis_labels == {"m": ("slope m", ""), "b": ("bias b", "")}
    finally:
        reader.close()
    reader = FieldReader(_run(text % ", labels: {b: intercept}, units: {m: 'y/x'}", tmp_path / "b.h5"))
    try:
        assert reader.axis_labels == {"m": ("slope m", "y/x"), "b": ("intercept", "")}
    finally:
        reader.close()


def _plan(directions: str, variance: list[float] | None = None) -> SimpleNamespace:
    axes = (SimpleNamespace(name="alpha", label="", unit=""), SimpleNamespace(name="beta", label="", unit=""))
    attrs = {"kind": "network", "directions": directions}
    if variance is not None:
        attrs["explained_variance"] = variance
    landscape = SimpleNamespace(attrs=attrs)
    job = SimpleNamespace(grid=SimpleNamespace(axes=axes, names=("alpha", "beta")))
    return SimpleNamespace(job=job, built=SimpleNamespace(landscape=landscape))


def test_a_network_landscape_names_its_directions() -> None:
    assert axis_attrs(_plan("filter")) == {  # type: ignore[arg-type]
        "alpha": {"long_name": "filter-normalised direction 1"},
        "beta": {"long_name": "filter-normalised direction 2"},
    }
    assert axis_attrs(_plan("pca", [0.62, 0.2]))["beta"] == {  # type: ignore[arg-type]
        "long_name": "principal direction 2 (20.0% of the training's variance)"
    }
    assert axis_attrs(_plan("random"))["alpha"] == {"long_name": "random direction 1"}  # type: ignore[arg-type]
