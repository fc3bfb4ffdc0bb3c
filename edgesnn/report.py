"""Writing results: atomic files and small Markdown helpers.

Every file the program writes goes through ``write_atomic``: a temporary file
in the same folder, then a rename, so a crash or a bad input never leaves a
half-written report behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgesnn.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` all at once (temporary file + rename).

    The file gets the permissions of a plain ``open()`` (0666 less the umask),
    not ``mkstemp``'s 0600. Any OSError becomes one ``OutputError`` line
    naming the path; the temporary file is removed and ``path`` is untouched.
    """
    p = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, p)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{p}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return p


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; numbers right-aligned."""
    rows = [[_cell(v) for v in r] for r in rows]
    align = ["---:" if rows and _numeric(rows[0][k]) else "---" for k in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _numeric(s: str) -> bool:
    return s.replace(",", "").replace(".", "").replace("%", "").replace("-", "").replace(
        "e+", "").replace("e", "").strip().isdigit()


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return human(v)
    return str(v)


def human(x: float) -> str:
    """Readable number: 1,234 / 12.3 / 1.23e+09."""
    if x == 0:
        return "0"
    if abs(x) >= 1e9:
        return f"{x:.3g}"
    if abs(x) >= 100 or float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:.3g}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 bank``, ``2 banks``, ``1 channel`` (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def power_of_two(x: float) -> str:
    """``2^-8`` for an exact power of two, else the number (a learning rate on the device)."""
    import math

    if x > 0:
        m, e = math.frexp(x)
        if m == 0.5:
            return f"2^{e - 1}"
    return f"{x:g}"


def kib(n: int | float) -> str:
    return f"{n / 1024:,.1f} KiB"


def energy(pj: float) -> str:
    """pJ in the most readable unit."""
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"
