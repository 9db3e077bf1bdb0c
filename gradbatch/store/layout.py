"""Every name and path in a gradbatch file, in one place (docs/format.md describes the same).

The writer and the readers spell a group, dataset or attribute only through these, so a new
overlay or attribute is added here once. Paths are relative to a job's group unless they start
at the root::

    /                          FORMAT_ATTR, VERSION_ATTR
    /<job>/                    COMPLETE, FIELDS, AXES, TILE, LEVELS, JOB_YAML, CODE_HASH, ...
    /<job>/<axis>, <field>     level 0
    /<job>/levels/<k>/...      level_group(k), attribute FACTOR
    /<job>/_tiles/{done, nonfinite, range, nonpositive, check}
    /<job>/{paths/<label>, basins, streamlines, landscape}
"""

from __future__ import annotations

FORMAT = "gradbatch/1"

# -- the root ---------------------------------------------------------------------------------
FORMAT_ATTR = "gradbatch_format"
VERSION_ATTR = "gradbatch_version"

# -- a job's attributes (besides the provenance the runner hands the writer) -------------------
COMPLETE = "complete"
FIELDS = "fields"
AXES = "axes"
TILE = "tile"
LEVELS = "levels"
JOB_YAML = "job_yaml"
CODE_HASH = "code_hash"
COMPRESSION = "compression"
FUNCTION = "function"
FACTOR = "factor"  # of a level group: 2^k

# -- an axis's coordinates: its name for pictures (the CF convention, which xarray reads) -------
LONG_NAME = "long_name"
UNITS = "units"

# -- the pyramid and the tile bookkeeping --------------------------------------------------------
LEVELS_GROUP = "levels"
TILES = "_tiles"
DONE = "_tiles/done"  # uint8 per tile, tile-grid shape
NONFINITE = "_tiles/nonfinite"  # int64 (tiles, fields, 3)
CHECK = "_tiles/check"  # float64 (tiles, check width)
RANGE = "_tiles/range"  # float64 (tiles, fields, 3): finite min, max, min positive; NaN: none
NONPOSITIVE = "_tiles/nonpositive"  # int64 (tiles, fields): finite values <= 0; -1: not recorded

# -- a field's attributes (level 0), written when the job is finished --------------------------
PERCENTILES = "percentiles"  # float64 values at PERCENTILE_RANKS, over the finite values of ...
PERCENTILE_RANKS = "percentile_ranks"  # float64 percents, ascending
PERCENTILE_LEVEL = "percentile_level"  # ... this pyramid level,
PERCENTILE_STRIDE = "percentile_stride"  # every stride-th point along each axis (1: all)


def level_group(k: int) -> str:
    """The group of pyramid level ``k`` (k >= 1)."""
    return f"{LEVELS_GROUP}/{k}"


def level_path(k: int, name: str) -> str:
    """Dataset ``name`` (a field or an axis) at pyramid level ``k`` (0: the full grid)."""
    return name if k == 0 else f"{level_group(k)}/{name}"


# -- overlays: written after the fields, before COMPLETE -------------------------------------------
PATHS = "paths"  # one group per optimiser label, in the order given
BASINS = "basins"
STREAMLINES = "streamlines"
LANDSCAPE = "landscape"

# paths/<label>
POSITIONS = "positions"
VALUES = "values"
GRAD_NORMS = "grad_norms"
STOP_STEP = "stop_step"
STOP_REASON = "stop_reason"
OPTIMIZER_ATTR = "optimizer"
REASONS_ATTR = "reasons"

# basins (and its coordinates, named by the job's axes)
LABEL = "label"
STEPS = "steps"
MINIMA = "minima"
MINIMA_POINT = "minima/point"
MINIMA_VALUE = "minima/value"
MINIMA_KIND = "minima/kind"
MINIMA_EIGENVALUES = "minima/eigenvalues"
MINIMA_COUNT = "minima/count"
KNOWN_ATTR = "known"  # of minima: the table's first row is a known minimum
KNOWN_MINIMA_ATTR = "known_minima"  # of basins: how many rows are known minima (they come first)

# streamlines
POINTS = "points"
OFFSETS = "offsets"
SEEDS = "seeds"
STOP_BACKWARD = "stop_backward"
STOP_FORWARD = "stop_forward"
LENGTH = "length"
FIELD_ATTR = "field"  # which field the lines follow

# landscape: its arrays as named by the landscape; the attributes `gradbatch info` shows
LANDSCAPE_SUMMARY = ("kind", "model", "loss", "rows", "lstsq", "directions", "loss_at_theta", "explained_variance")


GROUP_NAMES = (LEVELS_GROUP, TILES, PATHS, BASINS, STREAMLINES, LANDSCAPE)
"""Names a job's group holds besides its axes and fields: an axis so named would collide."""
BASINS_NAMES = (LABEL, STEPS, STOP_REASON, MINIMA)
"""Names the basins group holds besides its coordinates (named by the job's axes)."""


def overlay_path(job: str, overlay: str, label: str | None = None) -> str:
    """The absolute path of an overlay group: ``<job>/<overlay>`` (``/<label>`` for paths)."""
    return f"{job}/{overlay}" if label is None else f"{job}/{overlay}/{label}"
