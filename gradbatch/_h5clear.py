"""Clear the "open for writing" flags a killed writer leaves in an HDF5 superblock.

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
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["lookup3", "clear_write_flags", "held_by_another_process", "Superblock", "read_superblock", "raise_eof"]

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
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _M
        a = (a - c) & _M; a ^= _rot(c, 4); c = (c + b) & _M  # noqa: E702
        b = (b - a) & _M; b ^= _rot(a, 6); a = (a + c) & _M  # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 8); b = (b + a) & _M  # noqa: E702
        a = (a - c) & _M; a ^= _rot(c, 16); c = (c + b) & _M  # noqa: E702
        b = (b - a) & _M; b ^= _rot(a, 19); a = (a + c) & _M  # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 4); b = (b + a) & _M  # noqa: E702
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b; c = (c - _rot(b, 14)) & _M  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _M  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M  # noqa: E702
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
    base, _ext, eof, _root = (int.from_bytes(block[12 + i * size:12 + (i + 1) * size], "little") for i in range(4))
    undefined = (1 << (8 * size)) - 1
    (stored,) = struct.unpack("<I", block[-4:])
    return Superblock(head[8], head[11], None if eof == undefined else base + eof,
                      lookup3(bytes(block[:-4])) == stored)


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
        base = int.from_bytes(block[12:12 + o], "little")
        eof = int.from_bytes(block[12 + 2 * o:12 + 3 * o], "little")
        if base != 0 or eof >= size or eof == (1 << (8 * o)) - 1:
            return False
        block[12 + 2 * o:12 + 3 * o] = size.to_bytes(o, "little")
        _write_superblock(fh, block)
    return True
