"""`gradbatch render -o OUT` never destroys data: not its input (by path, symlink or hard link,
even with --overwrite), not an existing file that is not a PNG (unless --overwrite), and OUT's
suffix must be one it writes. The refusals come before any drawing, so they need no OpenGL."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import h5py
import pytest

import gradbatch
from gradbatch.cli import main
from gradbatch.config import parse_config
from gradbatch.errors import StoreError, ViewerError
from gradbatch.viewer.render import check_output

PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)


@pytest.fixture(scope="module")
def job_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "job.h5"
    gradbatch.run_jobs(
        parse_config(
            "name: hb\nfunction: {builtin: himmelblau}\ngrid: {x: [-5, 5, 64], y: [-5, 5, 64]}\n"
            "paths: {starts: [[-4, 0]], steps: 30, optimizers: [{name: adam, lr: 0.05}]}\n",
            output=out,
        )
    )
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(capsys: pytest.CaptureFixture[str], start: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(start), err
    return err


# -- check_output: the rules -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.png", "OUT.PNG", "a.b.Png"])
def test_png_suffixes_in_any_case_are_accepted(tmp_path: Path, name: str) -> None:
    assert check_output(tmp_path / name) == tmp_path / name


@pytest.mark.parametrize("name", ["out.h5", "out.jpg", "out", "out.png.partial"])
def test_other_suffixes_are_refused_with_the_allowed_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(ViewerError, match=r"suffix must be one of \.png"):
        check_output(tmp_path / name)


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_input_is_never_the_output(tmp_path: Path, overwrite: bool) -> None:
    src = tmp_path / "data.png"  # even an input named like an image
    src.write_bytes(PNG)
    sym = tmp_path / "sym.png"
    sym.symlink_to(src)
    hard = tmp_path / "hard.png"
    os.link(src, hard)
    for out in (src, sym, hard, tmp_path / "." / "data.png"):
        with pytest.raises(StoreError, match="is the input file"):
            check_output(out, [src], overwrite)


def test_an_existing_file_that_is_not_a_png_needs_overwrite(tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("my notes, not a picture")
    with pytest.raises(StoreError, match="exists and is not a PNG picture.*--overwrite"):
        check_output(notes)
    assert check_output(notes, overwrite=True) == notes
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="not a PNG picture"):
        check_output(empty)


def test_an_existing_png_is_replaced(tmp_path: Path) -> None:
    old = tmp_path / "old.png"
    old.write_bytes(PNG)
    assert check_output(old) == old


def test_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pictures.png"
    folder.mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        check_output(folder, overwrite=True)


# -- the command line: refused before anything is drawn or written ------------------------------


def test_render_onto_its_input_is_refused_and_the_file_is_untouched(
    job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(job_file)
    link = tmp_path / "job.png"
    os.link(job_file, link)  # an image name on the input's inode
    for out, extra in ((job_file, []), (job_file, ["--overwrite"]), (link, ["--overwrite"])):
        assert main(["render", str(job_file), "-o", str(out), *extra]) == 2
        _one_line(capsys, "")
    assert _digest(job_file) == before


def test_render_over_a_file_that_is_not_a_png(
    job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("keep me")
    assert main(["render", str(job_file), "-o", str(notes)]) == 2
    _one_line(capsys, f"StoreError: {notes}: exists and is not a PNG picture")
    assert notes.read_text() == "keep me"


def test_render_to_a_suffix_it_does_not_write(
    job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(job_file), "-o", str(tmp_path / "out.h5")]) == 2
    assert _one_line(capsys, "ViewerError: ").endswith("got '.h5'")
    assert not (tmp_path / "out.h5").exists()


# -- drawing (OpenGL) -----------------------------------------------------------------------------


@pytest.mark.gl
def test_render_replaces_a_png_and_with_overwrite_any_file(job_file: Path, tmp_path: Path) -> None:
    from gradbatch.viewer.render import RenderOptions, render

    out = tmp_path / "r.png"
    out.write_bytes(PNG)
    opts = RenderOptions(size=(64, 48))
    render(job_file, out, options=opts)
    assert out.read_bytes()[:8] == PNG[:8] and out.stat().st_size > len(PNG)
    notes = tmp_path / "n.png"
    notes.write_text("replace me")
    assert main(["render", str(job_file), "-o", str(notes), "--size", "64x48", "--overwrite"]) == 0
    assert notes.read_bytes()[:8] == PNG[:8]


@pytest.mark.gl
def test_a_damaged_overlay_read_while_drawing_is_one_line(
    job_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The paths are read by the drawing code: a corrupt chunk there is a StoreError naming the
    dataset, not h5py's traceback."""
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(job_file.read_bytes())
    with h5py.File(damaged, "r+") as f:  # a chunked, compressed copy of the positions
        pos = f["hb/paths/adam/positions"][...]
        del f["hb/paths/adam/positions"]
        f.create_dataset("hb/paths/adam/positions", data=pos, chunks=pos.shape, compression="gzip")
    with h5py.File(damaged, "r") as f:
        chunk = f["hb/paths/adam/positions"].id.get_chunk_info(0)
    with open(damaged, "r+b") as fh:
        fh.seek(chunk.byte_offset)
        fh.write(random.Random(5).randbytes(chunk.size))
    assert main(["render", str(damaged), "-o", str(tmp_path / "d.png"), "--size", "64x48"]) == 2
    _one_line(capsys, f"StoreError: {damaged}: cannot read /hb/paths/adam/positions")


