"""The gallery's page, ``docs/gallery/README.md``: the seeds' figures beside gradbatch's pictures.

:data:`SEED_FIGURES` pairs each seed config's figures (drawn by ``seeds.py`` into ``seeds/``) with
the pictures ``make.py`` renders; the other configs get their pictures two a row. Every picture
comes with the command that made it and its seconds (``make.py``'s results). A picture that is not
on disk is named, never linked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GALLERY = Path(__file__).resolve().parent
CONFIGS = GALLERY.parent.parent / "configs"


@dataclass(frozen=True)
class Made:
    """How ``make.py`` made the pictures, for the page's header: their size, the ``--quick``
    overrides and the configs left out (with why)."""

    size: str
    quick: dict[str, Any]
    skip: dict[str, str]


# The page's pairs: config -> (seed figure in seeds/ or None, gradbatch picture or None, caption).
SEED_FIGURES: dict[str, tuple[tuple[str | None, str | None, str], ...]] = {
    "seed000_cubic": (
        (
            "000_cubic_arrows.png",
            "seed000_cubic-cubic.png",
            "f(x) = x³+2x²−x, f′ on the x axis (the seed: x in [−3, 3), arrows every 0.5 clipped to ±4)",
        ),
    ),
    "seed000_ripple": (
        ("000_surface.png", "seed000_ripple-ripple-surface.png", "the surface, gradient in the input plane"),
        (None, "seed000_ripple-ripple.png", "the input plane seen from above (no seed figure)"),
    ),
    "seed001_sin_xy": (
        ("001_sin_xy.png", None, "sin(xy)"),
        ("001_sin_xy_quiver.png", None, "∇ sin(xy), derived by hand"),
        ("001_sin_xy_gradient.png", "seed001_sin_xy-sin_xy.png", "sin(xy) and its gradient"),
    ),
    "seed001_vector": (("001_vector_field.png", "seed001_vector-vector.png", "f(x, y) = [x, sin y]"),),
    "seed001_xyz": ((None, "seed001_xyz-xyz.png", "f(x, y, z): the seed evaluates it at one point, draws nothing"),),
    "seed002_linear": (
        ("002_landscape_surface.png", "seed002_linear-seed002-surface.png", "the SSE loss over (m, b)"),
        ("002_landscape_contours.png", "seed002_linear-seed002-contours.png", "filled contours"),
        ("002_streamlines_descent.png", "seed002_linear-seed002.png", "descent streamlines and the descent path"),
        ("002_streamlines.png", None, "the streamlines alone"),
    ),
    "seed003_product": (
        ("003_quiver.png", "seed003_product-product.png", "−∇(x0·x1), central differences point by point"),
        ("003_quiver_sin.png", "seed003_product-sin_product.png", "−∇ sin(x0·x1) (the seed's commented choice)"),
        ("003_quiver_untransposed.png", None, "the transpose bug: points passed as columns"),
    ),
    "seed004_himmelblau": (
        ("004_himmelblau_surface.png", "seed004_himmelblau-himmelblau-surface.png", "the Himmelblau surface"),
        (None, "seed004_himmelblau-himmelblau.png", "Adam, SGD and momentum from (−4, 0); the seed prints Adam"),
    ),
}

# Seed figures no config draws (the seed's 1D warm-ups and data plots), listed on the page.
UNPAIRED = ("002_quadratic_arrows.png", "002_cosine_arrows.png", "002_polynomial_arrows.png", "002_data.png")
UNPAIRED += ("002_loss_m.png", "002_loss_b.png", "002_fit.png")


def img(file: str | None, width: int = 420) -> str:
    """An image cell: the picture when it exists in the gallery, a dash otherwise."""
    if file is None:
        return "—"
    if not (GALLERY / file).is_file():
        return f"*{file}: not made*"
    return f'<img src="{file}" width="{width}" alt="{file}">'


def about(name: str) -> str:
    """The YAML's leading comment (up to an indented example line), as one paragraph."""
    lines = []
    for line in (CONFIGS / f"{name}.yaml").read_text().splitlines():
        if not line.startswith("#") or line.startswith("#  "):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(lines)


def commands(r: dict[str, Any]) -> list[str]:
    """The commands that made a config's pictures, each with its seconds; then the notes."""
    run = f"{r['run_seconds']:.1f} s" if r["run_seconds"] is not None else "—"
    quick = "  (--quick: a smaller copy of the YAML, see QUICK in make.py)" if r["quick"] else ""
    out = ["```sh", f"{r['command']}    # {run}{quick}"]
    for p in r["pictures"]:
        took = f"{p['seconds']:.1f} s" if p["seconds"] is not None else "not run"
        out.append(f"{p['command']}    # {took}")
    out.append("```")
    if r["error"]:
        out.append(f"\n**run failed**: `{r['error']}`")
    out += [f"- `{p['file']}`: {n}" for p in r["pictures"] for n in p["notes"]]
    out += [f"- `{p['file']}` **failed**: `{p['error']}`" for p in r["pictures"] if p["error"]]
    return out


