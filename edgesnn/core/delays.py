"""Delays and sparse masks in the fixed engine: the buffers and the delay rule (docs/delays.md).

A delayed layer (``Net.dly`` row ``l``, columns ``layout.DL_*``) keeps a spike history of its
inputs, ``H = max_delay + 1 (+ R when learning)`` steps of it: per input a shift register
``Buffers.hist`` of ``DL_HW = ceil(H / 64)`` words whose bit ``k`` is the spike of step
``t - k`` (``spike_at``; the device's ring of ``H`` bits, which the memory map counts, holds
the same bits). Delay codes are in the device's delay format (``Net.fmt_d``, ``f``
fractional bits): the integer delay is ``D = (code + 2**(f-1)) >> f`` (ties up, as the
float engine's ``floor(d + 1/2)``) and the fraction ``code - (D << f)`` in ``[-1/2, 1/2)``
selects the column of the slope table.

* Axonal (``DL_AXONAL``): the delayed spikes (bit ``D_j`` of input ``j``'s register) replace
  the layer's input vector (``push_history``); the synaptic accumulates, the presynaptic
  trace and the weight updates then run S-TLLR's fast paths unchanged.
* Synaptic (``DL_SYNAPTIC``): Lava's ``DelayDense`` layout, a ring of ``max_delay + 1``
  accumulators per neuron: a spike of input ``j`` at ``t`` adds ``W_jm`` into row
  ``(t + D_jm) % (M + 1)`` of neuron ``m``, and each step reads and clears row ``t % (M + 1)``
  (``ring_accumulate``). A contribution keeps the weight of the step it was scheduled in
  (with per-sample updates the weights do not change within a sample: the float engine's
  result). Each synapse has its own presynaptic trace (``synapse_traces``).
* Sparse (``DL_SIMPLE``, also every synaptic layer): the feed-forward synapses are the kept
  ones of the CSR tables (``Net.in_ptr``/``in_idx`` by input, ``out_ptr``/``out_idx`` by
  neuron); masked weights stay 0 and are never visited, counted or updated.

Learning (layers at or above ``Net.learn_from``): the eligibility
``eps = decay_beta(eps) + sum_k slope[k - D + R, frac] * x[t - k]`` over the taps
``k = max(0, D - R) .. D + R`` holding a spike (``eligibility``), in ``Net.fmt_e`` (the trace
format made signed); at a window step ``delay_grads`` forms ``dd = gx * eps`` (axonal
``gx_j = round(sum_m gp_m W_jm)`` as whole-row sums over a column copy of the weights,
``Buffers.wcol``; synaptic ``gx_jm = round(gp_m W_jm)``; both in the signal format) and
moves the delay by ``round(dd * 2**-shift)`` into the delay format, clipped to
``[0, max_delay]`` (per step), or adds ``dd`` into the update-format accumulator
``Buffers.dd`` (per sample; ``apply_delays`` at the end of the sample).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.counters import (DELAY_BUFFER_OPS, ELIGIBILITY_MACS, LFSR_DRAWS, SLOPE_LOOKUPS,
                              SYNOPS, TRACE_MULTIPLIES, TRACE_UPDATES, WEIGHT_WRITES)
from edgesnn.fixed import SATURATE, STOCHASTIC

from .arith import I32_MAX, into, rnd, rnd_det, saturate
from .counting import add_words, count_muls, real_mul, vec_access
from .layout import (DL_AXONAL, DL_COFF, DL_COL, DL_DOFF, DL_EC, DL_EK, DL_EOFF, DL_FI,
                     DL_HOFF, DL_HW, DL_M, DL_MODE, DL_ND, DL_PIN, DL_POUT, DL_QOFF, DL_R, DL_ROFF,
                     DL_SHIFT, DL_SOFF, DL_SYNAPTIC, K_D, K_DD, K_DW, K_EPS, K_HIST, K_I, K_Q,
                     K_RING, K_W, LC_DWOFF, LC_IOFF, LC_N, LC_NIN, LC_NOFF, LC_TID, LC_TQ,
                     LC_WOFF, R_A, R_ACT, R_C, R_GP, R_I, R_Q, R_TMP, R_XB)
from .rng import POS


@njit(cache=True, inline='always')
def split_delay(code, fd, M):
    """``(D, column)`` of a delay code: the integer delay ``(code + half) >> fd`` (at most
    ``M``) and the slope-table column ``code - (D << fd) + half`` (``half = 2**(fd-1)``)."""
    half = (np.int64(1) << (fd - 1)) if fd > 0 else np.int64(0)
    D = min((code + half) >> fd, M)
    return D, code - (D << fd) + half


@njit(cache=True, inline='always')
def spike_at(hist, base, k):
    """Bit ``k`` of the history register at ``hist[base:]``: the spike of step ``t - k``."""
    w = hist[base + (k >> 6)]
    return np.int64((w >> np.uint64(k & 63)) & np.uint64(1))


@njit(cache=True, inline='always')
def any_spike(hist, base, hw, k0, k1):
    """Whether bits ``k0..k1`` of a history register hold a spike (one word: a mask test;
    otherwise 1, and the caller looks at each tap)."""
    if hw != 1:
        return True
    bits = hist[base] >> np.uint64(k0)
    width = k1 - k0 + 1
    if width < 64:
        bits &= (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    return bits != 0


@njit(cache=True)
def push_history(net, st, buf, t, l):
    """Write layer ``l``'s input spikes of step ``t`` (``xb``) into its history; for axonal
    delays replace ``xb`` by the delayed spikes (the caller lists them again)."""
    dl = net.dly[l]
    n_in = net.lay[l, LC_NIN]
    ioff = net.lay[l, LC_IOFF]
    hw = dl[DL_HW]
    tid = net.lay[l, LC_TID + K_HIST]
    xb = buf.inp[R_XB, ioff:ioff + n_in]
    hist = buf.hist[dl[DL_HOFF]:dl[DL_HOFF] + n_in * hw]
    one = np.uint64(1)
    top = np.uint64(63)
    if hw == 1:                          # a loop over whole vectors
        for j in range(n_in):
            hist[j] = (hist[j] << one) | np.uint64(xb[j] != 0)
    else:
        for j in range(n_in):
            b = j * hw
            for w in range(hw - 1, 0, -1):
                hist[b + w] = (hist[b + w] << one) | (hist[b + w - 1] >> top)
            hist[b] = (hist[b] << one) | np.uint64(xb[j] != 0)
    # one bit per input ring: a read-modify-write of its word
    add_words(buf.sram, net.tens, 0, tid, n_in)
    add_words(buf.sram, net.tens, 1, tid, n_in)
    buf.ev[DELAY_BUFFER_OPS] += n_in
    if dl[DL_MODE] != DL_AXONAL:
        return
    fd = net.fmt_d.frac
    M = dl[DL_M]
    doff = dl[DL_DOFF]
    codes = st.d
    for j in range(n_in):
        D, _ = split_delay(codes[doff + j], fd, M)
        xb[j] = spike_at(hist, j * hw, D)
    add_words(buf.sram, net.tens, 0, tid, n_in)
    vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_D], n_in, 1, 0)
    buf.ev[DELAY_BUFFER_OPS] += n_in


@njit(cache=True)
def kept_accumulate(net, st, buf, t, l, cnt):
    """The feed-forward accumulates of a per-synapse layer for the ``cnt`` spikes listed in
    ``R_ACT``: synaptic delays schedule ``W_jm`` into the ring and deliver row ``t % (M+1)``;
    a sparse layer without them adds the kept rows straight into the currents."""
    dl = net.dly[l]
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    woff = net.lay[l, LC_WOFF]
    fi = net.fmt.current
    sh = fi.frac - net.fmt.weight.frac
    pin = dl[DL_PIN]
    ptr = net.in_ptr
    idx = net.in_idx
    rows = buf.scr[R_ACT]
    tw = net.lay[l, LC_TID + K_W]
    ti = net.lay[l, LC_TID + K_I]
    cur = buf.nrn[R_I, off:off + n]
    synaptic = dl[DL_MODE] == DL_SYNAPTIC
    sat = 0
    ops = 0
    W = st.W
    codes = st.d
    ring = buf.ring
    M1 = dl[DL_M] + 1
    roff = dl[DL_ROFF]
    doff = dl[DL_DOFF]
    fd = net.fmt_d.frac
    M = dl[DL_M]
    tm = t % M1
    kd = doff - ptr[pin]                 # synapse e's delay: codes[kd + e]
    for k in range(cnt):
        j = rows[k]
        a = ptr[pin + j]
        b = ptr[pin + j + 1]
        for e in range(a, b):
            m = idx[e]
            w = np.int64(W[woff + j * n + m]) << sh
            if synaptic:
                D, _ = split_delay(codes[kd + e], fd, M)
                r = tm + D               # row (t + D) % (M + 1), D <= M
                if r >= M1:
                    r -= M1
                r = roff + r * n + m
                ring[r], f = into(ring[r] + w, fi)
            else:
                cur[m], f = into(cur[m] + w, fi)
            sat += f
        ops += b - a
    buf.ev[SYNOPS] += ops
    add_words(buf.sram, net.tens, 0, tw, ops)
    vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_D], ops if synaptic else 0, 1, 0)
    if synaptic:
        tr = net.lay[l, LC_TID + K_RING]
        buf.sats[tr] += sat
        add_words(buf.sram, net.tens, 0, tr, ops)
        add_words(buf.sram, net.tens, 1, tr, ops)
        base = roff + (t % M1) * n
        for m in range(n):
            cur[m], f = into(cur[m] + buf.ring[base + m], fi)
            buf.sats[ti] += f
            buf.ring[base + m] = 0
        vec_access(net.tens, buf.sram, tr, n, 1, 1)
        buf.ev[DELAY_BUFFER_OPS] += ops + n
    else:
        buf.sats[ti] += sat
    vec_access(net.tens, buf.sram, ti, n, 1, 1)


@njit(cache=True)
def synapse_traces(net, st, buf, t, l):
    """Synaptic delays: every kept synapse's delayed spike ``xs`` and its presynaptic trace
    ``qs = decay(qs) + xs`` (the layer's ``lambda_pre``; trace format)."""
    dl = net.dly[l]
    n = net.lay[l, LC_N]
    n_in = net.lay[l, LC_NIN]
    hw = dl[DL_HW]
    doff = dl[DL_DOFF]
    qoff = dl[DL_QOFF]
    M = dl[DL_M]
    fd = net.fmt_d.frac
    ft = net.fmt.trace
    qc = net.lay[l, LC_TQ + 0]
    qk = net.lay[l, LC_TQ + 1]
    one_sh = ft.frac + qk
    po = dl[DL_POUT]
    ptr = net.out_ptr
    idx = net.out_idx[0]
    codes = st.d
    hist = buf.hist[dl[DL_HOFF]:dl[DL_HOFF] + n_in * hw]
    xs = buf.xs
    qs = buf.qs
    rng = st.rng
    p = rng[POS]
    draws = 0
    sat = 0
    count = 0
    if ft.rounding != STOCHASTIC:
        nd = dl[DL_ND]
        pin = dl[DL_PIN]
        count, sat = traces_by_input(codes[doff:doff + nd], hist, qs[qoff:qoff + nd],
                                     xs[qoff:qoff + nd], net.in_ptr[pin:pin + n_in + 1], n_in,
                                     hw, M, fd, qc, qk, one_sh, ft)
    else:
        syn = net.out_idx[1]
        for m in range(n):
            for e in range(ptr[po + m], ptr[po + m + 1]):
                j = idx[e]
                s = syn[e]
                D, _ = split_delay(codes[doff + s], fd, M)
                x = spike_at(hist, j * hw, D)
                xs[qoff + s] = x
                v, p, d = rnd(qs[qoff + s] * qc + (x << one_sh), qk, ft.rounding, rng, p)
                draws += d
                qs[qoff + s], f = into(v, ft)
                sat += f
                count += 1
    rng[POS] = p
    buf.ev[LFSR_DRAWS] += draws
    buf.ev[TRACE_UPDATES] += count
    buf.ev[DELAY_BUFFER_OPS] += count
    count_muls(buf.ev, TRACE_MULTIPLIES, count * net.decay_mul * real_mul(qc))
    tq = net.lay[l, LC_TID + K_Q]
    buf.sats[tq] += sat
    vec_access(net.tens, buf.sram, tq, count, 1, 1)
    add_words(buf.sram, net.tens, 0, net.lay[l, LC_TID + K_HIST], count)


@njit(cache=True)
def traces_by_input(codes, hist, qs, xs, iptr, n_in, hw, M, fd, qc, qk, one_sh, ft):
    """``synapse_traces`` with deterministic rounding, input by input (the order of the
    per-synapse arrays, one entry per kept synapse; free when no words are drawn): an input
    with no spike in its one-word history only decays its traces. ``iptr``: the layer's
    ``n_in + 1`` input pointers. Returns ``(traces, overflows)``."""
    sat = 0
    mode = ft.rounding
    kb = iptr[0]
    one = np.uint64(1)
    for j in range(n_in):
        base = j * hw
        a = iptr[j] - kb
        b = iptr[j + 1] - kb
        if hw == 1:
            h = hist[base]
            if h == np.uint64(0):
                for e in range(a, b):
                    xs[e] = 0
                    qs[e], f = into(rnd_det(qs[e] * qc, qk, mode), ft)
                    sat += f
                continue
            for e in range(a, b):        # (spike_at on the word in hand: 15 % faster)
                D, _ = split_delay(codes[e], fd, M)
                x = np.int64((h >> np.uint64(D)) & one)
                xs[e] = x
                qs[e], f = into(rnd_det(qs[e] * qc + (x << one_sh), qk, mode), ft)
                sat += f
            continue
        for e in range(a, b):
            D, _ = split_delay(codes[e], fd, M)
            x = spike_at(hist, base, D)
            xs[e] = x
            qs[e], f = into(rnd_det(qs[e] * qc + (x << one_sh), qk, mode), ft)
            sat += f
    return iptr[n_in] - kb, sat


@njit(cache=True)
def eligibility(net, st, buf, t, l):
    """``eps = decay_beta(eps) + sum over the spike taps of slope[tap, frac]`` for every delay
    of layer ``l`` (axonal: per input, synaptic: per kept synapse)."""
    dl = net.dly[l]
    n = net.lay[l, LC_N]
    n_in = net.lay[l, LC_NIN]
    hw = dl[DL_HW]
    R = dl[DL_R]
    M = dl[DL_M]
    doff = dl[DL_DOFF]
    eoff = dl[DL_EOFF]
    soff = dl[DL_SOFF]
    nf = dl[DL_FI]
    ec = dl[DL_EC]
    ek = dl[DL_EK]
    fd = net.fmt_d.frac
    fe = net.fmt_e
    axonal = dl[DL_MODE] == DL_AXONAL
    # a zero trace with no spike tap stays zero: skipped unless its rounding draws a word
    skip = fe.rounding != STOCHASTIC
    # arrays taken out of the tuples once: an access through a tuple in the loop costs a
    # reference count each time
    hist = buf.hist[dl[DL_HOFF]:dl[DL_HOFF] + n_in * hw]
    slope = net.slope
    eps = buf.eps
    codes = st.d
    out_ptr = net.out_ptr
    out_idx = net.out_idx[0]
    rng = st.rng
    p = rng[POS]
    draws = 0
    sat = 0
    looks = 0
    nd = 0
    po = dl[DL_POUT]
    rows = 1 if axonal else n
    if axonal and hw == 1 and skip and fe.overflow == SATURATE:
        looks, sat = eligibility_axonal(codes[doff:doff + n_in], hist, eps[eoff:eoff + n_in],
                                        slope[soff:soff + (2 * R + 1) * nf],
                                        buf.scr[R_TMP], n_in, R, M, fd, nf, ec, ek, fe)
        nd = n_in
        rows = 0                         # (the loop below is done)
    elif not axonal and skip:
        looks, nd, sat = eligibility_by_input(
            codes[doff:doff + dl[DL_ND]], hist, eps[eoff:eoff + dl[DL_ND]], slope[soff:],
            net.in_ptr[dl[DL_PIN]:dl[DL_PIN] + n_in + 1], n_in, hw, R, M, fd, nf, ec, ek, fe)
        rows = 0
    syn = net.out_idx[1]
    table = slope[soff:soff + (2 * R + 1) * nf]
    for m in range(rows):
        a = 0 if axonal else out_ptr[po + m]
        b = n_in if axonal else out_ptr[po + m + 1]
        for e in range(a, b):
            j = e if axonal else out_idx[e]
            s = j if axonal else syn[e]
            D, col = split_delay(codes[doff + s], fd, M)
            acc, hit = window_sum(hist, j * hw, hw, D, col, R, nf, table)
            looks += hit
            nd += 1
            old = eps[eoff + s]
            if skip and hit == 0 and old == 0:
                continue
            v, p, d = rnd(old * ec + (acc << ek), ek, fe.rounding, rng, p)
            draws += d
            eps[eoff + s], f = into(v, fe)
            sat += f
    rng[POS] = p
    ev = buf.ev
    ev[LFSR_DRAWS] += draws
    ev[SLOPE_LOOKUPS] += looks
    ev[ELIGIBILITY_MACS] += looks
    ev[TRACE_UPDATES] += nd
    ev[DELAY_BUFFER_OPS] += nd * (2 * R + 1)
    count_muls(ev, TRACE_MULTIPLIES, nd * net.decay_mul * real_mul(ec))
    te = net.lay[l, LC_TID + K_EPS]
    buf.sats[te] += sat
    vec_access(net.tens, buf.sram, te, nd, 1, 1)
    vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_D], nd, 1, 0)
    add_words(buf.sram, net.tens, 0, net.lay[l, LC_TID + K_HIST], nd)   # a tap window a word


