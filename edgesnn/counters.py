"""Counter names and containers shared by both engines.

Both engines count the same events so that reports compare like with like
(DESIGN.md, "Counting contract"). Names match ``analytic.OpCounts`` so that
counted and analytic figures sit side by side:

* ``synops``: synaptic accumulates, one per active input per fan-out synapse;
* ``neuron_updates``: leak-integrate-fire (or readout) updates;
* ``trace_updates``: one per trace element per step;
* ``eligibility_macs``: MACs of weight and bias updates (factor multiplies
  included);
* ``signal_macs``: MACs computing learning signals;
* ``local_signal_macs``: the part of ``signal_macs`` that computes TESS local
  signals (per layer and window step: pooling accumulates, the two ``C x D``
  projections onto the square-wave basis, one exp-and-accumulate per class of
  the softmax, the unpooling accumulates). Their basis operand is a sign: generated
  (``phase_adds``) or stored (its words read), as the device's ``[tess]`` says. The
  float engine counts them densely, the fixed engine event driven (docs/fixed_point.md,
  "TESS"): at most as many;
* ``phase_adds``: adds of the phase accumulators that generate a TESS basis (device
  ``[tess] basis = "generated"``; fixed engine only): ``D - 1`` per class pass over a
  layer's ``D`` basis columns (the phase starts at 0), one pass per class for the
  logits and one per class with a nonzero local error for the latent gradient;
* ``weight_writes``: parameters written (learned delays included);
* ``delay_buffer_ops``: element accesses of delay buffers (docs/delays.md, "Counted"): per
  step and delayed layer, the history push (one per input) and the delayed reads (axonal:
  one per input; synaptic: one per kept synapse when learning, for its own trace), the
  eligibility's tap reads (``2R + 1`` per delay when learning), and for synaptic delays
  one ring add per kept synapse of a spiking input and the ring row read (one per neuron);
* ``slope_lookups``: reads of the Gaussian slope table (float engine and ``analytic``:
  every tap; fixed engine: the taps holding a spike);
* ``lut_lookups``, ``lfsr_draws``: table reads and 32-bit LFSR draws (fixed
  engine: one per stochastic rounding, and the feedback signs of a
  regenerated DFA matrix);
* ``rows_skipped``: neuron rows whose learning factors were both zero, so no
  synapse of the row was touched (the event-driven saving);
* ``multiplies``: products actually executed whose operands are both
  non-binary, or one non-binary operand and a constant that is neither 0 nor
  a power of two (``is_multiply``). Counted: decays by a multiply (``decay =
  "multiply"`` devices and the float engine), the factors ``g*h``, ``g*psi``
  and their alpha scalings, ``c*q`` per visited synapse, learning-signal
  products (``e*W_out``, ``gp*W``, ``e*B`` of a stored DFA matrix). Not
  counted: products with a spike (``a*x``, ``W*x``: adds), shift decays
  ``x - (x >> k)``, multiplies by 1 the code skips, power-of-two constants
  (learning rate, regenerated DFA magnitude, ``alpha = 0.5``: shifts),
  lookup tables and the softmax division. TESS: the basis is a sign, its
  ``1/D`` and each group's ``1/size`` are applied once per projected or pooled
  value and are shifts for powers of two (multiplies otherwise). The fixed engine applies the rule
  to its quantised codes, the float engine and ``analytic`` to the spec's
  constants: they differ only for a constant within about 2**-17 of a power
  of two;
* ``membrane_multiplies``, ``trace_multiplies``, ``signal_multiplies``: the
  part of ``multiplies`` done at the membrane, trace and signal widths
  (decays of ``u``; decays of ``q``, ``q_rec``, ``h``; learning signals).
  The rest, ``multiplies`` minus these three, are the learning products at
  the update width (``update_multiplies``). The split exists so the energy
  model prices each multiply at its own width from counts, not guesses.

Counters live in one int64 array so a numba kernel can fill them; ``Counters``
is the readable Python view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# new names go at the end: indices (and the kernels' constants) stay valid
NAMES = ("synops", "neuron_updates", "trace_updates", "eligibility_macs", "signal_macs",
         "weight_writes", "lut_lookups", "lfsr_draws", "rows_skipped", "multiplies",
         "membrane_multiplies", "trace_multiplies", "signal_multiplies", "local_signal_macs",
         "phase_adds", "delay_buffer_ops", "slope_lookups")
INDEX = {n: i for i, n in enumerate(NAMES)}
SYNOPS, NEURON_UPDATES, TRACE_UPDATES, ELIGIBILITY_MACS, SIGNAL_MACS, WEIGHT_WRITES, \
    LUT_LOOKUPS, LFSR_DRAWS, ROWS_SKIPPED, MULTIPLIES, MEMBRANE_MULTIPLIES, TRACE_MULTIPLIES, \
    SIGNAL_MULTIPLIES, LOCAL_SIGNAL_MACS, PHASE_ADDS, DELAY_BUFFER_OPS, SLOPE_LOOKUPS = \
    range(len(NAMES))


def is_multiply(constant: float) -> bool:
    """Whether a product with ``constant`` is a multiply (not a shift, negation or clear).

    A constant is a multiply unless ``|constant|`` is 0 or a power of two
    (``2**k`` for any integer ``k``, so 1, 0.5 and integer codes such as
    ``2**16`` are shifts). Used with float constants (beta, alpha) and
    integer codes alike.
    """
    a = abs(float(constant))
    if a == 0.0 or not math.isfinite(a):
        return False
    return math.frexp(a)[0] != 0.5


def zeros() -> np.ndarray:
    """A fresh counter array, int64, one slot per name in ``NAMES``."""
    return np.zeros(len(NAMES), dtype=np.int64)


@dataclass
class Counters:
    """Totals over a run: the event array plus per-bank SRAM words and saturations."""

    events: np.ndarray = field(default_factory=zeros)
    sram_reads: dict[str, int] = field(default_factory=dict)
    sram_writes: dict[str, int] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)

    def add(self, other: "Counters") -> None:
        self.events += other.events
        for mine, theirs in ((self.sram_reads, other.sram_reads),
                             (self.sram_writes, other.sram_writes),
                             (self.saturations, other.saturations)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    def __getitem__(self, name: str) -> int:
        if name == "update_multiplies":
            return update_multiplies(self)
        return int(self.events[INDEX[name]])

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {n: int(v) for n, v in zip(NAMES, self.events)}
        d["learning_macs"] = d["eligibility_macs"] + d["signal_macs"]
        d["update_multiplies"] = update_multiplies(d)
        d["sram_reads"] = dict(self.sram_reads)
        d["sram_writes"] = dict(self.sram_writes)
        d["saturations"] = dict(self.saturations)
        return d


def update_multiplies(c) -> int:
    """Multiplies at the update width: ``multiplies`` less the membrane, trace and signal ones.

    ``c``: anything indexable by counter name (``Counters``, a dict).
    """
    return (c["multiplies"] - c["membrane_multiplies"] - c["trace_multiplies"]
            - c["signal_multiplies"])
