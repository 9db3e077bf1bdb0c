"""The layers' numpy preparation, without GL: image colour limits and path polylines."""

from __future__ import annotations

import numpy as np

from gradbatch.viewer.prepare import arrow_canvas, image_limits, path_polylines


def test_image_limits_linear_symmetric_and_log() -> None:
    v = np.array([[-1.0, 0.5], [2.0, 4.0]])
    data, lo, hi = image_limits(v, "linear")
    assert data.dtype == np.float32 and (lo, hi) == (-1.0, 4.0)
    np.testing.assert_array_equal(data, v)
    assert image_limits(v, "symmetric")[1:] == (-4.0, 4.0)
    data, lo, hi = image_limits(v, "log")  # log10 of the positive values; the rest as the lowest
    assert (lo, hi) == (float(np.log10(np.float32(0.5))), float(np.log10(np.float32(4.0))))
    assert data[0, 0] == lo and data[1, 1] == hi


def test_image_limits_of_nan_flat_and_empty_windows_still_draw() -> None:
    data, lo, hi = image_limits(np.array([[np.nan, 1.0], [3.0, np.nan]], np.float32), "linear")
    assert (lo, hi) == (1.0, 3.0) and not np.isnan(data).any() and data[0, 0] == 1.0
    assert image_limits(np.full((2, 2), np.nan, np.float32), "linear")[1:] == (0.0, 1.0)
    assert image_limits(np.full((2, 2), 7.0, np.float32), "linear")[1:] == (6.5, 7.5)
    assert image_limits(np.zeros((0, 3), np.float32), "linear")[1:] == (0.0, 1.0)
    raw = np.ones((2, 2), np.float32)
    assert image_limits(raw, "linear")[0] is raw  # nothing to clear: no copy


def test_path_polylines_up_to_a_step_drop_what_follows_a_stop() -> None:
    pos = np.zeros((3, 4, 2), np.float32)
    pos[0, :, 0] = [0, 1, 2, 3]
    pos[1, :, 0] = [10, 11, np.nan, np.nan]  # stopped after step 1
    pos[2] = np.nan  # NaN from its start: left out
    verts, connect, tips = path_polylines(pos, 2)
    np.testing.assert_array_equal(verts[:, 0], [0, 1, 2, 10, 11])
    np.testing.assert_array_equal(connect, [[0, 1], [1, 2], [3, 4]])  # never across paths
    np.testing.assert_array_equal(tips, [[2, 0], [11, 0]])
    assert tips.dtype == np.float32
    verts, connect, tips = path_polylines(pos, 0)
    assert len(connect) == 0 and len(verts) == 2 and tips[:, 0].tolist() == [0, 10]


def test_arrow_canvas_is_a_few_points_per_arrow_cell() -> None:
    assert arrow_canvas((1200, 900), 24) == (200, 150)
    assert arrow_canvas((10, 10), 24) == (2, 2)
