"""Files a killed or failed writer left behind: superblock checks, flag clearing, reopening.

Everything that looks at the HDF5 superblock before HDF5 does lives here, with what a resumed
run needs: :func:`recover_partial` (make a ``.partial`` openable again, or say why not),
:func:`partial_jobs` (what an existing file holds) and :func:`open_swmr` (a SWMR reader that
gives up on damaged metadata instead of hanging).

The "open for writing" flags a killed writer leaves in an HDF5 superblock:

An HDF5 file written with ``libver="latest"`` (superblock version 2 or 3) records in its
superblock that a writer has it open. A writer killed with SIGKILL cannot clear that, and HDF5
then refuses to open the file for writing again ("file is already open for write (may use
<h5clear file> to clear file consistency flags)"). This does what ``h5clear -s`` does: set the
flags byte to 0 and rewrite the superblock checksum (Jenkins' lookup3, as in H5checksum.c).

Superblock version 2/3, at offset 0 (gradbatch writes no user block)::

    0   signature "\\x89HDF\\r\\n\\x1a\\n"      8 bytes
    8   version (2 or 3)                       1
    9   size of offsets (O)                    1
    10  size of lengths                        1
    11  file consistency flags                 1   <- cleared
    12  base, extension, EOF, root addresses   4 * O
    ..  checksum of all bytes above            4
"""

from __future__ import annotations

import fcntl
import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import h5py

from ..errors import StoreError
from . import layout as L
from .encode import CHUNK_CACHE_BYTES
from .failures import h5_reason
from .salvage import salvage_partial

__all__ = [
    "lookup3",
    "clear_write_flags",
    "held_by_another_process",
    "Superblock",
    "read_superblock",
    "raise_eof",
    "recover_partial",
    "was_repaired",
    "HeldJob",
    "partial_jobs",
    "stored_code_hash",
    "superblock_swmr",
    "open_swmr",
    "SWMR_READ_ATTEMPTS",
    "open_for_writing",
]

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = 0xFFFFFFFF
WRITE_ACCESS = 0x01  # flag bits of the superblock (H5Fpkg.h)
SWMR_WRITE_ACCESS = 0x04


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, as HDF5 uses for metadata checksums."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _M
        a = (a - c) & _M
        a ^= _rot(c, 4)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 6)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 8)
        b = (b + a) & _M
        a = (a - c) & _M
        a ^= _rot(c, 16)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 19)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 4)
        b = (b + a) & _M
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b
    c = (c - _rot(b, 14)) & _M
    a ^= c
    a = (a - _rot(c, 11)) & _M
    b ^= a
    b = (b - _rot(a, 25)) & _M
    c ^= b
    c = (c - _rot(b, 16)) & _M
    a ^= c
    a = (a - _rot(c, 4)) & _M
    b ^= a
    b = (b - _rot(a, 14)) & _M
    c ^= b
    c = (c - _rot(b, 24)) & _M
    return c


def held_by_another_process(path: Path) -> bool:
    """True if a live process holds HDF5's lock on ``path`` (HDF5 locks files with flock)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def clear_write_flags(path: Path) -> bool:
    """Clear the superblock's consistency flags; True if they were set. Checks the checksum first."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _SIGNATURE or head[8] not in (2, 3):
            return False
        size = 12 + 4 * head[9] + 4
        fh.seek(0)
        block = bytearray(fh.read(size))
        (stored,) = struct.unpack("<I", block[-4:])
        if lookup3(bytes(block[:-4])) != stored:
            raise ValueError(f"{path}: superblock checksum does not match; not touching it")
        if block[11] == 0:
            return False
        block[11] = 0
        _write_superblock(fh, block)
    return True


def _write_superblock(fh: BinaryIO, block: bytearray) -> None:
    """Write a changed superblock back at offset 0 with its checksum made anew, durably."""
    block[-4:] = struct.pack("<I", lookup3(bytes(block[:-4])))
    fh.seek(0)
    fh.write(block)
    fh.flush()
    os.fsync(fh.fileno())


@dataclass(frozen=True)
class Superblock:
    """What a reader checks before HDF5 sees the file: a truncated file opened for SWMR
    reading makes HDF5 retry its reads for minutes instead of failing."""

    version: int
    flags: int
    end: int | None  # base address + end-of-file address: the size HDF5 last recorded; None if undefined
    checksum_ok: bool


