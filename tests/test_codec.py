"""Chunks encoded outside h5py (store/codec.py) and the writer's encoding threads (writing.py):
what the file holds is what HDF5's own filters read back, whatever the number of encoders."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import gradbatch
from gradbatch.config import parse_config
from gradbatch.errors import StoreError
from gradbatch.store.codec import ChunkCodec
from gradbatch.store.encode import filters

COMPRESSIONS = ["lz4", "zstd", "gzip", "none"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize(
    ("shape", "chunk"), [((1000,), (256,)), ((100, 130), (64, 64)), ((9, 20, 33), (4, 8, 16))], ids=["1d", "2d", "3d"]
)
def test_chunks_stored_as_encoded_read_back_through_the_files_own_filters(
    tmp_path: Path, compression: str, shape: tuple[int, ...], chunk: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape).astype(np.float32)
    data[0] = np.nan  # NaN and inf survive as they are
    data.flat[-1] = np.inf
    codec = ChunkCodec(chunk, np.float32, compression)
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("v", shape=shape, dtype="f4", chunks=chunk, fillvalue=np.nan, **filters(compression))
        for start in itertools.product(*(range(0, n, c) for n, c in zip(shape, chunk))):
            piece = data[tuple(slice(s, s + c) for s, c in zip(start, chunk))]  # edge chunks are smaller
            mask, raw = codec.encode(piece)
            d.id.write_direct_chunk(start, raw, mask)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["v"][...], data)


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_frames_made_around_compress2_are_python_blosc2s_own_byte_for_byte(compression: str, dtype: Any) -> None:
    """The codec wraps a chunk from ``blosc2.compress2`` (which releases the GIL) in a frame it
    builds itself; it must be the frame python-blosc2 makes of the same data."""
    from gradbatch.store.codec import _schunk_frame

    codec = ChunkCodec((48, 40), dtype, compression)
    assert codec._frame is not None  # the template was verified against python-blosc2
    rng = np.random.default_rng(3)
    for data in (rng.standard_normal((48, 40)), np.linspace(0, 1, 48 * 40).reshape(48, 40), np.ones((48, 40))):
        full = data.astype(dtype)
        assert codec.encode(full)[1] == _schunk_frame(full, codec._cparams or {})


@pytest.mark.parametrize("fill", [np.nan, 0.0, np.inf])
def test_a_chunk_of_one_value_reads_back(tmp_path: Path, fill: float) -> None:
    """Blosc2 stores runs of zeros or NaN specially in its own frames; the codec's frames hold
    them as ordinary chunks, which the filter reads all the same."""
    data = np.full((64, 64), fill, np.float32)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        d = f.create_dataset("v", shape=(64, 64), dtype="f4", chunks=(64, 64), fillvalue=7.0, **filters("lz4"))
        mask, raw = ChunkCodec((64, 64), np.float32, "lz4").encode(data)
        d.id.write_direct_chunk((0, 0), raw, mask)
    with h5py.File(tmp_path / "one.h5", "r") as f:
        np.testing.assert_array_equal(f["v"][...], data)


def test_a_piece_larger_than_the_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match=r"does not fit a chunk of shape \(4, 4\)"):
        ChunkCodec((4, 4), np.float32, "lz4").encode(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="compression: 'brotli' is not one of"):
        ChunkCodec((4, 4), np.float32, "brotli")


JOB = (
    "name: r\nfunction: 'sin(x*y) + 0.1*x'\ngrid: {x: [-3, 3, 300], y: [-2, 2, 200]}\ntile: [64, 64]\n"
    "compression: COMP\n"
)


def _fields(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        g = f["r"]
        g.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.parametrize("compression", ["lz4", "gzip"])
def test_the_file_is_the_same_whatever_the_number_of_encoders(
    tmp_path: Path, compression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradbatch.writing as writing

    files = {}
    for n in (1, 3):
        monkeypatch.setattr(writing, "encoder_count", lambda n=n: n)
        out = tmp_path / f"e{n}.h5"
        gradbatch.run_jobs(parse_config(JOB.replace("COMP", compression), output=out))
        files[n] = _fields(out)
    assert files[1].keys() == files[3].keys() and any(k.startswith("levels") or "/" in k for k in files[1])
    for name in files[1]:
        np.testing.assert_array_equal(files[1][name], files[3][name], err_msg=name)
    x, y = np.linspace(-3, 3, 300), np.linspace(-2, 2, 200)
    expected = np.sin(x[None, :] * y[:, None]) + 0.1 * x[None, :]
    np.testing.assert_allclose(files[3]["value"], expected, rtol=1e-5, atol=1e-5)


def test_an_encoder_failing_on_a_real_tile_leaves_no_complete_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradbatch.store import JobWriter

    calls = {"n": 0}
    real = JobWriter.prepare_tile

    def flaky(self: JobWriter, tile: Any, fields: Any, levels: Any) -> dict[str, tuple[int, bytes]]:
        calls["n"] += 1
        if calls["n"] == 7:
            raise StoreError("encoding tile 7 failed (test)")
        return real(self, tile, fields, levels)

    monkeypatch.setattr(JobWriter, "prepare_tile", flaky)
    out = tmp_path / "f.h5"
    with pytest.raises(StoreError, match="encoding tile 7 failed"):
        gradbatch.run_jobs(parse_config(JOB.replace("COMP", "lz4"), output=out))
    assert not out.exists()
    assert (tmp_path / "f.h5.partial").exists()  # the tiles written before it stay for --resume
