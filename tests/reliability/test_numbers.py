"""A number in the file is right or NaN: derivatives are NaN where the value is undefined, and
every field's non-finite points are counted over every tile (resumed ones too), stored and said."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the Blosc2 filter)
import numpy as np

from ._util import gradbatch, kill_at_write


def _read(path: Path, job: str) -> tuple[h5py.File, h5py.Group]:
    f = h5py.File(path, "r")
    return f, f[job]


def test_derivatives_are_nan_where_the_value_is_undefined(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "name: lg\nfunction: 'log(x) + y'\ngrid: {x: [-1, 1, 201], y: [0, 1, 11]}\n"
        "outputs: [value, gradient, magnitude]\n"
    )
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    assert p.returncode == 0, p.stderr
    f, g = _read(tmp_path / "out.h5", "lg")
    with f:
        x = g["x"][...]
        value, gx, gy, mag = (g[n][...] for n in ("value", "grad_x", "grad_y", "magnitude"))
        undefined = np.broadcast_to(x <= 0, value.shape)  # log(0) = -inf: undefined too
        assert np.isnan(gx[undefined]).all() and np.isnan(gy[undefined]).all() and np.isnan(mag[undefined]).all()
        with np.errstate(divide="ignore"):  # 1/x at x = 0 is among the undefined points, left out
            inverse = np.broadcast_to(1 / x, value.shape)
        np.testing.assert_allclose(gx[~undefined], inverse[~undefined], rtol=1e-6)
        assert (gy[~undefined] == 1).all()
        counts = json.loads(g.attrs["nonfinite"])
    assert counts["value"] == {"nan": 100 * 11, "posinf": 0, "neginf": 11}
    assert counts["grad_x"] == {"nan": 101 * 11, "posinf": 0, "neginf": 0}
    assert "out.h5:lg: value: NaN at 1,100 of 2,211 points, -inf at 11 of 2,211 points" in p.stdout


def test_a_function_infinite_everywhere_says_so(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("name: big\nfunction: 'exp(1000 + x*y)'\ngrid: {x: [0, 1, 16], y: [0, 1, 16]}\n")
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "value: infinite (+inf) at every point (256); the function is infinite everywhere" in p.stdout
    assert "grad_x: NaN at every point (256)" in p.stdout


def test_counts_and_check_cover_every_tile_after_a_resume(tmp_path: Path) -> None:
    job = (
        "name: wave\nfunction: 'log(x) * sin(8*y)'\ngrid: {x: [-1, 3, 160], y: [-2, 2, 120]}\ntile: 32\n"
        "outputs: [value, gradient, check]\n"
    )
    (tmp_path / "job.yaml").write_text(job)
    straight = gradbatch(["run", "job.yaml", "-o", "straight.h5", "-q"], tmp_path)
    assert straight.returncode == 0, straight.stderr
    flush_each_tile = "import gradbatch.store.writer as s\ns.FLUSH_INTERVAL_S = 0\n"
    killed = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, prelude=flush_each_tile + kill_at_write(19))
    assert killed.returncode == -9
    resumed = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with h5py.File(tmp_path / "straight.h5", "r") as a, h5py.File(tmp_path / "out.h5", "r") as b:
        assert b["wave"].attrs["tiles_resumed"] >= 16  # most tiles came from the killed run
        assert json.loads(a["wave"].attrs["nonfinite"]) == json.loads(b["wave"].attrs["nonfinite"])
        assert json.loads(a["wave"].attrs["nonfinite"])["value"]["nan"] > 0
        ca, cb = json.loads(a["wave"].attrs["check"]), json.loads(b["wave"].attrs["check"])
        assert ca == cb and ca["max_abs_error"] > 0 and ca["nan_points"] > 0


def test_sign_of_an_undefined_value_is_nan() -> None:
    import torch

    from gradbatch.expr import parse

    out = parse("sign(sqrt(-1 - x*x)) + sign(x)", ("x",))(torch.linspace(-1, 1, 5))
    assert torch.isnan(out).all()
