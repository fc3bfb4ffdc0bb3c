"""What both engines share: parameters, sample results, input checks, DFA feedback.

The float engine (:mod:`edgesnn.reference`) and the fixed engine (:mod:`edgesnn.core`)
both import this module; the fixed engine never imports the float one.

* ``NetParams``: float64 learnable parameters, output-major (``W[i] (N_out, N_in)``).
* ``init_params(spec, seed)``: the seeded initial parameters both engines start from.
* ``connectivity_mask`` / ``initial_delays``: a layer's fixed sparse mask and initial delays,
  each from its own generator seeded from the run seed (other random streams unchanged).
* ``dfa_scale`` / ``dfa_matrix``: the DFA feedback magnitude and the ``(C, N)`` sign matrix
  drawn from the LFSR (the fixed engine regenerates the same signs on chip).
* ``SampleResult``: one sample's outcome (prediction, scores, loss, spikes, events).
* ``check_sample(spec, x)``: validate one input ``x (T, N_in)`` against a spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgesnn.errors import DataError
from edgesnn.fixed import lfsr_fill, lfsr_seed
from edgesnn.spec import NetworkSpec


@dataclass
class NetParams:
    """Learnable parameters (float64, output-major as in S-TLLR: ``W[i] (N_out, N_in)``).

    ``W_rec[i]`` is None for a feed-forward layer. ``B_fb[i] (C, N_i)`` are the
    DFA feedback matrices (None under BP). The readout is ``W_out (C, N_last)``,
    ``b_out (C,)``. ``d[i]`` are layer ``i``'s learned delays in steps (axonal ``(N_in,)``,
    synaptic ``(N_out, N_in)``; None without delays), ``M[i] (N_out, N_in)`` its fixed 0/1
    connectivity mask (None when dense); ``d``/``M`` themselves are None for a network
    without delays/masks. Delays are state (checkpointed); masks follow from the seed.
    """

    W: list[np.ndarray]
    W_rec: list[np.ndarray | None]
    b: list[np.ndarray]
    W_out: np.ndarray
    b_out: np.ndarray
    B_fb: list[np.ndarray] | None = None
    d: list[np.ndarray | None] | None = None
    M: list[np.ndarray | None] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by its plan tensor name (``L0.W``, ``out.W``, ...)."""
        d: dict[str, np.ndarray] = {}
        for i, (w, wr, b) in enumerate(zip(self.W, self.W_rec, self.b)):
            d[f"L{i}.W"] = w
            if wr is not None:
                d[f"L{i}.W_rec"] = wr
            d[f"L{i}.b"] = b
        d["out.W"], d["out.b"] = self.W_out, self.b_out
        for i, B in enumerate(self.B_fb or []):
            d[f"L{i}.B"] = B
        for i, delays in enumerate(self.d or []):
            if delays is not None:
                d[f"L{i}.d"] = delays
        return d

    def copy(self) -> "NetParams":
        cp = lambda a: None if a is None else a.copy()  # noqa: E731
        cps = lambda xs: None if xs is None else [cp(a) for a in xs]  # noqa: E731
        return NetParams([w.copy() for w in self.W], [cp(w) for w in self.W_rec],
                         [b.copy() for b in self.b], self.W_out.copy(), self.b_out.copy(),
                         None if self.B_fb is None else [B.copy() for B in self.B_fb],
                         cps(self.d), cps(self.M))


def dfa_scale(n_hidden: int) -> float:
    """DFA feedback magnitude: the power of two nearest ``1/sqrt(N)`` (a shift on chip)."""
    return 2.0 ** -round(math.log2(math.sqrt(n_hidden)))


def dfa_matrix(seed: int, layer: int, classes: int, n: int) -> np.ndarray:
    """``(C, N)`` matrix of ``±dfa_scale(N)``: one LFSR bit per entry, C order.

    The LFSR starts at ``lfsr_seed(seed * 1000 + layer)``; the fixed engine
    regenerates the same signs on chip from the same state.
    """
    bits, _ = lfsr_fill(lfsr_seed(seed * 1000 + layer), 1, classes * n)
    return (2.0 * bits.reshape(classes, n) - 1.0) * dfa_scale(n)