@njit(cache=True, inline='always')
def tap_sum(h, D, col, R, nf, slope):
    """``(sum of slope[(k - D + R) * nf + col] over the taps k = max(0, D-R)..D+R holding a
    spike, their count)`` from a one-word history ``h`` (bit ``k``: the spike of step
    ``t - k``; ``D + R < 64``): the window by two shifts, then its set bits only (most
    windows hold none)."""
    one = np.uint64(1)
    taps = np.uint64((1 << (2 * R + 1)) - 1)
    k0 = max(0, D - R)
    w = (((h >> np.uint64(k0)) & taps) << np.uint64(k0 - D + R)) & taps   # bit i: tap D-R+i
    acc = np.int64(0)
    hits = 0
    while w != np.uint64(0):
        low = w & (~w + one)             # the lowest set bit, then its index
        i = 0
        while (low >> np.uint64(i)) != one:
            i += 1
        acc += slope[i * nf + col]
        hits += 1
        w ^= low
    return acc, hits


@njit(cache=True, inline='always')
def window_sum(hist, base, hw, D, col, R, nf, slope):
    """``tap_sum`` for a history register of ``hw`` words at ``hist[base:]``: one mask test
    when it is one word, else each tap read on its own. Returns ``(sum, taps holding a
    spike)``."""
    acc = np.int64(0)
    hits = 0
    k0 = max(0, D - R)
    if any_spike(hist, base, hw, k0, D + R):     # most windows hold none
        for k in range(k0, D + R + 1):
            if spike_at(hist, base, k):
                acc += slope[(k - D + R) * nf + col]
                hits += 1
    return acc, hits


