"""numba kernels of the fixed engine: one call runs one sample, all steps, all layers.

Entry point: ``run_sample_kernel(net, st, buf, x, label, learn, record, rec)``.

* ``net`` (:class:`Net`): constants from the plan (sizes, offsets, formats,
  decay codes, LUTs, tensor -> bank map); never written.
* ``st`` (:class:`State`): what persists across samples and goes into
  checkpoints: every weight and bias code, stored DFA feedback, feedback
  LFSR seeds, the rounding LFSR state.
* ``buf`` (:class:`Buffers`): per-sample work arrays and the counters,
  allocated once per engine and cleared at the start of each sample.
* ``rec`` (:class:`Record`): per-step state for ``trace``; written only when
  ``record`` is true (empty arrays otherwise).

Layers are concatenated in flat int64 arrays; row ``l`` of ``net.lay`` holds
layer ``l``'s sizes, offsets, constants and tensor ids (columns ``LC_*``),
row ``L`` (= ``net.L``, the number of spiking layers) the readout's. Weights
are input-major: element ``(j, m)`` of layer ``l`` is ``st.W[w_off + j*n + m]``
with ``w_off = lay[l, LC_WOFF]``, ``n = lay[l, LC_N]``. Neuron state lives in
the rows ``R_*`` of ``buf.nrn`` (all layers side by side, offset ``LC_NOFF``).

Functions that run per element take scalars, tuples or a few arrays only:
numba reference-counts every array of a tuple argument at each call.

Arithmetic follows docs/fixed_point.md, operation by operation; every result
stored into a format goes through ``fixed.shift_round`` / ``fixed.overflow``
(or the same written-out integer logic) and its overflow is counted per
tensor. All values stay below 2**63 by the bounds the engine checks at build
(:mod:`edgesnn.core.bounds`, which also derives the static fast-path gates in ``Net``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numba import types as nt
from numba.extending import intrinsic, overload

from edgesnn.counters import (ELIGIBILITY_MACS, LFSR_DRAWS, LUT_LOOKUPS, MEMBRANE_MULTIPLIES,
                              MULTIPLIES, NEURON_UPDATES, ROWS_SKIPPED, SIGNAL_MACS,
                              SIGNAL_MULTIPLIES, SYNOPS, TRACE_MULTIPLIES, TRACE_UPDATES,
                              WEIGHT_WRITES)
from edgesnn.fixed import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, SATURATE, STOCHASTIC, clamp,
                           wrap)

from .constants import ALPHA_FRAC, FR, HI, LO, NB, OV, RM, SG, leap_table
from .rng import FILL, POS, ensure, refill, take, words

#: 32-step LFSR leap tables (output bits and state) for the DFA feedback LFSR:
#: a compile-time constant of every kernel (no argument passing)
LEAP = leap_table(32)

# format kinds (rows of net.fmt)
F_W, F_B, F_U, F_I, F_T, F_S, F_UP = range(7)
# tensor kinds (columns LC_TID + K_* of net.lay); -1 where a layer has no such tensor
K_W, K_WR, K_B, K_U, K_I, K_S, K_Q, K_QR, K_H, K_PSI, K_G, K_FB, K_DW, K_DWR, K_DB, K_A, K_C = \
    range(17)
N_KINDS = 17
ONE_ALPHA = 1 << ALPHA_FRAC
#: lanes of an AVX2 register of int32: visit_rows32's first pass runs over whole vectors
#: (the factors are zero-padded to a multiple of PAD and PAD words more are buffered)
PAD = 8
#: offset that makes a floor shift a logical one (|values| < BIAS; a multiple of 2**32)
BIAS = np.int64(1) << 61
#: largest int32: what the int32 lanes may hold (the data-dependent gates of update_rows)
I32_MAX = (1 << 31) - 1


def largest_word_request(width: int) -> int:
    """The most consecutive rounding words a kernel asks the word buffer for when no layer
    and no input vector is wider than ``width``: ``round_vector``, ``decay_add`` and
    ``visit_rows`` ask for one vector or row list (``rng.ensure``), ``visit_rows32`` needs
    a chunk to hold its widest row list and ``PAD`` words more. The engine checks at build
    and at load that a refill leaves this many (``rng.check_state``): otherwise a chunk's
    scan takes no row and ``visit_rows32`` never returns."""
    return int(width) + PAD


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
R_ACT, R_TMP = range(2)
# rows of Buffers.cmp: list 0's c and a, list 1's c and a (= 0), rounded updates
CMP_DELTA = 4


class Net(NamedTuple):
    """Constants of one engine. Few arrays: numba reference-counts every array of a
    tuple at each call, so per-layer constants share one table (``lay``)."""

    T: int
    window: int
    L: int                    # spiking layers; index L is the readout
    C: int
    lay: np.ndarray           # (L+1, N_COLS) per-layer sizes, offsets, constants, tensor ids
    fmt: tuple                # 7 formats (rows F_*), each a tuple (FR, LO, HI, NB, SG, RM, OV)
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


class State(NamedTuple):
    """Persistent integer state (checkpointed)."""

    W: np.ndarray             # every weight code, layer by layer, input-major
    b: np.ndarray             # every bias code
    B: np.ndarray             # stored DFA feedback codes (C, n) per layer, or empty
    fb_seed: np.ndarray       # (L+1,) feedback LFSR start state per layer
    rng: np.ndarray           # (1,) rounding LFSR state


class Buffers(NamedTuple):
    """Per-sample work arrays and counters (allocated once per engine)."""

    nrn: np.ndarray           # (11, total neurons): rows R_U ... R_GP; the readout's R_G is e
    act: np.ndarray           # (2, total neurons): per layer, neurons with a or c != 0 (row 0)
                              # and with c != 0 (row 1)
    cnt: np.ndarray           # (L+1, 3): lengths of act[0], act[1], count of a != 0
    inp: np.ndarray           # (2, total inputs): rows R_Q (trace), R_XB (spikes of the step)
    scr: np.ndarray           # (2, max width) scratch: R_ACT index list, R_TMP accumulators
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


# --------------------------------------------------------------------------- small helpers
# Per-element helpers take scalars and small arrays only: passing the Net/State/
# Buffers tuples to a function costs a reference-count update per array inside.

@njit(cache=True, inline='always')
def draw32(state):
    """One 32-bit LFSR draw: ``(bits, new_state)``, equal to ``fixed.lfsr_bits(state, 32)``."""
    s = np.int64(state)
    e = (LEAP[0, s & 255] ^ LEAP[1, (s >> 8) & 255] ^ LEAP[2, (s >> 16) & 255]
         ^ LEAP[3, (s >> 24) & 255])
    return (e >> 32) & 0xFFFFFFFF, e & 0xFFFFFFFF


@njit(cache=True, inline='always')
def rnd(v, shift, mode, rng, p):
    """``v / 2**shift`` rounded by ``mode``: ``(value, read position, draws made)``.

    Deterministic modes are ``fixed.shift_round`` written branch-free (tested
    equal): floor ``x >> k``; nearest-even ``(x + 2**(k-1) - 1 + ((x >> k) & 1)) >> k``;
    nearest-away ``(x + 2**(k-1) - [x < 0]) >> k``. Stochastic rounding takes
    one 32-bit word (``rng.take``) at read position ``p``, exact value or not:
    ``floor((x + r) / 2**k)`` with ``r`` the word's top ``k`` bits; with
    ``shift > 32`` the bits below the top 32 discarded ones are floored first.
    ``shift <= 0`` is an exact left shift (no word). The caller keeps ``p`` in
    a local, stores it in ``rng[POS]`` when done and counts the draws.
    """
    x = np.int64(v)
    if shift <= 0:
        return x << (-shift), p, 0
    if mode == FLOOR:
        return x >> shift, p, 0
    half = np.int64(1) << (shift - 1)
    if mode == NEAREST_EVEN:
        return (x + (half - 1) + ((x >> shift) & 1)) >> shift, p, 0
    if mode == NEAREST_AWAY:
        return (x + half - (x >> 63 & 1)) >> shift, p, 0
    sh = shift
    if sh > 32:
        x = x >> (sh - 32)
        sh = 32
    r, p = take(rng, p)
    return (x + (r >> (32 - sh))) >> sh, p, 1


@njit(cache=True, inline='always')
def into(v, f):
    """Bring ``v`` into format row ``f`` (no rounding): ``(code, overflow flag)``.

    Saturate clamps to ``[lo, hi]``; wrap keeps the low bits (``fixed.wrap``):
    the logic of ``fixed.overflow``, written out so that it inlines.
    """
    if v < f[LO]:
        if f[OV] == SATURATE:
            return f[LO], np.int64(1)
        return wrap(v, f[NB], f[SG] != 0), np.int64(1)
    if v > f[HI]:
        if f[OV] == SATURATE:
            return f[HI], np.int64(1)
        return wrap(v, f[NB], f[SG] != 0), np.int64(1)
    return np.int64(v), np.int64(0)


@njit(cache=True, inline='always')
def to_fmt(v, shift, f, rng, p):
    """Round ``v`` by ``shift`` bits into format row ``f``: ``(code, overflow, position, draws)``."""
    r, p, d = rnd(v, shift, f[RM], rng, p)
    c, fl = into(r, f)
    return c, fl, p, d


@njit(cache=True, inline='always')
def rnd_det(x, shift, mode):
    """``rnd`` for the deterministic modes (no words): the same integer logic."""
    if shift <= 0:
        return x << (-shift)
    if mode == FLOOR:
        return x >> shift
    half = np.int64(1) << (shift - 1)
    if mode == NEAREST_EVEN:
        return (x + (half - 1) + ((x >> shift) & 1)) >> shift
    return (x + half - (x >> 63 & 1)) >> shift


@njit(cache=True)
def round_vector(v, off, count, shift, f, rng, p):
    """``v[off+j] = into(round(v[off+j] / 2**shift), f)`` for ``j < count``, in place.

    Returns ``(overflows, words drawn, read position)``. With saturation the
    loops are branch-free (SIMD); a stochastic format takes ``count``
    consecutive words (``rnd``'s rule, written out).
    """
    vr = v[off:off + count]
    sat = 0
    mode = f[RM]
    if f[OV] != SATURATE:
        draws = 0
        for j in range(count):
            c, fl, p, d = to_fmt(vr[j], shift, f, rng, p)
            draws += d
            vr[j] = c
            sat += fl
        return sat, draws, p
    lo = f[LO]
    hi = f[HI]
    if mode == STOCHASTIC and shift > 0:
        p = ensure(rng, p, count)
        w = words(rng)[p:p + count]
        pre = max(shift - 32, 0)
        k = min(shift, 32)
        for j in range(count):
            r = ((vr[j] >> pre) + (np.int64(w[j]) >> (32 - k))) >> k
            c = min(max(r, lo), hi)
            sat += np.int64(r != c)
            vr[j] = c
        return sat, count, p + count
    for j in range(count):
        r = rnd_det(vr[j], shift, mode)
        c = min(max(r, lo), hi)
        sat += np.int64(r != c)
        vr[j] = c
    return sat, 0, p


@njit(cache=True)
def decay_add(trace, src, off, count, qc, one_sh, qk, ft, rng, p):
    """``trace = decay(trace) + src * 2**one_sh`` over ``count`` elements from ``off``, into
    format ``ft``. Returns ``(overflows, words drawn, read position)``.
    """
    tr = trace[off:off + count]
    sr = src[off:off + count]
    for j in range(count):
        tr[j] = tr[j] * qc + (sr[j] << one_sh)
    return round_vector(trace, off, count, qk, ft, rng, p)


@njit(cache=True)
def vec_words(epw, count):
    """Words of a word-aligned vector of ``count`` elements (``epw`` elements per word)."""
    if epw > 0:
        return (count + epw - 1) // epw
    return count * (-epw)


@njit(cache=True)
def range_words(epw, start, count):
    """Words covering elements ``start .. start+count-1`` of a packed tensor."""
    if count <= 0:
        return 0
    if epw > 0:
        return (start + count - 1) // epw - start // epw + 1
    return count * (-epw)


@njit(cache=True, inline='always')
def word_shift(epw):
    """log2 of a power-of-two ``epw`` (elements per word), else -1 (divide instead)."""
    if epw <= 0 or epw & (epw - 1):
        return -1
    k = 0
    while (np.int64(1) << k) < epw:
        k += 1
    return k


@njit(cache=True)
def list_words(epw, sh, start, lst, row, off, cnt):
    """Distinct words holding elements ``start + lst[row, off+k]`` (ascending list).

    ``sh = word_shift(epw)``: a shift replaces the division for power-of-two words.
    """
    if epw < 0:
        return cnt * (-epw)
    words = 0
    last = -1
    for k in range(cnt):
        e = start + lst[row, off + k]
        w = e >> sh if sh >= 0 else e // epw
        if w != last:
            words += 1
            last = w
    return words


@njit(cache=True)
def vec_access(tens, sram, tid, count, reads, writes):
    """Count ``reads`` and ``writes`` of a whole vector of ``count`` elements of tensor ``tid``."""
    b = tens[0, tid]
    if b >= 0:
        w = vec_words(tens[1, tid], count)
        sram[0, b] += reads * w
        sram[1, b] += writes * w


@njit(cache=True)
def add_words(sram, tens, rw, tid, words):
    """``sram[rw, bank of tid] += words`` (rw 0 reads, 1 writes; registers are not counted)."""
    b = tens[0, tid]
    if b >= 0:
        sram[rw, b] += words


@njit(cache=True, inline='always')
def real_mul(code):
    """1 if a product with the constant ``code`` is a multiply: ``|code|`` neither 0 nor a
    power of two (``counters.is_multiply`` on integer codes), else 0."""
    a = abs(np.int64(code))
    return np.int64(a != 0 and (a & (a - 1)) != 0)


@njit(cache=True, inline='always')
def count_muls(ev, kind, count):
    """``count`` multiplies: into ``ev[MULTIPLIES]`` and, for ``kind >= 0``, ``ev[kind]``
    (the width they work at: ``MEMBRANE_``, ``TRACE_`` or ``SIGNAL_MULTIPLIES``)."""
    ev[MULTIPLIES] += count
    if kind >= 0:
        ev[kind] += count


# --------------------------------------------------------------------------- forward

@njit(cache=True)
def list_nonzero(v, out):
    """Write the indices of the nonzero entries of ``v`` (ascending) to ``out``; return their
    count. Eight entries at a time: spikes are sparse, most blocks of eight are all zero."""
    n = len(v)
    cnt = 0
    n8 = n - n % 8
    for j0 in range(0, n8, 8):
        z = np.int64(0)
        for u in range(8):
            z |= np.int64(v[j0 + u])
        if z != 0:
            for u in range(8):
                out[cnt] = j0 + u        # branch-free within the block
                cnt += np.int64(v[j0 + u] != 0)
    for j in range(n8, n):
        out[cnt] = j
        cnt += np.int64(v[j] != 0)
    return cnt


@njit(cache=True)
def gather_inputs(net, buf, x, t, l):
    """Copy layer ``l``'s input spikes of step ``t`` into ``xb``; list them in ``act_in``."""
    n_in = net.lay[l, LC_NIN]
    ioff = net.lay[l, LC_IOFF]
    xb = buf.inp[R_XB, ioff:ioff + n_in]
    if l == 0:
        # the encoder writes the input spikes, the core reads them
        vec_access(net.tens, buf.sram, net.tid_input, n_in, 1, 1)
        xt = x[t]
        for j in range(n_in):
            xb[j] = np.int64(xt[j] != 0)
    else:
        poff = net.lay[l - 1, LC_NOFF]
        vec_access(net.tens, buf.sram, net.lay[l - 1, LC_TID + K_S], n_in, 1, 0)
        xb[:] = buf.nrn[R_S, poff:poff + n_in]
    return list_nonzero(xb, buf.scr[R_ACT])


@njit(cache=True)
def accumulate_rows(net, st, buf, l, woff, cnt, tw, prior):
    """Synaptic accumulates: add the weight rows listed in ``act_in[:cnt]`` into the currents.

    ``i = overflow(i + (w << (f_current - f_weight)))`` per synapse, in the
    current format (exact shift; saturations counted on the layer's ``i``).
    The currents start each step at 0 and ``prior`` rows were added before
    these: when ``prior + cnt`` rows of the largest weight cannot leave the
    current's range (``net.syn_rows``) and ``cnt`` rows fit int32 (``net.syn_rows32``;
    both from ``bounds.gates``), no partial sum saturates and the rows are summed
    without clamps in int32 lanes (``Buffers.acc32``), then added to the currents.
    """
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    fi = net.fmt[F_I]
    fw = net.fmt[F_W]
    sh = fi[FR] - fw[FR]
    lo = fi[LO]
    hi = fi[HI]
    ti = net.lay[l, LC_TID + K_I]
    cur = buf.nrn[R_I, off:off + n]
    W = st.W
    rows = buf.scr[R_ACT]
    epw_w = net.tens[1, tw]
    sat = 0
    words = 0
    saturate = fi[OV] == SATURATE
    if prior + cnt <= net.syn_rows and cnt <= net.syn_rows32:
        acc = buf.acc32[:n]
        sh32 = np.int32(sh)
        k = 0
        while k + 4 <= cnt:              # four rows a pass: a quarter of the acc traffic
            b0 = np.uint64(woff + rows[k] * n)   # unsigned: no negative-index wrap, no view
            b1 = np.uint64(woff + rows[k + 1] * n)
            b2 = np.uint64(woff + rows[k + 2] * n)
            b3 = np.uint64(woff + rows[k + 3] * n)
            for m in range(np.uint64(n)):
                acc[m] += np.int32((np.int32(W[b0 + m]) + np.int32(W[b1 + m])
                                    + np.int32(W[b2 + m]) + np.int32(W[b3 + m])) << sh32)
            k += 4
        for kk in range(k, cnt):
            base = np.uint64(woff + rows[kk] * n)
            for m in range(np.uint64(n)):
                acc[m] += np.int32(np.int32(W[base + m]) << sh32)
        for k in range(cnt):
            words += range_words(epw_w, rows[k] * n, n)
        for m in range(n):
            cur[m] += acc[m]
            acc[m] = 0
        cnt_done = cnt
    else:
        cnt_done = 0
    for k in range(cnt_done, cnt):
        j = rows[k]
        base = woff + j * n
        words += range_words(epw_w, j * n, n)
        wrow = W[base:base + n]          # a row view: lets LLVM vectorise the loop
        if saturate:                     # branch-free clamp; same result as into()
            for m in range(n):
                r = cur[m] + (np.int64(wrow[m]) << sh)
                c = min(max(r, lo), hi)
                sat += np.int64(r != c)
                cur[m] = c
        else:
            for m in range(n):
                r, f = into(cur[m] + (np.int64(wrow[m]) << sh), fi)
                sat += f
                cur[m] = r
    add_words(buf.sram, net.tens, 0, tw, words)
    vec_access(net.tens, buf.sram, ti, n, cnt, cnt)      # read-modify-write of i per event
    buf.sats[ti] += sat
    buf.ev[SYNOPS] += cnt * n


@njit(cache=True)
def layer_forward(net, st, buf, x, t, l, record, rec):
    """Phases 1-3 of layer ``l`` (readout when ``l == L``): events, neuron update, traces."""
    n_in = net.lay[l, LC_NIN]
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    ioff = net.lay[l, LC_IOFF]
    tid = net.lay[l, LC_TID:]
    spiking = l < net.L
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    ev = buf.ev

    # 1. input events (feed-forward, then recurrent s[t-1])
    cnt = gather_inputs(net, buf, x, t, l)
    accumulate_rows(net, st, buf, l, net.lay[l, LC_WOFF], cnt, tid[K_W], 0)
    if net.lay[l, LC_REC]:
        vec_access(net.tens, buf.sram, tid[K_S], n, 1, 0)
        c2 = list_nonzero(buf.nrn[R_SP, off:off + n], buf.scr[R_ACT])
        accumulate_rows(net, st, buf, l, net.lay[l, LC_WROFF], c2, tid[K_WR], cnt)

    # 2. neuron update: v = round(u*beta + i + b); spike, psi, reset
    fu = net.fmt[F_U]
    dcode = net.lay[l, LC_NU + 0]
    s1 = net.lay[l, LC_NU + 1]
    s2 = net.lay[l, LC_NU + 2]
    s3 = net.lay[l, LC_NU + 3]
    rsh = net.lay[l, LC_NU + 4]
    th = net.lay[l, LC_THETA]
    hard = net.lay[l, LC_HARD]
    boff = net.lay[l, LC_BOFF]
    lut = net.psi_lut
    psh = net.psi_sh
    phalf = net.psi_half
    e_last = len(lut) - 1
    u_ = buf.nrn[R_U]
    i_ = buf.nrn[R_I]
    s_ = buf.nrn[R_S]
    psi_ = buf.nrn[R_PSI]
    b_ = st.b
    vec_access(net.tens, buf.sram, tid[K_U], n, 1, 1)
    vec_access(net.tens, buf.sram, tid[K_I], n, 1, 1)               # read, then cleared
    vec_access(net.tens, buf.sram, tid[K_B], n, 1, 0)
    nsp = 0
    # pass 1 (SIMD): v = round(u*beta + i + b) into scratch, rounded as one vector
    uu = u_[off:off + n]
    ii = i_[off:off + n]
    bb = b_[boff:boff + n]
    vv = buf.scr[R_TMP, :n]
    for m in range(n):
        vv[m] = ((uu[m] * dcode) << s1) + (ii[m] << s2) + (bb[m] << s3)
    sat, d, p_r = round_vector(vv, 0, n, rsh, fu, rng, p_r)
    draws += d
    if record:
        rec.i[t, off:off + n] = ii
    ii[:] = 0
    # pass 2: spike, psi, reset (branch-free: spikes are data)
    if spiking:
        keep = np.int64(0) if hard else np.int64(1)      # hard reset: u = 0, soft: u = v - th
        idx_ = buf.scr[R_ACT, :n]        # the input list is used up: LUT indices here
        s_o = s_[off:off + n]
        u_o = u_[off:off + n]
        for m in range(n):               # SIMD; the table lookups (gathers) come after
            v = vv[m]
            d = v - th
            idx_[m] = min(((d if d >= 0 else -d) + phalf) >> psh, e_last)
            sp = np.int64(d > 0)
            s_o[m] = sp
            nsp += sp
            u_o[m] = v - sp * (v - keep * d)
        psi_o = psi_[off:off + n]
        for m in range(n):
            psi_o[m] = lut[idx_[m]]
    else:
        u_[off:off + n] = vv
    if record:
        rec.v[t, off:off + n] = vv
    buf.sats[tid[K_U]] += sat
    ev[NEURON_UPDATES] += n
    count_muls(ev, MEMBRANE_MULTIPLIES, n * net.decay_mul * real_mul(dcode))
    if spiking:
        buf.spikes[l] += nsp
        ev[LUT_LOOKUPS] += n
        vec_access(net.tens, buf.sram, tid[K_S], n, 0, 1)
        vec_access(net.tens, buf.sram, tid[K_PSI], n, 0, 1)

    # 3. presynaptic traces: q = decay(q) + x, q_rec = decay(q_rec) + s[t-1]
    ft = net.fmt[F_T]
    qc = net.lay[l, LC_TQ + 0]
    qk = net.lay[l, LC_TQ + 1]
    one_sh = ft[FR] + qk
    sat, d, p_r = decay_add(buf.inp[R_Q], buf.inp[R_XB], ioff, n_in, qc, one_sh, qk, ft, rng,
                            p_r)
    draws += d
    buf.sats[tid[K_Q]] += sat
    vec_access(net.tens, buf.sram, tid[K_Q], n_in, 1, 1)
    ev[TRACE_UPDATES] += n_in
    qmul = net.decay_mul * real_mul(qc)          # x*one: a spike, not a multiply
    count_muls(ev, TRACE_MULTIPLIES, n_in * qmul)
    if net.lay[l, LC_REC]:
        sat, d, p_r = decay_add(buf.nrn[R_QR], buf.nrn[R_SP], off, n, qc, one_sh, qk, ft, rng, p_r)
        draws += d
        buf.sats[tid[K_QR]] += sat
        vec_access(net.tens, buf.sram, tid[K_QR], n, 1, 1)
        ev[TRACE_UPDATES] += n
        count_muls(ev, TRACE_MULTIPLIES, n * qmul)
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws


@njit(cache=True)
def post_traces(net, st, buf):
    """h = decay(h) + psi for every spiking layer (after learning: h[t-1] was its h_prev)."""
    ft = net.fmt[F_T]
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    ev = buf.ev
    h_ = buf.nrn[R_H]
    psi_ = buf.nrn[R_PSI]
    for l in range(net.L):
        n = net.lay[l, LC_N]
        off = net.lay[l, LC_NOFF]
        hc = net.lay[l, LC_TH + 0]
        hk = net.lay[l, LC_TH + 1]
        sat, d, p_r = decay_add(h_, psi_, off, n, hc, hk, hk, ft, rng, p_r)
        draws += d
        buf.sats[net.lay[l, LC_TID + K_H]] += sat
        vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_PSI], n, 1, 0)
        vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_H], n, 1, 1)
        ev[TRACE_UPDATES] += n
        # psi << hk: a shift, not a multiply
        count_muls(ev, TRACE_MULTIPLIES, n * net.decay_mul * real_mul(hc))
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws


