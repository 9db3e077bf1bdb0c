"""The window's decisions without GL: which data points carry arrows, how long they are drawn,
planes, titles, legend entries and statistics of a field read whole."""

from __future__ import annotations

import numpy as np
import pytest

from gradbatch.errors import ViewerError
from gradbatch.viewer.limits import colour_limits
from gradbatch.viewer.limits import estimate_stats as stats_of
from gradbatch.viewer.prepare import arrow_samples, arrow_vectors
from gradbatch.viewer.window_layout import (
    THEMES,
    check_plane,
    legend_entries,
    plane_words,
    snap_plane,
    title_text,
)


def test_a_coarse_grid_gets_one_arrow_per_data_point() -> None:
    x = np.linspace(-2, 2, 17)
    ix, iy = arrow_samples(x, x, (-2, 2, -2, 2), (600, 600), 24)  # 37.5 px between points
    assert len(ix) * len(iy) == 289 and (ix == np.arange(17)).all()


def test_a_dense_grid_gets_the_nearest_sample_never_the_next() -> None:
    x = np.arange(100.0)  # one point a pixel
    ix, _ = arrow_samples(x, x, (0, 99, 0, 99), (99, 99), 24)
    want = 0 + (np.arange(4) + 0.5) * 99 / 4  # 12.375, 37.125, 61.875, 86.625
    np.testing.assert_array_equal(ix, np.round(want).astype(int))  # searchsorted took 13, 38, 62, 87
    assert (np.abs(x[ix] - want) <= 0.5).all()


def test_samples_outside_the_window_carry_no_arrow() -> None:
    x = np.linspace(0, 10, 11)
    ix, _ = arrow_samples(x, x, (2.5, 6.5, 0, 10), (400, 400), 24)
    assert x[ix].tolist() == [3, 4, 5, 6]


def test_clip_arrows_scale_with_magnitude_up_to_the_cell() -> None:
    u = np.array([0.0, 1.0, 2.0, 4.0, 1000.0, np.nan])
    du, dv, scale = arrow_vectors(u, np.zeros_like(u), 40.0, (10.0, 10.0), "clip")
    assert scale.reference == pytest.approx(np.percentile(u[:5], 90)) and scale.key == 500  # a round key below it
    px = du * 10
    assert px[0] == 0 and 0 < px[1] < px[2] < px[3] <= px[4] <= 0.9 * 40 + 1e-9  # one huge vector
    assert np.isnan(du[5]) and (dv[:5] == 0).all()
    du, _, _ = arrow_vectors(u, np.zeros_like(u), 40.0, (10.0, 10.0), "normalize")
    assert np.allclose(du[1:5], du[1])


def test_arrows_keep_their_screen_direction_on_unequal_axes() -> None:
    du, dv, _ = arrow_vectors(np.array([1.0]), np.array([1.0]), 30.0, (100.0, 1.0), "normalize")
    assert np.arctan2(dv[0] * 1.0, du[0] * 100.0) == pytest.approx(np.arctan2(1.0, 100.0))


def test_planes_are_refused_outside_their_axis_and_snapped_inside() -> None:
    with pytest.raises(ViewerError, match=r"--slice: z=5 is outside the z axis \(-1 to 1\)"):
        check_plane("z", 5.0, (-1.0, 1.0, 0.25))
    check_plane("z", 1.1, (-1.0, 1.0, 0.25))  # within half a step: the last plane
    assert snap_plane(0.1, (-1.0, 1.0, 0.25)) == 0.0 and snap_plane(1.1, (-1.0, 1.0, 0.25)) == 1.0
    assert plane_words("z", 0.0403, 0.0) == "z = 0.0403 (nearest grid plane to 0)"
    assert plane_words("z", 0.25, None) == "z = 0.25"


def test_titles_and_legend_entries() -> None:
    assert title_text("bowl", "x^2 + y^2", None) == "bowl: x^2 + y^2"
    assert title_text("bowl", "x^2", "Mine", "z = 0") == "Mine    z = 0"
    entries = legend_entries(
        ["adam", "sgd"],
        THEMES["dark"],
        ("paths", "streamlines", "minima", "arrows"),
        streamlines=True,
        minima=["minimum", "minimum", "saddle"],
        basins=4,
        descent=True,
        arrows=True,
        undefined=12,
    )
    texts = [e.text for e in entries]
    assert texts == [
        "adam",
        "sgd",
        "streamlines (descent)",
        "minimum",
        "saddle",
        "-grad (downhill)",
        "undefined (12 pts)",
    ]
    assert entries[0].color != entries[1].color


def test_statistics_of_a_whole_field_give_zoom_free_limits() -> None:
    data = np.array([[np.nan, 1.0, 2.0], [3.0, np.inf, -1.0]])
    s = stats_of("value", data, 2)
    assert (s.nan, s.posinf, s.minimum, s.maximum, s.min_positive, s.nonpositive) == (1, 1, -1.0, 3.0, 1.0, 1)
    lim = colour_limits(s, "linear", None, None)
    assert (lim.lo, lim.hi, lim.undefined) == (-1.0, 3.0, 2)