@njit(cache=True)
def eligibility_axonal(codes, hist, eps, slope, acc, n_in, R, M, fd, nf, ec, ek, fe):
    """``eligibility`` of an axonal layer whose histories fit one word, with deterministic
    rounding into a saturating format, in three passes: the spike sums of the inputs whose
    tap window holds a spike into ``acc`` (most hold none), then every trace's decay and
    sum in one branch-free pass. The same bits as the general loop.
    Returns ``(slope lookups, overflows)``."""
    looks = 0
    for j in range(n_in):
        D, col = split_delay(codes[j], fd, M)
        a, hits = tap_sum(hist[j], D, col, R, nf, slope)
        acc[j] = a
        looks += hits
    sat = 0
    mode = fe.rounding
    for j in range(n_in):
        v = rnd_det(eps[j] * ec + (acc[j] << ek), ek, mode)
        c, f = saturate(v, fe.lo, fe.hi)
        eps[j] = c
        sat += f
    return looks, sat


@njit(cache=True)
def eligibility_by_input(codes, hist, eps, slope, iptr, n_in, hw, R, M, fd, nf, ec, ek, fe):
    """``eligibility`` of a synaptic layer with deterministic rounding, input by input (the
    order is free when no words are drawn; it is the order of the per-synapse arrays): the
    same bits as the general loop. ``codes``, ``eps``: the layer's, one per kept synapse,
    input-major; ``iptr`` the layer's ``n_in + 1`` input pointers; ``slope`` from the
    layer's table. Returns ``(slope lookups, traces, overflows)``."""
    looks = 0
    sat = 0
    mode = fe.rounding
    kb = iptr[0]
    if hw == 1:
        looks, sat = _eligibility_one_word(codes, hist, eps, slope, iptr, n_in, R, M, fd, nf,
                                           ec, ek, fe)
        return looks, iptr[n_in] - kb, sat
    for j in range(n_in):
        base = j * hw
        for s in range(iptr[j] - kb, iptr[j + 1] - kb):
            D, col = split_delay(codes[s], fd, M)
            acc, hit = window_sum(hist, base, hw, D, col, R, nf, slope)
            looks += hit
            old = eps[s]
            if hit == 0 and old == 0:
                continue
            eps[s], f = into(rnd_det(old * ec + (acc << ek), ek, mode), fe)
            sat += f
    return looks, iptr[n_in] - kb, sat