# --------------------------------------------------------------------------- learning signal

@njit(cache=True)
def readout_error(net, st, buf, label):
    """e = softmax(u_out) - onehot(label) in the signal format, through the exp LUT.

    ``p_c = EXP[(max u - u_c) >> shift]``, ``e_c = round_half_up(p_c * 2**f / sum p)``
    (one integer division per class) minus ``2**f`` at the label.
    """
    L = net.L
    C = net.C
    off = net.lay[L, LC_NOFF]
    u_ = buf.nrn[R_U]
    p = buf.scr[R_TMP]
    umax = u_[off]
    for c in range(1, C):
        if u_[off + c] > umax:
            umax = u_[off + c]
    lut = net.exp_lut
    e_last = len(lut) - 1
    total = np.int64(0)
    for c in range(C):
        idx = (umax - u_[off + c] + net.exp_half) >> net.exp_sh
        if idx > e_last:
            idx = e_last
        p[c] = lut[idx]
        total += p[c]
    buf.ev[LUT_LOOKUPS] += C
    fs = net.fmt[F_S]
    te = net.lay[L, LC_TID + K_G]
    sat = 0
    for c in range(C):
        e = (p[c] * (np.int64(2) << fs[FR]) + total) // (2 * total)
        if c == label:
            e -= np.int64(1) << fs[FR]
        e, f = into(e, fs)
        sat += f
        buf.nrn[R_G, off + c] = e
    buf.sats[te] += sat
    vec_access(net.tens, buf.sram, te, C, 0, 1)


