"""The checks every section of a job file shares: numbers, choices, flags, per-axis lists,
mappings, and :func:`show`, the only way a user's value enters a message.

Each check takes the raw YAML value and its YAML path (``where``) and either returns the value
typed or raises one :class:`~gradbatch.errors.ConfigError` line naming the path, the value given
and what is allowed::

    paths.steps: expected an integer of at least 1, got -4

Written once here so that the same mistake reads the same in every section.
"""

from __future__ import annotations

import difflib
import math
import unicodedata
from collections.abc import Iterable
from enum import Enum
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = [
    "Choice",
    "show",
    "bad_character",
    "at",
    "finite",
    "number",
    "positive",
    "integer",
    "boolean",
    "choice",
    "per_axis",
    "mapping",
    "unknown_keys",
]

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """A fixed set of names a setting allows. A ``str``, so it compares equal to its text
    (``opt.name == "adam"``), and ``str()``, ``repr()`` and f-strings give the text itself (as
    ``'adam'`` for repr), never ``Class.MEMBER``: what is stored in files (an ``MLPConfig``'s
    repr is an attribute of the landscape group) and printed is exactly what a plain string gave."""

    def __repr__(self) -> str:
        return repr(str(self.value))

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The allowed texts, in the order messages list them."""
        return tuple(str(m.value) for m in cls)


def show(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, at most ``limit`` characters, never expanding more of a
    nested or shared structure than it prints ('nothing' for None)."""
    if value is None:
        return "nothing"
    if isinstance(value, Choice):
        value = value.value
    parts: list[str] = []
    budget = [limit + 1]

    def emit(s: str) -> bool:
        parts.append(s[: max(budget[0], 0)])
        budget[0] -= len(s)
        return budget[0] > 0

    def walk(v: Any, level: int) -> bool:
        if isinstance(v, (list, tuple, set, frozenset, dict)):
            if level > 8:
                return emit("...")
            opening, closing = ("[", "]") if isinstance(v, list) else ("(", ")") if isinstance(v, tuple) else ("{", "}")
            if not emit(opening):
                return False
            items = v.items() if isinstance(v, dict) else v
            for i, item in enumerate(items):
                if i and not emit(", "):
                    return False
                if isinstance(v, dict):
                    if not (walk(item[0], level + 1) and emit(": ") and walk(item[1], level + 1)):
                        return False
                elif not walk(item, level + 1):
                    return False
            return emit(closing)
        if isinstance(v, str) and len(v) > limit:
            v = v[:limit]
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 4 * limit:
            return emit(f"<an integer of about {int(v.bit_length() * 0.30103):,} digits>")
        return emit(repr(v))

    walk(value, 0)
    s = "".join(parts)
    return s if len(s) <= limit else s[: limit - 3] + "..."


_CONTROL_NAMES = {
    "\0": "NUL",
    "\t": "TAB",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
}


def bad_character(text: str) -> str:
    """'character U+000A (LINE FEED)' for the first control or format character of ``text``, else ''."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            name = _CONTROL_NAMES.get(ch) or unicodedata.name(ch, "a control character")
            return f"character U+{ord(ch):04X} ({name})"
    return ""


def at(where: str, key: str) -> str:
    """The YAML path of ``key`` inside ``where`` (just ``key`` at the top level)."""
    return f"{where}.{key}" if where else key


# -- numbers ----------------------------------------------------------------------------------


def finite(raw: Any) -> float | None:
    """``raw`` as a finite float, or None (not a number, a bool, NaN, infinite, an int past float64)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    try:
        f = float(raw)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def number(raw: Any, where: str, lo: float | None = None, above_zero: bool = False) -> float:
    """A finite float, optionally above zero or at least ``lo``."""
    f = finite(raw)
    if f is None:
        raise ConfigError(f"{where}: expected a finite number, got {show(raw)}")
    if above_zero and f <= 0:
        raise ConfigError(f"{where}: expected a number above 0, got {show(f)}")
    if lo is not None and f < lo:
        raise ConfigError(f"{where}: expected a number of at least {lo:g}, got {show(f)}")
    return f


def positive(raw: Any, where: str, allow_zero: bool = False) -> float:
    """A finite float above zero (or at least zero)."""
    f = finite(raw)
    if f is None or f < 0 or (f == 0 and not allow_zero):
        what = "a number >= 0" if allow_zero else "a positive number"
        raise ConfigError(f"{where}: expected {what}, got {show(raw)}")
    return f


def integer(raw: Any, where: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An int (not a bool) from ``minimum`` to ``maximum``."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise ConfigError(f"{where}: expected an integer of at least {minimum}, got {show(raw)}")
    if maximum is not None and raw > maximum:
        raise ConfigError(f"{where}: expected an integer of at most {maximum:,}, got {show(raw)}")
    return raw


def is_int(raw: Any) -> bool:
    """An int that is not a bool (YAML's true is an int to Python)."""
    return isinstance(raw, int) and not isinstance(raw, bool)


# -- flags and choices ------------------------------------------------------------------------


def boolean(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(f"{where}: expected true or false, got {show(raw)}")
    return raw


def member(cls: type[C], raw: Any, allowed: Iterable[C] | None = None) -> C | None:
    """The member of ``cls`` whose text is ``raw`` (and in ``allowed``), else None."""
    for m in allowed if allowed is not None else cls:
        if isinstance(raw, str) and raw == m.value:
            return m
    return None


def choice(cls: type[C], raw: Any, where: str, allowed: Iterable[C] | None = None) -> C:
    """``raw`` as a member of ``cls`` (of ``allowed`` only, when given)."""
    options = tuple(allowed if allowed is not None else cls)
    m = member(cls, raw, options)
    if m is None:
        raise ConfigError(f"{where}: expected one of {', '.join(str(o.value) for o in options)}, got {show(raw)}")
    return m


# -- lists and mappings -----------------------------------------------------------------------


def per_axis(raw: Any, where: str, ndim: int, expected: str) -> list[tuple[Any, str]]:
    """One value per axis: one int for all, or a list of ``ndim``; each with its YAML path.
    ``expected`` completes 'expected ..., got X' when it is neither."""
    values = [raw] * ndim if is_int(raw) else raw
    if not isinstance(values, list) or len(values) != ndim:
        raise ConfigError(f"{where}: expected {expected}, got {show(raw)}")
    return [(v, f"{where}[{i}]" if isinstance(raw, list) else where) for i, v in enumerate(values)]


def unknown_keys(raw: dict[str, Any], where: str, allowed: Iterable[str]) -> None:
    """Refuse the first key of ``raw`` (alphabetically) that is not allowed, suggesting the
    closest allowed key for a likely typo."""
    names = sorted(allowed)
    unknown = sorted(set(raw) - set(names))
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{at(where, unknown[0])}: unknown setting; allowed: {', '.join(names)}{hint}")


def mapping(raw: Any, where: str, allowed: Iterable[str]) -> dict[str, Any]:
    """A mapping whose keys are all ``allowed``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {show(raw)}")
    unknown_keys(raw, where, allowed)
    return raw