@njit(cache=True)
def _eligibility_one_word(codes, hist, eps, slope, iptr, n_in, R, M, fd, nf, ec, ek, fe):
    """``eligibility_by_input`` where histories fit one word: an input with no spike in its
    history only decays its traces (one pass the compiler vectorises); otherwise each
    synapse takes its ``2R + 1`` tap bits by one shift and visits the set ones only.
    Returns ``(slope lookups, overflows)``."""
    looks = 0
    sat = 0
    mode = fe.rounding
    kb = iptr[0]
    for j in range(n_in):
        h = hist[j]
        a = iptr[j] - kb
        b = iptr[j + 1] - kb
        if h == np.uint64(0):
            for s in range(a, b):
                eps[s], f = into(rnd_det(eps[s] * ec, ek, mode), fe)
                sat += f
            continue
        for s in range(a, b):
            D, col = split_delay(codes[s], fd, M)
            acc, hits = tap_sum(h, D, col, R, nf, slope)
            looks += hits
            eps[s], f = into(rnd_det(eps[s] * ec + (acc << ek), ek, mode), fe)
            sat += f
    return looks, sat


@njit(cache=True, inline='always')
def move_delay(codes, k, dd, sh, mode, top, rng, p):
    """Per step: delay code ``codes[k] -= round(dd * 2**-sh)`` (``mode``), clipped to
    ``[0, top]``. Returns ``(written, position, draws)``."""
    delta, p, d = rnd(dd, sh, mode, rng, p)
    if delta == 0:
        return 0, p, d
    old = codes[k]
    new, _ = saturate(old - delta, 0, top)
    if new == old:
        return 0, p, d
    codes[k] = new
    return 1, p, d


