"""Window reads at the right pyramid level, without GL (and without torch in the reader)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import StoreError
from gradbatch.store import FieldReader, WindowRequest
from gradbatch.viewer.loader import Loader

JOB = (
    "name: wave\nfunction: 'x + 10*y'\ngrid: {x: [0, 8, 2049], y: [-1, 1, 1025]}\n"
    "dtype: float64\noutputs: [value, gradient]\n"
)


@pytest.fixture(scope="module")
def wave(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loader") / "wave.h5"
    gradbatch.run_jobs(parse_config(JOB, output=out))
    return out


def test_whole_view_reads_a_coarse_level_and_zooming_reads_finer(wave: Path) -> None:
    r = FieldReader(wave)
    assert r.extent == (0.0, 8.0, -1.0, 1.0) and len(r.levels) == 5  # 2049, 1025, 513, 257, 129
    whole = r.read(WindowRequest("wave", (0, 8, -1, 1), (512, 256), ("value",)))
    assert whole.level == 2 and whole.data["value"].shape == (len(whole.y), len(whole.x))
    assert whole.data["value"].shape[1] <= 2 * 512 + 2  # never more than ~1 point per pixel
    zoom = r.read(WindowRequest("wave", (1.0, 1.5, 0.0, 0.25), (512, 256), ("value", "grad_y")))
    assert zoom.level == 0 and zoom.x[0] <= 1.0 <= zoom.x[-1] + 1e-9
    # orientation: row j is y[j], column i is x[i]
    j, i = 3, 5
    assert zoom.data["value"][j, i] == pytest.approx(zoom.x[i] + 10 * zoom.y[j])
    np.testing.assert_allclose(zoom.data["grad_y"], 10.0)
    r.close()


def test_loader_thread_answers_the_newest_request(wave: Path) -> None:
    r = FieldReader(wave)
    got: list = []
    done = threading.Event()

    def on(resp) -> None:  # noqa: ANN001
        got.append(resp)
        done.set()

    loader = Loader(r, on)
    loader.request(WindowRequest("wave", (0, 8, -1, 1), (256, 128), ("value",)))
    assert done.wait(30)
    assert got[-1].request.canvas == (256, 128)
    loader.close()
    r.close()


def test_bad_files_and_names_are_store_errors(wave: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no job 'nope'"):
        FieldReader(wave, "nope")
    r = FieldReader(wave)
    with pytest.raises(StoreError, match="has no field 'curl'"):
        r.read(WindowRequest("wave", (0, 1, 0, 1), (10, 10), ("curl",)))
    r.close()
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        FieldReader(tmp_path / "t.txt")


@pytest.mark.parametrize("cut", ["x", "y", "z"])
def test_planes_of_a_3d_job_are_read_unmixed(tmp_path: Path, cut: str) -> None:
    """f = x + 10y + 100z: every plane, whichever axis is cut, has rows along the second
    in-plane axis and columns along the first, at the plane's coordinate."""
    out = tmp_path / "cube.h5"
    gradbatch.run_jobs(
        parse_config(
            "name: cube\nfunction: 'x + 10*y + 100*z'\ndtype: float64\n"
            "grid: {x: [0, 1, 33], y: [0, 2, 17], z: [-1, 1, 9]}\n",
            output=out,
        )
    )
    r = FieldReader(out, slice_axis=cut)
    assert r.slice_axis == cut and r.axes == [a for a in "xyz" if a != cut]
    lo, hi, _ = r.plane_range or (0, 0, 0)
    want = lo + 0.3 * (hi - lo)
    (x0, x1), (y0, y1) = (
        (float(r.levels[0].x[0]), float(r.levels[0].x[-1])),
        (float(r.levels[0].y[0]), float(r.levels[0].y[-1])),
    )
    resp = r.read(WindowRequest("cube", (x0, x1, y0, y1), (64, 64), ("value", f"grad_{r.axes[1]}"), plane=want))
    assert resp.plane is not None and abs(resp.plane - want) <= (hi - lo) / 2 / 8 + 1e-12
    coef = {"x": 1, "y": 10, "z": 100}
    v = resp.data["value"]
    assert v.shape == (len(resp.y), len(resp.x))
    expect = coef[r.axes[0]] * resp.x[None, :] + coef[r.axes[1]] * resp.y[:, None] + coef[cut] * resp.plane
    np.testing.assert_allclose(v, expect, atol=1e-9)
    np.testing.assert_allclose(resp.data[f"grad_{r.axes[1]}"], coef[r.axes[1]])
    r.close()
    with pytest.raises(StoreError, match="no axis 'w' to slice"):
        FieldReader(out, slice_axis="w")