@njit(cache=True)
def signal_from_error(net, st, buf, l):
    """g of layer ``l`` from the readout error: BP through W_out or DFA through B.

    ``g_m = round(sum_c e_c * B[c, m])`` with ``B = W_out^T`` (BP, the readout
    weights' row ``m``), the stored feedback codes, or ``+-fb_mag`` regenerated
    bit by bit from the layer's feedback LFSR (C order, as ``dfa_matrix``).
    The sum runs in the device accumulator; one rounding by the weight's
    fractional bits into the signal format.
    """
    L = net.L
    C = net.C
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    eoff = net.lay[L, LC_NOFF]
    g_ = buf.nrn[R_G]
    acc = buf.scr[R_TMP]
    alo = net.acc_lo
    ahi = net.acc_hi
    W = st.W
    ev = buf.ev
    nnz = 0
    for c in range(C):
        if g_[eoff + c] != 0:
            nnz += 1
    tg = net.lay[l, LC_TID + K_G]
    vec_access(net.tens, buf.sram, net.lay[L, LC_TID + K_G], C, 1, 0)
    for m in range(n):
        acc[m] = 0
    sat = 0
    if net.dfa == 0:
        wo = net.lay[L, LC_WOFF]
        cls = buf.scr[R_ACT]             # the classes with e != 0 (adding 0 changes nothing)
        k = 0
        for c in range(C):
            if g_[eoff + c] != 0:
                cls[k] = c
                k += 1
        if net.sig_exact:                # the sum provably stays inside the accumulator:
            for kk in range(k):          # any order, so a class at a time (a long loop)
                c = cls[kk]
                e = g_[eoff + c]
                col = W[wo + c:wo + n * C:C]
                for m in range(n):
                    acc[m] += e * np.int64(col[m])
        else:
            for m in range(n):
                base = wo + m * C
                a = np.int64(0)
                for kk in range(k):      # saturating accumulate in class order, branch-free
                    c = cls[kk]
                    r = a + g_[eoff + c] * W[base + c]
                    a = min(max(r, alo), ahi)
                    sat += np.int64(r != a)
                acc[m] = a
        if nnz > 0:
            tw = net.lay[L, LC_TID + K_W]
            add_words(buf.sram, net.tens, 0, tw, range_words(net.tens[1, tw], 0, n * C))
    elif net.regen:
        s = st.fb_seed[l]
        mag = net.fb_mag
        word = np.int64(0)
        pos = 32
        for c in range(C):
            e = g_[eoff + c]
            for m in range(n):
                if pos == 32:
                    word, s = draw32(s)
                    ev[LFSR_DRAWS] += 1
                    pos = 0
                bit = (word >> (31 - pos)) & 1
                pos += 1
                if e != 0:
                    pr = e * mag
                    acc[m], f = clamp(acc[m] + (pr if bit else -pr), alo, ahi)
                    sat += f
    else:
        fo = net.lay[l, LC_FBOFF]
        B = st.B
        for c in range(C):
            e = g_[eoff + c]
            if e == 0:
                continue
            for m in range(n):
                acc[m], f = clamp(acc[m] + e * B[fo + c * n + m], alo, ahi)
                sat += f
        if nnz > 0:
            tb = net.lay[l, LC_TID + K_FB]
            add_words(buf.sram, net.tens, 0, tb, range_words(net.tens[1, tb], 0, C * n))
    fs = net.fmt[F_S]
    fw = net.fmt[F_W][FR]
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    g_[off:off + n] = acc[:n]
    f, d, p_r = round_vector(g_, off, n, fw, fs, rng, p_r)
    draws += d
    sat += f
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws
    buf.sats[tg] += sat
    ev[SIGNAL_MACS] += n * nnz
    # a regenerated entry is +-fb_mag: a sign and (fb_mag a power of two) a shift
    prods = n * nnz * (real_mul(net.fb_mag) if net.dfa and net.regen else 1)
    count_muls(ev, SIGNAL_MULTIPLIES, prods)
    vec_access(net.tens, buf.sram, tg, n, 0, 1)


