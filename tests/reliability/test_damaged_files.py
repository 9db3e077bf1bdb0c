"""Readers on damaged files: `gradbatch info` (text and --json), `view`'s file opening and the
Python API (`inspect`, `read_field`, `job_complete`, the viewer's `FieldReader`) end in one
`StoreError: <file>: ...` line, exit code 2, never a traceback and never a hang.

Each damaged file is made from a real job file (a small `gradbatch run` with a pyramid level,
paths, basins and streamlines) and read in a subprocess with a timeout, so a hang fails the
test instead of stalling the run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from gradbatch.store.recovery import lookup3

TIMEOUT_S = 90  # a hang fails here; healthy reads take well under a second each

JOB = """\
name: hb
function: {builtin: himmelblau}
grid: {x: [-5, 5, 300], y: [-5, 5, 40]}
tile: [64, 64]
paths: {starts: [[-4, 0]], steps: 20, optimizers: [{name: adam, lr: 0.05}]}
basins: {resolution: 8, steps: 50, optimizer: {name: adam, lr: 0.05}}
streamlines: {seeds: {grid: 3}}
output: job.h5
"""

# Runs the readers named in argv[1] on each file of argv[2:] in a fresh interpreter; prints one
# JSON line per file as soon as it is read: "rc" 0 (ok) or 2 with the one-line error, or -1 with
# the traceback of anything that is not a StoreError.
DRIVER = r"""
import contextlib, io, json, sys, traceback
import gradbatch
from gradbatch.cli import main
from gradbatch.errors import StoreError
from gradbatch.store import job_complete
from gradbatch.store import FieldReader, WindowRequest

def reader(path):
    r = FieldReader(path)
    try:
        r.read(WindowRequest(r.job, r.extent, (64, 64), tuple(r.fields)))
    finally:
        r.close()

CLI = {"info": ["info"], "json": ["info", "--json"], "view": ["view"]}
API = {"inspect": lambda p: gradbatch.inspect(p), "read_field": lambda p: gradbatch.read_field(p, "hb", "value"),
       "read_level": lambda p: gradbatch.read_field(p, "hb", "value", 1),
       "job_complete": lambda p: job_complete(p, "hb"), "reader": reader}
for path in sys.argv[2:]:
    out = {"path": path}
    for name in sys.argv[1].split(","):
        if name in CLI:
            err, std = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                    rc = main([*CLI[name], path])
                out[name] = {"rc": rc, "err": err.getvalue()}
            except BaseException:
                out[name] = {"rc": -1, "err": traceback.format_exc()}
            continue
        try:
            API[name](path)
            out[name] = {"rc": 0, "err": ""}
        except StoreError as exc:
            out[name] = {"rc": 2, "err": f"StoreError: {exc}\n"}
        except BaseException:
            out[name] = {"rc": -1, "err": traceback.format_exc()}
    print(json.dumps(out), flush=True)
"""
Outcomes = dict[str, dict[str, object]]  # reader -> {"rc": ..., "err": ...}
ALL = ("info", "json", "view", "inspect", "read_field", "read_level", "job_complete", "reader")


def _env() -> dict[str, str]:
    env = dict(os.environ, DISPLAY="", WAYLAND_DISPLAY="")  # `view` never opens a window here
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def read_all(paths: list[Path], readers: tuple[str, ...] = ALL) -> dict[Path, Outcomes]:
    """Each file's outcome per reader, all read by one subprocess; a hang fails with the file's name."""
    try:
        r = subprocess.run(
            [sys.executable, "-c", DRIVER, ",".join(readers), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=_env(),
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        done = len(out.splitlines())
        pytest.fail(f"reading {paths[done]} hung (no answer in {TIMEOUT_S} s)")
    assert r.returncode == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return {Path(res.pop("path")): res for res in results}


def read_one(path: Path, readers: tuple[str, ...] = ALL) -> Outcomes:
    return read_all([path], readers)[path]


def assert_one_line(path: Path, outcome: dict[str, object], *needles: str) -> str:
    err = str(outcome["err"])
    assert outcome["rc"] == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"StoreError: {path}: "), err
    for n in needles:
        assert n in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def job_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real job file: 300 x 40 points, one pyramid level, paths, basins and streamlines."""
    from gradbatch.cli import main

    folder = tmp_path_factory.mktemp("job")
    (folder / "job.yaml").write_text(JOB)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "job.yaml", "-q"]) == 0
    finally:
        os.chdir(cwd)
    path = folder / "job.h5"
    with h5py.File(path, "r") as f:
        assert f["hb"].attrs["levels"] == 1 and {"paths", "basins", "streamlines"} <= set(f["hb"])
    return path


