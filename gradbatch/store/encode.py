"""How data is encoded in the file: HDF5 filters per compression, attribute values, and whole
chunks encoded away from the writer (a cluster worker, or the writer's encoding threads)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from ..grid import Tile, TileLayout
from .codec import ChunkCodec

__all__ = ["ChunkEncoder", "filters", "encode_attr", "CHUNK_CACHE_BYTES"]

CHUNK_CACHE_BYTES = 64 << 20


def filters(compression: str) -> dict[str, Any]:
    """HDF5 filter settings for ``compression`` ("lz4", "zstd", "gzip" or "none")."""
    if compression == "lz4":
        return dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE))
    if compression == "zstd":
        return dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.SHUFFLE))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    return {}


def encode_attr(value: Any) -> Any:
    """Attributes HDF5 can hold: numbers and strings as they are, the rest as JSON text."""
    if isinstance(value, str):
        return str(value)  # plain str: h5py rejects subclasses such as torch's TorchVersion
    if isinstance(value, (int, float, bool, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return np.asarray(value)
    return json.dumps(value)


class ChunkEncoder:
    """Encodes a tile's fields into the chunks the job's file holds (see
    :class:`~gradbatch.store.codec.ChunkCodec`): a process other than the writer (a cluster
    worker) can so do the compressing, and the writer stores the bytes as they are."""

    def __init__(self, lay: TileLayout, dtype: np.dtype, compression: str) -> None:
        self.lay = lay
        self.codec = ChunkCodec(tuple(min(c, n) for c, n in zip(lay.tile, lay.shape)), dtype, compression)

    def encode(self, tile: Tile, fields: Mapping[str, np.ndarray]) -> dict[str, tuple[int, bytes]]:
        return {name: self.codec.encode(data) for name, data in fields.items()}
