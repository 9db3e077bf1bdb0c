"""The seed tutorials' own figures, redrawn with matplotlib as each seed draws them.

The seeds (``/work/shared/seeds``, summarised in the gallery page) are the tutorials gradbatch's
users start from. Each figure below follows its seed's code: the same functions, ranges, sample
densities, colormaps and plotting calls, loops and point-by-point gradients included where that is
what the seed does. Nothing is fixed and nothing is added; where a seed's call no longer exists in
matplotlib 3.11 (``figure.gca(projection="3d")``) the equivalent current call is used, and calls
that draw nothing (an empty ``plt.legend()``) are left out. The only change is the output: each
figure is saved to ``docs/gallery/seeds/<seed>_<name>.png``, about 800 px wide, through the
object API (``Figure`` + the Agg canvas, no pyplot state). Notebook seeds (001, 002) are cropped
to their content as Jupyter's inline backend shows them; script seeds keep the whole window.

    python docs/gallery/seeds.py            # all seeds
    python docs/gallery/seeds.py 002 003    # some
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib as mpl
import matplotlib.style
import numpy as np
from matplotlib import cm
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

OUT = Path(__file__).resolve().parent / "seeds"
WIDTH_PX = 800
MAX_BYTES = 150_000
"""A figure above this size is re-encoded with a 256-colour palette (surfaces, dense images)."""


def new_figure(figsize: tuple[float, float] | None = None, **kwargs: object) -> Figure:
    """A figure on an Agg canvas (rcParams' default size unless ``figsize``), as ``plt.figure`` makes."""
    fig = Figure(figsize=figsize, **kwargs)  # type: ignore[arg-type]
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, name: str, tight: bool = False) -> Path:
    """Write ``fig`` as ``seeds/<name>.png`` about :data:`WIDTH_PX` wide; ``tight`` crops to the
    content as a notebook's inline figure is shown."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    dpi = WIDTH_PX / fig.get_figwidth()
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None, pil_kwargs={"optimize": True})
    if path.stat().st_size > MAX_BYTES:
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(256, dither=Image.Dither.NONE)
        small.save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return path


# --- seed 000: GistNoesis/VisualizeGradient (a script; figures shown in a window) -------------------


def seed000() -> None:
    """1D: the cubic on [-3, 3) (step 0.1) with torch ``func.grad`` arrows on the x axis every 0.5,
    clipped to [-4, 4]; 2D: the ripple surface on [-5, 5.1) (step 0.25, coolwarm, alpha 0.5) with
    black gradient arrows every 1.0 in the plane z = 0, each gradient taken point by point."""
    import torch as th

    def f(x):  # type: ignore[no-untyped-def]
        return x**3 + 2 * x**2 - x

    minx, maxx, stepf, stepquiver, clipq = -3, 3, 0.1, 0.5, 4
    gf = th.func.grad(f)
    x = np.arange(minx, maxx, stepf)
    y = f(x)
    xx = np.arange(minx, maxx, stepquiver)
    x0, y0 = np.meshgrid(xx, 0)
    u = np.array([th.clip(gf(th.tensor(xi)), -clipq, clipq).numpy() for xi in xx])
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(x, y)
    ax.quiver(x0, y0, u, 0)
    save(fig, "000_cubic_arrows")

    def g(x, y):  # type: ignore[no-untyped-def]
        return th.sin(th.sqrt((0.75 * x) ** 2 + y**2 + 0.01))

    minx, maxx, miny, maxy, stepf, stepquiver = -5, 5.1, -5, 5.1, 0.25, 1.0
    X, Y = np.meshgrid(np.arange(minx, maxx, stepf), np.arange(miny, maxy, stepf))
    Z = g(th.tensor(X), th.tensor(Y)).numpy()
    XX2, YY2 = np.arange(minx, maxx, stepquiver), np.arange(miny, maxy, stepquiver)
    gradg = th.func.grad(g, (0, 1))
    gg = [gradg(th.tensor(xi), th.tensor(yi)) for yi in YY2 for xi in XX2]
    grads = np.reshape(np.array([(gx.numpy(), gy.numpy()) for gx, gy in gg]), (YY2.shape[0], XX2.shape[0], 2))
    fig = new_figure()
    ax = fig.add_subplot(projection="3d")
    xq, yq, zq = np.meshgrid(XX2, YY2, 0)
    ax.plot_surface(X, Y, Z, cmap=cm.coolwarm, linewidth=0, antialiased=False, alpha=0.5)
    ax.quiver(xq, yq, zq, grads[:, :, 0:1], grads[:, :, 1:2], 0, color="black")
    save(fig, "000_surface")


# --- seed 001: a course appendix on gradients (a notebook, ggplot style) ------------------------------


@contextlib.contextmanager
def seed001_style() -> Iterator[None]:
    """The notebook's ``plt.style.use('ggplot')`` and its rcParams."""
    rc = {"font.size": 16, "axes.labelweight": "bold", "axes.grid": False, "figure.figsize": (8, 6)}
    with mpl.style.context("ggplot"), mpl.rc_context(rc):
        yield


