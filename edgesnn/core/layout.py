"""The fixed engine's argument tuples and the indices into their flat arrays.

The kernel (:mod:`edgesnn.core.kernel`) takes four NamedTuples of arrays and scalars:

* ``Net``: constants from the plan (sizes, offsets, formats, decay codes, LUTs,
  tensor -> bank map); never written.
* ``State``: what persists across samples and goes into checkpoints: every weight and
  bias code, stored DFA feedback, feedback LFSR seeds, the rounding LFSR state.
* ``Buffers``: per-sample work arrays and the counters, allocated once per engine and
  cleared at the start of each sample.
* ``Record``: per-step state for ``trace``; written only when recording (empty arrays
  otherwise).

Layers are concatenated in flat int64 arrays; row ``l`` of ``Net.lay`` holds layer
``l``'s sizes, offsets, constants and tensor ids (columns ``LC_*``), row ``L``
(= ``Net.L``, the number of spiking layers) the readout's. Weights are input-major:
element ``(j, m)`` of layer ``l`` is ``State.W[w_off + j*n + m]`` with
``w_off = lay[l, LC_WOFF]``, ``n = lay[l, LC_N]``. Neuron state lives in the rows
``R_*`` of ``Buffers.nrn`` (all layers side by side, offset ``LC_NOFF``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .arith import Formats

# tensor kinds (columns LC_TID + K_* of net.lay); -1 where a layer has no such tensor
K_W, K_WR, K_B, K_U, K_I, K_S, K_Q, K_QR, K_H, K_PSI, K_G, K_FB, K_DW, K_DWR, K_DB, K_A, K_C = \
    range(17)
# TESS: pooled activity (then the latent gradient's shares), local logits, local error, basis
K_LAT, K_ZL, K_EL, K_BAS = range(17, 21)
# delays (core.delays): delay codes, spike history, accumulator ring, eligibility, its
# per-sample accumulator
K_D, K_HIST, K_RING, K_EPS, K_DD = range(21, 26)
N_KINDS = 26
# columns of Net.lay, one row per layer (the readout last)
(LC_NIN, LC_N, LC_REC, LC_WOFF, LC_WROFF, LC_BOFF, LC_NOFF, LC_IOFF, LC_FBOFF, LC_DWOFF,
 LC_DWROFF, LC_DBOFF) = range(12)
LC_NU = 12        # 5 columns: membrane decay code, shifts of u*code, i, b, and the rounding shift
LC_TQ = 17        # 2 columns: presynaptic trace decay (code, k)
LC_TH = 19        # 2 columns: postsynaptic trace decay (code, k)
LC_THETA = 21     # threshold code (membrane format)
LC_HARD = 22      # 1 for a hard reset
LC_TID = 23       # N_KINDS columns: tensor ids (-1 where a layer has no such tensor)
N_COLS = LC_TID + N_KINDS
# rows of Buffers.nrn (one column per neuron, all layers, readout last), .inp and .scr
R_U, R_I, R_S, R_SP, R_PSI, R_H, R_QR, R_G, R_A, R_C, R_GP = range(11)
R_Q, R_XB = range(2)
# rows of Buffers.scr: an index list, accumulators; TESS latents, local logits, local error
R_ACT, R_TMP, R_LAT, R_ZL, R_EL = range(5)
SCR_ROWS = 5
# columns of Net.tess_lay (one row per spiking layer): groups D, first row of tess_grp,
# first sign of tess_sgn, the logits' constant 1/(D*temperature) as code / 2**k
TL_D, TL_GOFF, TL_SOFF, TL_ZC, TL_ZK = range(5)
TL_COLS = 5
# columns of Net.tess_grp (one row per pooling group): [start, end) of its neurons,
# 1/size and 1/(D*temperature*size) as code / 2**k
G_A, G_B, G_RC, G_RK, G_WC, G_WK = range(6)
G_COLS = 6
# rows of Buffers.cmp: list 0's c and a, list 1's c and a (= 0), rounded updates
CMP_DELTA = 4
# columns of Net.dly (one row per layer, the readout's all zero): how a layer's inputs are
# delayed and masked (core.delays). DL_MODE: DL_NONE, DL_AXONAL or DL_SYNAPTIC; DL_SIMPLE:
# 1 when the layer's feed-forward synapses go through the per-synapse path (sparse or
# synaptic); DL_M max_delay, DL_H history rows, DL_R taps each side; offsets into State.d,
# Buffers.hist, Buffers.eps (= Buffers.dd), Buffers.ring, Buffers.qs (= Buffers.xs), Net.slope
# and the CSR tables; the eligibility's decay (code, k); the delay shift less the weights';
# DL_FI the delay format's fractional codes 2**f; DL_ND the delays of the layer; DL_COL 1
# when a learning axonal layer keeps a column copy of its input weights (Buffers.wcol from
# DL_COFF); DL_HW the 64-bit words of an input's history register (ceil(H / 64))
(DL_MODE, DL_SIMPLE, DL_M, DL_H, DL_R, DL_DOFF, DL_HOFF, DL_EOFF, DL_ROFF, DL_QOFF, DL_SOFF,
 DL_EC, DL_EK, DL_SHIFT, DL_PIN, DL_POUT, DL_FI, DL_ND, DL_COL, DL_COFF, DL_HW) = range(21)
DL_COLS = 21
DL_NONE, DL_AXONAL, DL_SYNAPTIC = range(3)
#: lanes of an AVX2 register of int32: visit_rows32's first pass runs over whole vectors
#: (the factors are zero-padded to a multiple of PAD and PAD words more are buffered)
PAD = 8
#: ``Net.per_sample`` of per-sample updates with residual carry (spec ``residual = "carry"``)
CARRY = 2


def largest_word_request(width: int) -> int:
    """The most consecutive rounding words a kernel asks the word buffer for when no layer
    and no input vector is wider than ``width``: ``round_vector``, ``decay_add`` and
    ``visit_rows`` ask for one vector or row list (``rng.ensure``), ``visit_rows32`` needs
    a chunk to hold its widest row list and ``PAD`` words more. The engine checks at build
    and at load that a refill leaves this many (``rng.check_state``): otherwise a chunk's
    scan takes no row and ``visit_rows32`` never returns."""
    return int(width) + PAD


class Net(NamedTuple):
    """Constants of one engine. Few arrays: numba reference-counts every array of a
    tuple at each call, so per-layer constants share one table (``lay``)."""

    T: int
    window: int
    L: int                    # spiking layers; index L is the readout
    C: int
    lay: np.ndarray           # (L+1, N_COLS) per-layer sizes, offsets, constants, tensor ids
    fmt: Formats              # the 7 formats by kind (arith.Fmt each)
    psi_lut: np.ndarray       # psi codes in the trace format
    psi_sh: int
    psi_half: int
    exp_lut: np.ndarray       # exp(-d) codes, unsigned Q1.(exp_bits-1)
    exp_sh: int
    exp_half: int
    alpha_post: int           # Q.16 codes
    alpha_pre: int
    lr: int                   # learning rate 2**-lr
    dfa: int
    regen: int
    per_sample: int           # 0 per-step; per-sample: 1 (accumulators cleared) or CARRY
    fb_mag: int               # DFA entry magnitude in weight codes
    acc_lo: int               # MAC accumulator range (device accumulator_bits)
    acc_hi: int
    sig_exact: int            # 1: no learning-signal sum can reach the accumulator's range
    syn_rows: int             # rows accumulate_rows sums without a clamp (bounds.gates) ...
    syn_rows32: int           # ... and in int32 lanes
    factor_det: int           # 1: factors runs factor_loop_det (bounds.gates)
    tid_input: int
    tens: np.ndarray          # (2, n_tensors): bank index (-1: a register), elements per
                              # word (> 0) or -(words per element)
    decay_mul: int            # 1: the device decays by multiplying (0: shift, x - (x >> k))
    learn_from: int           # first layer that learns: 0, or L when the hidden layers are
                              # frozen (the readout alone learns; no psi, traces or updates
                              # below it)
    tess: int                 # 1: TESS local signals (signal.signal_tess)
    tess_gen: int             # 1: the basis is generated (phase accumulators), 0: stored
    tess_lay: np.ndarray      # (L, TL_COLS) per spiking layer (zero rows without TESS)
    tess_grp: np.ndarray      # (groups, G_COLS) every layer's pooling groups, layer by layer
    tess_sgn: np.ndarray      # int8 basis signs (C, D) per layer, C order, layer by layer
    dly: np.ndarray           # (L+1, DL_COLS) delays and masks per layer (all 0: none)
    fmt_d: Fmt                # the device's delay format
    fmt_e: Fmt                # the delay eligibility's format (device format 'eligibility')
    slope: np.ndarray         # Gaussian slope table codes (fmt_e), (2R+1, 2**f) per layer
    in_ptr: np.ndarray        # CSR input -> kept neurons (per layer: n_in + 1 pointers into
                              # the concatenated lists; a layer's first is DL_PIN's) ...
    in_idx: np.ndarray        # ... and the neurons (numbered within the layer)
    out_ptr: np.ndarray       # CSR neuron -> kept inputs (per layer: n + 1 pointers) ...
    out_idx: np.ndarray       # ... (2, kept): row 0 the inputs, row 1 the synapses' numbers:
                              # a kept synapse's place in the layer's input-major list
                              # (in_ptr[pin + j] - in_ptr[pin] + k), the index of its
                              # per-synapse state (delay, eligibility, traces)


class State(NamedTuple):
    """Persistent integer state (checkpointed)."""

    W: np.ndarray             # every weight code, layer by layer, input-major
    b: np.ndarray             # every bias code
    B: np.ndarray             # stored DFA feedback codes (C, n) per layer, or empty
    fb_seed: np.ndarray       # (L+1,) feedback LFSR start state per layer
    rng: np.ndarray           # (1,) rounding LFSR state
    d: np.ndarray             # delay codes (fmt_d), per delayed layer: (n_in,) axonal,
                              # one per kept synapse, input-major, synaptic (Net.out_idx[1])


class Buffers(NamedTuple):
    """Per-sample work arrays and counters (allocated once per engine)."""

    nrn: np.ndarray           # (11, total neurons): rows R_U ... R_GP; the readout's R_G is e
    act: np.ndarray           # (2, total neurons): per layer, neurons with a or c != 0 (row 0)
                              # and with c != 0 (row 1)
    cnt: np.ndarray           # (L+1, 3): lengths of act[0], act[1], count of a != 0
    inp: np.ndarray           # (2, total inputs): rows R_Q (trace), R_XB (spikes of the step)
    scr: np.ndarray           # (SCR_ROWS, max width) scratch: R_ACT index list, R_TMP
                              # accumulators, TESS rows R_LAT, R_ZL, R_EL
    wtab: np.ndarray          # (4, max elements per word) scratch of word_table
    cmp: np.ndarray           # (5, max width): factors of the row lists, compacted (CMP_*)
    c32: np.ndarray           # (4, max width) int32: c, a << f_trace, list 1's c, updates
    vis: np.ndarray           # (4, max width): rows of visit_rows32's chunk and their word offsets
    acc32: np.ndarray         # (max width,) int32 zeros: unclamped sums of weight rows
    dW: np.ndarray            # per-sample update accumulators (empty if per-step)
    db: np.ndarray
    scores: np.ndarray        # (C,) readout potential summed over the window
    u_win: np.ndarray         # (window, C) readout potential at each window step
    spikes: np.ndarray        # (L,) spikes per layer
    ev: np.ndarray            # counters.NAMES-indexed events
    sram: np.ndarray          # (2, banks) words read (row 0) and written (row 1)
    sats: np.ndarray          # overflow events per tensor id
    hist: np.ndarray          # uint64 spike history registers, (n_in, DL_HW) per delayed
                              # layer: bit k of input j's register (bit k % 64 of its word
                              # k // 64) is its spike of step t - k; each step shifts it up
    eps: np.ndarray           # delay eligibility (fmt_e), Net.dly's DL_ND per layer
    dd: np.ndarray            # per-sample delay-update accumulators (update format)
    ring: np.ndarray          # synaptic delays: (M + 1, n) input accumulators per layer
    qs: np.ndarray            # synaptic delays: per-synapse presynaptic traces, one per kept
                              # synapse (Net.out_idx[1] numbers them; so are State.d, eps and dd)
    xs: np.ndarray            # ... and the delayed spikes of this step
    gx: np.ndarray            # (max width,) scratch: an axonal layer's (g psi) W
    gx32: np.ndarray          # (max width,) int32 scratch of the same sums (when they fit)
    wcol: np.ndarray          # learning axonal layers: their input weights again, neuron-major
                              # (n, n_in) (the weights' dtype): (g psi) W as whole-row sums.
                              # The simulator's copy, not the device's: the kernels write it
                              # with every per-step weight write
    colok: np.ndarray         # (1,): 1 while wcol equals State.W; whatever else writes State.W
                              # (per-sample updates, load_state) clears it, and the next
                              # learned sample copies W again (delays.refresh_columns)


class Record(NamedTuple):
    """Per-step state for ``trace`` (codes): ``(T, total neurons)`` / ``(T, total inputs)``."""

    v: np.ndarray
    u: np.ndarray
    s: np.ndarray
    psi: np.ndarray
    h: np.ndarray
    q_rec: np.ndarray
    g: np.ndarray
    q: np.ndarray
    i: np.ndarray             # synaptic current before the neuron update (current codes)
