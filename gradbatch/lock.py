"""One writer per output: an exclusive lock gradbatch holds on ``<output>.lock``.

HDF5's own file lock cannot be the guard: it is dropped once a writer enters SWMR mode, and a
second run decides what to do with ``<output>.partial`` (resume it, delete it for
``--overwrite``) long before it opens the file. So a run takes this lock *before* it looks at
the output or its partial file and keeps it until the partial file has been renamed: a second
run on the same output stops at once with one line naming the holder, and never deletes or
reopens a live run's ``.partial``.

The lock is ``flock`` on a small file beside the output holding the owner's pid, host and start
time (for the message only: the kernel's lock is the truth, and it dies with its process, so a
``kill -9`` never leaves a stale lock). The file is removed on release. Because another process
may have opened the old file just before it was removed, a lock is only taken on a file that is
still the one at the path (same inode) once locked.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from .errors import StoreError

__all__ = ["OutputLock", "lock_path"]


def lock_path(output: Path) -> Path:
    """The lock file of an output: ``<output>.lock`` beside it."""
    return output.with_name(output.name + ".lock")


class OutputLock:
    """``with OutputLock(output):`` — this process is the only gradbatch writing ``output``."""

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.path = lock_path(self.output)
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(20):  # a release racing us removes the file under us: open it again
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise StoreError(
                        f"{self.path}: is a symbolic link; gradbatch's lock file must be a plain file (remove the link)"
                    ) from None
                raise StoreError(
                    f"{self.output}: cannot create the lock file {self.path.name} "
                    f"({exc.strerror or exc}); is the folder writable?"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StoreError(
                        f"{self.output}: another gradbatch run is writing it "
                        f"({holder or 'holder unknown'}); wait for it to finish or stop it "
                        "first"
                    ) from None
                raise StoreError(f"{self.output}: cannot lock {self.path.name} ({exc.strerror or exc})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # we locked a file its last owner has just removed
                os.close(fd)
                continue
            started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
            self._fd = fd
            return
        raise StoreError(f"{self.output}: could not take the lock {self.path.name} (it kept being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: nobody can hold a lock on the old file
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