def seed001() -> None:
    """sin(xy) as an imshow (1000^2 on [0, 4]^2) with a colour bar; the vector field [x, sin y]
    as a quiver (20^2 on [-5, 5]^2); the hand-derived gradient of sin(xy) as a quiver (15^2),
    alone and over the imshow."""
    with seed001_style():
        f = lambda x, y: np.sin(x * y)
        x = np.linspace(0, 4, 1000)
        y = np.linspace(0, 4, 1000)
        xx, yy = np.meshgrid(x, y)
        zz = f(xx, yy)
        extent = (np.min(x), np.max(x), np.min(y), np.max(y))
        fig = new_figure()
        ax = fig.add_subplot()
        im = ax.imshow(zz, extent=extent, origin="lower")
        ax.set(xlabel="x", ylabel="y", title=r"$\sin(xy)$")
        fig.colorbar(im, ax=ax)
        save(fig, "001_sin_xy", tight=True)

        fv = lambda x, y: np.array([x, np.sin(y)])
        xv = np.linspace(-5, 5, 20)
        yv = np.linspace(-5, 5, 20)
        xxv, yyv = np.meshgrid(xv, yv)
        zv = fv(xxv, yyv)
        fig = new_figure()
        ax = fig.add_subplot()
        ax.quiver(xxv, yyv, zv[0], zv[1])
        ax.set(xlabel="x", ylabel="y", title=r"$f(x,y) = [x; \; \sin(y)]$")
        save(fig, "001_vector_field", tight=True)

        gradf = lambda x, y: (y * np.cos(x * y), x * np.cos(x * y))
        xsmall = np.linspace(0, 4, 15)
        ysmall = np.linspace(0, 4, 15)
        xxsmall, yysmall = np.meshgrid(xsmall, ysmall)
        gradx, grady = gradf(xxsmall, yysmall)
        fig = new_figure()
        ax = fig.add_subplot()
        ax.quiver(xxsmall, yysmall, gradx, grady)
        ax.axis("square")
        ax.set(xlabel="x", ylabel="y", title=r"∇$ \sin(xy)$")
        save(fig, "001_sin_xy_quiver", tight=True)

        fig = new_figure(figsize=(8, 8))
        ax = fig.add_subplot()
        im = ax.imshow(zz, extent=extent, origin="lower")
        fig.colorbar(im, ax=ax)
        ax.quiver(xxsmall, yysmall, gradx, grady)
        ax.set(xlabel="x", ylabel="y", title=r"$\sin(xy)$ and its gradient")
        save(fig, "001_sin_xy_gradient", tight=True)


# --- seed 002: "Introduction to gradients" (a notebook, matplotlib defaults) ------------------------


