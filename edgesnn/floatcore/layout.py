"""The float twin's argument tuples and the row indices into their arrays.

The kernel (:mod:`edgesnn.floatcore.kernel`) takes three NamedTuples:

* ``Net``: constants of the spec (sizes, offsets, decays, surrogate, signal, TESS
  pooling and basis); never written.
* ``Params``: the learnable float64 arrays. The spiking layers' matrices are
  input-major (``W[l] (n_in, n)``, ``Wr[l] (n, n)``: an active input reads one contiguous
  row), the rest as in ``params.NetParams`` (``b[l] (n,)``, ``Wo (C, n_last)``, ``bo (C,)``,
  ``B[l] (C, n)``); a layer without a tensor holds an empty ``(0, 0)`` array so every
  tuple is homogeneous. The engine's ``params`` are views of these arrays (the
  matrices transposed): the kernel updates them in place.
* ``Buffers``: per-sample work arrays, allocated once per engine and cleared at the
  start of each sample.

Neuron state of all layers sits side by side in the rows ``R_*`` of ``Buffers.nrn``
(layer ``l`` from column ``Net.lay[l, LC_NOFF]``, the readout last); inputs of every
layer in the rows ``R_Q`` (presynaptic trace) and ``R_X`` (this step's input) of
``Buffers.inp`` (layer ``l`` from column ``Net.lay[l, LC_IOFF]``). All values are float64
in the units of the numpy engine (membrane potentials in threshold units of the spec,
traces in spikes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# columns of Net.lay, one row per layer (the readout last)
LC_NIN, LC_N, LC_REC, LC_NOFF, LC_IOFF = range(5)
N_COLS = 5
# rows of Buffers.nrn: potential after reset, synaptic current (bias apart), recurrent
# current, spikes s[t], spikes s[t-1], psi, post trace h[t], h[t-1], recurrent pre trace
# q_rec, learning signal g (the readout's: its error e), factors a = g*alpha_post*h_prev,
# c = g*alpha_pre*psi, g*psi, per-sample bias accumulators
(R_U, R_I, R_IR, R_S, R_SP, R_PSI, R_H, R_HP, R_QR, R_G, R_A, R_C, R_GP, R_DB) = range(14)
N_ROWS = 14
# rows of Buffers.inp
R_Q, R_X = range(2)
# rows of Buffers.scr (int64 index lists): active feed-forward inputs, active recurrent ones
S_FF, S_REC = range(2)
# rows of Buffers.tsc (TESS scratch, float64): latent (then its gradient), local logits,
# local error
T_LAT, T_Z, T_E = range(3)
# columns of Net.tess_lay (one row per spiking layer): groups D, first group row of
# tess_grp, first element of the layer's basis in tess_basis
TL_D, TL_GOFF, TL_BOFF = range(3)
# rows of Buffers.lzi / lzr (deferred updates, one column per input of a matrix): the
# input's presynaptic trace since its last synchronised step, and its input at that step
LZ_Q, LZ_X = range(2)
# columns of Net.lazy: the feed-forward matrix, the recurrent one
LZ_W, LZ_WR = range(2)
# signals
SIG_BP, SIG_DFA, SIG_TESS = range(3)
# surrogates
PSI_RATIONAL, PSI_TRIANGLE = range(2)


class Net(NamedTuple):
    """Constants of one engine (from the spec)."""

    T: int
    window: int
    L: int                    # spiking layers; index L is the readout
    C: int
    lay: np.ndarray           # (L+1, N_COLS) int64 sizes and offsets
    beta: np.ndarray          # (L+1,) membrane decay per layer (the readout last)
    theta: np.ndarray         # (L,) thresholds
    hard: np.ndarray          # (L,) int64, 1 for a hard reset
    lambda_pre: float
    lambda_post: float
    alpha_pre: float
    alpha_post: float
    out_decay: float          # the readout's presynaptic trace decay (trace_decay)
    psi_form: int             # PSI_RATIONAL: 1/(coef|d|+1)^2; PSI_TRIANGLE: coef*max(0, 1-|d|)
    psi_coef: float
    signal: int               # SIG_BP, SIG_DFA or SIG_TESS
    per_sample: int           # 1: updates accumulate over the window, applied at the end
    learn_from: int           # first learning layer: 0, or L when the hidden layers are frozen
    temperature: float        # TESS local logits z / temperature
    tess_lay: np.ndarray      # (L, 3) int64 per spiking layer (zero rows without TESS)
    tess_grp: np.ndarray      # (groups, 2) int64 [start, end) of every pooling group
    tess_inv: np.ndarray      # (groups,) float64 1/size of every group
    tess_basis: np.ndarray    # float64 basis signs/D, (C, D) per layer, C order, layer by layer
    lazy: np.ndarray          # (L, 2) int64: 1 where a matrix's per-step updates are deferred
                              # (edgesnn.floatcore.lazy; columns LZ_W, LZ_WR)


class Params(NamedTuple):
    """The learnable arrays (float64, output-major; the engine's ``params`` themselves)."""

    W: tuple                  # L x (n_in, n), input-major
    Wr: tuple                 # L x (n, n) input-major (row k: presynaptic neuron k), or (0, 0)
    b: tuple                  # L x (n,)
    Wo: np.ndarray            # (C, n_last)
    bo: np.ndarray            # (C,)
    B: tuple                  # L x (C, n) DFA feedback, or (0, 0)


class Buffers(NamedTuple):
    """Per-sample work arrays (allocated once per engine)."""

    nrn: np.ndarray           # (N_ROWS, total neurons), readout last
    inp: np.ndarray           # (2, total inputs): rows R_Q, R_X
    scr: np.ndarray           # (2, widest input) int64 active-input lists
    tsc: np.ndarray           # (3, max(C, D)) TESS scratch
    dW: tuple                 # per-sample accumulators, shapes of Params.W (input-major, or
                              # (0, 0))
    dWr: tuple                # ... of Params.Wr
    dWo: np.ndarray           # ... of Params.Wo (or (0, 0))
    scores: np.ndarray        # (C,) readout potential summed over the window
    u_win: np.ndarray         # (window, C) readout potential at each window step
    spikes: np.ndarray        # (L,) int64 spikes per layer over the sample
    synops: np.ndarray        # (1,) int64 synaptic accumulates (active inputs x fan-out)
    pc: np.ndarray            # (window+1, total neurons): prefix sums of c over window steps
    aw: np.ndarray            # (window, total neurons): a of each window step
    lzi: np.ndarray           # (2, total inputs): LZ_Q, LZ_X of every feed-forward input
    lzi_t: np.ndarray         # (total inputs,) int64: the step each was last synchronised at
    lzr: np.ndarray           # (2, total neurons): the same for the recurrent inputs s[t-1]
    lzr_t: np.ndarray         # (total neurons,) int64
