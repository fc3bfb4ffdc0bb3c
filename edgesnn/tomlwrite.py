"""Write parsed TOML data back as TOML text (device files that a tool derives, e.g. ``fit``).

``dumps(data, header="")`` is the inverse of ``tomllib.loads`` for the shapes device and
spec files use: scalars (bool, int, float, str), lists of scalars, tables, arrays of
tables, and tables of small tables (``[formats]``' per-kind entries), which are written
inline, one line each, as people write them. ``tomllib.loads(dumps(d)) == d`` for every
such ``d`` (tested on every preset). Comments of the source are not kept: a derived file
says in its ``header`` where it came from.
"""

from __future__ import annotations

import math
from typing import Any

#: a table whose values are all scalars and that has at most this many keys is written
#: inline when it sits inside another table (``weight = { signed = true, ... }``)
INLINE_KEYS = 8


def dumps(data: dict[str, Any], header: str = "") -> str:
    """TOML text for ``data`` (a mapping as ``tomllib`` returns it); ``header`` lines are
    written first as ``#`` comments."""
    out: list[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    _table(out, data, [])
    return "\n".join(out).lstrip("\n") + "\n"


def _table(out: list[str], data: dict[str, Any], path: list[str]) -> None:
    plain = {k: v for k, v in data.items() if not _is_table(v) and not _is_table_array(v)}
    nested = {k: v for k, v in data.items() if _is_table(v)}
    inline = {k: v for k, v in nested.items() if path and _inlinable(v)}
    for k, v in plain.items():
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in inline.items():
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in nested.items():
        if k in inline:
            continue
        out.append("")
        out.append(f"[{'.'.join(_key(p) for p in path + [k])}]")
        _table(out, v, path + [k])
    for k, v in data.items():
        if _is_table_array(v):
            for item in v:
                out.append("")
                out.append(f"[[{'.'.join(_key(p) for p in path + [k])}]]")
                _table(out, item, path + [k])


def _is_table(v: Any) -> bool:
    return isinstance(v, dict)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _inlinable(v: dict[str, Any]) -> bool:
    return len(v) <= INLINE_KEYS and not any(isinstance(x, (dict, list)) for x in v.values())


def _key(k: str) -> str:
    bare = k and k.isascii() and all(c.isalnum() or c in "-_" for c in k)
    return k if bare else _string(k)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _string(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped, the rest as is."""
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f"
                                          else c) for c in s) + '"'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)                     # shortest repr that reads back as the same float
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML: {v!r}")