def seed_section(name: str, r: dict[str, Any] | None) -> list[str]:
    out = [f"## Seed {name[4:7]}: `configs/{name}.yaml`", "", about(name), ""]
    out += ["| | the seed's figure (matplotlib) | gradbatch |", "|---|---|---|"]
    paired = set()
    for seed, ours, caption in SEED_FIGURES[name]:
        out.append(f"| {caption} | {img(None if seed is None else f'seeds/{seed}')} | {img(ours)} |")
        paired.add(ours)
    extra = [p["file"] for p in (r["pictures"] if r else []) if p["file"] not in paired]
    if extra:
        links = [f"[{f}]({f})" if (GALLERY / f).is_file() else f"{f} (not made)" for f in extra]
        out += ["", "Also: " + ", ".join(links)]
    return out + [""] + (commands(r) if r else ["*not made yet: run `make.py --only " + name + "`*"]) + [""]


def other_section(name: str, r: dict[str, Any] | None) -> list[str]:
    out = [f"## `configs/{name}.yaml`", "", about(name), ""]
    files = [p["file"] for p in (r["pictures"] if r else []) if not p["file"].endswith((".svg", ".pdf"))]
    if files:
        out += ["| | |", "|---|---|"]
        for i in range(0, len(files), 2):
            pair = files[i : i + 2] + [None] * (2 - len(files[i : i + 2]))
            out.append("| " + " | ".join(img(f) for f in pair) + " |")
    return out + [""] + (commands(r) if r else ["*not made yet: run `make.py --only " + name + "`*"]) + [""]


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    out = ["| config | jobs | run (s) | pictures | render (s, total) |", "|---|---|---:|---:|---:|"]
    for name, r in results.items():
        secs = [p["seconds"] for p in r["pictures"] if p["seconds"] is not None]
        run = f"{r['run_seconds']:.1f}" + (" (quick)" if r["quick"] else "") if r["run_seconds"] is not None else "—"
        out.append(f"| [{name}](#{anchor(name)}) | {len(r['jobs'])} | {run} | {len(secs)} | {sum(secs):.1f} |")
    return out


def anchor(name: str) -> str:
    """The GitHub anchor of a config's section heading."""
    title = f"seed {name[4:7]} configs{name}yaml" if name.startswith("seed") else f"configs{name}yaml"
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title.lower()))


def write_page(results: dict[str, dict[str, Any]], meta: dict[str, Any], names: list[str], made: Made) -> Path:
    """Write ``README.md`` from ``results`` (config -> :class:`make.ConfigResult` as a dict), in the
    order of ``names``."""
    seeds = [n for n in names if n in SEED_FIGURES]
    head = [
        "# Gallery: the seeds' figures next to gradbatch's",
        "",
        "Each seed tutorial's own figure, redrawn with matplotlib as the seed's code draws it (`seeds.py`), "
        "beside the picture `gradbatch render` makes of the same function from the config in `configs/` "
        "(`make.py`). Every gradbatch picture comes with the exact command that made it and its seconds.",
        "",
        "```sh",
        "python docs/gallery/seeds.py                      # the seeds' figures -> docs/gallery/seeds/",
        "python docs/gallery/make.py [--only NAME] [--quick] [--work DIR]   # run + render -> docs/gallery/",
        "```",
        "",
        f"Made with gradbatch {meta.get('version', '?')} on {meta.get('machine', '?')}, {meta.get('date', '?')}; "
        f"pictures {made.size} px. Run times include each config's own `render:` picture, which `gradbatch run` "
        "writes next to its output; a render's seconds include starting Python and headless GL. Seconds are "
        "wall-clock on a machine shared with other work: compare them with each other, not with benchmarks. "
        "Each picture is `gradbatch render`'s "
        "default for its job unless the command shows options: field, colour scale, arrows' direction "
        "and aspect are decided from the job.",
        "",
        "`--quick` runs smaller copies of the slowest configs (a section made that way says so): "
        + "; ".join(f"{k} with `{json.dumps(v)}`" for k, v in made.quick.items())
        + ".",
        "",
        *summary({n: results[n] for n in names if n in results}),
        "",
        "Not in the gallery: " + "; ".join(f"`configs/{k}.yaml`, {v}" for k, v in made.skip.items()) + ".",
        "",
    ]
    body = [line for n in seeds for line in seed_section(n, results.get(n))]
    body += [line for n in names if n not in SEED_FIGURES for line in other_section(n, results.get(n))]
    tail = ["## Seed figures no config draws", "", "Seed 002's 1D warm-ups, its data and its fitted line:", ""]
    tail += ["| | |", "|---|---|"]
    for i in range(0, len(UNPAIRED), 2):
        pair = [f"seeds/{f}" for f in UNPAIRED[i : i + 2]] + [None] * (2 - len(UNPAIRED[i : i + 2]))
        tail.append("| " + " | ".join(img(f, 360) for f in pair) + " |")
    tail += ["", "Seed 004 draws no figure of its Adam run; it prints it (`seeds/004_adam.txt`):", "", "```"]
    adam = GALLERY / "seeds" / "004_adam.txt"
    tail += (adam.read_text().splitlines() if adam.is_file() else ["(run seeds.py 004)"]) + ["```", ""]
    page = GALLERY / "README.md"
    page.write_text("\n".join(head + body + tail))
    return page