@njit(cache=True)
def signal_from_above(net, st, buf, l):
    """BP below the top: g_j = round(sum_k gp_k * W_{l+1}[j, k]) over the k with gp_k != 0."""
    up = l + 1
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    nu = net.lay[up, LC_N]
    uoff = net.lay[up, LC_NOFF]
    wup = net.lay[up, LC_WOFF]
    tw = net.lay[up, LC_TID + K_W]
    tg = net.lay[l, LC_TID + K_G]
    gp = buf.nrn[R_GP]
    g_ = buf.nrn[R_G]
    W = st.W
    act = buf.scr[R_ACT]
    alo = net.acc_lo
    ahi = net.acc_hi
    fs = net.fmt[F_S]
    fw = net.fmt[F_W][FR]
    epw = net.tens[1, tw]
    esh = word_shift(epw)
    act2 = act.reshape((1, act.size))
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    cnt = 0
    for k in range(nu):
        if gp[uoff + k] != 0:
            act[cnt] = k
            cnt += 1
    sat = 0
    words = 0
    for j in range(n):
        a = np.int64(0)
        wrow = W[wup + j * nu:wup + j * nu + nu]
        for kk in range(cnt):
            k = act[kk]
            r = a + gp[uoff + k] * wrow[k]
            a = min(max(r, alo), ahi)
            sat += np.int64(r != a)
        g_[off + j], f, p_r, d = to_fmt(a, fw, fs, rng, p_r)
        draws += d
        sat += f
        words += list_words(epw, esh, j * nu, act2, 0, 0, cnt)
    add_words(buf.sram, net.tens, 0, tw, words)
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws
    buf.sats[tg] += sat
    buf.ev[SIGNAL_MACS] += n * cnt
    count_muls(buf.ev, SIGNAL_MULTIPLIES, n * cnt)
    vec_access(net.tens, buf.sram, tg, n, 0, 1)


@njit(cache=True)
def factors(net, st, buf, l):
    """a = g*alpha_post*h_prev, c = g*alpha_pre*psi, gp = g*psi (signal format).

    Neurons with ``a = c = 0`` are listed nowhere: their rows are skipped.
    MACs counted: one for ``a`` where ``g, h != 0``, two (``c`` and the bias
    term ``gp``) where ``g, psi != 0``. Multiplies: ``g*h`` and ``g*psi``, and
    each alpha scaling whose constant is not a power of two.
    """
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    fs = net.fmt[F_S]
    ft = net.fmt[F_T]
    ftr = ft[FR]
    ev = buf.ev
    for kind in (K_G, K_PSI, K_H):
        vec_access(net.tens, buf.sram, net.lay[l, LC_TID + kind], n, 1, 0)
    g_ = buf.nrn[R_G, off:off + n]
    h_ = buf.nrn[R_H, off:off + n]
    psi_ = buf.nrn[R_PSI, off:off + n]
    a_ = buf.nrn[R_A, off:off + n]
    c_ = buf.nrn[R_C, off:off + n]
    gp_ = buf.nrn[R_GP, off:off + n]
    apost = net.alpha_post
    apre = net.alpha_pre
    if net.factor_det:                   # deterministic, saturating, 32-bit codes (bounds.gates)
        nh, npsi, sat_a, sat_c, sat_g = factor_loop_det(g_, h_, psi_, a_, c_, gp_, n, ftr,
                                                        fs[RM], fs[LO], fs[HI], apost, apre)
    else:
        rng = st.rng
        nh, npsi, sat_a, sat_c, sat_g, p_r, draws = factor_loop(g_, h_, psi_, a_, c_, gp_, n,
                                                                ftr, fs, apost, apre, rng,
                                                                rng[POS])
        rng[POS] = p_r
        buf.ev[LFSR_DRAWS] += draws
    ca, cc, na = list_factors(a_, c_, buf.act[0, off:off + n], buf.act[1, off:off + n], n)
    buf.cnt[l, 0] = ca
    buf.cnt[l, 1] = cc
    buf.cnt[l, 2] = na
    ev[ROWS_SKIPPED] += n - ca
    ev[ELIGIBILITY_MACS] += nh + 2 * npsi
    count_muls(ev, -1, nh * (1 + real_mul(apost)) + npsi * (1 + real_mul(apre)))
    buf.sats[net.lay[l, LC_TID + K_A]] += sat_a
    buf.sats[net.lay[l, LC_TID + K_C]] += sat_c
    buf.sats[net.lay[l, LC_TID + K_G]] += sat_g


