"""Counted events + device -> cycles, latency and energy (the cost model).

The cycle model (docs/cycle_model.md) charges each phase of a step its work
divided by the parallel units that do it, rounded up, plus a fixed overhead
per phase and step:

======================  ===================================  ================
phase                   work (counter)                       units
======================  ===================================  ================
input events            ``synops``                           synaptic_accumulators
neuron update           ``neuron_updates``                   neuron_units
traces                  ``trace_updates``                    neuron_units
learning                ``eligibility_macs + signal_macs``   mac_units
weight update           ``weight_writes``                    synaptic_accumulators
random numbers          ``lfsr_draws``                       lfsr_units
TESS basis              ``phase_adds``                       ``[tess] units``
======================  ===================================  ================

Phases run one after another unless the device says ``overlap_phases``, in
which case a step takes as long as its longest phase. SRAM traffic is charged
per bank as ``words / ports``; each unit streams its operands while it works,
so a sample takes ``max(compute cycles, busiest bank's access cycles)``.
Counters are per sample (not per step), so the rounding up happens once per
sample: a small optimistic bias, at most one cycle per phase and step.

The energy model multiplies every counter by the device's energy of that
operation at the width of the format it works in (Horowitz-style table),
plus LUT reads, LFSR draws (32 random bits each: one step of an xorshift32
register, edgesnn/core/rng.py), the adds of a generated TESS basis's phase
accumulators (at ``[tess] phase_bits``) and SRAM words per bank. Multiplies are
charged as counted (``counters``: a product with a spike is an add, one
with a power-of-two constant a shift), each at its width: membrane and
trace decays at the state's width, learning signals at the signal width,
the other learning products at the update width. The engines count that
split (``membrane_``, ``trace_``, ``signal_multiplies``) because neither
the MAC counts nor the device's decay mode tell which MAC multiplied: a
list-0 synapse adds ``a*x``, ``alpha = 1`` skips a product, a regenerated
DFA matrix shifts. Every MAC is charged its add; a shift decay ``x - (x >>
k)`` one add per update.

The float reference is costed on the same event counts with float32
operations and 32-bit element accesses on the same banks
(``float_reference=True``): the "float reference energy".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgesnn.counters import Counters
from edgesnn.hw import Device, NumberFormat
from edgesnn.plan import Plan

#: Fixed cycles per phase per step (issue, address generation, loop control): a stated guess.
PHASE_OVERHEAD_CYCLES = 2
PHASES = ("input_events", "neuron_update", "traces", "learning", "weight_update", "random",
          "basis")


@dataclass(frozen=True)
class CycleReport:
    """Cycles of one sample: per phase (compute), per bank (memory), total and latency."""

    phases: dict[str, int]
    banks: dict[str, int]
    compute_cycles: int
    memory_cycles: int
    cycles: int
    latency_us: float
    bound: str          # "compute" or "memory: BANK"

    def as_dict(self) -> dict:
        return {"phases": self.phases, "banks": self.banks, "compute_cycles": self.compute_cycles,
                "memory_cycles": self.memory_cycles, "cycles": self.cycles,
                "latency_us": self.latency_us, "bound": self.bound}


def _ceil(work: int, units: int) -> int:
    return -(-int(work) // int(units))


def cycles(c: Counters, device: Device, steps: int, samples: int = 1) -> CycleReport:
    """Cycles for the work in ``c`` (``samples`` samples of ``steps`` steps)."""
    u = device.units
    phases = {
        "input_events": _ceil(c["synops"], u.synaptic_accumulators),
        "neuron_update": _ceil(c["neuron_updates"], u.neuron_units),
        "traces": _ceil(c["trace_updates"], u.neuron_units),
        "learning": _ceil(c["eligibility_macs"] + c["signal_macs"], u.mac_units),
        "weight_update": _ceil(c["weight_writes"], u.synaptic_accumulators),
        "random": _ceil(c["lfsr_draws"], u.lfsr_units),
        "basis": _ceil(c["phase_adds"], device.tess.units),
    }
    active = sum(1 for v in phases.values() if v)
    overhead = PHASE_OVERHEAD_CYCLES * active * steps * samples
    compute = (max(phases.values()) if device.overlap_phases else sum(phases.values())) + overhead
    banks = {}
    for b in device.banks:
        words = c.sram_reads.get(b.name, 0) + c.sram_writes.get(b.name, 0)
        banks[b.name] = _ceil(words, b.ports)
    memory = max(banks.values(), default=0)
    total = max(compute, memory)
    busiest = max(banks, key=banks.get) if banks else ""
    bound = "compute" if compute >= memory else f"memory: {busiest}"
    per = max(samples, 1)
    return CycleReport(phases={k: v // per for k, v in phases.items()},
                       banks={k: v // per for k, v in banks.items()},
                       compute_cycles=compute // per, memory_cycles=memory // per,
                       cycles=total // per, latency_us=total / per / device.clock_mhz,
                       bound=bound)


def energy_pj(c: Counters, plan: Plan, float_reference: bool = False,
              samples: int = 1) -> dict[str, float]:
    """Energy per sample in pJ by component (and ``total``) for the events in ``c``.

    Fixed point: every operation at its tensor kind's width, SRAM words as
    counted per bank. Float reference: fp32 operations and one 32-bit element
    access per operand (see ``float_accesses``), on the banks of the plan.
    Multiplies are the counted ones (module docstring); the float engine
    counts its decays as multiplies whatever the device's decay mode.
    """
    dev = plan.device
    e = dev.energy
    f32 = NumberFormat(float_bits=32)
    fmt = (lambda kind: f32) if float_reference else (lambda kind: dev.formats[kind])  # noqa: E731
    add = lambda k: e.op_pj("add", fmt(k))  # noqa: E731
    mul = lambda k: e.op_pj("mul", fmt(k))  # noqa: E731
    # a shift leak is x - (x >> k): one more add at the state's width
    shift = int(dev.decay == "shift" and not float_reference)
    parts = {
        "synaptic": c["synops"] * add("current"),
        "neuron": c["neuron_updates"] * (3 + shift) * add("membrane")
        + c["membrane_multiplies"] * mul("membrane"),
        "trace": c["trace_updates"] * (1 + shift) * add("trace")
        + c["trace_multiplies"] * mul("trace"),
        "learning": c["eligibility_macs"] * add("update") + c["update_multiplies"] * mul("update")
        + c["signal_macs"] * add("signal") + c["signal_multiplies"] * mul("signal"),
        "weight_update": c["weight_writes"] * add("weight"),
        "lut": 0.0 if float_reference
        else (c["lut_lookups"] + c["slope_lookups"]) * e.lut_read_pj,
        "lfsr": 0.0 if float_reference else c["lfsr_draws"] * e.lfsr_pj,
        "basis": 0.0 if float_reference else c["phase_adds"] * e.op_pj("add",
                                                                        dev.tess.phase_bits),
    }
    if float_reference:
        parts["sram"] = float_sram_pj(c, plan)
    else:
        parts["sram"] = sum(c.sram_reads.get(b.name, 0) * b.read_pj
                            + c.sram_writes.get(b.name, 0) * b.write_pj for b in dev.banks)
    parts = {k: v / max(samples, 1) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def float_accesses(c: Counters) -> dict[str, tuple[int, int]]:
    """32-bit element accesses (reads, writes) of a float implementation, by tensor kind.

    Each synaptic accumulate reads one weight; each neuron update reads and
    writes its membrane and current and reads its bias; each trace update
    reads and writes its trace; each learning MAC reads one operand (trace or
    weight; a TESS local-signal MAC its pooled activity or error, charged as a
    trace: its basis is a generated sign); each weight write reads and writes
    the weight; each delay-buffer access reads one element of the spike history or ring
    (charged as a read: the counter does not split reads from writes).
    """
    local = c["local_signal_macs"]
    return {
        "weight": (c["synops"] + c["signal_macs"] - local + c["weight_writes"],
                   c["weight_writes"]),
        "membrane": (3 * c["neuron_updates"], 2 * c["neuron_updates"]),
        "trace": (c["trace_updates"] + c["eligibility_macs"] + local, c["trace_updates"]),
        "spike": (c["delay_buffer_ops"], 0),
    }


def float_sram_pj(c: Counters, plan: Plan) -> float:
    """SRAM energy of ``float_accesses`` on the banks the plan put each kind in."""
    total = 0.0
    for kind, (reads, writes) in float_accesses(c).items():
        bank = _bank_of_kind(plan, kind)
        share = 32 / bank.word_bits if bank.word_bits >= 32 else math.ceil(32 / bank.word_bits)
        total += share * (reads * bank.read_pj + writes * bank.write_pj)
    return total


def _bank_of_kind(plan: Plan, kind: str):
    for p in plan.placements:
        if p.tensor.kind == kind:
            return plan.device.bank(p.bank)
    return max(plan.device.banks, key=lambda b: b.size_bytes)
