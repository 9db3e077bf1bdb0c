"""Whole HDF5 chunks encoded outside h5py, as the dataset's own filter pipeline would store them.

h5py holds one lock around every HDF5 call, so compressing through the filter pipeline uses one
core however many there are. Here a chunk is encoded by the codec libraries directly, which
release the GIL while they work: several threads encode chunks at once, and the writer stores
each with ``write_direct_chunk`` (a copy to the file). The file is unchanged for its readers:

- ``lz4``/``zstd``: a Blosc2 frame holding the chunk's bytes as one Blosc2 chunk: what HDF5's
  Blosc2 filter (32026) writes for a chunk it does not store as a B2ND array, and reads as
  such (it writes B2ND frames itself for ranks 1 to 8, which cost python-blosc2 three times as
  long to make). The chunk comes from ``blosc2.compress2``, which runs without the GIL; the
  frame around it is built here (:class:`_FrameTemplate`).
- ``gzip``: HDF5's shuffle (the element's bytes transposed) then deflate (a zlib stream).
- ``none``: the chunk's bytes.

Edge chunks are padded with NaN to the chunk's shape, as HDF5 pads them with the fill value.
"""

from __future__ import annotations

import functools
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
        self._frame: _FrameTemplate | None = None
        if compression in BLOSC2_SETTINGS:
            self._cparams = _blosc2_cparams(compression, self.dtype.itemsize)
            self._frame = _frame_template(
                int(np.prod(self.chunk)) * self.dtype.itemsize, compression, self.dtype.itemsize
            )
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

            chunk = blosc2.compress2(full, **self._cparams)  # the GIL is released here
            if self._frame is not None:
                return 0, self._frame.wrap(chunk)
            return 0, _schunk_frame(full, self._cparams)
        if self.compression == "gzip":
            raw = full.reshape(-1).view(np.uint8).reshape(-1, self.dtype.itemsize).T.tobytes()
            return 0, zlib.compress(raw, 1)
        return 0, full.tobytes()


def _blosc2_cparams(compression: str, itemsize: int) -> dict[str, Any]:
    import blosc2

    blosc2.set_releasegil(True)  # python-blosc2 holds the GIL while it compresses unless told
    codec, level = BLOSC2_SETTINGS[compression]
    return {
        "codec": getattr(blosc2.Codec, codec),
        "clevel": level,
        "filters": [blosc2.Filter.SHUFFLE],
        "typesize": itemsize,
        "nthreads": 1,  # chunks are encoded in parallel, one a thread
    }


@functools.cache
def _frame_template(nbytes: int, compression: str, itemsize: int) -> _FrameTemplate | None:
    """The frame template of a chunk size and settings, made (and checked) once a process: every
    job and level with the same chunk size shares it."""
    return _FrameTemplate.make(nbytes, _blosc2_cparams(compression, itemsize))


def _schunk_frame(data: np.ndarray, cparams: dict[str, Any]) -> bytes:
    """python-blosc2's own frame of one chunk holding ``data`` (contiguous: made as it is
    filled, so ``to_cframe`` copies nothing)."""
    import blosc2

    frame: bytes = blosc2.SChunk(chunksize=data.nbytes, data=data, cparams=cparams, contiguous=True).to_cframe()
    return frame


class _FrameTemplate:
    """The Blosc2 frame of one chunk, made around a chunk from ``blosc2.compress2`` without
    python-blosc2's super-chunk object, which holds the GIL for about a third of the time a
    chunk takes. A one-chunk frame (README_CFRAME_FORMAT in c-blosc2) is a header, the chunk,
    an index chunk (the chunk's offset: 0) and a trailer; for a fixed chunk size and settings
    only two header fields depend on the chunk: the frame's size and the compressed size
    (msgpack big-endian int64s). The template is taken from python-blosc2's own frames of two
    probes and used only if it rebuilds both byte for byte (else :func:`_schunk_frame`)."""

    def __init__(self, head: bytes, frame_at: int, cbytes_at: int, tail: bytes) -> None:
        self.head, self.frame_at, self.cbytes_at, self.tail = head, frame_at, cbytes_at, tail

    def wrap(self, chunk: bytes) -> bytes:
        head = bytearray(self.head)
        size = len(head) + len(chunk) + len(self.tail)
        head[self.frame_at : self.frame_at + 8] = size.to_bytes(8, "big")
        head[self.cbytes_at : self.cbytes_at + 8] = len(chunk).to_bytes(8, "big")
        return b"".join((head, chunk, self.tail))

    @classmethod
    def make(cls, nbytes: int, cparams: dict[str, Any]) -> _FrameTemplate | None:
        import blosc2

        itemsize = int(cparams["typesize"])
        if nbytes < 64 or nbytes % itemsize:
            return None
        n = nbytes // itemsize
        dtype = np.dtype(f"u{itemsize}") if itemsize in (1, 2, 4, 8) else None
        if dtype is None:
            return None
        # a compressible probe and one that is not (a multiplicative hash of the index: no
        # numpy.random, whose import a small job would pay for)
        with np.errstate(over="ignore"):
            mixed = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(29)
        probes = [np.arange(n, dtype=dtype), mixed.astype(dtype)]
        parts = []
        for probe in probes:
            chunk = blosc2.compress2(probe, **cparams)
            frame = _schunk_frame(probe, cparams)
            at = frame.find(chunk)
            if at <= 0:
                return None
            head, tail = frame[:at], frame[at + len(chunk) :]
            frame_at = head.find(len(frame).to_bytes(8, "big"))
            cbytes_at = head.find(len(chunk).to_bytes(8, "big"))
            if frame_at < 0 or cbytes_at < 0:
                return None
            parts.append((head, frame_at, cbytes_at, tail, chunk, frame))
        template = cls(*parts[0][:4])
        for _, _, _, _, chunk, frame in parts:
            if template.wrap(chunk) != frame:
                return None
        return template
