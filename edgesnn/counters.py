"""Counter names and containers shared by both engines.

Both engines count the same events so that reports compare like with like
(DESIGN.md, "Counting contract"). Names match ``cost.OpCounts`` so that
counted and analytic figures sit side by side:

* ``synops``: synaptic accumulates, one per active input per fan-out synapse;
* ``neuron_updates``: leak-integrate-fire (or readout) updates;
* ``trace_updates``: one per trace element per step;
* ``eligibility_macs``: MACs of weight and bias updates (factor multiplies
  included);
* ``signal_macs``: MACs computing learning signals;
* ``weight_writes``: parameters written;
* ``lut_lookups``, ``lfsr_draws``: table reads and 32-bit LFSR draws (fixed
  engine: one per stochastic rounding, and the feedback signs of a
  regenerated DFA matrix);
* ``rows_skipped``: neuron rows whose learning factors were both zero, so no
  synapse of the row was touched (the event-driven saving).

Counters live in one int64 array so a numba kernel can fill them; ``Counters``
is the readable Python view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NAMES = ("synops", "neuron_updates", "trace_updates", "eligibility_macs", "signal_macs",
         "weight_writes", "lut_lookups", "lfsr_draws", "rows_skipped")
INDEX = {n: i for i, n in enumerate(NAMES)}
SYNOPS, NEURON_UPDATES, TRACE_UPDATES, ELIGIBILITY_MACS, SIGNAL_MACS, WEIGHT_WRITES, \
    LUT_LOOKUPS, LFSR_DRAWS, ROWS_SKIPPED = range(len(NAMES))


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
        return int(self.events[INDEX[name]])

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {n: int(v) for n, v in zip(NAMES, self.events)}
        d["learning_macs"] = d["eligibility_macs"] + d["signal_macs"]
        d["sram_reads"] = dict(self.sram_reads)
        d["sram_writes"] = dict(self.sram_writes)
        d["saturations"] = dict(self.saturations)
        return d
