"""The gallery: every config in ``configs/`` run and rendered, next to the seeds' own figures.

For each ``configs/*.yaml`` (but :data:`SKIP`), ``gradbatch run`` writes one HDF5 file into a work
folder, then ``gradbatch render`` draws every job of it (1D, 2D and 3D) to
``docs/gallery/<config>-<job>[<suffix>].<ext>``, with the extra arguments of :data:`PICTURES`.
Each step is timed; the results go to ``timings.json`` and the page ``README.md`` (``page.py``), which
sets the seeds' figures (made by ``seeds.py``) beside gradbatch's.

    python docs/gallery/make.py                      # everything (a few minutes on 2 cores)
    python docs/gallery/make.py --only seed002_linear  # remake one config; the page keeps the rest
    python docs/gallery/make.py --quick              # smaller grids for the slow configs (QUICK)
    python docs/gallery/make.py --page               # only rewrite the page from timings.json

The CLI is called as ``sys.executable -m gradbatch`` (gradbatch need not be on PATH). Options in
:data:`PICTURES` that this gradbatch's ``render`` does not know are left out, and formats it cannot
write are skipped; the page says which, so the table can already hold the new renderer's options.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from page import SEED_FIGURES, Made, write_page

GALLERY = Path(__file__).resolve().parent
ROOT = GALLERY.parent.parent
CONFIGS = ROOT / "configs"
TIMINGS = GALLERY / "timings.json"
SIZE = "1000x750"

SKIP = {
    "bench_8192": "the benchmark job: 8192² = 67M points, ~800 MB of raw fields, too big for a gallery "
    "(see benchmarks/)",
}


@dataclass(frozen=True)
class Picture:
    """One render of a job: extra ``gradbatch render`` arguments, a file-name suffix and format."""

    job: str
    args: tuple[str, ...] = ()
    suffix: str = ""
    ext: str = "png"

    def filename(self, config: str) -> str:
        return f"{config}-{self.job}{self.suffix}.{self.ext}"


BUILTIN_JOBS = ("sphere", "rosenbrock", "himmelblau", "beale", "booth", "matyas", "rastrigin", "goldstein_price")
BUILTIN_JOBS += ("easom", "mccormick")

# The per-config render arguments (edit here). A job not listed gets one PNG with no extra arguments:
# the default picture is the one that must be right (field, scale, arrows' direction, aspect are
# decided from the job), so arguments here only choose layers, views and formats.
PICTURES: dict[str, tuple[Picture, ...]] = {
    "seed000_cubic": (Picture("cubic"), Picture("cubic", ext="svg")),
    "seed000_ripple": (Picture("ripple"), Picture("ripple", ("--surface",), "-surface")),
    "seed001_vector": (Picture("vector"),),
    "seed002_linear": (
        Picture("seed002", ("--layers", "image,contours,streamlines,paths")),
        Picture("seed002", ("--layers", "image,contours", "--contours", "25"), "-contours"),
        Picture("seed002", ("--layers", "image,contours", "--contours", "25"), "-contours", ext="pdf"),
        Picture("seed002", ("--surface",), "-surface"),
    ),
    "seed003_product": (
        Picture("product"),
        Picture("product", ("--layers", "image,arrows", "--descent"), "-descent", ext="svg"),
        Picture("sin_product"),
    ),
    "seed004_himmelblau": (
        Picture("himmelblau"),
        Picture("himmelblau", ("--panels",), "-panels"),
        Picture("himmelblau", ("--layers", "image,basins,minima,paths"), "-basins"),
        Picture("himmelblau", ("--surface",), "-surface"),
    ),
    "builtins": tuple(Picture(job) for job in BUILTIN_JOBS),
    "optimizers": (Picture("rosenbrock"), Picture("rosenbrock", ("--panels", "--size", "1500x1200"), "-panels")),
    "logistic": (Picture("logistic", ("--layers", "image,contours,arrows,paths")),),
    "mlp_moons": (
        Picture("pca", ("--layers", "image,contours,arrows,paths")),
        Picture("filter", ("--layers", "image,contours,arrows")),
    ),
    "grid3d": (Picture("rastrigin3d"), Picture("rastrigin3d", ("--slice", "z=0"), "-z0")),
}

# --quick: YAML overrides (merged into a copy) for the configs that take over a minute on 2 cores.
QUICK: dict[str, dict[str, Any]] = {
    "seed004_himmelblau": {"grid": {"x": [-6, 6, 512], "y": [-6, 6, 512]}, "basins": {"resolution": 64}},
    "optimizers": {"paths": {"steps": 1000}},
    "mlp_moons": {
        "jobs": [
            {"grid": {"alpha": [-16, 3, 24], "beta": [-5, 3, 16]}},
            {"grid": {"alpha": [-1, 1, 21], "beta": [-1, 1, 21]}},
        ]
    },
}


@dataclass
class Rendered:
    """One picture's outcome: its file (relative to the gallery), the command shown, seconds, notes."""

    file: str
    command: str
    seconds: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ConfigResult:
    """One config's run and its pictures."""

    config: str
    command: str
    run_seconds: float | None
    quick: bool
    jobs: dict[str, int]
    pictures: list[Rendered]
    error: str | None = None