@pytest.fixture(scope="module")
def damaged_cases(job_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Outcomes]]:
    """Every case of CASES damaged into its own copy, all read by one subprocess."""
    folder = tmp_path_factory.mktemp("damaged")
    paths = {}
    for i, (case, damage, _) in enumerate(CASES):
        paths[case] = folder / f"case{i:02d}.h5"
        shutil.copy(job_file, paths[case])
        damage(paths[case])
    results = read_all(list(paths.values()))
    return {case: (p, results[p]) for case, p in paths.items()}


@pytest.fixture
def damaged(job_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "damaged.h5"
    shutil.copy(job_file, path)
    return path


# -- the ways a file is damaged -----------------------------------------------------------------


def truncate_to(size: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        n = size(p.stat().st_size)
        with open(p, "r+b") as fh:
            fh.truncate(n)

    return damage


def random_bytes(start: int) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        n = p.stat().st_size - start
        with open(p, "r+b") as fh:
            fh.seek(start)
            fh.write(random.Random(7).randbytes(n))

    return damage


def delete(name: str) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        with h5py.File(p, "r+") as f:
            del f[name]

    return damage


def set_attr(name: str, value: object, where: str = "hb") -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        with h5py.File(p, "r+") as f:
            if value is None:
                del f[where].attrs[name]
            else:
                f[where].attrs[name] = value

    return damage


def replace(name: str, link: object) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        with h5py.File(p, "r+") as f:
            del f[name]
            f[name] = link

    return damage


def names(*v: str) -> np.ndarray:
    return np.array(list(v), dtype=h5py.string_dtype())


def set_superblock_flags(p: Path, flags: int) -> None:
    """What a writer that was killed leaves: its 'open for writing' flags (checksum kept valid)."""
    with open(p, "r+b") as fh:
        block = bytearray(fh.read(48))
        block[11] = flags
        block[44:48] = struct.pack("<I", lookup3(bytes(block[:44])))
        fh.seek(0)
        fh.write(block)


# (case, damage, words the one line must hold)
CASES = [
    ("truncated to half", truncate_to(lambda n: n // 2), ["truncated:", "bytes of the"]),
    ("truncated to 1 KiB", truncate_to(lambda n: 1024), ["truncated: 1,024 bytes"]),
    ("truncated to 0 bytes", truncate_to(lambda n: 0), ["empty (0 bytes)"]),
    ("random bytes", random_bytes(0), ["not an HDF5 file"]),
    ("random bytes after the superblock", random_bytes(48), ["damaged"]),
    ("value deleted", delete("hb/value"), ["/hb/value is missing"]),
    ("done map deleted", delete("hb/_tiles/done"), ["/hb/_tiles/done is missing"]),
    ("pyramid level deleted", delete("hb/levels/1"), ["/hb/levels/1 is missing"]),
    ("axis deleted", delete("hb/x"), ["/hb/x is missing"]),
    ("path positions deleted", delete("hb/paths/adam/positions"), ["/hb/paths/adam/positions is missing"]),
    ("basin minima deleted", delete("hb/basins/minima"), ["/hb/basins/minima is missing"]),
    ("streamline offsets deleted", delete("hb/streamlines/offsets"), ["/hb/streamlines/offsets is missing"]),
    ("fields missing", set_attr("fields", None), ["attribute 'fields' of /hb is None"]),
    ("fields an int", set_attr("fields", 3), ["attribute 'fields' of /hb is 3; expected a list of names"]),
    ("fields naming a missing field", set_attr("fields", names("value", "curl")), ["/hb/curl is missing"]),
    ("levels -1", set_attr("levels", -1), ["attribute 'levels' of /hb is -1; expected an integer from 0"]),
    ("levels 10**9", set_attr("levels", 10**9), ["'levels' of /hb is 1000000000"]),
    ("axes naming a missing dataset", set_attr("axes", names("x", "q")), ["/hb/q is missing"]),
    ("complete not a bool", set_attr("complete", "yes"), ["attribute 'complete' of /hb is 'yes'"]),
    ("format wrong", set_attr("gradbatch_format", "gradbatch/9", "/"), ["not a gradbatch file", "gradbatch/9"]),
    ("format an int", set_attr("gradbatch_format", 7, "/"), ["not a gradbatch file (format 7"]),
    (
        "external link out of the file",
        replace("hb/value", h5py.ExternalLink("/etc/passwd", "/x")),
        ["/hb/value is a link to another file (/etc/passwd:/x)"],
    ),
    ("soft link loop", replace("hb/value", h5py.SoftLink("/hb/value")), ["/hb/value", "too many links"]),
    ("soft link loop for a group", replace("hb/paths", h5py.SoftLink("/hb/paths")), ["/hb/paths", "too many links"]),
    ("value of the wrong shape", replace("hb/value", np.zeros(5)), ["/hb/value is (5,) float64; expected a (40, 300)"]),
    ("value a group", replace("hb/value", h5py.SoftLink("/hb/paths")), ["/hb/value is a group; expected a dataset"]),
    ("axis of strings", replace("hb/x", np.array([b"a", b"b"])), ["/hb/x is (2,) |S1"]),
    ("path positions 1D", replace("hb/paths/adam/positions", np.zeros(5)), ["expected paths x steps x 2"]),
    ("killed non-SWMR writer", lambda p: set_superblock_flags(p, 0x01), ["left open for writing", "--resume"]),
    (
        "killed non-SWMR writer, then truncated",
        lambda p: set_superblock_flags(p, 0x01) or truncate_to(lambda n: n // 2)(p),
        ["truncated:"],
    ),
    (
        "killed SWMR writer, then truncated",  # SWMR reading of a truncated file hung HDF5 for minutes
        lambda p: set_superblock_flags(p, 0x05) or truncate_to(lambda n: n // 2)(p),
        ["truncated:"],
    ),
]


@pytest.mark.parametrize("case, needles", [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_every_reader_gives_one_line(
    damaged_cases: dict[str, tuple[Path, Outcomes]], case: str, needles: list[str]
) -> None:
    damaged, result = damaged_cases[case]
    for reader in ("info", "json", "inspect"):
        assert_one_line(damaged, result[reader], *needles)
    for reader in ("view", "reader", "read_field", "read_level", "job_complete"):
        # these read less of the file: what they need is intact, or they fail in one line
        no_display = "ViewerError: gradbatch view needs a display" in str(result[reader]["err"])
        if result[reader]["rc"] != 0 and not no_display:
            assert_one_line(damaged, result[reader])
    if "complete" not in case:
        assert_one_line(damaged, result["reader"], *needles)  # what the viewer and render open


def test_a_corrupt_chunk_names_the_dataset(damaged: Path) -> None:
    """info reads no field data (it holds); a read of the field names the dataset instead of
    h5py's 'filter returned failure during read' traceback."""
    with h5py.File(damaged, "r") as f:
        chunk = f["hb/value"].id.get_chunk_info(0)
    with open(damaged, "r+b") as fh:
        fh.seek(chunk.byte_offset + 16)
        fh.write(random.Random(3).randbytes(chunk.size - 32))
    result = read_one(damaged)
    assert result["info"]["rc"] == 0 and result["inspect"]["rc"] == 0
    for reader in ("read_field", "reader"):
        assert_one_line(damaged, result[reader], "cannot read /hb/value", "damaged")


def test_damaged_metadata_of_a_swmr_file_fails_instead_of_hanging(damaged: Path) -> None:
    """A file a SWMR writer held (a killed run's .partial) is read in SWMR mode, where HDF5
    retried a failed metadata checksum for hours; now it gives up after about a second."""
    with h5py.File(damaged, "r") as f:
        header = h5py.h5o.get_info(f["hb/value"].id).addr  # the dataset's object header
    set_superblock_flags(damaged, 0x05)
    data = bytearray(damaged.read_bytes())
    assert data[header : header + 4] == b"OHDR"
    data[header + 20] ^= 0xFF  # inside the part its checksum covers
    damaged.write_bytes(data)
    result = read_one(damaged, ("info",))
    assert_one_line(damaged, result["info"], "damaged")


def test_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "job.h5"
    folder.mkdir()
    result = read_one(folder)
    assert_one_line(folder, result["info"], "is a folder")
    assert_one_line(folder, result["inspect"], "is a folder")


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root reads a file whatever its permissions (the folder case stands in)",
)
def test_a_file_without_read_permission(damaged: Path) -> None:
    damaged.chmod(0)
    result = read_one(damaged, ("info",))
    assert_one_line(damaged, result["info"], "cannot be read")


def test_soft_link_loop_at_the_top_level(damaged: Path) -> None:
    with h5py.File(damaged, "r+") as f:
        f["loop"] = h5py.SoftLink("/loop")
    result = read_one(damaged, ("info", "inspect"))
    assert_one_line(damaged, result["inspect"], "/loop", "too many links")
    assert_one_line(damaged, result["info"], "/loop", "too many links")


def test_the_intact_file_reads(job_file: Path) -> None:
    """The driver's baseline: every reader succeeds on the undamaged file (view stops at the
    missing display, after opening the file)."""
    result = read_one(job_file)
    for reader in ("info", "json", "inspect", "read_field", "read_level", "job_complete", "reader"):
        assert result[reader]["rc"] == 0, result[reader]["err"]
    assert "ViewerError" in str(result["view"]["err"])


LIVE_JOB = """\
name: live
function: 'sin(3*x) * cos(2*y) + x*y'
grid: {x: [-2, 2, 1024], y: [-2, 2, 1024]}
tile: [64, 64]
output: live.h5
"""


@pytest.mark.slow
def test_a_partial_file_being_written(tmp_path: Path) -> None:
    """Readers open a .partial while `gradbatch run` writes it: each read works, or says in
    one line why not (never a traceback, never a hang)."""
    (tmp_path / "live.yaml").write_text(LIVE_JOB)
    run = subprocess.Popen(
        [sys.executable, "-m", "gradbatch", "run", "live.yaml", "-q"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / "live.h5.partial"
    opened = 0
    try:
        while run.poll() is None:
            if not partial.exists():
                time.sleep(0.05)  # the run is starting
                continue
            result = read_one(partial, ("info", "inspect", "reader"))
            for reader in ("info", "inspect", "reader"):
                if result[reader]["rc"] == 0:
                    opened += 1
                elif "no such file" not in str(result[reader]["err"]):  # renamed meanwhile
                    assert_one_line(partial, result[reader])
    finally:
        run.wait(timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr.read() if run.stderr else ""
    assert (tmp_path / "live.h5").exists()


# -- info's output: JSON types, non-finite counts -----------------------------------------------


def _walk(v: object, where: str = "") -> list[tuple[str, object]]:
    if isinstance(v, dict):
        return [x for k, w in v.items() for x in _walk(w, f"{where}.{k}")]
    if isinstance(v, list):
        return [x for i, w in enumerate(v) for x in _walk(w, f"{where}[{i}]")]
    return [(where, v)]


def test_info_json_has_booleans_and_numbers_not_their_text(job_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradbatch.cli import main

    assert main(["info", "--json", str(job_file)]) == 0
    info = json.loads(capsys.readouterr().out)
    job = info["jobs"][0]
    assert info["partial"] is False and job["complete"] is True and job["attrs"]["complete"] is True
    assert isinstance(job["attrs"]["compiled"], bool)
    assert isinstance(job["tiles_done"], int) and isinstance(job["fields"][0]["stored_bytes"], int)
    assert isinstance(job["attrs"]["levels"], int) and isinstance(job["attrs"]["tile"][0], int)
    assert all(isinstance(v, float) for v in job["axes"][0][1:3])
    for where, v in _walk(info):
        assert not isinstance(v, str) or v not in ("True", "False", "true", "false", "None", "nan"), where
        if isinstance(v, str) and where.rsplit(".", 1)[-1] not in ("function", "job_yaml"):
            with pytest.raises(ValueError):
                float(v)  # a number stored as text would parse


def _with_nonfinite(job_file: Path, tmp_path: Path, counts: object) -> Path:
    path = tmp_path / "nonfinite.h5"
    shutil.copy(job_file, path)
    with h5py.File(path, "r+") as f:
        f["hb"].attrs["nonfinite"] = json.dumps(counts)  # as the writer stores dict attributes
    return path


def test_info_prints_non_finite_counts(job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gradbatch.cli import main

    counts = {
        "value": {"nan": 5000, "posinf": 0, "neginf": 0},  # of 40 x 300 = 12,000 points
        "grad_x": {"nan": 0, "posinf": 12000, "neginf": 0},
        "grad_y": {"nan": 0, "posinf": 0, "neginf": 0},
        "magnitude": {"nan": 6000, "posinf": 5000, "neginf": 1000},
    }
    path = _with_nonfinite(job_file, tmp_path, counts)
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "value: NaN at 5,000 of 12,000 points" in text
    assert "grad_x: infinite (+inf) at every point (12,000)" in text
    assert "grad_y" not in text.split("fields")[0]  # no line for a field without non-finite points
    assert "magnitude: non-finite at every point (12,000): NaN at 6,000, +inf at 5,000, -inf at 1,000" in text
    assert main(["info", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["attrs"]["nonfinite"] == counts


def test_info_without_non_finite_counts_says_nothing_of_them(
    job_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gradbatch.cli import main

    assert main(["info", str(job_file)]) == 0
    assert "non-finite" not in capsys.readouterr().out


@pytest.mark.parametrize("counts", [{"value": {"nan": 20000}}, {"value": {"nan": -1}}, {"value": 3}, [1, 2]])
def test_odd_non_finite_counts_are_one_line(
    job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], counts: object
) -> None:
    from gradbatch.cli import main

    path = _with_nonfinite(job_file, tmp_path, counts)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"StoreError: {path}: attribute 'nonfinite' of job 'hb'") and "\n" not in err