@njit(cache=True, inline='always')
def add_delay_grad(acc, k, dd, sh, fup, rng, p):
    """Per sample: ``acc[k] += round(dd * 2**-sh)`` in the update format ``fup``.
    Returns ``(overflow, position, draws)``."""
    r, p, d = rnd(dd, sh, fup.rounding, rng, p)
    acc[k], f = into(acc[k] + r, fup)
    return f, p, d


@njit(cache=True, inline='always')
def delay_step(codes, acc, k, dd, sh, sh_acc, mode, fup, top, per_sample, rng, p):
    """One delay's gradient ``dd`` (fractional bits of signal + eligibility): moved per
    step (``move_delay``, shift ``sh``) or accumulated per sample (``add_delay_grad``,
    shift ``sh_acc``). Returns ``(written, overflow, position, draws)``."""
    if per_sample:
        f, p, d = add_delay_grad(acc, k, dd, sh_acc, fup, rng, p)
        return 0, f, p, d
    w, p, d = move_delay(codes, k, dd, sh, mode, top, rng, p)
    return w, 0, p, d


@njit(cache=True)
def delay_grads(net, st, buf, l):
    """Window step of layer ``l``'s delays (after its factors: ``gp = g psi`` in ``R_GP``)."""
    dl = net.dly[l]
    n = net.lay[l, LC_N]
    n_in = net.lay[l, LC_NIN]
    off = net.lay[l, LC_NOFF]
    woff = net.lay[l, LC_WOFF]
    eoff = dl[DL_EOFF]
    fw = net.fmt.weight.frac
    fsig = net.fmt.signal
    # the delay format's code steps are 2**-fd: dd has f_signal + f_eps fractional bits
    sh = fsig.frac + net.fmt_e.frac + net.lr + dl[DL_SHIFT] - net.fmt_d.frac
    top = dl[DL_M] << net.fmt_d.frac
    sh_acc = fsig.frac + net.fmt_e.frac - net.fmt.update.frac
    mode = net.fmt_d.rounding
    fup = net.fmt.update
    per_sample = net.per_sample != 0
    codes = st.d[dl[DL_DOFF]:dl[DL_DOFF] + dl[DL_ND]]
    accs = buf.dd[eoff:eoff + (dl[DL_ND] if per_sample else 0)]
    eps = buf.eps[eoff:eoff + dl[DL_ND]]
    gp = buf.nrn[R_GP, off:off + n]
    rng = st.rng
    p = rng[POS]
    draws = 0
    macs = 0
    written = 0
    sat = 0
    lst = buf.scr[R_ACT]
    cnt = 0
    for m in range(n):
        lst[cnt] = m
        cnt += np.int64(gp[m] != 0)
    if dl[DL_MODE] == DL_AXONAL:
        gx = buf.gx
        column_sums(buf.wcol[dl[DL_COFF]:dl[DL_COFF] + n * n_in], gp, lst, cnt, n_in,
                    max(-net.fmt.weight.lo, net.fmt.weight.hi), gx, buf.gx32)
        # (g psi) W is the signal the layer below gets: formed here only when no layer
        # below learns from it
        if l == 0 or net.learn_from > l - 1:
            macs += cnt * n_in
            add_words(buf.sram, net.tens, 0, net.lay[l, LC_TID + K_W], cnt * n_in)
        if per_sample or mode == STOCHASTIC or fsig.rounding == STOCHASTIC:
            for j in range(n_in):
                gx[j], p, d = _signal(gx[j], fw, fsig, rng, p)
                draws += d
            for j in range(n_in):
                e = eps[j]
                if gx[j] == 0 or e == 0:
                    continue
                macs += 1
                w, f, p, d = delay_step(codes, accs, j, gx[j] * e, sh, sh_acc, mode, fup,
                                        top, per_sample, rng, p)
                written += w
                sat += f
                draws += d
        else:
            written, nz = move_axonal(codes, gx, eps, n_in, fw, fsig, sh, mode, top)
            macs += nz
        nd = n_in
    else:
        po = dl[DL_POUT]
        out_ptr = net.out_ptr
        out_idx = net.out_idx[0]
        syn = net.out_idx[1]
        W = st.W[woff:woff + n_in * n]
        for k in range(cnt):
            m = lst[k]
            g = gp[m]
            for e in range(out_ptr[po + m], out_ptr[po + m + 1]):
                s = syn[e]
                ep = eps[s]
                if ep == 0:
                    continue
                w = np.int64(W[out_idx[e] * n + m])
                if w == 0:
                    continue
                macs += 2
                gx, p, d = _signal(g * w, fw, fsig, rng, p)
                draws += d
                if gx == 0:
                    continue
                wr, f, p, d = delay_step(codes, accs, s, gx * ep, sh, sh_acc, mode, fup, top,
                                         per_sample, rng, p)
                written += wr
                sat += f
                draws += d
        nd = dl[DL_ND]
    rng[POS] = p
    ev = buf.ev
    ev[LFSR_DRAWS] += draws
    ev[ELIGIBILITY_MACS] += macs
    count_muls(ev, -1, macs)
    ev[WEIGHT_WRITES] += written
    vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_EPS], nd, 1, 0)
    if net.per_sample:
        tdd = net.lay[l, LC_TID + K_DD]
        buf.sats[tdd] += sat
        vec_access(net.tens, buf.sram, tdd, nd, 1, 1)
    else:
        add_words(buf.sram, net.tens, 1, net.lay[l, LC_TID + K_D], written)