@pytest.mark.parametrize("overwrite", [False, True])
def test_links_and_pipes_are_never_written_through(tmp_path: Path, overwrite: bool) -> None:
    target = tmp_path / "job.yaml"
    target.write_text("precious")
    (tmp_path / "link.png").symlink_to(target)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere" / "x.png")
    os.mkfifo(tmp_path / "fifo.png")
    for name, needle in (
        ("link.png", "symbolic link"),
        ("dangling.png", "symbolic link"),
        ("fifo.png", "not a regular file"),
    ):
        with pytest.raises(StoreError, match=needle):
            check_output(tmp_path / name, [], overwrite)
    assert target.read_text() == "precious"


def test_a_job_picture_needs_vispy_and_is_refused_before_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from gradbatch.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vispy" else real(name, *a))
    text = "name: r\nfunction: 'x*y'\ngrid: {x: [-1, 1, 8], y: [-1, 1, 8]}\nrender: {size: [120, 100]}\n"
    with pytest.raises(ConfigError, match=r"^render: drawing needs vispy, which is not installed"):
        gradbatch.run_jobs(parse_config(text, output=tmp_path / "r.h5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_jobs_draw_pictures_only_through_the_renderer_they_are_given(tmp_path: Path) -> None:
    """gradbatch.jobs never imports the viewer: the picture is drawn by the renderer passed in,
    checked before the run and called after it; without one, the job is refused up front."""
    from gradbatch import jobs
    from gradbatch.errors import ConfigError

    text = "name: r\nfunction: 'x*y'\ngrid: {x: [-1, 1, 8], y: [-1, 1, 8]}\nrender: {size: [120, 100]}\n"
    with pytest.raises(ConfigError, match=r"^render: this run draws no pictures"):
        jobs.run_jobs(parse_config(text, output=tmp_path / "r.h5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    calls: list[tuple[str, str, bool]] = []

    class Recorder:
        def check(self, job, inputs, overwrite):  # noqa: ANN001, ANN202
            calls.append(("check", job.name, (tmp_path / "r.h5").exists()))

        def render(self, job, source):  # noqa: ANN001, ANN202
            calls.append(("render", job.name, Path(source).exists()))
            return Path(job.render.output)

    jobs.run_jobs(parse_config(text, output=tmp_path / "r.h5"), renderer=Recorder())
    assert calls == [("check", "r", False), ("render", "r", True)]
    assert not (tmp_path / "r-r.png").exists()  # the recorder draws nothing


def test_jobs_never_import_the_viewer_even_inside_a_function() -> None:
    import ast

    import gradbatch.jobs

    tree = ast.parse(Path(gradbatch.jobs.__file__).read_text())
    names = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    names += [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    assert not [
        n
        for n in names
        if n.split(".")[0] in ("render", "viewer", "vispy") or ".viewer" in n or n.startswith("gradbatch.render")
    ]
