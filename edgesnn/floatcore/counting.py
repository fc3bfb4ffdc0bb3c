"""The numpy engine's event counts, as three constant vectors and the kernel's synops.

``reference.FloatEngine`` counts forward work as done and learning work dense, so apart
from the synaptic accumulates (active inputs times fan-out, counted by the kernel)
every count of a sample is a constant per step, per learned window step and per
applied update. ``rates(engine)`` gives those three ``counters.NAMES``-indexed int64
vectors from the numpy engine's own helpers (``_traces_per_step``,
``_decay_multiplies``, ``_signal_multiplies``, ``_factor_multiplies``), following
``FloatEngine._run``, ``_window_grads`` and ``_apply`` term by term; ``events`` adds
them up for one sample.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgesnn import counters as C


class Rates(NamedTuple):
    """Counts per step, per learned window step and per applied update (int64 vectors)."""

    step: np.ndarray
    window: np.ndarray
    apply: np.ndarray


def rates(eng) -> Rates:
    """The three count vectors of a ``FloatEngine`` (or subclass) ``eng``."""
    spec = eng.spec
    ln = spec.learning
    step = C.zeros()
    step[C.NEURON_UPDATES] = sum(layer.size for layer in spec.layers)
    step[C.TRACE_UPDATES] = eng._traces_per_step()
    mem, tr = eng._membrane_muls, eng._trace_muls
    step[C.MULTIPLIES] = mem + tr
    step[C.MEMBRANE_MULTIPLIES] = mem
    step[C.TRACE_MULTIPLIES] = tr

    win = C.zeros()
    n_last, classes = spec.hidden[-1].size, spec.classes
    win[C.ELIGIBILITY_MACS] += classes * (n_last + 1)
    win[C.MULTIPLIES] += classes * n_last
    app = C.zeros()
    for i in range(len(spec.learning_hidden)):
        layer = spec.hidden[i]
        n = layer.size
        if ln.signal == "tess":
            macs = eng.tess[i].work[0]
            win[C.SIGNAL_MACS] += macs
            win[C.LOCAL_SIGNAL_MACS] += macs
        elif ln.signal == "dfa" or i == len(spec.hidden) - 1:
            win[C.SIGNAL_MACS] += classes * n
        else:
            win[C.SIGNAL_MACS] += spec.hidden[i + 1].size * n
        sm = eng._signal_multiplies(i)
        win[C.MULTIPLIES] += sm
        win[C.SIGNAL_MULTIPLIES] += sm
        synapses = n * (spec.fan_in(i) + (n if layer.recurrent else 0))
        win[C.ELIGIBILITY_MACS] += 2 * synapses + 3 * n
        win[C.MULTIPLIES] += synapses + eng._factor_multiplies(n)
        app[C.WEIGHT_WRITES] += synapses + n
    app[C.WEIGHT_WRITES] += classes * n_last + classes
    return Rates(step, win, app)


def events(r: Rates, T: int, window: int, learn: bool, per_sample: bool,
           synops: int) -> np.ndarray:
    """One sample's ``counters.NAMES``-indexed int64 events: ``T`` steps, and when
    learning ``window`` window steps and their applied updates (one per window step, or
    one per sample)."""
    ev = r.step * T
    if learn:
        ev = ev + r.window * window + r.apply * (1 if per_sample else window)
    ev = ev.astype(np.int64)
    ev[C.SYNOPS] += synops
    return ev