@njit(cache=True)
def move_axonal(codes, gx, eps, n_in, fw, fsig, sh, mode, top):
    """Per-step axonal delay moves with deterministic roundings (no words): the sums ``gx``
    (weight and signal fractional bits) into the signal format, ``delta = round(gx * eps *
    2**-sh)`` for every input in one branch-free pass (stored over ``gx``), then the few
    nonzero moves, clipped to ``[0, top]``. The same bits as ``delay_step`` per input.
    Returns ``(delays written, products gx * eps with both nonzero)``."""
    nz = 0
    seen = np.int64(0)
    for j in range(n_in):
        g, _ = saturate(rnd_det(gx[j], fw, fsig.rounding), fsig.lo, fsig.hi)
        e = eps[j]
        nz += np.int64(g != 0) & np.int64(e != 0)
        delta = rnd_det(g * e, sh, mode)
        gx[j] = delta
        seen |= delta
    written = 0
    if seen != 0:
        for j in range(n_in):
            delta = gx[j]
            if delta == 0:
                continue
            old = codes[j]
            new, _ = saturate(old - delta, 0, top)
            if new != old:
                codes[j] = new
                written += 1
    return written, nz


@njit(cache=True)
def column_sums(wc, gp, lst, cnt, n_in, wmax, out, out32):
    """``out[j] = sum over the listed neurons m of gp[m] * W[j, m]`` from the column copy
    ``wc`` (``(n, n_in)``, ``Buffers.wcol``): whole rows added in int32 lanes when
    ``sum |gp| * wmax`` fits 31 bits, in int64 otherwise (the same sums)."""
    total = np.int64(0)
    for k in range(cnt):
        total += abs(gp[lst[k]])
    if total * wmax <= I32_MAX:
        add_rows(out32[:n_in], wc, gp, lst, cnt, n_in)
        for j in range(n_in):
            out[j] = out32[j]
    else:
        add_rows(out[:n_in], wc, gp, lst, cnt, n_in)


