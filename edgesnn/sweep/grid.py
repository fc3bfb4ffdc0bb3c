"""Parse and validate a sweep grid (``GRID.toml``) into a list of points.

A grid names the keys a sweep changes and the values each takes::

    hw = ["cortex-m7", "audio-edge"]          # the device itself (presets or .toml paths)

    [device]                                  # keys of the device TOML (edgesnn/hw.py)
    formats.weight.bits = [4, 6, 8, 16]       # "bits": total width, integer bits kept
    formats.weight.rounding = ["floor", "nearest-even", "stochastic"]
    banks.dtcm.size_bytes = [65536, 131072]   # a bank by name (or by index: banks.0)

    [spec]                                    # keys of the network spec TOML (edgesnn/spec.py)
    learning.update = ["per-step", "per-sample"]
    layers.0.size = [32, 64]

    [[zip]]                                   # keys that move together: one axis,
    device.formats.membrane.int_bits = [3, 5] # lists of one length, taken pairwise
    device.formats.membrane.frac_bits = [12, 10]

    [[points]]                                # explicit points: one more axis whose
    device.formats.trace.bits = 8             # values are whole assignments
    [[points]]
    device.formats.trace.bits = 16
    spec.learning.window = 8

Every list under ``[device]`` / ``[spec]`` (or a top-level ``hw`` list) is one
axis; a scalar there is a constant applied to every point. The points are the
cartesian product of all axes (``[[zip]]`` groups and the ``[[points]]`` list
count as one axis each), in the order the keys are written, the last key
varying fastest. Keys are canonical dotted strings ``hw``, ``device.<path>``,
``spec.<path>``. Values are checked here for shape only; ``points.resolve``
applies every point to the device and spec and re-parses them, so every check
of ``hw.py`` and ``spec.py`` applies to every point.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgesnn.errors import EdgeSnnError
from edgesnn.tomlcheck import load_toml


class GridError(EdgeSnnError):
    """A grid file is malformed: names the file and the key."""


#: the sections of a grid that hold keys, and the prefix of their canonical keys
SECTIONS = ("device", "spec")
TOP_KEYS = ("hw", "device", "spec", "zip", "points")
#: at most this many points (a typo such as 1000 values should not start a week of work)
MAX_POINTS = 100_000

Point = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid: ``keys`` set together to each entry of ``values``.

    ``values[i]`` is a tuple, one value per key (a single key: a 1-tuple). The
    ``[[points]]`` axis has ``keys = ()`` and carries each point's own keys in
    ``assignments``.
    """

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...] = ()
    assignments: tuple[Point, ...] = ()

    def entries(self) -> list[Point]:
        if self.assignments:
            return list(self.assignments)
        return [tuple(zip(self.keys, v)) for v in self.values]

    def __len__(self) -> int:
        return len(self.assignments) if self.assignments else len(self.values)


@dataclass(frozen=True)
class Grid:
    """A parsed grid: constants applied to every point, and the axes of the product."""

    source: str
    constants: Point
    axes: tuple[Axis, ...]
    raw: dict                                  # the TOML as parsed (the manifest records it)

    def points(self) -> list[Point]:
        """Every point as ``((key, value), ...)``: constants first, then the axes' keys in
        grid order. The last axis varies fastest."""
        entries = [a.entries() for a in self.axes] or [[()]]
        return [self.constants + tuple(kv for part in combo for kv in part)
                for combo in itertools.product(*entries)]

    @property
    def swept_axes(self) -> list[list[str]]:
        """The keys of every axis with more than one entry (a ``[[zip]]`` group: its keys;
        the ``[[points]]`` axis: the keys its points set), in grid order."""
        out = []
        for a in self.axes:
            if len(a) > 1:
                keys = list(a.keys) or list(dict.fromkeys(k for p in a.assignments
                                                          for k, _ in p))
                out.append(keys)
        return out

    @property
    def swept_keys(self) -> list[str]:
        """Keys that take more than one value across the points, in grid order."""
        seen: dict[str, set] = {}
        for p in self.points():
            for k, v in p:
                seen.setdefault(k, set()).add(_hashable(v))
        return [k for k, vals in seen.items() if len(vals) > 1]


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def load_grid(path: str | Path) -> Grid:
    """Read ``path`` and validate its shape; GridError (one line naming the key) otherwise."""
    data = load_toml(path, GridError)
    return parse_grid(data, str(path))


def flatten(table: dict, prefix: str) -> list[tuple[str, Any]]:
    """Nested TOML tables as ``[("device.formats.weight.bits", [4, 8]), ...]`` in file order.

    A dotted key ``formats.weight.bits = [...]`` parses as nested tables; a leaf is
    anything that is not a table (a list of inline tables is a leaf too).
    """
    out: list[tuple[str, Any]] = []
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.extend(flatten(v, key))
        else:
            out.append((key, v))
    return out


def _check_value(source: str, key: str, v: Any) -> None:
    if isinstance(v, dict):
        raise GridError(f"{source}: key '{key}': an empty table is not a value")
    if isinstance(v, list) and any(isinstance(x, (list, dict)) for x in v):
        raise GridError(f"{source}: key '{key}': values must be numbers, strings or booleans")


