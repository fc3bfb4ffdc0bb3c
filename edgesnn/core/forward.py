"""Phases 1-3 of a chip step: input events, neuron update, traces.

``layer_forward`` runs one layer's step (the readout's when ``l == Net.L``):
synaptic accumulates of the input spikes' weight rows (and the recurrent ``s[t-1]``),
the membrane update, spike, ``psi`` LUT and reset, and the presynaptic traces.
``post_traces`` updates the postsynaptic traces ``h`` after learning (their old
value was ``h_prev``). A new neuron model or delay buffer is a new function here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.counters import (LFSR_DRAWS, LUT_LOOKUPS, MEMBRANE_MULTIPLIES, NEURON_UPDATES,
                              SYNOPS, TRACE_MULTIPLIES, TRACE_UPDATES)
from edgesnn.fixed import SATURATE

from .arith import into, lut_index, round_vector, saturate
from .counting import add_words, count_muls, range_words, real_mul, vec_access
from .delays import eligibility, kept_accumulate, push_history, synapse_traces
from .layout import (DL_AXONAL, DL_MODE, DL_SIMPLE, DL_SYNAPTIC, K_B, K_H, K_I, K_PSI, K_Q, K_QR, K_S, K_U, K_W, K_WR,
                     LC_BOFF, LC_HARD, LC_IOFF, LC_N, LC_NIN, LC_NOFF, LC_NU, LC_REC, LC_TH,
                     LC_THETA, LC_TID, LC_TQ, LC_WOFF, LC_WROFF, R_ACT, R_H, R_I, R_PSI, R_Q,
                     R_QR, R_S, R_SP, R_TMP, R_U, R_XB)
from .rng import POS


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
    fi = net.fmt.current
    fw = net.fmt.weight
    sh = fi.frac - fw.frac
    lo = fi.lo
    hi = fi.hi
    ti = net.lay[l, LC_TID + K_I]
    cur = buf.nrn[R_I, off:off + n]
    W = st.W
    rows = buf.scr[R_ACT]
    epw_w = net.tens[1, tw]
    sat = 0
    words = 0
    saturating = fi.overflow == SATURATE
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
        if saturating:                   # branch-free clamp; same result as into()
            for m in range(n):
                c, f = saturate(cur[m] + (np.int64(wrow[m]) << sh), lo, hi)
                sat += f
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
def layer_forward(net, st, buf, x, t, l, record, rec):
    """Phases 1-3 of layer ``l`` (readout when ``l == L``): events, neuron update, traces."""
    n_in = net.lay[l, LC_NIN]
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    ioff = net.lay[l, LC_IOFF]
    tid = net.lay[l, LC_TID:]
    spiking = l < net.L
    learns = l >= net.learn_from      # a frozen layer needs no psi and no traces
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    ev = buf.ev

    # 1. input events (feed-forward, delayed and masked as the layer says, then recurrent
    #    s[t-1])
    cnt = gather_inputs(net, buf, x, t, l)
    dmode = net.dly[l, DL_MODE]
    if dmode != 0:
        push_history(net, st, buf, t, l)
        if dmode == DL_AXONAL:
            cnt = list_nonzero(buf.inp[R_XB, ioff:ioff + n_in], buf.scr[R_ACT])
    prior = cnt
    if net.dly[l, DL_SIMPLE]:
        kept_accumulate(net, st, buf, t, l, cnt)
        if dmode == DL_SYNAPTIC:         # a ring slot sums many steps' rows: clamp after it
            prior = net.syn_rows + 1
    else:
        accumulate_rows(net, st, buf, l, net.lay[l, LC_WOFF], cnt, tid[K_W], 0)
    if net.lay[l, LC_REC]:
        vec_access(net.tens, buf.sram, tid[K_S], n, 1, 0)
        c2 = list_nonzero(buf.nrn[R_SP, off:off + n], buf.scr[R_ACT])
        accumulate_rows(net, st, buf, l, net.lay[l, LC_WROFF], c2, tid[K_WR], prior)

    # 2. neuron update: v = round(u*beta + i + b); spike, psi, reset
    fu = net.fmt.membrane
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
            idx_[m] = lut_index(d if d >= 0 else -d, phalf, psh, e_last)
            sp = np.int64(d > 0)
            s_o[m] = sp
            nsp += sp
            u_o[m] = v - sp * (v - keep * d)
        if learns:
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
        vec_access(net.tens, buf.sram, tid[K_S], n, 0, 1)
        if learns:
            ev[LUT_LOOKUPS] += n
            vec_access(net.tens, buf.sram, tid[K_PSI], n, 0, 1)

    # 3. presynaptic traces (a frozen layer keeps none), the delays' eligibility
    if learns:
        # q = decay(q) + x, q_rec = decay(q_rec) + s[t-1]
        ft = net.fmt.trace
        qc = net.lay[l, LC_TQ + 0]
        qk = net.lay[l, LC_TQ + 1]
        one_sh = ft.frac + qk
        qmul = net.decay_mul * real_mul(qc)          # x*one: a spike, not a multiply
        if dmode == DL_SYNAPTIC:                     # each synapse its own trace
            rng[POS] = p_r
            synapse_traces(net, st, buf, t, l)
            p_r = rng[POS]
        else:
            sat, d, p_r = decay_add(buf.inp[R_Q], buf.inp[R_XB], ioff, n_in, qc, one_sh, qk,
                                    ft, rng, p_r)
            draws += d
            buf.sats[tid[K_Q]] += sat
            vec_access(net.tens, buf.sram, tid[K_Q], n_in, 1, 1)
            ev[TRACE_UPDATES] += n_in
            count_muls(ev, TRACE_MULTIPLIES, n_in * qmul)
        if dmode != 0:
            rng[POS] = p_r
            eligibility(net, st, buf, t, l)
            p_r = rng[POS]
        if net.lay[l, LC_REC]:
            sat, d, p_r = decay_add(buf.nrn[R_QR], buf.nrn[R_SP], off, n, qc, one_sh, qk, ft,
                                    rng, p_r)
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
    ft = net.fmt.trace
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    ev = buf.ev
    h_ = buf.nrn[R_H]
    psi_ = buf.nrn[R_PSI]
    for l in range(net.learn_from, net.L):
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
