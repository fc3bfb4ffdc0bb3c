"""Apply a grid point to a device and a network spec, and name it by a stable id.

A point edits the parsed TOML of the device and of the spec (copies) and parses
them again with ``hw.parse_device`` / ``spec.parse_spec``: every validation of
those modules applies to every point, and an error names the grid key.

Key paths (after ``device.`` / ``spec.``) walk the TOML: tables by key, arrays
of tables by index (``layers.0.size``) or, for the device's banks, by name
(``banks.dtcm.size_bytes``). One derived key: ``formats.KIND.bits`` sets the
total width of a fixed-point format and keeps its sign and integer bits
(``frac_bits = bits - signed - int_bits``); it is applied after every other
key of the point, so ``int_bits`` and ``bits`` may be swept together. A format
kind the device leaves to its default (``signal``, ``bias``) is first copied
from the kind it defaults to (``hw.FORMAT_DEFAULTS``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgesnn.errors import DeviceError, EdgeSnnError
from edgesnn.hw import FORMAT_DEFAULTS, TENSOR_KINDS, Device, parse_device, preset_names
from edgesnn.spec import NetworkSpec, parse_spec
from edgesnn.sweep.grid import GridError, Point
from edgesnn.tomlcheck import load_toml


def device_toml(name_or_path: str) -> tuple[dict, str]:
    """The parsed TOML of a preset name or a device file, and its source (as ``load_device``)."""
    from edgesnn.hw import _preset_path

    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".toml") or path.exists() or "/" in text:
        return load_toml(path, DeviceError), str(path)
    if text not in preset_names():
        raise DeviceError(f"unknown device '{text}'; presets: {', '.join(preset_names())} "
                          "(or give the path of a device .toml file)")
    return load_toml(_preset_path(text), DeviceError), f"{text}.toml"


@dataclass(frozen=True)
class Resolved:
    """One point made concrete: the TOML dicts it runs with and their parsed forms."""

    point: Point
    hw: str                     # the --hw value or the point's ``hw``
    device_data: dict
    spec_data: dict
    device: Device
    spec: NetworkSpec


def _walk(node: Any, parts: list[str], key: str, source: str) -> Any:
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth + 1])
        if isinstance(node, list):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            named = [x for x in node if isinstance(x, dict) and x.get("name") == part]
            if not named:
                names = [str(x.get("name")) for x in node if isinstance(x, dict) and "name" in x]
                known = f"; names: {', '.join(names)}" if names else ""
                raise GridError(f"{source}: key '{key}': '{where}' is not an entry of this list "
                                f"(0..{len(node) - 1}{known})")
            node = named[0]
        elif isinstance(node, dict):
            if part not in node:
                raise GridError(f"{source}: key '{key}': '{where}' does not exist in the "
                                f"base file (known here: {', '.join(map(str, node)) or 'none'})")
            node = node[part]
        else:
            raise GridError(f"{source}: key '{key}': '{'.'.join(parts[:depth])}' is a value, "
                            "not a table")
    return node


def set_key(data: dict, path: str, value: Any, key: str, source: str) -> None:
    """Set dotted ``path`` in ``data`` (in place); its parent must exist, the leaf may be new
    (``parse_*`` then rejects an unknown leaf, naming it)."""
    parts = path.split(".")
    if not all(parts):
        raise GridError(f"{source}: key '{key}': empty part in the dotted key")
    parent = _walk(data, parts[:-1], key, source)
    leaf = parts[-1]
    if isinstance(parent, list):
        raise GridError(f"{source}: key '{key}': names a whole table; name one of its keys")
    if not isinstance(parent, dict):
        raise GridError(f"{source}: key '{key}': '{'.'.join(parts[:-1])}' is a value, not a table")
    if isinstance(parent.get(leaf), (dict, list)):
        raise GridError(f"{source}: key '{key}': names a whole table; name one of its keys")
    parent[leaf] = value


def _set_device(data: dict, path: str, value: Any, key: str, source: str,
                bits: list) -> None:
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "formats":
        formats = data.get("formats")
        kind = parts[1]
        if isinstance(formats, dict) and kind not in formats and kind in FORMAT_DEFAULTS \
                and FORMAT_DEFAULTS[kind] in formats:
            formats[kind] = copy.deepcopy(formats[FORMAT_DEFAULTS[kind]])
        if isinstance(formats, dict) and kind not in formats:
            raise GridError(f"{source}: key '{key}': the device has no '{kind}' format "
                            f"(kinds: {', '.join(TENSOR_KINDS)})")
        if parts[2] == "bits":
            bits.append((kind, value, key))
            return
    set_key(data, path, value, key, source)


def _apply_bits(data: dict, kind: str, value: Any, key: str, source: str) -> None:
    fmt = data["formats"][kind]
    if not isinstance(fmt, dict):
        raise GridError(f"{source}: key '{key}': formats.{kind} is not a table")
    if "float" in fmt:
        raise GridError(f"{source}: key '{key}': formats.{kind} is floating point; 'bits' "
                        "sets the width of a fixed-point format")
    if isinstance(value, bool) or not isinstance(value, int):
        raise GridError(f"{source}: key '{key}': must be an integer number of bits, got {value!r}")
    signed, ib = int(bool(fmt.get("signed", True))), fmt.get("int_bits", 0)
    frac = value - signed - ib
    if frac < 0:
        raise GridError(f"{source}: key '{key}': {value} bits leave no room: the format has "
                        f"{signed} sign bit and {ib} integer bits (sweep int_bits too)")
    fmt["frac_bits"] = frac


def resolve(point: Point, hw: str, spec_data: dict, spec_source: str,
            source: str = "<grid>") -> Resolved:
    """The device and spec of ``point`` on base device ``hw`` and base spec ``spec_data``.

    Raises GridError (bad key) or the DeviceError / SpecError of the re-parse, prefixed
    with the grid file and the point's keys so the user knows which value is wrong.
    """
    values = dict(point)
    hw_name = str(values.get("hw", hw))
    if "hw" in values and not isinstance(values["hw"], str):
        raise GridError(f"{source}: key 'hw': must be a preset name or a .toml path, "
                        f"got {values['hw']!r}")
    try:
        base, dev_source = device_toml(hw_name)
    except DeviceError as exc:
        raise GridError(f"{source}: key 'hw': {exc}") from None
    dev = copy.deepcopy(base)
    net = copy.deepcopy(spec_data)
    bits: list = []
    for key, value in point:
        if key == "hw":
            continue
        section, _, path = key.partition(".")
        if section == "device":
            _set_device(dev, path, value, key, source, bits)
        elif section == "spec":
            set_key(net, path, value, key, source)
        else:                                         # parse_grid allows nothing else
            raise GridError(f"{source}: key '{key}': must start with hw, device. or spec.")
    for kind, value, key in bits:
        _apply_bits(dev, kind, value, key, source)
    from edgesnn.sweep.grid import describe

    try:
        device = parse_device(dev, source=dev_source)
    except EdgeSnnError as exc:
        raise GridError(f"{source}: point {describe(point)}: {exc}") from None
    try:
        spec = parse_spec(net, source=spec_source)
    except EdgeSnnError as exc:
        raise GridError(f"{source}: point {describe(point)}: {exc}") from None
    return Resolved(point, hw_name, dev, net, device, spec)


def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): what ids hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any, n: int = 16) -> str:
    """The first ``n`` hex digits of the sha256 of ``canonical(obj)``."""
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:n]
