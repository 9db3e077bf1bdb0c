"""Whole HDF5 chunks encoded outside h5py, as the dataset's own filter pipeline would store them.

h5py holds one lock around every HDF5 call, so compressing through the filter pipeline uses one
core however many there are. Here a chunk is encoded by the codec libraries directly, which
release the GIL while they work: several threads encode chunks at once, and the writer stores
each with ``write_direct_chunk`` (a copy to the file). The file is unchanged for its readers:

- ``lz4``/``zstd``: a Blosc2 frame holding the chunk's bytes as one Blosc2 chunk: what HDF5's
  Blosc2 filter (32026) writes for a chunk it does not store as a B2ND array, and reads as
  such (it writes B2ND frames itself for ranks 1 to 8, which cost python-blosc2 three times as
  long to make: a plain frame is 1.8 ms for a 1 MiB chunk here, a B2ND one 5 ms).
- ``gzip``: HDF5's shuffle (the element's bytes transposed) then deflate (a zlib stream).
- ``none``: the chunk's bytes.

Edge chunks are padded with NaN to the chunk's shape, as HDF5 pads them with the fill value.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

__all__ = ["ChunkCodec", "BLOSC2_SETTINGS"]

# codec and level per compression: the same settings as the datasets' filters (store/encode.py)
BLOSC2_SETTINGS = {"lz4": ("LZ4", 5), "zstd": ("ZSTD", 1)}


class ChunkCodec:
    """Encodes chunks of shape ``chunk`` and ``dtype`` with ``compression`` into (filter mask,
    bytes) for ``write_direct_chunk``. Thread-safe: each call is independent."""

    def __init__(self, chunk: tuple[int, ...], dtype: Any, compression: str) -> None:
        self.chunk = tuple(int(c) for c in chunk)
        self.dtype = np.dtype(dtype)
        self.compression = compression
        self._cparams: dict[str, Any] | None = None
        if compression in BLOSC2_SETTINGS:
            import blosc2

            blosc2.set_releasegil(True)  # python-blosc2 holds the GIL while it compresses unless told
            codec, level = BLOSC2_SETTINGS[compression]
            self._cparams = {
                "codec": getattr(blosc2.Codec, codec),
                "clevel": level,
                "filters": [blosc2.Filter.SHUFFLE],
                "typesize": self.dtype.itemsize,
                "nthreads": 1,  # chunks are encoded in parallel, one a thread
            }
        elif compression not in ("gzip", "none"):
            raise ValueError(f"compression: {compression!r} is not one of lz4, zstd, gzip, none")

    def full(self, data: np.ndarray) -> np.ndarray:
        """``data`` as a C-contiguous array of the chunk's shape (an edge chunk padded with NaN)."""
        if tuple(data.shape) == self.chunk:
            return np.ascontiguousarray(data, dtype=self.dtype)
        if data.ndim != len(self.chunk) or any(n > c for n, c in zip(data.shape, self.chunk)):
            raise ValueError(f"a piece of shape {data.shape} does not fit a chunk of shape {self.chunk}")
        out = np.full(self.chunk, np.nan, dtype=self.dtype)
        out[tuple(slice(0, n) for n in data.shape)] = data
        return out

    def encode(self, data: np.ndarray) -> tuple[int, bytes]:
        """The chunk holding ``data`` at its origin, as stored in the file: (filter mask, bytes)."""
        full = self.full(data)
        if self._cparams is not None:
            import blosc2

            # contiguous: the frame is made as it is filled (to_cframe then copies nothing)
            frame = blosc2.SChunk(chunksize=full.nbytes, data=full, cparams=self._cparams, contiguous=True).to_cframe()
            return 0, frame
        if self.compression == "gzip":
            raw = full.reshape(-1).view(np.uint8).reshape(-1, self.dtype.itemsize).T.tobytes()
            return 0, zlib.compress(raw, 1)
        return 0, full.tobytes()