# --- the CLI ------------------------------------------------------------------------------------------


def gradbatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradbatch", *args]


def shown(argv: list[str], work: Path) -> str:
    """``argv`` as a reader would type it: ``gradbatch ...``, paths relative to the repo or the work folder."""
    words = ["gradbatch", *argv[3:]] if argv[:3] == gradbatch() else list(argv)
    for base in (f"{work}/", f"{ROOT}/"):
        words = [w.removeprefix(base) for w in words]
    return " ".join(words)


@dataclass(frozen=True)
class RenderCLI:
    """What this gradbatch's ``render`` accepts: its options (and which take a value) and formats."""

    options: dict[str, bool]
    formats: frozenset[str]

    @classmethod
    def probe(cls) -> RenderCLI:
        """Read ``gradbatch render --help``: ``[--name VALUE]`` or ``[--flag]`` in its usage; a format
        counts as writable when the help names it (PNG always)."""
        text = subprocess.run(gradbatch("render", "--help"), capture_output=True, text=True, check=True).stdout
        usage = " ".join(text.split("positional arguments")[0].split())
        options = {m[0]: bool(m[1]) for m in re.findall(r"[\[|] ?(--[\w-]+)( [^\]\s|]+)?(?= ?[\]|])", usage)}
        formats = {"png"} | {ext for ext in ("svg", "pdf") if re.search(rf"\b{ext}\b", text, re.IGNORECASE)}
        return cls(options, frozenset(formats))

    def keep(self, args: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """``args`` without the options this render lacks; and a note for each one left out. An
        unknown option takes the next word as its value unless that word is another option."""
        kept: list[str] = []
        notes: list[str] = []
        i = 0
        while i < len(args):
            name = args[i].split("=", 1)[0]
            known = name in self.options
            if "=" in args[i]:
                width = 1
            elif known:
                width = 2 if self.options[name] else 1
            else:
                width = 2 if i + 1 < len(args) and not args[i + 1].startswith("--") else 1
            if known:
                kept += args[i : i + width]
            else:
                notes.append(f"left out `{' '.join(args[i : i + width])}`: not an option of this gradbatch's render")
            i += width
        return kept, notes


# --- running and rendering ---------------------------------------------------------------------------


def merged(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: mappings key by key, equal-length lists item by item."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merged(base.get(k), v) for k, v in over.items()}}
    if isinstance(base, list) and isinstance(over, list) and len(base) == len(over):
        return [merged(b, o) for b, o in zip(base, over)]
    return over


def config_file(name: str, quick: bool, work: Path) -> tuple[Path, bool]:
    """The YAML to run: ``configs/<name>.yaml``, or with ``--quick`` a copy in ``work`` with :data:`QUICK`."""
    path = CONFIGS / f"{name}.yaml"
    if not quick or name not in QUICK:
        return path, False
    copy = work / f"{name}.quick.yaml"
    copy.write_text(yaml.safe_dump(merged(yaml.safe_load(path.read_text()), QUICK[name]), sort_keys=False))
    return copy, True


def timed(argv: list[str]) -> tuple[float, str | None]:
    """Run ``argv``; its seconds and, when it fails, the last line it printed."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode == 0:
        return seconds, None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return seconds, lines[-1] if lines else f"exit status {done.returncode}"


def job_axes(h5: Path) -> dict[str, int]:
    """Job name -> number of axes, from ``gradbatch info --json``."""
    info = json.loads(subprocess.run(gradbatch("info", "--json", str(h5)), capture_output=True, check=True).stdout)
    return {job["name"]: len(job["attrs"]["axes"]) for job in info["jobs"]}


def pictures_of(name: str, jobs: dict[str, int]) -> list[Picture]:
    """The pictures of a config: :data:`PICTURES`' entries for its jobs, one plain PNG for any other job."""
    listed = [p for p in PICTURES.get(name, ()) if p.job in jobs]
    return listed + [Picture(job) for job in jobs if all(p.job != job for p in listed)]


def render_one(h5: Path, name: str, pic: Picture, cli: RenderCLI, work: Path) -> Rendered:
    out = GALLERY / pic.filename(name)
    args, notes = cli.keep(pic.args)
    argv = gradbatch("render", str(h5), "--job", pic.job, "-o", str(out), "--size", SIZE, *args)
    result = Rendered(pic.filename(name), shown(argv, work), notes=notes)
    if pic.ext not in cli.formats:
        result.notes.append(f"not made: this gradbatch's render writes no {pic.ext.upper()}")
        return result
    result.seconds, result.error = timed(argv)
    print(f"  {result.file}: {result.seconds:.1f} s{'  FAILED: ' + result.error if result.error else ''}")
    return result


def make_config(name: str, quick: bool, cli: RenderCLI, work: Path) -> ConfigResult:
    """Run ``configs/<name>.yaml`` into ``work`` and render each of its jobs into the gallery."""
    yaml_path, is_quick = config_file(name, quick, work)
    h5 = work / f"{name}.h5"
    argv = gradbatch("run", str(yaml_path), "-o", str(h5), "--overwrite", "-q")
    print(f"{name}: {shown(argv, work)}")
    seconds, error = timed(argv)
    result = ConfigResult(name, shown(argv, work), seconds, is_quick, {}, [], error)
    if error is not None:
        print(f"  run FAILED: {error}")
        return result
    print(f"  run: {seconds:.1f} s")
    result.jobs = job_axes(h5)
    result.pictures = [render_one(h5, name, pic, cli, work) for pic in pictures_of(name, result.jobs)]
    return result


# --- main --------------------------------------------------------------------------------------------


def all_configs() -> list[str]:
    """Every config the gallery shows: seeds first (in seed order), then the others by name."""
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem not in SKIP)
    return [n for n in names if n in SEED_FIGURES] + [n for n in names if n not in SEED_FIGURES]


def load_timings() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    if not TIMINGS.is_file():
        return {}, {}
    data = json.loads(TIMINGS.read_text())
    return data["configs"], data["meta"]


def machine() -> str:
    import os
    import platform

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", action="append", help="remake this config only (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smaller grids for the slow configs (see QUICK)")
    parser.add_argument("--work", type=Path, help="folder for the HDF5 files (default: a temporary one)")
    parser.add_argument("--page", action="store_true", help="only rewrite README.md from timings.json")
    args = parser.parse_args(argv)
    names = all_configs()
    unknown = [n for n in args.only or () if n not in names]
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: no such config; configs: {', '.join(names)}")
    results, meta = load_timings()
    failed = 0
    if not args.page:
        cli = RenderCLI.probe()
        with tempfile.TemporaryDirectory(prefix="gallery-") as tmp:
            work = args.work or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            for name in args.only or names:
                r = make_config(name, args.quick, cli, work.resolve())
                results[name] = asdict(r)
                failed += (r.error is not None) + sum(p.error is not None for p in r.pictures)
        version = subprocess.run(gradbatch("--version"), capture_output=True, text=True).stdout.split()
        meta = {"version": version[-1] if version else "?", "machine": machine(), "date": time.strftime("%Y-%m-%d")}
        TIMINGS.write_text(json.dumps({"meta": meta, "configs": results}, indent=1) + "\n")
    page = write_page(results, meta, names, Made(SIZE, QUICK, SKIP))
    print(f"wrote {page.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
