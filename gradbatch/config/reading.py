"""Job-file bytes → plain Python data, refusing what a hostile or mistaken file can do to PyYAML.

Part of the config layer (``job.py`` validates what this returns). PyYAML's ``safe_load``
never runs code, but it will happily

- build a "billion laughs" document: aliases (``*a``) share one object, so loading is quick,
  but anything that walks the result (``repr`` in an error message, a dump) expands it, and a
  460-byte file cost 47 s and 3.3 GB;
- recurse once per nesting level, so ``[[[[...]]]]`` 10,000 deep ends in a RecursionError;
- keep the last of two equal keys in a mapping, silently dropping the first;
- read ``1e3`` as the *text* "1e3" (YAML 1.1 wants ``1.0e+3``), so a number written as most
  people and YAML 1.2 write it is refused far from where it was written.

:func:`read_job_text` and :func:`load_yaml` refuse the first three with one ConfigError line
naming the line of the file, and read ``1e3``, ``1.5E-3``, ``-2e+4`` as numbers, as YAML 1.2
does. Values enter messages through :func:`~gradbatch.config.checks.show`: bounded in length and
depth, it never expands a shared structure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import ConfigError
from .checks import bad_character, show

__all__ = ["MAX_FILE_BYTES", "MAX_NESTING", "MAX_ALIAS_VALUES", "MAX_KEY_LENGTH", "read_job_text", "load_yaml"]

MAX_FILE_BYTES = 1 << 20
"""Largest job file read, in bytes (1 MiB: the largest real job files are a few kB)."""
MAX_NESTING = 50
"""Deepest nesting of mappings and lists (real job files nest about 7 deep)."""
MAX_ALIAS_VALUES = 100_000
"""Most values that aliases (``*name``) may repeat in one file, in all."""
MAX_KEY_LENGTH = 100
"""Longest mapping key, in characters (keys are setting, axis and parameter names)."""

# YAML 1.2 floats with an exponent that YAML 1.1 (PyYAML) reads as text: 1e3, 1.5E-3, .5e+2, -2e4.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds nesting, refuses duplicate and non-text keys, and reads 1e3 as a number."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML composes recursively: stop before Python's recursion limit does.
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"line {mark.line + 1}, column {mark.column + 1}: nested more than "
                    f"{MAX_NESTING} levels deep; job files nest a few levels at most"
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *base' merges keys that the mapping may then override
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise ConfigError(
                    f"line {line}: mapping keys must be text, got a "
                    f"{'list' if isinstance(key_node, SequenceNode) else 'mapping'}"
                )
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ConfigError(
                    f"line {line}: mapping keys must be text, got {show(key)}"
                    + (" (quote it: YAML reads yes/no/on/off as true/false)" if isinstance(key, bool) else "")
                )
            bad = bad_character(key)
            if bad or len(key) > MAX_KEY_LENGTH or not key:
                why = (
                    f"{bad} in it"
                    if bad
                    else "empty"
                    if not key
                    else f"{len(key)} characters long; at most {MAX_KEY_LENGTH} are allowed"
                )
                raise ConfigError(
                    f"line {line}: key {show(key)} is {why}" if not bad else f"line {line}: key {show(key)} has {why}"
                )
            if key in seen:
                raise ConfigError(
                    f"line {line}: key {key!r} appears twice in one mapping (first at line "
                    f"{seen[key]}); YAML would silently keep only the last"
                )
            seen[key] = line
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # int('1' * 5000), a date of month 13, ...
            if isinstance(exc, ConfigError):
                raise
            why = str(exc).split(":")[0] if "digits" in str(exc) else str(exc)  # not 'use sys.set_int_...'
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {show(node.value, 40)}: {why}", node.start_mark
            ) from None


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def read_job_text(path: Path) -> str:
    """The text of job file ``path``: at most :data:`MAX_FILE_BYTES`, UTF-8, not binary."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such job file") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise ConfigError(f"{path}: cannot read job file ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: job file is larger than {MAX_FILE_BYTES:,} bytes (1 MiB), the limit; is it a job file?"
        )
    if b"\0" in data:
        raise ConfigError(
            f"{path}: a binary file (it holds NUL bytes at offset {data.index(0):,}), not a YAML job file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,}); save the job file as UTF-8"
        ) from None


def load_yaml(text: str) -> Any:
    """One YAML document → plain data (dicts with text keys, lists, scalars); None when empty.

    Raises ConfigError (one line, with the line number where PyYAML gives one) for invalid
    YAML, more than :data:`MAX_FILE_BYTES`, nesting deeper than :data:`MAX_NESTING`, aliases
    that repeat more than :data:`MAX_ALIAS_VALUES` values or refer to themselves, and
    duplicate, empty or non-text keys.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"job file is {size:,} bytes; at most {MAX_FILE_BYTES:,} (1 MiB) are allowed")
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks the characters first
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:  # only if a limit above is too generous for this interpreter
        raise ConfigError("not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: 'line 3, column 7: <problem> (<context>)'."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "invalid"
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        return " ".join(f"{where}{what}{context}".split())
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character #x{exc.character:04x} at offset {exc.position:,} is not allowed in YAML"  # type: ignore[str-format]
    return " ".join(str(exc).split())


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_aliases(root: Node) -> None:
    """Refuse a document whose aliases repeat too much, nest it too deep, or refer to themselves.

    The composed graph shares aliased nodes, so this walks each node once (no expansion),
    computing what the document would be with every alias written out.
    """
    cap = 10 * (MAX_ALIAS_VALUES + (MAX_FILE_BYTES + 1))  # sizes stop growing here: enough to decide
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            size[key] = min(cap, 1 + sum(size[id(k)] for k in kids))
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            entered.discard(key)
            if depth[key] > MAX_NESTING:
                mark = node.start_mark
                raise ConfigError(
                    f"line {mark.line + 1}: aliases nest this value more than {MAX_NESTING} "
                    "levels deep; job files nest a few levels at most"
                )
            continue
        if key in size:
            continue
        entered.add(key)
        stack.append((node, True))
        for k in kids:
            if id(k) in entered:
                mark = k.start_mark
                raise ConfigError(
                    f"line {mark.line + 1}: an alias refers to a value that contains it "
                    "(a recursive structure); job files are trees"
                )
            if id(k) not in size:
                stack.append((k, False))
    if size[id(root)] - len(size) > MAX_ALIAS_VALUES:
        raise ConfigError(
            f"aliases (*name) repeat more than {MAX_ALIAS_VALUES:,} values in this file, the limit (an alias bomb?)"
        )
