"""The gallery (docs/gallery): its page links only pictures that exist, and make.py's tables name
only configs, jobs and seed figures that exist. The renders themselves are make.py's to run."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from gradbatch import load_config

GALLERY = Path(__file__).resolve().parent.parent / "docs" / "gallery"
CONFIGS = GALLERY.parent.parent / "configs"


def module(name: str) -> ModuleType:
    """``docs/gallery/<name>.py`` imported by path (docs/ is no package; make.py imports page.py
    as the script's sibling, so the gallery folder goes on sys.path)."""
    if str(GALLERY) not in sys.path:
        sys.path.append(str(GALLERY))
    spec = importlib.util.spec_from_file_location(f"gallery_{name}", GALLERY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def make() -> ModuleType:
    return module("make")


@pytest.fixture(scope="module")
def page() -> ModuleType:
    return module("page")


def config_jobs(name: str) -> set[str]:
    """The job names of ``configs/<name>.yaml`` (a one-job file's ``name:``, or each of ``jobs:``)."""
    raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    return {job["name"] for job in raw["jobs"]} if "jobs" in raw else {raw["name"]}


def test_page_links_only_pictures_that_exist():
    page = (GALLERY / "README.md").read_text()
    links = re.findall(r'src="([^"]+)"', page) + re.findall(r"\]\(([^)#]+)\)", page)
    pictures = [link for link in links if link.lower().endswith((".png", ".svg", ".pdf"))]
    assert pictures, "the page shows no picture"
    missing = [p for p in pictures if not (GALLERY / p).is_file()]
    assert not missing, f"the page links pictures that do not exist: {missing}"


def test_page_has_a_section_for_every_config_but_the_skipped(make):
    page = (GALLERY / "README.md").read_text()
    for path in CONFIGS.glob("*.yaml"):
        if path.stem in make.SKIP:
            assert f"`configs/{path.stem}.yaml`, " in page, f"the page does not say why {path.stem} is left out"
        else:
            assert f"`configs/{path.stem}.yaml`\n" in page, f"no section for {path.stem}"


def test_tables_name_only_configs_and_jobs_that_exist(make, page):
    configs = {p.stem for p in CONFIGS.glob("*.yaml")}
    for table in ("SKIP", "PICTURES", "QUICK", "SEED_FIGURES"):
        unknown = set(getattr(make if hasattr(make, table) else page, table)) - configs
        assert not unknown, f"make.{table} names configs that do not exist: {unknown}"
    for name, pictures in make.PICTURES.items():
        unknown = {p.job for p in pictures} - config_jobs(name)
        assert not unknown, f"make.PICTURES[{name!r}] names jobs {name}.yaml lacks: {unknown}"


def test_seed_pairs_name_seed_figures_and_pictures_make_makes(make, page):
    for name, pairs in page.SEED_FIGURES.items():
        made = {p.filename(name) for p in make.pictures_of(name, dict.fromkeys(config_jobs(name), 2))}
        for seed, ours, _ in pairs:
            assert seed is None or (GALLERY / "seeds" / seed).is_file(), f"{name}: no seed figure {seed}"
            assert ours is None or ours in made, f"{name}: make.py makes no {ours}; it makes {sorted(made)}"
    for seed in page.UNPAIRED:
        assert (GALLERY / "seeds" / seed).is_file(), f"no seed figure {seed}"


def test_quick_overrides_still_make_valid_configs(make, tmp_path):
    for name in make.QUICK:
        path, quick = make.config_file(name, True, tmp_path)
        assert quick and path.parent == tmp_path
        jobs = load_config(path).jobs
        full = load_config(CONFIGS / f"{name}.yaml").jobs
        assert sum(j.grid.size for j in jobs) <= sum(j.grid.size for j in full), f"--quick grows {name}"


def test_options_this_render_lacks_are_left_out_with_a_note(make):
    cli = make.RenderCLI({"--layers": True, "--descent": False, "--window": True}, frozenset({"png"}))
    args = ("--theme", "light", "--layers", "image,paths", "--robust", "--descent", "--window", "-2,2,-2,2")
    kept, notes = cli.keep(args)
    assert kept == ["--layers", "image,paths", "--descent", "--window", "-2,2,-2,2"]
    assert [n.split("`")[1] for n in notes] == ["--theme light", "--robust"]


@pytest.mark.slow
def test_seeds_py_draws_every_seed_figure_the_page_names(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    seeds = module("seeds")
    monkeypatch.setattr(seeds, "OUT", tmp_path)
    seeds.main([])
    named = {seed for pairs in page.SEED_FIGURES.values() for seed, _, _ in pairs if seed} | set(page.UNPAIRED)
    missing = sorted(f for f in named if not (tmp_path / f).is_file())
    assert not missing, f"seeds.py did not draw {missing}"
    assert (tmp_path / "004_adam.txt").read_text().startswith("0 [-3.99")
