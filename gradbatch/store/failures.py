"""Failed writes (a full disk, a file size limit) turned into one StoreError each.

h5py frees objects in ``__dealloc__``, where HDF5 may flush them; a write that fails there
cannot raise and was printed thousands of times. Such writes are recorded (:func:`_unraisable`)
and raised by :class:`WatchWrites`; a file whose writes failed is parked (kept referenced until
the process ends) instead of closed, and the CLI leaves through ``os._exit``
(:func:`write_failures`).

Writers open files with HDF5's own file locking off (``locking=False``): gradbatch's lock on
``<output>.lock`` already keeps a second writer away, and HDF5's lock would make a reader that
has the .partial open (`gradbatch info`, a `view` window) fail the writer when it reopens the
file for the overlays and final attributes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py

from ..errors import StoreError

__all__ = ["h5_reason", "WatchWrites", "park", "write_failures", "open_rw"]

_BROKEN: list[Any] = []
_LOST_WRITES: list[str] = []  # writes HDF5 failed while h5py freed an object (see _unraisable)
_previous_hook = sys.unraisablehook


def h5_reason(exc: BaseException) -> str:
    """An h5py error in one short line: HDF5's own text spans lines and buries the cause."""
    text = " ".join(str(exc).split())
    cause = re.search(r"error message = '([^']+)'", text)
    head = re.split(r" \(|; ", text, maxsplit=1)[0]
    return f"{type(exc).__name__}: {head}{': ' + cause.group(1) if cause else ''}"[:300]


def _unraisable(args: Any) -> None:
    """h5py frees an object in ``__dealloc__``, where HDF5 may flush it; a failed write there
    (full disk) cannot raise and is printed as "Exception ignored", thousands of times. Record
    it instead, so the writer turns it into one StoreError; pass everything else on."""
    if (
        isinstance(args.exc_value, RuntimeError)
        and "file write failed" in str(args.exc_value)
        and "dealloc" in f"{args.object} {args.err_msg}"
    ):
        _LOST_WRITES.append(str(args.exc_value))
        return
    _previous_hook(args)


sys.unraisablehook = _unraisable


class WatchWrites:
    """Raises the first write h5py lost in a ``__dealloc__`` during the block as an OSError."""

    def __enter__(self) -> WatchWrites:
        self.seen = len(_LOST_WRITES)
        return self

    def check(self) -> None:
        if len(_LOST_WRITES) > self.seen:
            raise OSError(_LOST_WRITES[self.seen])

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.check()


def park(f: h5py.File, handles: Any = None) -> None:
    """Keep a file whose writes failed (full disk) open and referenced until the process ends:
    closing it, or letting h5py free its objects, makes HDF5 retry the failed flush, print
    thousands of lines and, at exit, crash. The process says one line and ends instead (the
    CLI leaves through ``os._exit`` when :func:`write_failures` counts one)."""
    _BROKEN.append((f, handles))


def write_failures() -> int:
    """How many files' writes have failed in this process so far (see :func:`park`)."""
    return len(_BROKEN)


@contextmanager
def open_rw(path: Path) -> Iterator[h5py.File]:
    """A partial file opened outside SWMR mode (overlays, final attributes), where a failed
    write or close (full disk, file size limit) is one :class:`StoreError`; ``--resume``
    clears the flags such a failure or a kill leaves and writes the overlays again."""

    def failed(exc: BaseException) -> StoreError:
        return StoreError(
            f"{path}: writing failed ({h5_reason(exc)}; disk full or file size limit?); "
            "run again with --resume to finish it"
        )

    try:
        f = h5py.File(path, "r+", libver="latest", locking=False)
    except (OSError, RuntimeError) as exc:
        raise failed(exc) from None
    with _QuietH5():
        try:
            with WatchWrites():
                yield f
        except (OSError, RuntimeError) as exc:
            park(f)
            raise failed(exc) from None
        except KeyError as exc:  # h5py: an object whose metadata is damaged (a write cut short before)
            park(f)
            raise StoreError(
                f"{path}: cannot write: the file is damaged ({h5_reason(exc)}); run again with --resume to "
                "rebuild it without what cannot be read, or with --overwrite to start afresh"
            ) from None
        except BaseException:
            _close_or_park(f)
            raise
        try:
            with WatchWrites():
                f.close()
        except (OSError, RuntimeError) as exc:
            park(f)
            raise failed(exc) from None


class _QuietH5:
    """Holds back what is printed to stderr while overlays are written: h5py prints a traceback
    of its own (besides the "Exception ignored" line) for each object it fails to free after a
    failed write. Printed as it was if no write was lost; dropped (it is all h5py's) if one was."""

    def __enter__(self) -> _QuietH5:
        import io

        self.real, self.seen = sys.stderr, len(_LOST_WRITES)
        sys.stderr = self.buffer = io.StringIO()
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr = self.real
        held = self.buffer.getvalue()
        if held and len(_LOST_WRITES) == self.seen:
            try:
                self.real.write(held)
            except OSError:  # stderr closed (a pipe into head) or full: it was news, not data
                pass


def _close_or_park(f: h5py.File) -> None:
    try:
        f.close()
    except (OSError, RuntimeError):
        park(f)
