"""The config layer: a job file → frozen, typed :class:`JobConfig` objects, and every
validation message. Imports no torch, h5py or numpy, so a bad job file is refused at once.

One module per part of a job file, sharing :mod:`.checks`::

    reading       file bytes → plain data (size, encoding, a hardened YAML loader)
    job           the file and each job's own settings (name, output, device, dtype, ...)
    axes          grid: and tile:
    function      function:, params:, outputs: (expression, vector, built-in, callable sources)
    expression    expression text → a validated tree (torch-free; gradbatch.expr compiles it)
    landscape     function: {landscape: ...} and {network: ...}
    trajectories  paths:, basins:, streamlines:
    render        render:
    checks        numbers, choices, flags, per-axis lists, mappings, show()

Every name other modules use is importable from here: ``from gradbatch.config import JobConfig``.
"""

from __future__ import annotations

from .axes import GRID_TEXT_KEYS, MAX_AXIS_POINTS, MAX_GRID_POINTS, MAX_LABEL_CHARS, MAX_TILE_POINTS, Axis, Grid
from .checks import Choice, bad_character, show
from .expression import ParsedExpression, parse_expression
from .function import (
    DEFAULT_SCALAR_OUTPUTS,
    DEFAULT_VECTOR_OUTPUTS,
    SCALAR_OUTPUTS,
    VECTOR_OUTPUTS,
    BuiltinSource,
    CallableSource,
    ExpressionSource,
    FunctionSource,
    Output,
    VectorSource,
    check_outputs,
)
from .job import (
    DEFAULT_CONFIG,
    MAX_THREADS,
    CompileMode,
    Compression,
    DType,
    JobConfig,
    JobFile,
    load_config,
    parse_config,
)
from .landscape import (
    DATASETS,
    DIRECTIONS,
    LOSSES,
    MAX_CHUNK,
    MAX_LAYERS,
    MAX_NETWORK_POINTS,
    MAX_POINT_ROWS,
    MAX_ROWS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_TRAIN_STEPS,
    MAX_WIDTH,
    MODELS,
    DataLandscapeSource,
    Dataset,
    Directions,
    FileData,
    Loss,
    MLPConfig,
    Model,
    NetworkSource,
    SyntheticData,
    check_landscape_grid,
    parse_landscape,
    parse_network,
)
from .reading import MAX_ALIAS_VALUES, MAX_FILE_BYTES, MAX_KEY_LENGTH, MAX_NESTING, load_yaml, read_job_text
from .render import MAX_CONTOURS, VISPY_COLORMAPS, Layer, RenderConfig, Scale
from .trajectories import (
    MAX_EVEN_DENSITY,
    MAX_LINE_POINTS,
    MAX_PATH_POINTS,
    MAX_SEEDS,
    MAX_STARTS,
    MAX_STEPS,
    OPTIMIZERS,
    BasinsConfig,
    Optimizer,
    OptimizerConfig,
    PathsConfig,
    Starts,
    StreamDirection,
    StreamField,
    StreamlinesConfig,
    StreamMethod,
    count_starts,
    parse_basins,
    parse_optimizer,
    parse_paths,
    parse_starts,
    parse_streamlines,
)

__all__ = [
    # the file and its jobs
    "load_config",
    "parse_config",
    "JobFile",
    "JobConfig",
    "DEFAULT_CONFIG",
    "Compression",
    "CompileMode",
    "DType",
    "MAX_THREADS",
    # reading and messages
    "read_job_text",
    "load_yaml",
    "show",
    "bad_character",
    "Choice",
    "MAX_FILE_BYTES",
    "MAX_NESTING",
    "MAX_ALIAS_VALUES",
    "MAX_KEY_LENGTH",
    # grid
    "Axis",
    "Grid",
    "MAX_GRID_POINTS",
    "MAX_AXIS_POINTS",
    "MAX_TILE_POINTS",
    "MAX_LABEL_CHARS",
    "GRID_TEXT_KEYS",
    # function sources and outputs
    "FunctionSource",
    "ExpressionSource",
    "VectorSource",
    "BuiltinSource",
    "CallableSource",
    "Output",
    "SCALAR_OUTPUTS",
    "VECTOR_OUTPUTS",
    "DEFAULT_SCALAR_OUTPUTS",
    "DEFAULT_VECTOR_OUTPUTS",
    "check_outputs",
    "ParsedExpression",
    "parse_expression",
    # landscapes
    "DataLandscapeSource",
    "NetworkSource",
    "SyntheticData",
    "FileData",
    "MLPConfig",
    "Model",
    "Loss",
    "Dataset",
    "Directions",
    "MODELS",
    "LOSSES",
    "DATASETS",
    "DIRECTIONS",
    "parse_landscape",
    "parse_network",
    "check_landscape_grid",
    "MAX_ROWS",
    "MAX_POINT_ROWS",
    "MAX_NETWORK_POINTS",
    "MAX_SAMPLES",
    "MAX_WIDTH",
    "MAX_LAYERS",
    "MAX_TRAIN_STEPS",
    "MAX_CHUNK",
    "MAX_SEED",
    # trajectories
    "PathsConfig",
    "BasinsConfig",
    "StreamlinesConfig",
    "OptimizerConfig",
    "Starts",
    "Optimizer",
    "OPTIMIZERS",
    "StreamField",
    "StreamMethod",
    "StreamDirection",
    "count_starts",
    "parse_optimizer",
    "parse_starts",
    "parse_paths",
    "parse_basins",
    "parse_streamlines",
    "MAX_STARTS",
    "MAX_STEPS",
    "MAX_PATH_POINTS",
    "MAX_SEEDS",
    "MAX_LINE_POINTS",
    "MAX_EVEN_DENSITY",
    # render
    "RenderConfig",
    "Scale",
    "Layer",
    "VISPY_COLORMAPS",
    "MAX_CONTOURS",
]
