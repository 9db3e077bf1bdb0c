"""The example notebooks in examples/ execute: their code cells, in order, in a fresh Python
process in an empty folder (no Jupyter kernel needed; there ``explore`` gives its static picture,
which a kernel would show as a widget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.ipynb"))

pytestmark = [pytest.mark.gl, pytest.mark.slow]


def script_of(notebook: Path) -> str:
    """The notebook's code cells as one script (shell and magic lines are not allowed in them)."""
    cells = json.loads(notebook.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for text in code:
        bad = [line for line in text.splitlines() if line.lstrip().startswith(("!", "%"))]
        assert not bad, f"{notebook.name}: shell or magic lines do not run outside Jupyter: {bad}"
    return "\n\n".join(code) + "\n"


def test_there_are_three_examples_stored_without_outputs() -> None:
    assert [p.stem for p in EXAMPLES] == ["01_gradients", "02_regression_landscape", "03_himmelblau_optimisers"]
    for nb in EXAMPLES:
        data = json.loads(nb.read_text())
        assert data["nbformat"] == 4
        assert all(not c.get("outputs") for c in data["cells"] if c["cell_type"] == "code"), nb.name


@pytest.mark.parametrize("notebook", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_notebook_runs(notebook: Path, tmp_path: Path) -> None:
    script = tmp_path / f"{notebook.stem}.py"
    script.write_text(script_of(notebook))
    env = {**os.environ, "EGL_PLATFORM": "surfaceless", "GRADBATCH_BACKGROUND_COMPILE": "0"}
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"{notebook.name} failed:\n{run.stderr[-3000:]}"
    pictures = list(tmp_path.glob("*.png"))
    assert pictures and all(p.read_bytes()[:4] == b"\x89PNG" for p in pictures)
    assert "showing a static picture" in run.stderr  # explore() outside a kernel, said


def test_in_a_jupyter_kernel_explore_is_a_widget_and_progress_a_bar(tmp_path: Path) -> None:
    """The first example in a real kernel (nbclient): no cell fails, ``explore`` shows the
    interactive widget (not the static picture), ``progress=True`` a notebook bar, ``show`` a PNG."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(EXAMPLES[0], as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [c.outputs for c in nb.cells if c.cell_type == "code"]
    assert not [o for cell in outputs for o in cell if o.output_type == "error"]
    kinds = [{k for o in cell for k in o.get("data", {})} for cell in outputs]
    run_cell = next(i for i, c in enumerate(nb.cells) if "progress=True" in c.source)
    explore_cell = next(i for i, c in enumerate(nb.cells) if c.source.startswith("gradbatch.explore"))
    code_index = {i: k for k, i in enumerate(j for j, c in enumerate(nb.cells) if c.cell_type == "code")}
    widget = "application/vnd.jupyter.widget-view+json"
    assert {widget, "image/png"} <= kinds[code_index[run_cell]]  # the tqdm bars, then the picture
    assert widget in kinds[code_index[explore_cell]]
    stderr = " ".join(o.get("text", "") for o in outputs[code_index[explore_cell]] if o.output_type == "stream")
    assert "static picture" not in stderr
