"""Viewer geometry in numpy, tested without GL: vertex counts, orientation, level of detail."""

from __future__ import annotations

import numpy as np
import pytest

from gradbatch.geometry import (
    VERTICES_PER_ARROW,
    arrow_segments,
    choose_level,
    lod_grid,
    polyline_connect,
    scale_vectors,
)


def test_n_arrows_are_one_segment_set_of_6n_vertices() -> None:
    n = 1000
    rng = np.random.default_rng(0)
    a = arrow_segments(rng.random(n), rng.random(n), rng.random(n) - 0.5, rng.random(n) - 0.5)
    assert a.vertices.shape == (n * VERTICES_PER_ARROW, 2) and a.vertices.dtype == np.float32
    assert a.values.shape == (n * VERTICES_PER_ARROW,)


def test_arrow_points_along_its_vector_and_barbs_sit_behind_the_tip() -> None:
    a = arrow_segments(np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([0.0]), head=0.25)
    tail, tip, tip2, b1, tip3, b2 = a.vertices
    np.testing.assert_allclose(tail, [1, 2])
    np.testing.assert_allclose(tip, [4, 2])  # along +x: uphill for a gradient pointing +x
    assert (tip == tip2).all() and (tip == tip3).all()
    assert b1[0] < tip[0] and b2[0] < tip[0] and min(b1[1], b2[1]) < 2 < max(b1[1], b2[1])  # behind, either side
    np.testing.assert_allclose(np.hypot(*(b1 - tip)), 0.75, rtol=1e-6)
    assert a.values[0] == pytest.approx(3.0)


def test_nan_vectors_are_dropped() -> None:
    a = arrow_segments(np.zeros(3), np.zeros(3), np.array([1.0, np.nan, 1.0]), np.ones(3))
    assert a.vertices.shape == (2 * VERTICES_PER_ARROW, 2)


def test_scale_modes() -> None:
    u, v = np.array([3.0, 0.3, 0.0]), np.array([4.0, 0.4, 0.0])
    un, vn = scale_vectors(u, v, 1.0, "normalize")
    np.testing.assert_allclose(np.hypot(un, vn), [1, 1, 0])
    uc, vc = scale_vectors(u, v, 1.0, "clip", max_length=2.0)
    np.testing.assert_allclose(np.hypot(uc, vc), [2.0, 0.5, 0.0])
    us, vs = scale_vectors(u, v, 0.1, "scale")
    np.testing.assert_allclose(np.hypot(us, vs), [0.5, 0.05, 0.0])
    with pytest.raises(ValueError, match="unknown arrow mode 'huge'"):
        scale_vectors(u, v, 1.0, "huge")


def test_polyline_connect_never_joins_two_lines() -> None:
    offsets = np.array([0, 3, 4, 7])  # lines of 3, 1 and 3 points
    c = polyline_connect(offsets)
    assert c.tolist() == [[0, 1], [1, 2], [4, 5], [5, 6]] and c.dtype == np.uint32
    assert polyline_connect(np.array([0])).shape == (0, 2)


def test_lod_grid_density_depends_on_pixels_not_zoom() -> None:
    xs, ys = lod_grid((0, 10, 0, 5), (800, 400), 16)
    assert (len(xs), len(ys)) == (50, 25)
    zx, zy = lod_grid((4, 4.01, 2, 2.005), (800, 400), 16)
    assert (len(zx), len(zy)) == (50, 25)
    assert xs[0] == pytest.approx(0.1) and xs[-1] == pytest.approx(9.9)


@pytest.mark.parametrize(
    "points, pixels, levels, expected",
    [
        (8192, 1024, 5, 3),
        (8192, 1024, 2, 2),
        (1000, 1024, 5, 0),
        (2048, 1024, 5, 1),
        (2047, 1024, 5, 0),
    ],
)
def test_choose_level_keeps_a_data_point_per_screen_pixel(points: int, pixels: int, levels: int, expected: int) -> None:
    assert choose_level(points, pixels, levels) == expected


def test_colour_lookup_table_ends_and_nan() -> None:
    from gradbatch.viewer.prepare import colormap_lut, map_colors

    lut = colormap_lut("viridis")
    assert lut.shape == (256, 4) and lut.dtype == np.float32
    got = map_colors(np.array([0.0, 1.0, np.nan, 0.5, -3.0, 7.0]), lut)
    np.testing.assert_array_equal(got[[0, 1, 2, 4, 5]], lut[[0, 255, 0, 0, 255]])
    np.testing.assert_array_equal(got[3], lut[128])