def read_superblock(path: Path) -> Superblock | None:
    """The version 2/3 superblock at offset 0 of ``path``, read only; None for any other file
    (no HDF5 signature there, an older superblock version, or too short to hold one)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _SIGNATURE or head[8] not in (2, 3) or head[9] not in (2, 4, 8):
            return None
        size = head[9]
        block = head + fh.read(4 * size + 4)
    if len(block) < 12 + 4 * size + 4:
        return None
    base, _ext, eof, _root = (int.from_bytes(block[12 + i * size : 12 + (i + 1) * size], "little") for i in range(4))
    undefined = (1 << (8 * size)) - 1
    (stored,) = struct.unpack("<I", block[-4:])
    return Superblock(head[8], head[11], None if eof == undefined else base + eof, lookup3(bytes(block[:-4])) == stored)


def raise_eof(path: Path, size: int) -> bool:
    """Set the superblock's end-of-file address to ``size`` if it records less (what ``h5clear
    --increment=0`` does): a writer that failed at its last close (a full disk) may have written
    metadata past the address it recorded, which HDF5 then refuses to read ("addr overflow").
    True if it was raised. Checks the checksum first; superblock version 2/3, base address 0."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _SIGNATURE or head[8] not in (2, 3) or head[9] not in (4, 8):
            return False
        o = head[9]
        fh.seek(0)
        block = bytearray(fh.read(12 + 4 * o + 4))
        (stored,) = struct.unpack("<I", block[-4:])
        if lookup3(bytes(block[:-4])) != stored:
            raise ValueError(f"{path}: superblock checksum does not match; not touching it")
        base = int.from_bytes(block[12 : 12 + o], "little")
        eof = int.from_bytes(block[12 + 2 * o : 12 + 3 * o], "little")
        if base != 0 or eof >= size or eof == (1 << (8 * o)) - 1:
            return False
        block[12 + 2 * o : 12 + 3 * o] = size.to_bytes(o, "little")
        _write_superblock(fh, block)
    return True


# -- resuming a partial file ----------------------------------------------------------------------


def recover_partial(part: Path) -> list[str]:
    """Make a ``.partial`` that an earlier gradbatch run left openable again, or say exactly why
    it cannot be. Only call it while holding the output's lock (:mod:`gradbatch.lock`): then no
    gradbatch writes the file, and "open for writing" flags in its superblock were left by a
    writer that was killed or failed to close (a full disk), in any phase (tiles in SWMR mode,
    or paths, basins, streamlines and final attributes outside it). Returns the overlays of
    unfinished jobs that a cut-short write left unreadable, left out of the file rebuilt
    without them (:func:`~gradbatch.store.salvage.salvage_partial`; [] if none)."""
    if part.is_symlink():
        raise StoreError(
            f"{part}: is a symbolic link; gradbatch only resumes the partial files it "
            "wrote itself (remove the link, or run with --overwrite)"
        )
    if not part.is_file():
        raise StoreError(f"{part}: is not a regular file; remove it or run with --overwrite")
    if held_by_another_process(part):
        raise StoreError(
            f"{part}: it is held open, by another process (not a gradbatch run of this output: "
            "those take its .lock first) or by this one (a Dataset gradbatch.open gave of it: "
            "close it with ds.close())"
        )
    try:
        clear_write_flags(part)
        sb = read_superblock(part)
        eof = sb.end if sb is not None else None
    except (OSError, ValueError) as why:
        raise StoreError(
            f"{part}: cannot be resumed: its superblock is damaged ({why}); run again with --overwrite to start afresh"
        ) from None
    size = part.stat().st_size
    if eof is not None and size > eof:
        # A close that failed (full disk) can leave metadata written past the end of file the
        # superblock records; HDF5 refuses to read it. Record the real end, as h5clear -i does;
        # commit() reads the whole structure back before it renames the file.
        try:
            raise_eof(part, size)
        except (OSError, ValueError) as why:
            raise StoreError(
                f"{part}: cannot be resumed: its superblock is damaged ({why}); run again "
                "with --overwrite to start afresh"
            ) from None
    if eof is not None and size < eof:
        # A full disk or a file size limit cut the file short of the space HDF5 had allocated.
        # Everything a successful flush wrote lies before the cut, and only tiles flushed whole
        # are marked done; the rest is recomputed. Pad to the recorded end so HDF5 opens it,
        # and have the writer read every done tile back before trusting it.
        with open(part, "r+b") as fh:
            fh.truncate(eof)
        _REPAIRED.add(part.resolve())
    return salvage_partial(part)


_REPAIRED: set[Path] = set()


def was_repaired(path: Path) -> bool:
    """Whether :func:`recover_partial` padded ``path`` (its done tiles must be read back)."""
    return path.resolve() in _REPAIRED


@dataclass(frozen=True)
class HeldJob:
    """A job found in an existing file: whether it is complete, and what it was made from."""

    complete: bool
    job_yaml: str
    code_hash: str | None


def stored_code_hash(g: h5py.Group) -> str | None:
    """The hash of a callable's source files recorded when the job started (None: not a callable)."""
    v = g.attrs.get(L.CODE_HASH)
    return None if v is None else str(v)