@njit(cache=True)
def factor_loop(g_, h_, psi_, a_, c_, gp_, n, ftr, fs, apost, apre, rng, p_r):
    """``factors``' arithmetic for any signal format, skipping the zero products.

    Writes ``a_``, ``c_``, ``gp_`` (n,); returns ``(g*h products, g*psi products,
    overflows of a, of c, of gp, read position, words drawn)``.
    """
    draws = 0
    nh = 0
    npsi = 0
    sat_a = 0
    sat_c = 0
    sat_g = 0
    for m in range(n):
        g = g_[m]
        a = np.int64(0)
        c = np.int64(0)
        gp = np.int64(0)
        if g != 0:
            h = h_[m]
            if h != 0:
                a, p_r, d = rnd(g * h, ftr, fs[RM], rng, p_r)
                draws += d
                if apost != ONE_ALPHA:
                    a, p_r, d = rnd(a * apost, ALPHA_FRAC, fs[RM], rng, p_r)
                    draws += d
                a, f = into(a, fs)
                sat_a += f
                nh += 1
            p = psi_[m]
            if p != 0:
                gp, f, p_r, d = to_fmt(g * p, ftr, fs, rng, p_r)
                draws += d
                sat_g += f
                c = gp
                if apre != ONE_ALPHA:
                    c, f, p_r, d = to_fmt(gp * apre, ALPHA_FRAC, fs, rng, p_r)
                    draws += d
                    sat_c += f
                npsi += 1
        a_[m] = a
        c_[m] = c
        gp_[m] = gp
    return nh, npsi, sat_a, sat_c, sat_g, p_r, draws


@njit(cache=True, inline='always')
def rnd_lanes(x, k, bias, odd, away):
    """``rnd_det(x, k, mode)`` for ``k > 0`` as one expression (no branch on the mode):
    floor ``bias = odd = away = 0``; nearest-even ``bias = 2**(k-1) - 1, odd = 1``;
    nearest-away ``bias = 2**(k-1), away = 1``."""
    return (x + bias + ((x >> k) & odd) - ((x >> 63) & away)) >> k


@njit(cache=True)
def factor_loop_det(g_, h_, psi_, a_, c_, gp_, n, ftr, mode, lo, hi, apost, apre):
    """``factor_loop`` for a deterministic, saturating signal format and 32-bit ``g``, ``h``,
    ``psi``: every product computed (a zero product rounds and clamps to 0, as the
    skip gives), branch-free, 32x32->64 multiplies: a SIMD loop.
    Returns ``(g*h products, g*psi products, overflows of a, of c, of gp)``.
    """
    half = np.int64(1) << (ftr - 1)
    bias = half - 1 if mode == NEAREST_EVEN else (half if mode == NEAREST_AWAY else 0)
    odd = np.int64(mode == NEAREST_EVEN)
    away = np.int64(mode == NEAREST_AWAY)
    ahalf = np.int64(1) << (ALPHA_FRAC - 1)
    abias = ahalf - 1 if mode == NEAREST_EVEN else (ahalf if mode == NEAREST_AWAY else 0)
    scale_a = apost != ONE_ALPHA
    scale_c = apre != ONE_ALPHA
    nh = 0
    npsi = 0
    sat_a = 0
    sat_c = 0
    sat_g = 0
    for m in range(n):
        g = np.int64(np.int32(g_[m]))
        x = g * np.int64(np.int32(h_[m]))
        y = g * np.int64(np.int32(psi_[m]))
        nh += np.int64(x != 0)
        npsi += np.int64(y != 0)
        a = rnd_lanes(x, ftr, bias, odd, away)
        if scale_a:
            a = rnd_lanes(a * apost, ALPHA_FRAC, abias, odd, away)
        ac = min(max(a, lo), hi)
        sat_a += np.int64(a != ac)
        gp = rnd_lanes(y, ftr, bias, odd, away)
        gpc = min(max(gp, lo), hi)
        sat_g += np.int64(gp != gpc)
        c = gpc
        if scale_c:
            c = rnd_lanes(gpc * apre, ALPHA_FRAC, abias, odd, away)
        cc = min(max(c, lo), hi)
        sat_c += np.int64(c != cc)
        a_[m] = ac
        c_[m] = cc
        gp_[m] = gpc
    return nh, npsi, sat_a, sat_c, sat_g


@njit(cache=True)
def list_factors(a_, c_, act0, act1, n):
    """List the neurons with ``a`` or ``c != 0`` in ``act0`` and those with ``c != 0`` in
    ``act1`` (ascending, branch-free: the factors are data). Returns ``(len0, len1, a != 0)``."""
    ca = 0
    cc = 0
    na = 0
    for m in range(n):
        a = a_[m]
        c = c_[m]
        act0[ca] = m
        ca += np.int64((a | c) != 0)
        act1[cc] = m
        cc += np.int64(c != 0)
        na += np.int64(a != 0)
    return ca, cc, na


# --------------------------------------------------------------------------- updates

@njit(cache=True)
def word_table(epw, lst, cnt, out):
    """``out[r]`` = distinct words holding elements ``r + lst[k]`` (k < cnt), r < epw.

    A weight row starting at element ``j*n`` touches ``out[(j*n) % epw]``
    words for the (ascending) neuron list ``lst``: one table per list and
    step replaces a per-row count.
    """
    sh = word_shift(epw)                 # a 64-bit division costs ~40 cycles; a shift, one
    for r in range(epw):
        words = 0
        last = -1
        for k in range(cnt):
            e = r + lst[k]
            w = e >> sh if sh >= 0 else e // epw
            if w != last:
                words += 1
                last = w
        out[r] = words


@njit(cache=True)
def visit_rows(W, dW, n, q, x, lists, cmp, ca, cc, na, narrow, bound, wt, epw, ftr, alo,
               ahi, sh, mode, f, per_sample, rng, p):
    """The synapse loop of ``update_rows`` (kept small so its state stays in registers).

    Row ``j`` visits list ``t`` (0 where ``x_j = 1``, 1 where only ``q_j != 0``)
    in two passes: ``dw = c*q_j + a<<ftr`` and its rounding by ``sh`` bits for
    every listed neuron (branch-free, SIMD; a stochastic format takes one word
    per visited synapse), then, only if some rounded value is nonzero, per
    step ``W[j*n + m] -= delta`` in format ``f`` or per sample
    ``dW[j*n + m] += delta`` in format ``f`` (the update format).
    ``cmp`` rows ``2t``, ``2t+1`` hold list ``t``'s ``c`` and ``a`` values;
    ``bound`` bounds ``|dw|`` (``|c|*|q| + |a| << ftr``): below the accumulator's
    range the clamps go, and with ``narrow`` (``|c|``, ``|q|`` below 2**31) the
    multiplies are 32x32->64 and floor is a biased logical shift (SIMD).
    ``visit_rows32`` does the same when ``dw`` and a word's bits fit 31 bits.
    Returns ``(position, draws, macs, words read, words written, changed, overflows)``.
    """
    draws = 0
    macs = 0
    reads = 0
    writes = 0
    changed = 0
    sat = 0
    stoch = mode == STOCHASTIC and sh > 0
    pre = max(sh - 32, 0)
    k = min(sh, 32)
    rk = 32 - k
    fast = stoch and pre == 0 and bound <= min(ahi, -alo) and bound < BIAS and narrow
    bias_k = BIAS >> k
    # views made once: a view inside the row loop costs an atomic reference count
    c0 = cmp[0]
    a0 = cmp[1]
    c1 = cmp[2]
    dl = cmp[CMP_DELTA]
    rw = words(rng)
    off_w = epw - n % epw if epw > 0 else 0   # (j*n) % epw, kept incrementally (no division)
    step_w = n % epw if epw > 0 else 0
    for j in range(len(q)):
        qj = q[j]
        if epw > 0:
            off_w += step_w
            if off_w >= epw:
                off_w -= epw
        if x[j] != 0:                    # list 0: a or c nonzero
            t = 0
            cnt = ca
            macs += na + (cc if qj != 0 else 0)
        elif qj != 0 and cc > 0:         # list 1: c nonzero
            t = 1
            cnt = cc
            macs += cc
        else:
            continue
        if cnt == 0:
            continue
        reads += wt[t, off_w] if epw > 0 else cnt * (-epw)
        ci = 2 * t
        nz = np.int64(0)
        if fast:                         # no clamp; floor as a biased logical shift (SIMD)
            p = ensure(rng, p, cnt)
            q32 = np.int64(np.int32(qj))     # the factors fit 32 bits: 32x32->64 multiplies
            if t == 0:
                for kk in range(cnt):
                    pv = (np.int64(np.int32(c0[kk])) * q32 + (a0[kk] << ftr)
                          + (np.int64(rw[p + kk]) >> rk) + BIAS)
                    dv = np.int64(np.uint64(pv) >> np.uint64(k)) - bias_k
                    dl[kk] = dv
                    nz |= dv
            else:
                for kk in range(cnt):
                    pv = np.int64(np.int32(c1[kk])) * q32 + (np.int64(rw[p + kk]) >> rk) + BIAS
                    dv = np.int64(np.uint64(pv) >> np.uint64(k)) - bias_k
                    dl[kk] = dv
                    nz |= dv
            p += cnt
            draws += cnt
        elif stoch:
            p = ensure(rng, p, cnt)
            for kk in range(cnt):
                pv = cmp[ci, kk] * qj + (cmp[ci + 1, kk] << ftr)
                dw = min(max(pv, alo), ahi)
                sat += np.int64(pv != dw)
                dv = ((dw >> pre) + (np.int64(rw[p + kk]) >> (32 - k))) >> k
                dl[kk] = dv
                nz |= dv
            p += cnt
            draws += cnt
        else:
            for kk in range(cnt):
                pv = cmp[ci, kk] * qj + (cmp[ci + 1, kk] << ftr)
                dw = min(max(pv, alo), ahi)
                sat += np.int64(pv != dw)
                dv = rnd_det(dw, sh, mode)
                dl[kk] = dv
                nz |= dv
        if nz == 0:
            continue
        ch, wr, fl = write_row(W, dW, dl, j * n, lists[t], cnt, f, per_sample, epw)
        changed += ch
        writes += wr
        sat += fl
    return p, draws, macs, reads, writes, changed, sat