def init_params(spec: NetworkSpec, seed: int) -> NetParams:
    """Seeded initial parameters.

    Feed-forward weights uniform in ``±init_scale*sqrt(3/N_in)`` (variance
    ``init_scale²/N_in``, ``init_scale`` from the spec's learning table);
    recurrent weights half that range; readout ``±sqrt(3/N_last)``; biases zero.
    """
    rng = np.random.default_rng(seed)
    init_scale = spec.learning.init_scale
    W, W_rec, b = [], [], []
    for i, layer in enumerate(spec.hidden):
        n_in, n = spec.fan_in(i), layer.size
        a = init_scale * math.sqrt(3.0 / n_in)
        W.append(rng.uniform(-a, a, (n, n_in)))
        W_rec.append(rng.uniform(-a / 2, a / 2, (n, n)) if layer.recurrent else None)
        b.append(np.zeros(n))
    n_last, classes = spec.hidden[-1].size, spec.classes
    a = math.sqrt(3.0 / n_last)
    W_out = rng.uniform(-a, a, (classes, n_last))
    B_fb = None
    if spec.learning.signal == "dfa":
        B_fb = [dfa_matrix(seed, i, classes, layer.size) for i, layer in enumerate(spec.hidden)]
    d = M = None
    if any(layer.delayed for layer in spec.hidden):
        d = [initial_delays(spec, i, seed) if layer.delayed else None
             for i, layer in enumerate(spec.hidden)]
    if any(layer.sparse for layer in spec.hidden):
        M = [connectivity_mask(spec, i, seed) if layer.sparse else None
             for i, layer in enumerate(spec.hidden)]
        for i, m in enumerate(M):
            if m is not None:     # the kept weights get the range of their real fan-in
                W[i] *= m * math.sqrt(spec.fan_in(i) / m[0].sum())
    return NetParams(W, W_rec, b, W_out, np.zeros(classes), B_fb, d, M)


#: first words of the seed sequences of the delay streams (apart from every other stream)
MASK_STREAM, DELAY_STREAM = 16_001, 16_002


def connectivity_mask(spec: NetworkSpec, i: int, seed: int) -> np.ndarray:
    """Layer ``i``'s ``(N_out, N_in)`` 0/1 float mask: every neuron keeps the same number
    of inputs (``NetworkSpec.kept_inputs``), chosen without replacement, row by row, by a
    generator of its own (``SeedSequence([seed, MASK_STREAM, i])``)."""
    n_in, n = spec.fan_in(i), spec.hidden[i].size
    k = spec.kept_inputs(i)
    rng = np.random.default_rng(np.random.SeedSequence([seed, MASK_STREAM, i]))
    mask = np.zeros((n, n_in))
    for row in mask:
        row[rng.choice(n_in, size=k, replace=False)] = 1.0
    return mask


def initial_delays(spec: NetworkSpec, i: int, seed: int) -> np.ndarray:
    """Layer ``i``'s initial delays in steps: axonal ``(N_in,)``, synaptic ``(N_out, N_in)``;
    zero, uniform in ``[0, max_delay]`` (generator ``SeedSequence([seed, DELAY_STREAM, i])``)
    or the spec's values (row-major for synaptic)."""
    layer = spec.hidden[i]
    shape = (spec.fan_in(i),) if layer.delays == "axonal" else (layer.size, spec.fan_in(i))
    if isinstance(layer.delay_init, tuple):
        return np.array(layer.delay_init, dtype=np.float64).reshape(shape)
    if layer.delay_init == "uniform":
        rng = np.random.default_rng(np.random.SeedSequence([seed, DELAY_STREAM, i]))
        return rng.uniform(0.0, layer.max_delay, shape)
    return np.zeros(shape)


class SampleResult(NamedTuple):
    """One sample's outcome: ``scores (C,)`` = readout potential summed over the window."""

    prediction: int
    scores: np.ndarray
    loss: float
    spikes: np.ndarray        # (n_layers,) hidden spikes per layer over the sample
    events: np.ndarray        # counters.NAMES-indexed int64 event counts


def check_sample(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """Validate ``x (T, N_in)`` against the spec; DataError with one line otherwise."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != spec.inputs:
        raise DataError(f"a sample of shape {x.shape} does not match spec '{spec.name}': "
                        f"it expects (time steps, {spec.inputs} inputs)")
    if x.shape[0] != spec.time_steps:
        raise DataError(f"a sample has {x.shape[0]} time steps, spec '{spec.name}' expects "
                        f"network.time_steps = {spec.time_steps}")
    if not np.all(np.isfinite(x)):
        raise DataError("a sample contains NaN or infinite values")
    return x.astype(np.float64)