def _section_keys(data: dict, source: str) -> list[tuple[str, Any]]:
    """``hw`` and the ``[device]`` / ``[spec]`` leaves of a table, as canonical keys."""
    out: list[tuple[str, Any]] = []
    for top, v in data.items():
        if top == "hw":
            out.append(("hw", v))
        elif top in SECTIONS:
            if not isinstance(v, dict):
                raise GridError(f"{source}: key '{top}': must be a table of keys "
                                f"([{top}] with dotted keys such as formats.weight.bits)")
            leaves = flatten(v, top)
            if not leaves:
                raise GridError(f"{source}: key '{top}': names no keys")
            out.extend(leaves)
        else:
            raise GridError(f"{source}: key '{top}': unknown here (allowed: hw, device, spec)")
    return out


def parse_grid(data: dict, source: str = "<grid>") -> Grid:
    """Validate parsed grid TOML (see the module docstring)."""
    for k in data:
        if k not in TOP_KEYS:
            raise GridError(f"{source}: key '{k}': unknown top-level key (allowed: "
                            f"{', '.join(TOP_KEYS)})")
    constants: list[tuple[str, Any]] = []
    axes: list[Axis] = []
    used: dict[str, str] = {}

    def claim(key: str, where: str) -> None:
        if key in used:
            raise GridError(f"{source}: key '{key}': set twice ({used[key]} and {where})")
        used[key] = where

    plain = {k: v for k, v in data.items() if k in ("hw", *SECTIONS)}
    for key, v in _section_keys(plain, source):
        _check_value(source, key, v)
        claim(key, "a list" if isinstance(v, list) else "a constant")
        if isinstance(v, list):
            if not v:
                raise GridError(f"{source}: key '{key}': an empty list of values")
            axes.append(Axis((key,), tuple((x,) for x in v)))
        else:
            constants.append((key, v))

    zips = data.get("zip", [])
    if not isinstance(zips, list) or not all(isinstance(z, dict) for z in zips):
        raise GridError(f"{source}: key 'zip': must be an array of tables ([[zip]])")
    for i, z in enumerate(zips):
        where = f"zip[{i}]"
        leaves = _section_keys(z, f"{source}: {where}")
        if len(leaves) < 2:
            raise GridError(f"{source}: key '{where}': a [[zip]] group needs two keys or more")
        n = None
        for key, v in leaves:
            _check_value(source, key, v)
            if not isinstance(v, list) or not v:
                raise GridError(f"{source}: key '{where}.{key}': must be a non-empty list of "
                                "values (the keys of a [[zip]] move together)")
            if n is not None and len(v) != n:
                raise GridError(f"{source}: key '{where}.{key}': has {len(v)} values, the "
                                f"group's first key has {n} (zipped keys move together)")
            n = len(v)
            claim(key, where)
        axes.append(Axis(tuple(k for k, _ in leaves), tuple(zip(*[v for _, v in leaves]))))

    pts = data.get("points", [])
    if not isinstance(pts, list) or not all(isinstance(p, dict) for p in pts):
        raise GridError(f"{source}: key 'points': must be an array of tables ([[points]])")
    if pts:
        assignments = []
        point_keys: set[str] = set()
        for i, p in enumerate(pts):
            leaves = _section_keys(p, f"{source}: points[{i}]")
            if not leaves:
                raise GridError(f"{source}: key 'points[{i}]': sets no key")
            for key, v in leaves:
                _check_value(source, key, v)
                if isinstance(v, list):
                    raise GridError(f"{source}: key 'points[{i}].{key}': one value per point, "
                                    "not a list (lists belong under [device] / [spec])")
                if key in used:
                    raise GridError(f"{source}: key 'points[{i}].{key}': also set by "
                                    f"{used[key]}")
                point_keys.add(key)
            assignments.append(tuple(leaves))
        axes.append(Axis((), assignments=tuple(assignments)))

    n = 1
    for a in axes:
        n *= len(a)
    if n > MAX_POINTS:
        raise GridError(f"{source}: {n:,} points; at most {MAX_POINTS:,} (split the grid)")
    grid = Grid(source, tuple(constants), tuple(axes), data)
    seen = {}
    for p in grid.points():
        key = repr(sorted((k, repr(v)) for k, v in p))
        if key in seen:
            raise GridError(f"{source}: the point {describe(p)} appears twice")
        seen[key] = True
    return grid


def describe(point: Point) -> str:
    """``weight.bits=4, trace.bits=8`` (short keys for people)."""
    if not point:
        return "(the base configuration)"
    return ", ".join(f"{short(k)}={v}" for k, v in point)


def short(key: str) -> str:
    """``device.formats.weight.bits`` -> ``weight.bits``; ``spec.learning.update`` ->
    ``learning.update``."""
    if key.startswith("device.formats."):
        return key[len("device.formats."):]
    for p in ("device.", "spec."):
        if key.startswith(p):
            return key[len(p):]
    return key


def points_grid(points: list[Point], source: str = "<points>") -> Grid:
    """A grid of explicit points (what ``edgesnn fit`` builds for its trials)."""
    pts = [tuple((str(k), v) for k, v in p) for p in points]
    return Grid(source, (), (Axis((), assignments=tuple(pts)),) if pts else (),
                {"points": [dict(p) for p in pts]})