@njit(cache=True, inline='always')
def write_row(W, dW, dl, base, lst, cnt, f, per_sample, epw):
    """Apply row updates ``dl[:cnt]`` at ``base + lst[:cnt]``: per step ``W -= dl`` in
    format ``f``, per sample ``dW += dl``. Returns ``(changed, words written, overflows)``."""
    changed = 0
    writes = 0
    sat = 0
    last_w = -1
    for kk in range(cnt):
        dv = np.int64(dl[kk])
        if dv == 0:
            continue
        e = base + lst[kk]
        if per_sample:
            dW[e], fl = into(dW[e] + dv, f)
            sat += fl
            continue
        old = np.int64(W[e])
        new, fl = into(old - dv, f)
        sat += fl
        if new == old:
            continue
        W[e] = new
        changed += 1
        if epw > 0:
            wd = e // epw
            if wd != last_w:
                writes += 1
                last_w = wd
        else:
            writes += -epw
    return changed, writes, sat


def lshr32(a, b):
    """``a >> b`` of two uint32 in 32 bits (``b < 32``). Compiled, it is one LLVM ``lshr i32``:
    numba widens integer shifts to 64 bits, which halves the lanes of a SIMD loop."""
    return np.uint32(a) >> np.uint32(b)


@intrinsic
def _lshr32_ir(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.lshr(args[0], args[1])
    return nt.uint32(nt.uint32, nt.uint32), codegen


@overload(lshr32)
def _lshr32_jit(a, b):
    return lambda a, b: _lshr32_ir(a, b)


@njit(cache=True)
def scan_chunk(q, x, j, rows, ca, cc, cap, vis0, vis1, vis2, vis3):
    """``visit_rows32``'s scan from row ``j``: list-1 rows (``x_j = 0``, ``q_j != 0``) in
    ``vis0`` with their first word's offset in ``vis1``, list-0 rows (``x_j = 1``) in
    ``vis2``/``vis3``, until ``cap`` words are taken. Returns ``(next row, list-1 rows,
    list-0 rows, words)``. Branchy: a branch-free form measured slower (the
    row pattern predicts well)."""
    n1 = 0
    n0 = 0
    used = 0
    while j < rows:
        if x[j] != 0:
            if ca > 0:
                if used + ca > cap:
                    break
                vis2[n0] = j
                vis3[n0] = used
                n0 += 1
                used += ca
        elif q[j] != 0 and cc > 0:
            if used + cc > cap:
                break
            vis0[n1] = j
            vis1[n1] = used
            n1 += 1
            used += cc
        j += 1
    return j, n1, n0, used


@njit(cache=True)
def chunk_words(wt, rows, count, n, epw, cnt):
    """Words read by the listed ``rows[:count]`` visiting a list of ``cnt`` neurons:
    ``wt[(j*n) % epw]`` for row ``j`` (``word_table``), ``cnt*(-epw)`` without packing."""
    if epw <= 0:
        return count * cnt * (-epw)
    words = 0
    sh = word_shift(epw)
    if sh >= 0:
        mask = epw - 1
        for h in range(count):
            words += wt[(rows[h] * n) & mask]
    else:
        for h in range(count):
            words += wt[(rows[h] * n) % epw]
    return words


@njit(cache=True)
def visit_rows32(W, dW, n, q, x, lists, c32, ca, cc, na, wt, epw, k, f, per_sample, rng, p, vis):
    """``visit_rows`` in int32 lanes, for ``|dw| + 2**k < 2**31`` (no clamp, ``k <= 30``).

    Stochastic rounding ``dv = (dw + (word >> (32 - k))) >> k`` is nonzero iff
    ``uint32(dw + (word >> (32 - k))) >= 2**k``, so a first pass over a row only
    takes the maximum of that (no stores: most rows have no nonzero update) and
    only rows that reach ``2**k`` are computed again and written (``row32``).
    Rows go in chunks that take the words already buffered (a refill comes only
    when not one more row fits, so it moves few unread words): a scan lists the chunk's
    list-1 rows (``x_j = 0``, ``q_j != 0``) and list-0 rows (``x_j = 1``) with
    the offsets of their words (``vis`` rows 0-1 and 2-3); the list-1 rows then
    go four at a time through one loop over list 1 (a loop's setup costs about
    as much as a row of 30 synapses), the rest one at a time. A call writes a
    synapse at most once, so this order of the writes gives the row order's result.
    Word offsets are unsigned: numba wraps negative indices, and with a signed
    ``p + kk`` the word loads would not vectorise.
    ``c32`` rows: list 0's ``c`` and ``a << f_trace``, list 1's ``c`` (each followed by
    ``PAD`` zeros: the first pass runs over whole vectors), then rounded updates.
    Same bits and counts as ``visit_rows``.
    """
    draws = 0
    macs = 0
    reads = 0
    writes = 0
    changed = 0
    sat = 0
    rk = np.uint32(32 - k)
    lim = np.uint32(1 << k)
    c0 = c32[0]
    a0 = c32[1]
    c1 = c32[2]
    l0 = lists[0]
    l1 = lists[1]
    rw = words(rng)
    widest = max(ca, cc)
    ca8 = (ca + PAD - 1) // PAD * PAD          # list lengths in whole vectors: zero factors
    cc8 = (cc + PAD - 1) // PAD * PAD          # past the end, whose words are read, not used
    vis0 = vis[0]
    vis1 = vis[1]
    vis2 = vis[2]
    vis3 = vis[3]
    rows = len(q)
    j = 0
    while j < rows:
        # ---- scan: the chunk's rows and the offsets of their words
        # a chunk takes the words already buffered (PAD more stay for the whole vectors); a
        # refill comes only when not one more row fits, so it moves few unread words
        avail = rng[FILL] - p - PAD
        if avail < widest:
            p = refill(rng, p)
            avail = rng[FILL] - p - PAD
        j, n1, n0, used = scan_chunk(q, x, j, rows, ca, cc, avail, vis0, vis1, vis2, vis3)
        macs += n1 * cc
        for h in range(n0):
            macs += na + (cc if q[vis2[h]] != 0 else 0)
        reads += chunk_words(wt[1], vis0, n1, n, epw, cc) + chunk_words(wt[0], vis2, n0, n, epw, ca)
        draws += used
        # ---- list-1 rows, four at a time
        g = 0
        while g + 4 <= n1:
            pa = np.uint64(p + vis1[g])
            pb = np.uint64(p + vis1[g + 1])
            pc = np.uint64(p + vis1[g + 2])
            pd = np.uint64(p + vis1[g + 3])
            qa = np.int32(q[vis0[g]])
            qb = np.int32(q[vis0[g + 1]])
            qc = np.int32(q[vis0[g + 2]])
            qd = np.int32(q[vis0[g + 3]])
            za = np.uint32(0)
            zb = np.uint32(0)
            zc = np.uint32(0)
            zd = np.uint32(0)
            for kk in range(np.uint64(cc8)):
                ck = c1[kk]
                za = max(za, np.uint32(np.int32(ck * qa) + np.int32(lshr32(rw[pa + kk], rk))))
                zb = max(zb, np.uint32(np.int32(ck * qb) + np.int32(lshr32(rw[pb + kk], rk))))
                zc = max(zc, np.uint32(np.int32(ck * qc) + np.int32(lshr32(rw[pc + kk], rk))))
                zd = max(zd, np.uint32(np.int32(ck * qd) + np.int32(lshr32(rw[pd + kk], rk))))
            if max(max(za, zb), max(zc, zd)) >= lim:
                for h in range(4):
                    zh = za if h == 0 else (zb if h == 1 else (zc if h == 2 else zd))
                    if zh >= lim:
                        ch, wr, fl = row32(W, dW, c32, False, vis0[g + h], q, rw,
                                           np.uint64(p + vis1[g + h]), cc, rk, k, n, l1, f,
                                           per_sample, epw)
                        changed += ch
                        writes += wr
                        sat += fl
            g += 4
        # ---- the other rows one at a time: list 1's last few, then list 0
        for h in range(g, n1 + n0):
            with_a = h >= n1
            rj = vis2[h - n1] if with_a else vis0[h]
            pr = np.uint64(p + (vis3[h - n1] if with_a else vis1[h]))
            qs = np.int32(q[rj])
            z = np.uint32(0)
            if with_a:
                for kk in range(np.uint64(ca8)):
                    z = max(z, np.uint32(np.int32(c0[kk] * qs) + a0[kk]
                                         + np.int32(lshr32(rw[pr + kk], rk))))
            else:
                for kk in range(np.uint64(cc8)):
                    z = max(z, np.uint32(np.int32(c1[kk] * qs)
                                         + np.int32(lshr32(rw[pr + kk], rk))))
            if z >= lim:
                ch, wr, fl = row32(W, dW, c32, with_a, rj, q, rw, pr, ca if with_a else cc, rk, k,
                                   n, l0 if with_a else l1, f, per_sample, epw)
                changed += ch
                writes += wr
                sat += fl
        p += used
    return p, draws, macs, reads, writes, changed, sat


@njit(cache=True, inline='always')
def row32(W, dW, c32, with_a, j, q, rw, p, cnt, rk, k, n, lst, f, per_sample, epw):
    """Row ``j`` of ``visit_rows32``: ``d = (c*q_j [+ a] + word >> (32-k)) >> k`` over the
    list (``c32`` row 0 with ``a`` in row 1, or row 2), stored in ``c32`` row 3 and
    written (``write_row``). Returns ``(changed, words written, overflows)``."""
    c = c32[0] if with_a else c32[2]
    a = c32[1]
    d = c32[3]
    qs = np.int32(q[j])
    k32 = np.int32(k)
    for kk in range(np.uint64(cnt)):
        v = np.int32(np.int32(c[kk] * qs) + np.int32(lshr32(rw[p + kk], rk)))
        if with_a:
            v = np.int32(v + a[kk])
        d[kk] = v >> k32
    return write_row(W, dW, d, j * n, lst, cnt, f, per_sample, epw)


@njit(cache=True)
def update_rows(net, st, buf, l, woff, dwoff, rows, q, x, xoff, tw, tdw):
    """dw = a*x + c*q for one weight matrix of layer ``l`` (rows = its inputs).

    Row ``j`` is skipped when ``x_j = q_j = 0``; otherwise it runs over the
    neurons with ``c != 0`` (list ``act[1]``) or, where ``x_j = 1``, with
    ``a != 0`` or ``c != 0`` (list ``act[0]``). ``dw`` (fractional bits of
    signal + trace) is formed in the accumulator. Per step:
    ``w -= round(dw * 2**-lr)`` with the weight's rounding and overflow; per
    sample: ``dW += dw`` in the update format (rounded if it has fewer bits).
    Multiplies counted: ``c*q`` for each ``c != 0`` neuron of each row with
    ``q_j != 0`` (``a*x`` multiplies a spike: an add).
    """
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    ftr = net.fmt[F_T][FR]
    frac = net.fmt[F_S][FR] + ftr
    per_sample = net.per_sample
    ca = buf.cnt[l, 0]
    cc = buf.cnt[l, 1]
    lac = buf.act[0, off:off + ca]
    lc = buf.act[1, off:off + cc]
    W = st.W[woff:woff + rows * n]
    if per_sample:
        f = net.fmt[F_UP]
        sh = frac - f[FR]
        dW = buf.dW[dwoff:dwoff + rows * n]
        tt = tdw
    else:
        f = net.fmt[F_W]
        sh = frac + net.lr - f[FR]
        dW = buf.dW
        tt = tw
    epw = net.tens[1, tw]
    wt = buf.wtab
    if epw > 0:
        word_table(epw, lac, ca, wt[0])
        word_table(epw, lc, cc, wt[1])
    cmp = buf.cmp
    c_ = buf.nrn[R_C, off:off + n]
    a_ = buf.nrn[R_A, off:off + n]
    na = 0
    cmax = 0
    amax = 0
    for kk in range(ca):
        m = lac[kk]
        cmp[0, kk] = c_[m]
        cmp[1, kk] = a_[m]
        na += np.int64(a_[m] != 0)
        cmax = max(cmax, abs(c_[m]))
        amax = max(amax, abs(a_[m]))
    for kk in range(cc):
        cmp[2, kk] = c_[lc[kk]]
        cmp[3, kk] = 0
    qv = q[xoff:xoff + rows]
    qmax = 0
    nq = 0
    for j in range(rows):
        qmax = max(qmax, abs(qv[j]))
        nq += np.int64(qv[j] != 0)
    bound = cmax * qmax + (amax << ftr)  # fits int64: bounds' "update dw"
    c32 = buf.c32
    if bound <= I32_MAX:                 # int32 copies for visit_rows' 32-bit lanes
        for kk in range(ca):
            c32[0, kk] = cmp[0, kk]
            c32[1, kk] = cmp[1, kk] << ftr
        for kk in range(cc):
            c32[2, kk] = cmp[2, kk]
        for kk in range(ca, ca + PAD):   # zero factors: visit_rows32's whole vectors
            c32[0, kk] = 0
            c32[1, kk] = 0
        for kk in range(cc, cc + PAD):
            c32[2, kk] = 0
    rng = st.rng
    if (f[RM] == STOCHASTIC and 0 < sh <= 30 and bound + (1 << sh) <= I32_MAX
            and bound <= min(net.acc_hi, -net.acc_lo)):
        p_r, draws, macs, reads, writes, changed, sat = visit_rows32(
            W, dW, n, qv, x[xoff:xoff + rows], buf.act[:, off:off + n], c32, ca, cc, na, wt, epw,
            sh, f, per_sample, rng, rng[POS], buf.vis)
    else:
        p_r, draws, macs, reads, writes, changed, sat = visit_rows(
            W, dW, n, qv, x[xoff:xoff + rows], buf.act[:, off:off + n], cmp, ca, cc, na,
            cmax <= I32_MAX and qmax <= I32_MAX, bound, wt, epw, ftr, net.acc_lo, net.acc_hi,
            sh, f[RM], f, per_sample, rng, rng[POS])
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws
    buf.ev[ELIGIBILITY_MACS] += macs
    # the c*q products: list 1 is the c != 0 neurons, and every row with q != 0 visits
    # them (list-0 rows also add a*x where x = 1: an add, not a multiply)
    count_muls(buf.ev, -1, cc * nq)
    buf.ev[WEIGHT_WRITES] += changed
    add_words(buf.sram, net.tens, 0, tw, reads)
    add_words(buf.sram, net.tens, 1, tw, writes)
    buf.sats[tt] += sat
    if per_sample:                       # read-modify-write of the accumulator words
        epd = net.tens[1, tdw]
        if epd > 0:
            word_table(epd, lac, ca, wt[0])
            word_table(epd, lc, cc, wt[1])
        words = 0
        for j in range(rows):
            if x[xoff + j] != 0:
                cnt = ca
                t = 0
            elif q[xoff + j] != 0:
                cnt = cc
                t = 1
            else:
                continue
            if cnt:
                words += wt[t, (j * n) % epd] if epd > 0 else cnt * (-epd)
        add_words(buf.sram, net.tens, 0, tdw, words)
        add_words(buf.sram, net.tens, 1, tdw, words)


@njit(cache=True)
def update_bias(net, st, buf, l, vals, voff, frac):
    """b -= round(v * 2**-lr) (per step) or db += v (per sample) for the nonzero ``vals``.

    ``v = vals[voff + m]`` has ``frac`` fractional bits (gp, or the readout's e).
    """
    n = net.lay[l, LC_N]
    tb = net.lay[l, LC_TID + K_B]
    boff = net.lay[l, LC_BOFF]
    fb = net.fmt[F_B]
    fup = net.fmt[F_UP]
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    ev = buf.ev
    b_ = st.b
    touched = 0
    changed = 0
    sat = 0
    for m in range(n):
        v = vals[voff + m]
        if v == 0:
            continue
        touched += 1
        if net.per_sample:
            k = net.lay[l, LC_DBOFF] + m
            r, p_r, d = rnd(v, frac - fup[FR], fup[RM], rng, p_r)
            draws += d
            buf.db[k], f = into(buf.db[k] + r, fup)
            sat += f
            continue
        delta, p_r, d = rnd(v, frac + net.lr - fb[FR], fb[RM], rng, p_r)
        draws += d
        if delta == 0:
            continue
        old = b_[boff + m]
        new, f = into(old - delta, fb)
        sat += f
        if new != old:
            b_[boff + m] = new
            changed += 1
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws
    ev[WEIGHT_WRITES] += changed
    if net.per_sample:
        tdb = net.lay[l, LC_TID + K_DB]
        buf.sats[tdb] += sat
        if touched:
            vec_access(net.tens, buf.sram, tdb, n, 1, 1)
    else:
        buf.sats[tb] += sat
        if touched:
            vec_access(net.tens, buf.sram, tb, n, 1, 1 if changed else 0)


@njit(cache=True)
def readout_factors(net, buf):
    """The readout as a layer with ``c = e``, ``a = 0``: dW_out = e q_out^T, db_out = e.

    Classes with ``e_c = 0`` are skipped rows; one bias MAC per other class.
    """
    L = net.L
    off = net.lay[L, LC_NOFF]
    cnt = 0
    for c in range(net.C):
        e = buf.nrn[R_G, off + c]
        buf.nrn[R_C, off + c] = e
        buf.nrn[R_A, off + c] = 0
        buf.nrn[R_GP, off + c] = e
        if e != 0:
            buf.act[0, off + cnt] = c
            buf.act[1, off + cnt] = c
            cnt += 1
    buf.cnt[L, 0] = cnt
    buf.cnt[L, 1] = cnt
    buf.cnt[L, 2] = 0
    buf.ev[ROWS_SKIPPED] += net.C - cnt
    buf.ev[ELIGIBILITY_MACS] += cnt


@njit(cache=True)
def learn_step(net, st, buf, label):
    """Phase 4 of a window step: error, signals (top-down), factors, then every update."""
    L = net.L
    readout_error(net, st, buf, label)
    for l in range(L - 1, -1, -1):
        if net.dfa or l == L - 1:
            signal_from_error(net, st, buf, l)
        else:
            signal_from_above(net, st, buf, l)
        factors(net, st, buf, l)
    readout_factors(net, buf)
    # every update of a step uses the weights as they were at its start (signals are done)
    fs = net.fmt[F_S][FR]
    for l in range(L + 1):
        ly = net.lay[l]
        if buf.cnt[l, 0] > 0:
            vec_access(net.tens, buf.sram, ly[LC_TID + K_Q], ly[LC_NIN], 1, 0)
            update_rows(net, st, buf, l, ly[LC_WOFF], ly[LC_DWOFF], ly[LC_NIN], buf.inp[R_Q],
                        buf.inp[R_XB], ly[LC_IOFF], ly[LC_TID + K_W], ly[LC_TID + K_DW])
            if ly[LC_REC]:
                vec_access(net.tens, buf.sram, ly[LC_TID + K_QR], ly[LC_N], 1, 0)
                update_rows(net, st, buf, l, ly[LC_WROFF], ly[LC_DWROFF], ly[LC_N], buf.nrn[R_QR],
                            buf.nrn[R_SP], ly[LC_NOFF], ly[LC_TID + K_WR], ly[LC_TID + K_DWR])
        update_bias(net, st, buf, l, buf.nrn[R_GP], net.lay[l, LC_NOFF], fs)


#: ``Net.per_sample`` of per-sample updates with residual carry (spec ``residual = "carry"``)
CARRY = 2


@njit(cache=True)
def apply_accumulated(net, st, buf, arr, aoff, acc, doff, size, fk, tid, tdw):
    """Per-sample end: ``arr -= round(acc * 2**-lr)`` over one accumulator, then clear it or
    (``net.per_sample == CARRY``) leave the rounding remainder in it.

    Remainder ``acc - (delta << shift)`` of the rounded ``delta`` (0 for a shift <= 0),
    brought into the update format (saturation counted on the accumulator). It is the
    rounding remainder only: what the weight format's saturation cuts off ``delta`` is
    dropped, as when clearing (carrying it would wind the accumulator up behind a weight
    held at its limit). Reads every word of the accumulator and writes it back (cleared,
    or holding remainders); reads the parameter words with a nonzero accumulator, writes
    those that changed.
    """
    f = net.fmt[fk]
    fup = net.fmt[F_UP]
    sh = fup[FR] + net.lr - f[FR]
    carry = net.per_sample == CARRY
    epw = net.tens[1, tid]
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    ev = buf.ev
    last_r = -1
    last_w = -1
    reads = 0
    writes = 0
    sat = 0
    sat_acc = 0
    changed = 0
    for e in range(size):
        v = acc[doff + e]
        if v == 0:
            continue
        wd = e // epw if epw > 0 else e
        if wd != last_r:
            reads += 1 if epw > 0 else -epw
            last_r = wd
        delta, p_r, d = rnd(v, sh, f[RM], rng, p_r)
        draws += d
        if carry:
            acc[doff + e], fl = into(v - (delta << sh) if sh > 0 else np.int64(0), fup)
            sat_acc += fl
        else:
            acc[doff + e] = 0
        if delta == 0:
            continue
        old = arr[aoff + e]
        new, fl = into(old - delta, f)
        sat += fl
        if new == old:
            continue
        arr[aoff + e] = new
        changed += 1
        if wd != last_w:
            writes += 1 if epw > 0 else -epw
            last_w = wd
    rng[POS] = p_r
    buf.ev[LFSR_DRAWS] += draws
    ev[WEIGHT_WRITES] += changed
    buf.sats[tid] += sat
    buf.sats[tdw] += sat_acc
    add_words(buf.sram, net.tens, 0, tid, reads)
    add_words(buf.sram, net.tens, 1, tid, writes)
    vec_access(net.tens, buf.sram, tdw, size, 1, 1)


@njit(cache=True)
def apply_sample(net, st, buf):
    """Per-sample mode: one rounded update of every parameter from its accumulator."""
    for l in range(net.L + 1):
        ly = net.lay[l]
        n = ly[LC_N]
        apply_accumulated(net, st, buf, st.W, ly[LC_WOFF], buf.dW, ly[LC_DWOFF], ly[LC_NIN] * n,
                          F_W, ly[LC_TID + K_W], ly[LC_TID + K_DW])
        if ly[LC_REC]:
            apply_accumulated(net, st, buf, st.W, ly[LC_WROFF], buf.dW, ly[LC_DWROFF], n * n,
                              F_W, ly[LC_TID + K_WR], ly[LC_TID + K_DWR])
        apply_accumulated(net, st, buf, st.b, ly[LC_BOFF], buf.db, ly[LC_DBOFF], n,
                          F_B, ly[LC_TID + K_B], ly[LC_TID + K_DB])


@njit(cache=True)
def run_sample_kernel(net, st, buf, x, label, learn, record, rec):
    """Run one sample ``x (T, n_in) uint8``; learn from ``label`` when ``learn``.

    Per step: every spiking layer bottom-up (input events, neuron update,
    presynaptic traces), the readout (same phases), then in the window the
    score sum and, when learning, the error, signals, factors and updates,
    and last the postsynaptic traces h (whose old value was h_prev).
    """
    L = net.L
    C = net.C
    T = net.T
    buf.nrn[:, :] = 0
    buf.inp[:, :] = 0
    buf.sram[:, :] = 0
    buf.scores[:] = 0
    buf.spikes[:] = 0
    buf.ev[:] = 0
    buf.sats[:] = 0
    if net.per_sample != CARRY:          # with carry the accumulators persist across samples
        buf.dW[:] = 0
        buf.db[:] = 0
    t0 = T - net.window
    eoff = net.lay[L, LC_NOFF]
    for t in range(T):
        buf.nrn[R_SP, :] = buf.nrn[R_S]
        for l in range(L + 1):
            layer_forward(net, st, buf, x, t, l, record, rec)
        if t >= t0:
            for c in range(C):
                buf.scores[c] += buf.nrn[R_U, eoff + c]
                buf.u_win[t - t0, c] = buf.nrn[R_U, eoff + c]
            if learn:
                learn_step(net, st, buf, label)
        post_traces(net, st, buf)
        if record:
            rec.u[t, :] = buf.nrn[R_U]
            rec.s[t, :] = buf.nrn[R_S]
            rec.psi[t, :] = buf.nrn[R_PSI]
            rec.h[t, :] = buf.nrn[R_H]
            rec.q_rec[t, :] = buf.nrn[R_QR]
            rec.q[t, :] = buf.inp[R_Q]
            if learn and t >= t0:
                rec.g[t, :] = buf.nrn[R_G]
    if learn and net.per_sample:
        apply_sample(net, st, buf)
