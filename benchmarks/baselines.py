"""The ways people compute gradient fields today, for comparison with the engine.

- ``numpy_analytic``: the seeds' way, vectorised numpy with the gradient derived by hand
  (seed 001's ``gradf``), here even chunked for cache friendliness;
- ``seed003_loop``: "Deep Learning from Scratch" 4.3.3, a central difference per point per axis,
  looped in Python over the points (``_numerical_gradient_no_batch`` applied row by row).
"""

from __future__ import annotations

import time

import numpy as np


def numpy_meshgrid(n: int, lo: float = -5.0, hi: float = 5.0) -> float:
    """The seeds' way exactly: whole-array meshgrid, value and hand-derived gradient (float32)."""
    x = np.linspace(lo, hi, n, dtype=np.float32)
    t0 = time.perf_counter()
    xx, yy = np.meshgrid(x, x)
    u = (0.75 * xx) ** 2 + yy**2 + np.float32(0.01)
    value = np.sin(u)
    c = np.cos(u)
    gx = c * (np.float32(2 * 0.5625) * xx)
    gy = c * (np.float32(2.0) * yy)
    dt = time.perf_counter() - t0
    del value, gx, gy
    return dt


def numpy_analytic(n: int, lo: float = -5.0, hi: float = 5.0, rows: int = 256) -> float:
    """A stronger baseline than the seeds': the same numpy, in cache-sized row chunks."""
    x = np.linspace(lo, hi, n, dtype=np.float32)
    y = np.linspace(lo, hi, n, dtype=np.float32)
    value = np.empty((n, n), np.float32)
    gx = np.empty((n, n), np.float32)
    gy = np.empty((n, n), np.float32)
    t0 = time.perf_counter()
    for r in range(0, n, rows):
        yy = y[r : r + rows, None]
        u = (0.75 * x[None, :]) ** 2 + yy**2 + np.float32(0.01)
        value[r : r + rows] = np.sin(u)
        c = np.cos(u)
        gx[r : r + rows] = c * (np.float32(2 * 0.5625) * x[None, :])
        gy[r : r + rows] = c * (np.float32(2.0) * yy)
    return time.perf_counter() - t0


def _function_2(p: np.ndarray) -> float:
    return float(np.sin((0.75 * p[0]) ** 2 + p[1] ** 2 + 0.01))


def _numerical_gradient_no_batch(f, x: np.ndarray) -> np.ndarray:  # noqa: ANN001 (seed 003's code)
    h = 1e-4
    grad = np.zeros_like(x)
    for idx in range(x.size):
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
    return grad


def seed003_loop(n: int, lo: float = -5.0, hi: float = 5.0) -> float:
    """Seconds for seed 003's per-point central-difference gradient (+ value) on an n x n grid."""
    x0 = np.linspace(lo, hi, n)
    X, Y = np.meshgrid(x0, x0)
    pts = np.array([X.flatten(), Y.flatten()]).T  # the fixed (transposed) version
    t0 = time.perf_counter()
    grad = np.zeros_like(pts)
    value = np.zeros(len(pts))
    for i, p in enumerate(pts):
        grad[i] = _numerical_gradient_no_batch(_function_2, p)
        value[i] = _function_2(p)
    return time.perf_counter() - t0
