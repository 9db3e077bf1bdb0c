"""A full disk or a file size limit mid-run: one line, exit 2, the partial file kept and
resumable. Before, h5py's failed flushes printed thousands of traceback lines and the process
crashed with a segfault; and a file cut short by the limit could not be reopened."""

from __future__ import annotations

import resource
from pathlib import Path

import hdf5plugin  # noqa: F401  (the Blosc2 filter)
import pytest

from ..conftest import assert_files_equal
from ._util import FULL_JOB, gradbatch, leftovers, one_line_error

BIG = "name: wave\nfunction: 'sin(x) * cos(y)'\ngrid: {x: [-3, 3, 512], y: [-3, 3, 512]}\ntile: 64\ncompression: none\n"


def _limit(nbytes: int):  # noqa: ANN202
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("straight")
    (folder / "job.yaml").write_text(BIG)
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], folder).returncode == 0
    return folder / "out.h5"


@pytest.mark.parametrize("limit", [200_000, 1_500_000, 3_000_000])
def test_file_size_limit_is_one_line_and_resume_finishes(tmp_path: Path, straight: Path, limit: int) -> None:
    (tmp_path / "job.yaml").write_text(BIG)
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, preexec=_limit(limit))
    one_line_error(p, "StoreError", "out.h5.partial", "File too large", "--resume")
    assert [n for n in leftovers(tmp_path) if n != "out.h5.lock"] == ["out.h5.partial"]
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert_files_equal(tmp_path / "out.h5", straight, "wave")


def test_file_size_limit_while_writing_overlays(tmp_path: Path) -> None:
    """The tiles fit, the paths/basins/streamlines written outside SWMR mode do not."""
    (tmp_path / "job.yaml").write_text(FULL_JOB)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "job.yaml").write_text(
        FULL_JOB.replace("basins:", "#").replace("streamlines:", "#").replace("paths:", "xpaths:").split("xpaths:")[0]
    )
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], probe).returncode == 0
    fields_only = (probe / "out.h5").stat().st_size
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, preexec=_limit(fields_only + 4096))
    one_line_error(p, "StoreError", "out.h5.partial")
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    assert p.returncode == 0, p.stderr
    info = gradbatch(["info", "out.h5"], tmp_path)
    assert info.returncode == 0 and "[complete]" in info.stdout, info.stdout + info.stderr


def test_file_size_limit_at_the_very_end_never_leaves_an_unreadable_output(tmp_path: Path) -> None:
    """The limit hits at the last close, after `complete` is set: before, --resume renamed a
    file whose metadata lay past its recorded end (exit 0, unreadable), or hung reading it."""
    (tmp_path / "job.yaml").write_text(FULL_JOB)
    assert gradbatch(["run", "job.yaml", "-o", "whole.h5", "-q"], tmp_path).returncode == 0
    size = (tmp_path / "whole.h5").stat().st_size
    for cut in (300, 1500, 5000):
        for name in ("out.h5", "out.h5.partial"):
            (tmp_path / name).unlink(missing_ok=True)
        p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, preexec=_limit(size - cut))
        if p.returncode == 0:
            continue  # the file came out smaller this time (lengths of timings vary): nothing to test
        one_line_error(p, "StoreError")
        p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path, timeout=120)
        if p.returncode == 0:
            info = gradbatch(["info", "out.h5"], tmp_path)
            assert info.returncode == 0 and "[complete]" in info.stdout, (cut, info.stderr)
        else:
            one_line_error(p, "StoreError", "--overwrite")
            assert not (tmp_path / "out.h5").exists()


@pytest.mark.slow
def test_file_size_limit_at_several_points_of_the_overlays_resumes(tmp_path: Path) -> None:
    """Cuts between the fields-only size and the whole file: the run fails in one line; --resume
    either finishes a file equal to an uninterrupted one (fields, tile tables, statistics) or,
    when the job's own group was cut, says in one line to start afresh. A cut that leaves an
    overlay's metadata past the file's end ("addr overflow": before, a traceback as the resumed
    run deleted it) is rebuilt without it; at least one of these cuts does that."""
    from gradbatch.store import read_stats

    (tmp_path / "job.yaml").write_text(FULL_JOB)
    assert gradbatch(["run", "job.yaml", "-o", "whole.h5", "-q"], tmp_path).returncode == 0
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "job.yaml").write_text(FULL_JOB.split("paths:")[0])
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], probe).returncode == 0
    fields_only, whole = (probe / "out.h5").stat().st_size, (tmp_path / "whole.h5").stat().st_size
    span = whole - fields_only
    rebuilt = 0
    for cut in (fields_only + 4096, fields_only + span // 4, fields_only + span // 2):
        for name in ("out.h5", "out.h5.partial"):
            (tmp_path / name).unlink(missing_ok=True)
        p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path, preexec=_limit(cut))
        if p.returncode == 0:
            continue
        one_line_error(p, "StoreError", "out.h5.partial")
        p = gradbatch(["run", "job.yaml", "-o", "out.h5", "--resume"], tmp_path)  # not -q: its log lines
        if p.returncode != 0:
            one_line_error(p, "StoreError", "--overwrite")
            assert not (tmp_path / "out.h5").exists()
            continue
        rebuilt += "rebuilt without them" in p.stderr
        assert "Traceback" not in p.stderr, p.stderr
        assert [n for n in leftovers(tmp_path) if n not in ("out.h5.lock", "whole.h5", "probe")] == ["out.h5"]
        info = gradbatch(["info", "out.h5"], tmp_path)
        assert info.returncode == 0 and "[complete]" in info.stdout, (cut, info.stdout + info.stderr)
        assert_files_equal(tmp_path / "out.h5", tmp_path / "whole.h5", "himmel")
        for field in ("value", "grad_x", "grad_y"):
            got, want = (read_stats(tmp_path / name, "himmel", field) for name in ("out.h5", "whole.h5"))
            assert got == want, field
    assert rebuilt, "no cut left an overlay unreadable: choose other cuts"