@njit(cache=True, inline='always')
def add_rows(acc, wc, gp, lst, cnt, n_in):
    """``acc = sum over k < cnt of gp[lst[k]] * wc[lst[k] * n_in:][:n_in]`` in ``acc``'s
    integer type (the caller chose one the sums fit)."""
    acc[:] = 0
    for k in range(cnt):
        m = lst[k]
        g = gp[m]
        row = wc[m * n_in:(m + 1) * n_in]
        for j in range(n_in):
            acc[j] += g * row[j]


@njit(cache=True)
def refresh_columns(net, st, buf):
    """Copy every learning axonal layer's input weights into its column copy
    (``Buffers.wcol[m * n_in + j] = W[j * n + m]``)."""
    for l in range(net.L):
        dl = net.dly[l]
        if dl[DL_COL] == 0:
            continue
        n = net.lay[l, LC_N]
        n_in = net.lay[l, LC_NIN]
        woff = net.lay[l, LC_WOFF]
        wc = buf.wcol[dl[DL_COFF]:dl[DL_COFF] + n * n_in]
        W = st.W[woff:woff + n_in * n]
        for j in range(n_in):            # (the fastest of the loop orders tried)
            for m in range(n):
                wc[m * n_in + j] = W[j * n + m]


@njit(cache=True, inline='always')
def _signal(v, fw, fsig, rng, p):
    """A product with weight codes (``fw`` more fractional bits) into the signal format."""
    r, p, d = rnd(v, fw, fsig.rounding, rng, p)
    r, _ = saturate(r, fsig.lo, fsig.hi)
    return r, p, d


