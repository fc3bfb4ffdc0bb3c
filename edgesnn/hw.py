"""Device models: load and validate a device TOML into a frozen ``Device``.

A device is data, not code: SRAM banks, parallel units, clock, a number format
per tensor kind, a per-operation energy table and lookup-table sizes. Presets
live in the ``hw_models`` package (one TOML file each, every number with its
source in a comment); ``load_device("NAME")`` reads a preset,
``load_device("path/to/file.toml")`` any file of the same schema.

Schema (all sizes in bytes, energies in picojoules, clock in MHz)::

    [device]   name, title, clock_mhz, decay = "multiply" | "shift",
               accumulator_bits (width of synaptic/update accumulators, 8..64),
               overlap_phases = false (may the phases of one step overlap?)
    [[banks]]  name, size_bytes, word_bits, read_pj, write_pj (per word),
               ports = 1, holds = [tensor kinds] (absent: holds anything)
    [units]    synaptic_accumulators, mac_units, neuron_units, lfsr_units
    [formats]  one inline table per tensor kind (see TENSOR_KINDS):
               { signed, int_bits, frac_bits, rounding, overflow } or { float = 32 }
    [energy]   lut_read_pj, lfsr_pj, and sub-tables [energy.add], [energy.mul]
               keyed int8, int16, int32, fp16, fp32
    [luts]     psi_entries, psi_bits, exp_entries, exp_bits, slope_bits (delay learning)
    [limits]   optional: max_inputs, max_neurons, max_outputs, max_fanout, max_delay
               (the largest delay in steps: 0 = the device has no delays; absent = no
               limit but memory, as on a microcontroller with ring buffers in SRAM)
    [tess]     optional, how the chip gets the TESS basis signs (``TessBasis``):
               basis = "generated" (default: a phase accumulator per class, nothing
               stored) | "stored" (the authors' signs, 2 bits each, in a bank holding
               "feedback"), phase_bits = 16 (2..32), units = 1 (phase accumulators
               stepping in parallel)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from edgesnn.errors import DeviceError
from edgesnn.tomlcheck import Table, load_toml

#: Tensor kinds that carry a number format. ``weight``, ``membrane``,
#: ``current``, ``trace`` and ``update`` are required; the others default as
#: stated in ``FORMAT_DEFAULTS``.
TENSOR_KINDS = ("weight", "bias", "membrane", "current", "trace", "signal", "update", "delay",
                "eligibility")
REQUIRED_FORMATS = ("weight", "membrane", "current", "trace", "update")
#: Optional kinds fall back to another kind's format (delay: unsigned Q8.8, nearest-even:
#: 8 integer bits of steps, 8 fractional bits in which a learned delay moves;
#: eligibility, the delay eligibility trace: the trace format made signed).
FORMAT_DEFAULTS = {"bias": "membrane", "signal": "current"}

ROUNDING = ("floor", "nearest-even", "nearest-away", "stochastic")
OVERFLOW = ("saturate", "wrap")
ENERGY_WIDTHS = ("int8", "int16", "int32", "fp16", "fp32")

#: What every tensor a plan places may be (``holds`` entries of a bank).
PLACEABLE = ("weight", "bias", "membrane", "current", "spike", "trace", "signal",
             "update", "feedback", "lut", "input", "delay", "rng")


@dataclass(frozen=True)
class NumberFormat:
    """The format of one tensor kind: fixed point ``Q(signed, int, frac)`` or float.

    ``bits`` is the storage width. For fixed point ``bits = signed + int_bits +
    frac_bits`` (the fxpmath ``n_word`` convention).
    """

    float_bits: int | None = None
    signed: bool = True
    int_bits: int = 0
    frac_bits: int = 0
    rounding: str = "nearest-even"
    overflow: str = "saturate"

    @property
    def is_float(self) -> bool:
        return self.float_bits is not None

    @property
    def bits(self) -> int:
        if self.float_bits is not None:
            return self.float_bits
        return int(self.signed) + self.int_bits + self.frac_bits

    def __str__(self) -> str:
        if self.float_bits is not None:
            return f"float{self.float_bits}"
        sign = "s" if self.signed else "u"
        return f"Q{self.int_bits}.{self.frac_bits} ({sign}{self.bits}, {self.rounding}, {self.overflow})"

    @property
    def qformat(self):
        """The ``edgesnn.fixed.QFormat`` of a fixed-point format (DeviceError for float)."""
        if self.is_float:
            raise DeviceError(f"format {self} is floating point; the fixed engine needs Q formats")
        from edgesnn.fixed import QFormat

        return QFormat(self.signed, self.int_bits, self.frac_bits)


@dataclass(frozen=True)
class Bank:
    """One SRAM bank: ``size_bytes`` of ``word_bits`` words, energy per word access."""

    name: str
    size_bytes: int
    word_bits: int
    read_pj: float
    write_pj: float
    ports: int = 1
    holds: tuple[str, ...] = ()

    def holds_kind(self, kind: str) -> bool:
        return kind in self.holds

    @property
    def general(self) -> bool:
        """A bank with no ``holds`` list takes any tensor nobody else claims."""
        return not self.holds


@dataclass(frozen=True)
class Units:
    """Parallel units: how many of each operation one cycle can do."""

    synaptic_accumulators: int = 1
    mac_units: int = 1
    neuron_units: int = 1
    lfsr_units: int = 1


@dataclass(frozen=True)
class Energy:
    """Energy per operation in pJ, by operation and width, plus LUT and LFSR costs."""

    add: Mapping[str, float]
    mul: Mapping[str, float]
    lut_read_pj: float
    lfsr_pj: float

    def op_pj(self, op: str, fmt: NumberFormat | int) -> float:
        """Energy of one ``op`` ("add" or "mul") at a format's width.

        Integer widths round up to the next tabulated one (a 24-bit add is
        charged as int32); floats use fp16 or fp32.
        """
        table = self.add if op == "add" else self.mul
        if isinstance(fmt, NumberFormat) and fmt.is_float:
            return table["fp16"] if fmt.bits <= 16 else table["fp32"]
        bits = fmt.bits if isinstance(fmt, NumberFormat) else int(fmt)
        key = "int8" if bits <= 8 else "int16" if bits <= 16 else "int32"
        return table[key]


@dataclass(frozen=True)
class Luts:
    """Lookup tables of the neuron unit; their size counts in the memory map.

    0 entries: the function is computed (a float core), not tabulated.
    """

    psi_entries: int = 64
    psi_bits: int = 8
    exp_entries: int = 64
    exp_bits: int = 16
    #: bits of an entry of the Gaussian slope table of delay learning (its entries: one
    #: per tap and fractional delay code, ``plan.slope_table_entries``)
    slope_bits: int = 16


@dataclass(frozen=True)
class Limits:
    """Hard structural limits of a core (None: no limit)."""

    max_inputs: int | None = None
    max_neurons: int | None = None
    max_outputs: int | None = None
    max_fanout: int | None = None
    #: largest synaptic or axonal delay, time steps; 0: the device has no delays
    max_delay: int | None = None


#: how a chip may get the TESS basis signs (``[tess] basis``)
TESS_BASES = ("generated", "stored")


@dataclass(frozen=True)
class TessBasis:
    """How the chip gets the TESS basis signs ``sign(sin(f_c k))`` (``[tess]`` table).

    ``generated``: one phase accumulator per class pass, the phase in turns with
    ``phase_bits`` fractional bits, ``step_c = round(f_c / (2 pi) * 2**phase_bits)``;
    ``units`` accumulators step in parallel (one add each per cycle). Nothing is stored
    but the ``C`` steps; the signs may differ from the authors' float32 ``sin`` in a few
    places (``edgesnn.rules.tess.basis_summary``). ``stored``: the authors' signs, 2 bits
    per entry, ``C x D`` per layer in a bank that holds ``feedback``.
    """

    basis: str = "generated"
    phase_bits: int = 16
    units: int = 1


@dataclass(frozen=True)
class Device:
    """A validated device model (see the module docstring for the schema)."""

    name: str
    title: str
    source: str
    clock_mhz: float
    decay: str
    accumulator_bits: int
    overlap_phases: bool
    banks: tuple[Bank, ...]
    units: Units
    formats: Mapping[str, NumberFormat]
    energy: Energy
    luts: Luts
    limits: Limits = field(default_factory=Limits)
    tess: TessBasis = field(default_factory=TessBasis)

    @property
    def sram_bytes(self) -> int:
        return sum(b.size_bytes for b in self.banks)

    @property
    def is_float(self) -> bool:
        """True for a float reference device (every format floating point)."""
        return all(f.is_float for f in self.formats.values())

    def bank(self, name: str) -> Bank:
        for b in self.banks:
            if b.name == name:
                return b
        raise DeviceError(f"device '{self.name}' has no bank '{name}'")


# --------------------------------------------------------------------------
# loading


def preset_names() -> list[str]:
    """Names of the shipped presets (``hw_models/*.toml`` without extension)."""
    root = resources.files("hw_models")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def _preset_path(name: str) -> Path:
    return Path(str(resources.files("hw_models").joinpath(f"{name}.toml")))


def load_device(name_or_path: str | Path) -> Device:
    """Load a preset by name or a device TOML by path; DeviceError on any problem."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".toml") or path.exists() or "/" in text:
        return parse_device(load_toml(path, DeviceError), source=str(path))
    if text not in preset_names():
        raise DeviceError(
            f"unknown device '{text}'; presets: {', '.join(preset_names())} "
            f"(or give the path of a device .toml file)")
    return parse_device(load_toml(_preset_path(text), DeviceError), source=f"{text}.toml")


def parse_device(data: dict, source: str = "<device>") -> Device:
    """Validate a parsed TOML mapping into a ``Device``."""
    top = Table(data, source, "", DeviceError)
    dev = top.table("device")
    name = dev.string("name")
    if not name.strip():
        dev.fail("must not be empty", "name")
    title = dev.string("title", name)
    clock = dev.number("clock_mhz", lo=0.0, lo_open=True, hi=1e5)
    decay = dev.choice("decay", ("multiply", "shift"), "multiply")
    acc_bits = dev.integer("accumulator_bits", 32, lo=8, hi=64)
    overlap = dev.boolean("overlap_phases", False)
    dev.reject_unknown()

    banks = tuple(_parse_bank(t) for t in top.tables("banks"))
    if not banks:
        top.fail("needs at least one [[banks]] table", "banks")
    names = [b.name for b in banks]
    for i, b in enumerate(names):
        if b in names[:i]:
            top.fail(f"duplicate bank name '{b}'", f"banks[{i}].name")

    units = _parse_units(top.table("units", {}))
    formats = _parse_formats(top.table("formats"), acc_bits)
    energy = _parse_energy(top.table("energy"))
    luts = _parse_luts(top.table("luts", {}))
    limits = _parse_limits(top.table("limits", {}))
    tess = _parse_tess(top.table("tess", {}))
    top.reject_unknown()
    if any(f.is_float for f in formats.values()) and not all(f.is_float for f in formats.values()):
        top.fail("mixes float and fixed-point formats; a device is one or the other", "formats")
    return Device(name=name, title=title, source=source, clock_mhz=clock, decay=decay,
                  accumulator_bits=acc_bits, overlap_phases=overlap, banks=banks, units=units,
                  formats=MappingProxyType(formats), energy=energy, luts=luts, limits=limits,
                  tess=tess)


def _parse_bank(t: Table) -> Bank:
    name = t.string("name")
    if not name.strip():
        t.fail("must not be empty", "name")
    bank = Bank(
        name=name,
        size_bytes=t.integer("size_bytes", lo=1),
        word_bits=t.integer("word_bits", lo=1, hi=1024),
        read_pj=t.number("read_pj", lo=0.0),
        write_pj=t.number("write_pj", lo=0.0),
        ports=t.integer("ports", 1, lo=1, hi=64),
        holds=t.strings("holds", []),
    )
    for kind in bank.holds:
        if kind not in PLACEABLE:
            t.fail(f"unknown tensor kind '{kind}'; allowed: {', '.join(PLACEABLE)}", "holds")
    t.reject_unknown()
    return bank


def _parse_units(t: Table) -> Units:
    u = Units(**{k: t.integer(k, 1, lo=1, hi=1_000_000) for k in
                 ("synaptic_accumulators", "mac_units", "neuron_units", "lfsr_units")})
    t.reject_unknown()
    return u


def _parse_format(t: Table, acc_bits: int, kind: str) -> NumberFormat:
    if t.has("float"):
        bits = t.integer("float", lo=16, hi=32)
        if bits not in (16, 32):
            t.fail(f"must be 16 or 32 (float16 or float32), got {bits}", "float")
        t.reject_unknown()
        return NumberFormat(float_bits=bits)
    fmt = NumberFormat(
        signed=t.boolean("signed"),
        int_bits=t.integer("int_bits", lo=0, hi=32),
        frac_bits=t.integer("frac_bits", lo=0, hi=32),
        rounding=t.choice("rounding", ROUNDING, "nearest-even"),
        overflow=t.choice("overflow", OVERFLOW, "saturate"),
    )
    limit = acc_bits if kind == "update" else 32
    if not 1 <= fmt.bits <= limit:
        t.fail(f"total bits (signed + int_bits + frac_bits) must be in 1..{limit}, got {fmt.bits}")
    t.reject_unknown()
    return fmt


def _parse_formats(t: Table, acc_bits: int) -> dict[str, NumberFormat]:
    formats: dict[str, NumberFormat] = {}
    for kind in TENSOR_KINDS:
        if t.has(kind):
            formats[kind] = _parse_format(t.table(kind), acc_bits, kind)
        elif kind in REQUIRED_FORMATS:
            t.fail("is required but missing", kind)
    t.reject_unknown()
    all_float = all(f.is_float for f in formats.values())
    for kind, other in FORMAT_DEFAULTS.items():
        formats.setdefault(kind, formats[other])
    formats.setdefault("delay", NumberFormat(float_bits=32) if all_float else
                       NumberFormat(signed=False, int_bits=8, frac_bits=8,
                                    rounding="nearest-even"))
    trace = formats["trace"]
    formats.setdefault("eligibility", trace if trace.is_float else replace(trace, signed=True))
    return formats


def _parse_energy(t: Table) -> Energy:
    tables = {}
    for op in ("add", "mul"):
        sub = t.table(op)
        tables[op] = MappingProxyType({w: sub.number(w, lo=0.0) for w in ENERGY_WIDTHS})
        sub.reject_unknown()
    e = Energy(add=tables["add"], mul=tables["mul"], lut_read_pj=t.number("lut_read_pj", lo=0.0),
               lfsr_pj=t.number("lfsr_pj", lo=0.0))
    t.reject_unknown()
    return e


def _parse_luts(t: Table) -> Luts:
    luts = Luts(
        psi_entries=t.integer("psi_entries", 64, lo=0, hi=65536),
        psi_bits=t.integer("psi_bits", 8, lo=1, hi=32),
        exp_entries=t.integer("exp_entries", 64, lo=0, hi=65536),
        exp_bits=t.integer("exp_bits", 16, lo=1, hi=32),
        slope_bits=t.integer("slope_bits", 16, lo=1, hi=32),
    )
    t.reject_unknown()
    return luts


def _parse_limits(t: Table) -> Limits:
    lim = Limits(**{k: (t.integer(k, lo=1) if t.has(k) else None) for k in
                    ("max_inputs", "max_neurons", "max_outputs", "max_fanout")},
                 max_delay=t.integer("max_delay", lo=0) if t.has("max_delay") else None)
    t.reject_unknown()
    return lim


def _parse_tess(t: Table) -> TessBasis:
    tb = TessBasis(basis=t.choice("basis", TESS_BASES, "generated"),
                   phase_bits=t.integer("phase_bits", 16, lo=2, hi=32),
                   units=t.integer("units", 1, lo=1, hi=1_000_000))
    t.reject_unknown()
    return tb
