"""A real window under Xvfb (where Xvfb and glfw are installed; CI installs both), driven by
synthetic mouse events. Runs in a subprocess: vispy's backend is chosen once per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import gradbatch
from gradbatch.config import parse_config

pytestmark = pytest.mark.gl

DRIVER = """
import sys, time
from vispy import app
from gradbatch.viewer.canvas import FieldView
fv = FieldView(sys.argv[1], app="glfw", show=True, size=(400, 300))
def pump(until):
    end = time.time() + 20
    while not until() and time.time() < end:
        app.process_events(); fv.poll(); time.sleep(0.01)
pump(lambda: fv.state.applied)
first = fv.state.last_applied
before = fv.window
fv.canvas.events.mouse_wheel(pos=(200, 150), delta=(0, 5), modifiers=())
pump(lambda: fv.state.applied >= 2 and fv.state.last_applied.request.window != before)
after = fv.state.last_applied.request.window
print("zoomed", (after[1] - after[0]) < (before[1] - before[0]), fv.state.last_applied.level <= first.level)
fv.canvas.events.key_press(key="a", text="a")
print("arrows", fv.layers.arrows.visible)
print("shot", fv.screenshot().exists())
fv.close()
"""


@pytest.fixture
def display() -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    pytest.importorskip("glfw")
    number = 90 + os.getpid() % 100
    proc = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1024x768x24"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    socket = Path(f"/tmp/.X11-unix/X{number}")  # the display accepts clients once its socket exists
    deadline = time.monotonic() + 30  # a busy 2-core machine can take several seconds
    while not socket.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is not None or not socket.exists():
        proc.kill()
        pytest.skip("Xvfb did not start")
    time.sleep(0.2)
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_window_zooms_on_the_mouse_wheel_and_takes_screenshots(display: str, tmp_path: Path) -> None:
    out = tmp_path / "w.h5"
    gradbatch.run_jobs(
        parse_config("name: w\nfunction: 'sin(x) * y'\ngrid: {x: [0, 8, 1024], y: [0, 4, 512]}\n", output=out)
    )
    env = {**os.environ, "DISPLAY": display}
    r = subprocess.run([sys.executable, "-c", DRIVER, str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "zoomed True True" in r.stdout and "arrows False" in r.stdout and "shot True" in r.stdout
