"""The public ``gradbatch.run``/``run_jobs``: running jobs together with the pictures they ask for.

:mod:`gradbatch.jobs` computes and stores and never imports the viewer, which sits above it; the
picture a job's ``render:`` section asks for is drawn by a renderer handed in. This module, at the
top with the CLI, joins the two: it passes the viewer's :class:`~gradbatch.viewer.render.JobPictures`
unless the caller gives a ``renderer`` of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from . import jobs
from .viewer.render import JobPictures

__all__ = ["run", "run_jobs"]

P = ParamSpec("P")
R = TypeVar("R")


def _with_pictures(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with the viewer's renderer as its default ``renderer`` (the signature stays ``fn``'s)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs.get("renderer") is None:
            kwargs["renderer"] = JobPictures()
        return fn(*args, **kwargs)

    return wrapper


run = _with_pictures(jobs.run)
run_jobs = _with_pictures(jobs.run_jobs)