@njit(cache=True)
def apply_delays(net, st, buf):
    """Per-sample end: ``code -= round(dd * 2**-shift)`` for every delay, clipped to
    ``[0, max_delay]``; the accumulators cleared."""
    fup = net.fmt.update
    rng = st.rng
    p = rng[POS]
    draws = 0
    written = 0
    for l in range(net.learn_from, net.L):
        dl = net.dly[l]
        if dl[DL_MODE] == 0:
            continue
        sh = fup.frac + net.lr + dl[DL_SHIFT] - net.fmt_d.frac
        top = dl[DL_M] << net.fmt_d.frac
        eoff = dl[DL_EOFF]
        doff = dl[DL_DOFF]
        size = dl[DL_ND]
        changed = 0
        for s in range(size):
            v = buf.dd[eoff + s]
            if v == 0:
                continue
            buf.dd[eoff + s] = 0
            delta, p, d = rnd(v, sh, net.fmt_d.rounding, rng, p)
            draws += d
            if delta == 0:
                continue
            old = st.d[doff + s]
            new, _ = saturate(old - delta, 0, top)
            if new != old:
                st.d[doff + s] = new
                changed += 1
        written += changed
        vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_DD], size, 1, 1)
        add_words(buf.sram, net.tens, 1, net.lay[l, LC_TID + K_D], changed)
    rng[POS] = p
    buf.ev[LFSR_DRAWS] += draws
    buf.ev[WEIGHT_WRITES] += written


@njit(cache=True)
def update_synapses(net, st, buf, l):
    """``dw = a x + c q`` over the kept synapses of a per-synapse layer's listed neurons
    (``x``, ``q``: the synapse's own for synaptic delays, the input's otherwise); per step
    ``W -= round(dw * 2**-lr)``, per sample ``dW += round(dw)`` (update format)."""
    dl = net.dly[l]
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    ioff = net.lay[l, LC_IOFF]
    woff = net.lay[l, LC_WOFF]
    dwoff = net.lay[l, LC_DWOFF]
    ftr = net.fmt.trace.frac
    frac = net.fmt.signal.frac + ftr
    synaptic = dl[DL_MODE] == DL_SYNAPTIC
    qoff = dl[DL_QOFF]
    n_in = net.lay[l, LC_NIN]
    col = dl[DL_COL] != 0                # an axonal layer's column copy (Buffers.wcol)
    coff = dl[DL_COFF]
    if net.per_sample:
        f = net.fmt.update
        sh = frac - f.frac
    else:
        f = net.fmt.weight
        sh = frac + net.lr - f.frac
    rng = st.rng
    p = rng[POS]
    draws = 0
    macs = 0
    muls = 0
    changed = 0
    visited = 0
    sat = 0
    po = dl[DL_POUT]
    ca = buf.cnt[l, 0]
    lac = buf.act[0, off:off + ca]
    per_sample = net.per_sample != 0
    out_ptr = net.out_ptr
    out_idx = net.out_idx[0]
    syn = net.out_idx[1]
    xs = buf.xs
    qs = buf.qs
    xb = buf.inp[R_XB, ioff:ioff + n_in]
    qb = buf.inp[R_Q, ioff:ioff + n_in]
    W = st.W
    dW = buf.dW
    wcol = buf.wcol
    for kk in range(ca):
        m = lac[kk]
        a = buf.nrn[R_A, off + m]
        c = buf.nrn[R_C, off + m]
        for e in range(out_ptr[po + m], out_ptr[po + m + 1]):
            j = out_idx[e]
            s = j * n + m
            if synaptic:
                x = xs[qoff + syn[e]]
                q = qs[qoff + syn[e]]
            else:
                x = xb[j]
                q = qb[j]
            ax = a != 0 and x != 0
            cq = c != 0 and q != 0
            if not (ax or cq):
                continue
            macs += np.int64(ax) + np.int64(cq)
            muls += np.int64(cq)
            visited += 1
            dw = c * q + ((a * x) << ftr)
            delta, p, d = rnd(dw, sh, f.rounding, rng, p)
            draws += d
            if delta == 0:
                continue
            if per_sample:
                dW[dwoff + s], fl = into(dW[dwoff + s] + delta, f)
                sat += fl
                continue
            old = np.int64(W[woff + s])
            new, fl = into(old - delta, f)
            sat += fl
            if new != old:
                W[woff + s] = new
                if col:
                    wcol[coff + m * n_in + j] = new
                changed += 1
    rng[POS] = p
    ev = buf.ev
    ev[LFSR_DRAWS] += draws
    ev[ELIGIBILITY_MACS] += macs
    count_muls(ev, -1, muls)
    ev[WEIGHT_WRITES] += changed
    tw = net.lay[l, LC_TID + K_W]
    add_words(buf.sram, net.tens, 0, tw, visited)
    if net.per_sample:
        tdw = net.lay[l, LC_TID + K_DW]
        buf.sats[tdw] += sat
        add_words(buf.sram, net.tens, 0, tdw, visited)
        add_words(buf.sram, net.tens, 1, tdw, visited)
    else:
        buf.sats[tw] += sat
        add_words(buf.sram, net.tens, 1, tw, changed)
    if not synaptic:
        vec_access(net.tens, buf.sram, net.lay[l, LC_TID + K_Q], net.lay[l, LC_NIN], 1, 0)

