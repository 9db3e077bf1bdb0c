"""A partial file whose overlays (paths, basins, streamlines) cannot be read: --resume rebuilds
it from the fields, pyramid and tile tables already written, writes the overlays again, and
ends with the file an uninterrupted run makes.

The damage is made by hand, deterministically: the overlay group's object header signature is
overwritten, as when a write cut short (a file size limit) leaves its metadata unwritten. Before,
the resumed run's attempt to delete the group raised h5py's KeyError as a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import StoreError
from gradbatch.store import partial_path, read_overlays, read_stats, recover_partial
from gradbatch.store.salvage import damaged_overlays

from ..conftest import assert_files_equal

JOB = """\
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 300], y: [-5, 5, 40]}
tile: [64, 64]
outputs: [value, gradient, check]
paths: {starts: [[-4, 0], [1, 1]], steps: 20, optimizers: [{name: adam, lr: 0.05}, {name: sgd, lr: 0.002}]}
basins: {resolution: 8, steps: 50, optimizer: {name: adam, lr: 0.05}}
streamlines: {seeds: {grid: 3}}
"""


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "whole.h5"
    gradbatch.run_jobs(parse_config(JOB, output=out))
    with h5py.File(out, "r") as f:
        assert f["hb"].attrs["levels"] >= 1  # a pyramid level, with its own scales, is copied too
    return out


def _unfinished_copy(whole: Path, out: Path, overlays: tuple[str, ...]) -> Path:
    """``whole`` as the .partial of ``out``, not complete, with the header of each overlay unreadable."""
    part = partial_path(out)
    shutil.copyfile(whole, part)
    with h5py.File(part, "r+") as f:
        f["hb"].attrs["complete"] = False
        addrs = [h5py.h5o.get_info(f[f"hb/{name}"].id).addr for name in overlays]
    with open(part, "r+b") as fh:
        for addr in addrs:
            fh.seek(addr)
            assert fh.read(4) == b"OHDR"
            fh.seek(addr)
            fh.write(b"\0\0\0\0")
    return part


@pytest.mark.parametrize("overlays", [("paths",), ("basins",), ("streamlines",), ("paths/sgd", "streamlines")])
def test_resume_rebuilds_a_file_whose_overlays_cannot_be_read(
    tmp_path: Path, whole: Path, overlays: tuple[str, ...]
) -> None:
    out = tmp_path / "out.h5"
    part = _unfinished_copy(whole, out, overlays)
    top = sorted({f"/hb/{name.split('/')[0]}" for name in overlays})
    assert sorted(damaged_overlays(part)) == top
    with h5py.File(part, "r+") as f, pytest.raises(KeyError):
        del f[f"hb/{overlays[0]}"]  # what the resumed run did before
    logged: list[str] = []
    gradbatch.run_jobs(parse_config(JOB, output=out), resume=True, log=logged.append)
    assert any("rebuilt without them" in line for line in logged), logged
    assert not part.exists() and not partial_path(out).with_name("out.h5.partial.salvage").exists()
    assert_files_equal(out, whole, "hb")
    for field in ("value", "grad_x", "grad_y"):
        assert read_stats(out, "hb", field) == read_stats(whole, "hb", field)
    got, want = read_overlays(out, "hb"), read_overlays(whole, "hb")
    assert list(got.paths) == list(want.paths) == ["adam", "sgd"]
    assert got.basins is not None and want.basins is not None
    np.testing.assert_array_equal(got.basins.record.label, want.basins.record.label)
    assert got.streamlines is not None and want.streamlines is not None
    np.testing.assert_array_equal(got.streamlines.record.points, want.streamlines.record.points)
    with h5py.File(out, "r") as f, h5py.File(whole, "r") as w:
        for name in ("value", "levels/1/value", "basins/label"):  # dimension scales attached anew
            assert [[s.name for s in d.values()] for d in f["hb"][name].dims] == [
                [s.name for s in d.values()] for d in w["hb"][name].dims
            ]
            assert [d.label for d in f["hb"][name].dims] == [d.label for d in w["hb"][name].dims]
        assert dict(f["hb/x"].attrs.items()).keys() == dict(w["hb/x"].attrs.items()).keys()


def test_an_intact_partial_file_is_left_alone(tmp_path: Path, whole: Path) -> None:
    part = _unfinished_copy(whole, tmp_path / "out.h5", ())
    before = part.read_bytes()
    assert damaged_overlays(part) == [] and recover_partial(part) == []
    assert part.read_bytes() == before


def test_a_file_whose_fields_cannot_be_copied_is_refused_in_one_line(tmp_path: Path, whole: Path) -> None:
    """Overlays damaged, and a field's header too: nothing to rebuild from; the partial file stays."""
    part = _unfinished_copy(whole, tmp_path / "out.h5", ("paths", "levels/1/value"))
    before = part.read_bytes()
    with pytest.raises(StoreError, match=r"cannot be resumed: /hb/paths cannot be read.*--overwrite"):
        recover_partial(part)
    assert part.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5.partial"]
