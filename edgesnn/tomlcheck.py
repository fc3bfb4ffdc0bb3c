"""Small typed readers for TOML tables that fail with one actionable line.

Both device files (``hw.py``) and network specs (``spec.py``) are TOML that
people write by hand. Every reader here takes the file name and the dotted key
so that an error reads ``shd.toml: key 'layers[0].size': must be an integer
>= 1, got -3`` and the user knows exactly what to change.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from edgesnn.errors import EdgeSnnError

_MISSING = object()


def load_toml(path: str | Path, error: type[EdgeSnnError]) -> dict[str, Any]:
    """Parse a TOML file; a missing file or a syntax error becomes one line."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, expected a TOML file") from None
    except UnicodeDecodeError:
        raise error(f"{p}: not UTF-8 text, expected a TOML file") from None
    except OSError as exc:
        raise error(f"{p}: cannot read ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: malformed TOML: {exc}") from None


class Table:
    """A view of one TOML table that knows where it lives, for error messages.

    ``Table(data, "shd.toml", "layers[0]", SpecError)`` reads keys of
    ``data`` and reports ``shd.toml: key 'layers[0].size': ...``.
    """

    def __init__(self, data: Any, source: str, where: str, error: type[EdgeSnnError]):
        self.source = source
        self.where = where
        self.error = error
        if not isinstance(data, dict):
            self.fail(f"must be a table, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self._read: set[str] = set()

    # -- errors -----------------------------------------------------------
    def key_path(self, key: str | None = None) -> str:
        if key is None:
            return self.where or "(top level)"
        return f"{self.where}.{key}" if self.where else key

    def fail(self, message: str, key: str | None = None) -> None:
        raise self.error(f"{self.source}: key '{self.key_path(key)}': {message}")

    # -- readers ------------------------------------------------------------
    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            self.fail("is required but missing" + self._misspelt(key), key)
        return default

    def _misspelt(self, key: str) -> str:
        """``" (unknown key 'sise' here: a misspelling of 'size'?)"`` or ``""``."""
        import difflib

        near = difflib.get_close_matches(key, [k for k in self.data if k not in self._read],
                                         n=1, cutoff=0.6)
        return f" (unknown key '{near[0]}' here: a misspelling of '{key}'?)" if near else ""

    def has(self, key: str) -> bool:
        return key in self.data

    def integer(self, key: str, default: Any = _MISSING, lo: int | None = None,
                hi: int | None = None) -> int:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(f"must be an integer{_range(lo, hi)}, got {_show(v)}", key)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(f"must be an integer{_range(lo, hi)}, got {v}", key)
        return v

    def number(self, key: str, default: Any = _MISSING, lo: float | None = None,
               hi: float | None = None, lo_open: bool = False) -> float:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(f"must be a finite number{_range(lo, hi, lo_open)}, got {_show(v)}", key)
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            self.fail(f"must be a number{_range(lo, hi, lo_open)}, got {v}", key)
        return float(v)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            self.fail(f"must be true or false, got {_show(v)}", key)
        return v

    def string(self, key: str, default: Any = _MISSING) -> str:
        v = self._get(key, default)
        if not isinstance(v, str):
            self.fail(f"must be a string, got {_show(v)}", key)
        return v

    def choice(self, key: str, allowed: tuple[str, ...] | list[str], default: Any = _MISSING) -> str:
        v = self._get(key, default)
        if not isinstance(v, str) or v not in allowed:
            self.fail(f"must be one of {', '.join(allowed)}; got {_show(v)}", key)
        return v

    def value(self, key: str, default: Any = _MISSING) -> Any:
        """The raw value of ``key`` (marked read), for a key that takes several types (a
        word or a list); the caller checks it."""
        return self._get(key, default)

    def strings(self, key: str, default: Any = _MISSING) -> tuple[str, ...]:
        v = self._get(key, default)
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            self.fail(f"must be a list of strings, got {_show(v)}", key)
        return tuple(v)

    def table(self, key: str, default: Any = _MISSING) -> "Table":
        v = self._get(key, default)
        return Table(v, self.source, self.key_path(key), self.error)

    def tables(self, key: str, default: Any = _MISSING) -> list["Table"]:
        v = self._get(key, default)
        if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
            self.fail(f"must be an array of tables ([[{key}]]), got {_show(v)}", key)
        return [Table(t, self.source, f"{self.key_path(key)}[{i}]", self.error)
                for i, t in enumerate(v)]

    def reject_unknown(self) -> None:
        """Fail on keys nobody read: a typo must not pass silently."""
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            self.fail(f"unknown key (allowed here: {', '.join(sorted(self._read)) or 'none'})",
                      unknown[0])


def _kind(v: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, (dict, list)):
        return _kind(v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def _range(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