def partial_jobs(part: Path) -> dict[str, HeldJob]:
    """The jobs a file (partial or complete) holds, with whether each is marked complete and
    the settings and code it was made from; a file that cannot be read is a
    :class:`StoreError` saying why it cannot be resumed."""
    try:
        with open_swmr(part) as f:  # few read attempts: damaged metadata fails, not hangs
            if f.attrs.get(L.FORMAT_ATTR) != L.FORMAT:
                raise StoreError(f"{part}: cannot be resumed: not a gradbatch file; remove it or run with --overwrite")
            return {
                name: HeldJob(
                    bool(g.attrs.get(L.COMPLETE, False)), str(g.attrs.get(L.JOB_YAML, "")), stored_code_hash(g)
                )
                for name, g in f.items()
                if isinstance(g, h5py.Group)
            }
    except StoreError:
        raise
    except Exception as exc:  # h5py: OSError, KeyError, RuntimeError on damaged metadata
        raise StoreError(
            f"{part}: cannot be resumed: it cannot be read ({h5_reason(exc)}); run again "
            "with --overwrite to start afresh"
        ) from None


# -- opening ------------------------------------------------------------------------------------


def open_for_writing(path: Path) -> h5py.File:
    """``path`` opened to write a job (created if new); the flags a killed writer left are
    cleared first when no live process holds the file."""
    exists = path.exists()
    for attempt in range(2):
        try:
            return h5py.File(
                path,
                "a" if exists else "w",
                libver="latest",
                locking=False,
                rdcc_nbytes=CHUNK_CACHE_BYTES,
                track_order=True,
            )
        except OSError as exc:
            if attempt == 0 and exists and "already open for write" in str(exc):
                # A writer killed mid-run leaves its "open" flags set. Clear them only if
                # no live process holds the file (HDF5 keeps an flock while writing).
                if held_by_another_process(path):
                    raise StoreError(f"{path}: another process is writing this file") from None
                try:
                    clear_write_flags(path)
                except (OSError, ValueError) as why:
                    raise StoreError(
                        f"{path}: cannot recover the file of a killed run ({why}); start again with --overwrite"
                    ) from None
                continue
            raise StoreError(
                f"{path}: cannot open for writing ({exc}); if it is a damaged "
                "partial file from a killed run, start again with --overwrite"
            ) from None
    raise AssertionError("unreachable")


# -- opening for reading ------------------------------------------------------------------------


def superblock_swmr(p: Path) -> bool:
    """Check the superblock before HDF5 sees the file; True if a writer holds it in SWMR mode.

    A truncated file opened for SWMR reading makes HDF5 retry for minutes, and a reader that
    opens every file for SWMR retries on damaged metadata too: only a file a SWMR writer holds
    (or a killed one left) is opened so, after this check."""
    try:
        sb = read_superblock(p)
    except OSError as exc:
        raise StoreError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if sb is None:
        return False  # not a superblock gradbatch writes: HDF5 checks the rest, without retries
    if not sb.checksum_ok:
        raise StoreError(f"{p}: damaged: its HDF5 superblock does not match its checksum")
    writing = bool(sb.flags & WRITE_ACCESS)
    swmr = writing and bool(sb.flags & SWMR_WRITE_ACCESS)
    if writing and not swmr and held_by_another_process(p):
        raise StoreError(
            f"{p}: another process is writing it (a step readers cannot share); open it when that process has finished"
        )
    size = p.stat().st_size
    if sb.end is not None and size < sb.end:
        raise StoreError(f"{p}: truncated: {size:,} bytes of the {sb.end:,} its superblock records")
    if writing and not swmr:
        raise StoreError(
            f"{p}: left open for writing by a process that stopped before closing it; "
            "if it is a run's .partial file, `gradbatch run --resume` finishes it"
        )
    return swmr


SWMR_READ_ATTEMPTS = 30
"""Metadata read attempts of a SWMR reader. HDF5 retries a read whose checksum fails (a
writer may be midway through it), doubling a wait that starts at 1 ns; its default of 100
attempts turned damaged metadata into a hang of hours. 30 give up after about a second, far
longer than a writer's torn write lasts."""


def open_swmr(p: Path) -> h5py.File:
    """``h5py.File(p, "r", swmr=True)`` with at most :data:`SWMR_READ_ATTEMPTS` read attempts
    (h5py has no setting for them: the HDF5 library h5py loaded is called directly, and where
    it cannot be found, HDF5's default stays)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    cache = list(fapl.get_cache())
    cache[2] = CHUNK_CACHE_BYTES
    fapl.set_cache(*cache)
    setter = _read_attempts_setter()
    if setter is not None:
        setter(fapl.id, SWMR_READ_ATTEMPTS)
    fid = h5py.h5f.open(os.fsencode(p), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


@functools.lru_cache(maxsize=1)
def _read_attempts_setter() -> Any:
    """``H5Pset_metadata_read_attempts`` of the HDF5 library this process loaded for h5py
    (found in /proc/self/maps, so never another copy); None where that cannot be done."""
    import ctypes
    import re

    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read()
    except OSError:
        return None
    for lib in sorted(set(re.findall(r"(/\S*/libhdf5[-.][^/\s]*\.so[^/\s]*)", maps))):
        if "_hl" in lib.rsplit("/", 1)[-1]:
            continue
        try:
            fn = ctypes.CDLL(lib).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]  # hid_t is 64 bits since HDF5 1.10
        fn.restype = ctypes.c_int
        return fn
    return None
