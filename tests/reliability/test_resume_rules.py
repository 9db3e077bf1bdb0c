"""--resume commits only what is complete, never follows a link, and bad settings that can only
fail after planning are refused before any file exists."""

from __future__ import annotations

from pathlib import Path

from ._util import gradbatch, kill_at_write, leftovers, one_line_error

JOB = "name: wave\nfunction: 'sin(3*x) * cos(2*y)'\ngrid: {x: [-2, 2, 128], y: [-1, 1, 96]}\ntile: 32\n"
KILL_SECOND = kill_at_write(2)


def _killed(folder: Path, text: str = JOB) -> None:
    (folder / "job.yaml").write_text(text)
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], folder, prelude=KILL_SECOND).returncode == -9


def test_resume_refuses_a_partial_whose_job_was_renamed(tmp_path: Path) -> None:
    _killed(tmp_path)
    (tmp_path / "job.yaml").write_text(JOB.replace("name: wave", "name: ripple"))
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    one_line_error(p, "StoreError", "holds job 'wave' that the job file no longer has", "--overwrite")
    assert "out.h5" not in leftovers(tmp_path) and "out.h5.partial" in leftovers(tmp_path)


def test_resume_refuses_a_partial_whose_job_was_removed(tmp_path: Path) -> None:
    two = (
        "jobs:\n  - "
        + JOB.replace("\n", "\n    ").rstrip()
        + "\n  - "
        + JOB.replace("name: wave", "name: other").replace("\n", "\n    ").rstrip()
        + "\n"
    )
    _killed(tmp_path, two)
    (tmp_path / "job.yaml").write_text(JOB.replace("name: wave", "name: other"))
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    one_line_error(p, "StoreError", "'wave'")
    assert "out.h5" not in leftovers(tmp_path)


def test_resume_never_follows_a_symlinked_partial(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    precious = tmp_path / "precious.dat"
    precious.write_bytes(b"\x89HDF\r\n\x1a\n" + b"keep me" * 100)
    (tmp_path / "out.h5.partial").symlink_to(precious)
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path)
    one_line_error(p, "StoreError", "symbolic link")
    assert precious.read_bytes().endswith(b"keep me")


def test_overwrite_keeps_the_old_partial_when_planning_fails(tmp_path: Path) -> None:
    _killed(tmp_path)
    size = (tmp_path / "out.h5.partial").stat().st_size
    (tmp_path / "job.yaml").write_text(JOB.replace("sin(3*x)", "sin(3*q)"))
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--overwrite"], tmp_path)
    assert p.returncode == 2 and "q" in p.stderr
    assert (tmp_path / "out.h5.partial").stat().st_size == size


def test_render_field_the_job_does_not_write_is_refused_before_any_file(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "name: vec\nfunction: ['-y', 'x']\ngrid: {x: [-1, 1, 32], y: [-1, 1, 32]}\n"
        "render: {output: vec.png, field: value}\n"
    )  # a vector job has no value; left to the job, the picture draws its magnitude instead
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    one_line_error(p, "ConfigError", "render.field", "'value'", "v_x")
    assert leftovers(tmp_path) == []


def test_a_job_larger_than_the_free_disk_is_refused_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("name: huge\nfunction: 'x*y'\ngrid: {x: [0, 1, 4000000], y: [0, 1, 4000000]}\n")
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    one_line_error(p, "StoreError", "may need up to", "free", "--force")
    assert leftovers(tmp_path) == []


def test_an_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    (tmp_path / "out.h5").mkdir()
    one_line_error(gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path), "StoreError", "is a folder")


def test_a_job_render_output_that_would_destroy_data_is_refused_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "job.yaml").write_text(JOB + "render: {output: notes.txt}\n")
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and ".png" in p.stderr, p.stderr
    (tmp_path / "job.yaml").write_text(JOB + "render: {output: out.h5}\n")
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert (tmp_path / "notes.txt").read_text() == "my notes" and leftovers(tmp_path) == ["notes.txt"]


TWO = """output: out.h5
tile: 32
jobs:
  - name: first
    function: "x + y"
    grid: {x: [-3, 3, 64], y: [-3, 3, 64]}
  - name: second
    function: "sin(x)*cos(y)"
    grid: {x: [-3, 3, 256], y: [-3, 3, 256]}
"""


def test_resume_refuses_a_finished_job_whose_settings_changed(tmp_path: Path) -> None:
    """The first job was complete in the partial; it must still match the job file."""
    kill_in_second = kill_at_write(8)  # the first job has 4 tiles
    (tmp_path / "job.yaml").write_text(TWO)
    assert gradbatch(["run", "job.yaml", "-q"], tmp_path, prelude=kill_in_second).returncode == -9
    (tmp_path / "job.yaml").write_text(TWO.replace('"x + y"', '"x * y * 1000"'))
    p = gradbatch(["run", "job.yaml", "-q", "--resume"], tmp_path)
    one_line_error(p, "StoreError", "'first' was started with different settings")
    assert "out.h5" not in leftovers(tmp_path)


def test_resume_on_a_complete_output_checks_it_holds_this_job_file(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    assert gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path).returncode == 0
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "--resume"], tmp_path)
    assert p.returncode == 0 and "nothing to resume" in p.stderr
    (tmp_path / "job.yaml").write_text(JOB.replace("sin(3*x)", "sin(4*x)"))
    one_line_error(
        gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path),
        "StoreError",
        "'wave' was made with different settings",
    )
    (tmp_path / "job.yaml").write_text(JOB.replace("name: wave", "name: other"))
    one_line_error(
        gradbatch(["run", "job.yaml", "-o", "out.h5", "-q", "--resume"], tmp_path),
        "StoreError",
        "'wave' that the job file does not have",
    )


def test_one_output_named_two_ways_is_one_output(tmp_path: Path) -> None:
    two_ways = TWO.replace("output: out.h5\n", "").replace("  - name: second", "    output: out.h5\n  - name: second")
    two_ways = two_ways.replace("  - name: first", "  - name: first").replace(
        "    grid: {x: [-3, 3, 256]", "    output: ./out.h5\n    grid: {x: [-3, 3, 256]"
    )
    (tmp_path / "job.yaml").write_text(two_ways)
    p = gradbatch(["run", "job.yaml", "-q"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert leftovers(tmp_path) == ["out.h5"]


def test_an_output_name_too_long_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(JOB)
    one_line_error(gradbatch(["run", "job.yaml", "-o", "a" * 300 + ".h5", "-q"], tmp_path), "StoreError")


def test_paths_failing_after_the_fields_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "function: 'x*x + y*y'\ngrid: {x: [-1, 1, 11], y: [-1, 1, 11]}\n"
        "paths: {starts: [[0.5, 0]], optimizers: [{name: sgd, lr: 1e300}]}\n"
    )
    p = gradbatch(["run", "job.yaml", "-o", "out.h5", "-q"], tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "out.h5" not in leftovers(tmp_path)
