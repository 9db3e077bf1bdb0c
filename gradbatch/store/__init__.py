"""The HDF5 file, owned in one place: the only package that imports h5py.

One file per output, one group per job, one dataset per field, a pyramid and a per-tile done
map; descent paths, basins, streamlines and landscape makings beside them. docs/format.md
describes the format; :mod:`~gradbatch.store.layout` names every part of it.

========================  =====================================================================
module                    owns
========================  =====================================================================
``layout``                every group, dataset and attribute name
``encode``                filters per compression, attribute encoding, chunks encoded elsewhere
``create``, ``chunks``    a job's group made or checked for resuming; pyramid chunk buffers
``writer``                :class:`JobWriter` (tiles, done map, final attributes), :func:`commit`
``overlays``              paths, basins, streamlines, landscape: records in, records out
``access``, ``reader``    checked reads; typed job information, whole fields
``window``                :class:`FieldReader`: field windows at a pyramid level (the viewer's)
``stats``                 a whole field's statistics (range, counts, percentiles) for pictures
``recovery``              superblocks: killed writers' flags, partial files, SWMR opening
``salvage``               a partial file whose overlays a cut-short write damaged, rebuilt without them
``failures``              failed writes (a full disk) as one StoreError each
========================  =====================================================================
"""

from __future__ import annotations

from .access import partial_path, plain
from .encode import ChunkEncoder
from .failures import write_failures
from .layout import FORMAT
from .overlays import (
    read_basins,
    read_landscape,
    read_overlays,
    read_paths,
    read_streamlines,
    write_basins,
    write_landscape,
    write_paths,
    write_streamlines,
)
from .reader import (
    FieldInfo,
    JobInfo,
    JobLayout,
    StoreInfo,
    h5py_version,
    inspect,
    job_axes,
    job_complete,
    job_layout,
    read_coords,
    read_field,
    read_part,
    read_stats,
    stored_bytes,
    tile_stats,
)
from .recovery import HeldJob, partial_jobs, recover_partial
from .window import FieldReader, WindowRequest, WindowResponse
from .writer import JobWriter, commit, read_back

__all__ = [
    # writing
    "FORMAT",
    "partial_path",
    "JobWriter",
    "ChunkEncoder",
    "commit",
    "read_back",
    "write_failures",
    "write_paths",
    "write_basins",
    "write_streamlines",
    "write_landscape",
    # resuming
    "recover_partial",
    "partial_jobs",
    "HeldJob",
    "tile_stats",
    "stored_bytes",
    "h5py_version",
    # reading
    "plain",
    "FieldInfo",
    "JobInfo",
    "StoreInfo",
    "JobLayout",
    "inspect",
    "job_axes",
    "job_layout",
    "job_complete",
    "read_field",
    "read_coords",
    "read_part",
    "read_stats",
    "read_paths",
    "read_basins",
    "read_streamlines",
    "read_landscape",
    "read_overlays",
    "FieldReader",
    "WindowRequest",
    "WindowResponse",
]