def plot_1d_gradient_arrows(ax, x, y, grad, dx=0.3, n=5, xlabel=None, ylabel=None):  # type: ignore[no-untyped-def]
    """Seed 002's ``plot_1D_gradient_arrows``: every ``n``-th point, an arrow (dx, f'(x) dx) in data units."""
    xi, yi, mi = x[::n], y[::n], grad[::n]
    u = dx * np.ones_like(xi)
    v = mi * dx
    ax.quiver(xi, yi, u, v, angles="xy", scale_units="xy", scale=0.5, color="red", zorder=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def seed002_curves() -> None:
    """The three 1D examples: x^2 and cos on [-5, 5], a cubic on [-2, 5], 100 points, arrows every 5th."""
    curves = {
        "quadratic": (lambda x: x**2, lambda x: 2 * x, -5),
        "cosine": (np.cos, lambda x: -np.sin(x), -5),
        "polynomial": (lambda x: x**3 - 4 * x**2 + 2 * x - 3, lambda x: 3 * x**2 - 8 * x + 2, -2),
    }
    for name, (f, df, lo) in curves.items():
        temp_x = np.linspace(lo, 5, num=100)
        fig = new_figure()
        ax = fig.add_subplot()
        ax.plot(temp_x, f(temp_x))
        plot_1d_gradient_arrows(ax, temp_x, f(temp_x), df(temp_x), 0.1, 5)
        save(fig, f"002_{name}_arrows", tight=True)


def seed002() -> None:
    """The linear-regression part: data, the two 1D loss slices, the loss landscape over (m, b) as a
    surface and as filled contours, streamlines of the (m/4-scaled) negative gradient, the descent
    path from (-15, -30) and the fitted line. The loss grid is filled point by point as the seed does."""
    seed002_curves()
    x = np.arange(-5, 5, 0.25)
    y_true = x * 2 + -3 + np.random.RandomState(42).normal(size=x.shape)  # np.random.seed(42) at the top
    L = lambda y_true, m, b: int(np.sum((y_true - (m * x + b)) ** 2))
    dL_dm = lambda y_true, m, b: -2 * np.sum(x * (y_true - (m * x + b)))
    dL_db = lambda y_true, m, b: -2 * np.sum(y_true - (m * x + b))

    fig = new_figure()
    fig.add_subplot().scatter(x, y_true)
    save(fig, "002_data", tight=True)
    line_range = np.arange(-10, 11, 0.5)
    for name, loss, grad in (
        ("m", lambda p: L(y_true, p, 5), lambda p: dL_dm(y_true, p, 5)),
        ("b", lambda p: L(y_true, 5, p), lambda p: dL_db(y_true, 5, p)),
    ):
        losses = [loss(p) for p in line_range]
        fig = new_figure()
        ax = fig.add_subplot()
        ax.plot(line_range, losses)
        gradients = np.array([grad(p) for p in line_range])
        plot_1d_gradient_arrows(ax, line_range, losses, gradients, 0.5, 5, f'choice of parameter "{name}"', "Loss")
        save(fig, f"002_loss_{name}", tight=True)

    m_range = np.arange(-20, 20, 0.5)
    b_range = np.arange(-40, 40, 0.5)
    L_grid = np.zeros(shape=(len(b_range), len(m_range)))
    for i, b in enumerate(b_range):
        for j, m in enumerate(m_range):
            L_grid[i, j] = L(y_true, m, b)
    M, B = np.meshgrid(m_range, b_range)
    fig = new_figure(figsize=(6, 8), layout="tight")
    ax = fig.add_subplot(111, projection="3d")
    ax.plot_surface(M, B, L_grid, cmap="viridis")
    ax.set_xlabel("m (slope)")
    ax.set_ylabel("b (bias)")
    ax.set_zlabel("Loss", rotation=90)
    ax.set_box_aspect(None, zoom=0.95)
    ax.view_init(elev=20, azim=35)
    save(fig, "002_landscape_surface", tight=True)

    def landscape():  # type: ignore[no-untyped-def]
        fig = new_figure()
        ax = fig.add_subplot()
        im = ax.contourf(M, B, L_grid, levels=25, cmap="viridis")
        ax.set_xlabel("m")
        ax.set_ylabel("b")
        fig.colorbar(im, ax=ax, label="Loss")
        return fig, ax

    fig, ax = landscape()
    save(fig, "002_landscape_contours", tight=True)

    step = 5
    M_arrow, B_arrow = M[::step, ::step], B[::step, ::step]
    dM, dB = np.zeros_like(M_arrow), np.zeros_like(B_arrow)
    for i in range(M_arrow.shape[0]):
        for j in range(B_arrow.shape[1]):
            dM[i, j] = dL_dm(y_true, M_arrow[i, j], B_arrow[i, j])
            dB[i, j] = dL_db(y_true, M_arrow[i, j], B_arrow[i, j])
    curr_m, curr_b = -15.0, -30.0
    ops = [(curr_m, curr_b)]
    lr = 0.001
    for _ in range(100):
        curr_m, curr_b = (
            curr_m - dL_dm(y_true, curr_m, curr_b) / 4 * lr,
            curr_b - dL_db(y_true, curr_m, curr_b) * lr,
        )
        ops.append((curr_m, curr_b))
    path = np.array(ops)
    for name, with_path in (("002_streamlines", False), ("002_streamlines_descent", True)):
        fig, ax = landscape()
        ax.streamplot(M_arrow, B_arrow, -dM / 4, -dB, color="red", density=1, linewidth=0.25)
        ax.set_xlabel("m")
        ax.set_ylabel("b")
        if with_path:
            ax.scatter(path[:, 0], path[:, 1], color="orange", marker="*")
            ax.plot(path[:, 0], path[:, 1], color="orange")
        save(fig, name, tight=True)

    fig = new_figure()
    ax = fig.add_subplot()
    ax.scatter(x, y_true)
    ax.plot(x, curr_m * x + curr_b, color="orange")
    save(fig, "002_fit", tight=True)


# --- seed 003: "Deep Learning from Scratch" 4.3.3 (a script) -----------------------------------------


def _numerical_gradient_no_batch(f, x):  # type: ignore[no-untyped-def]
    """The book's central difference, one coordinate at a time (h = 1e-4), in place on ``x``."""
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


def numerical_gradient(f, X):  # type: ignore[no-untyped-def]
    """The book's batched version: one row of ``X`` is taken as one point."""
    if X.ndim == 1:
        return _numerical_gradient_no_batch(f, X)
    grad = np.zeros_like(X)
    for idx, x in enumerate(X):
        grad[idx] = _numerical_gradient_no_batch(f, x)
    return grad


def function_xy(x):  # type: ignore[no-untyped-def]
    return x[0] * x[1] if x.ndim == 1 else x[:, 0] * x[:, 1]


def function_sin_xy(x):  # type: ignore[no-untyped-def]
    return np.sin(x[0] * x[1]) if x.ndim == 1 else np.sin(x[:, 0] * x[:, 1])


def seed003() -> None:
    """The quiver of -grad on [-2, 2.5) step 0.25 (18^2 points): for x0*x1 (the seed's choice), for
    sin(x0*x1) (its commented alternative), and for x0*x1 called as the book did before the fix
    (points passed untransposed: the picture the article calls wrong)."""
    x0 = np.arange(-2, 2.5, 0.25)
    x1 = np.arange(-2, 2.5, 0.25)
    X, Y = np.meshgrid(x0, x1)
    X = X.flatten()
    Y = Y.flatten()
    cases = {
        "003_quiver": (function_xy, True),
        "003_quiver_sin": (function_sin_xy, True),
        "003_quiver_untransposed": (function_xy, False),
    }
    for name, (func, transposed) in cases.items():
        if transposed:
            grad = numerical_gradient(func, np.array([X, Y]).T).T
        else:
            grad = numerical_gradient(func, np.array([X, Y]))
        fig = new_figure()
        ax = fig.add_subplot()
        ax.quiver(X, Y, -grad[0], -grad[1], angles="xy", color="#666666")
        ax.set_xlim([-2, 2])
        ax.set_ylim([-2, 2])
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
        ax.grid()
        save(fig, name)


# --- seed 004: directional derivatives and Adam on Himmelblau (a blog post's script) ------------------


def seed004() -> None:
    """The Himmelblau surface on [-6, 6]^2 (1000^2, rainbow); Adam (lr 1e-3) from (-4, 0) for 20,000
    steps, printed every 2,000 steps as the seed prints it (it draws no path): kept as text."""
    import torch

    x1 = np.linspace(-6, 6, 1000)
    y1 = np.linspace(-6, 6, 1000)
    x, y = np.meshgrid(x1, y1)
    z = (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2
    fig = new_figure()
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(x, y, z, cmap="rainbow")
    save(fig, "004_himmelblau_surface")

    def f(x):  # type: ignore[no-untyped-def]
        return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2

    p = torch.tensor([-4.0, 0.0], requires_grad=True)
    optimizer = torch.optim.Adam([p], lr=1e-3)
    lines = []
    for step in range(20000):
        pre = f(p)
        optimizer.zero_grad()
        pre.backward()
        optimizer.step()
        if step % 2000 == 0:
            lines.append(f"{step} {p.tolist()} {pre!s}")
    lines.append(f"final {p.tolist()}")
    (OUT / "004_adam.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / '004_adam.txt'} (final point {p.tolist()})")


SEEDS: dict[str, Callable[[], None]] = {
    "000": seed000,
    "001": seed001,
    "002": seed002,
    "003": seed003,
    "004": seed004,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("seeds", nargs="*", choices=[[], *SEEDS], help="seed numbers (default: all)")
    args = parser.parse_args(argv)
    for key in args.seeds or SEEDS:
        SEEDS[key]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
