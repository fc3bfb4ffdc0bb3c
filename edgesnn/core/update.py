"""Phase 4's updates: factors, update rows, biases, and the per-sample apply.

``factors`` turns a layer's signal ``g`` into the factors ``a = g*alpha_post*h_prev``
and ``c = g*alpha_pre*psi`` and lists the neurons whose rows are visited;
``update_rows`` forms ``dw = a*x + c*q`` over the listed synapses of one weight
matrix and applies it (per step) or accumulates it (per sample) through
``visit_rows`` or, in int32 lanes, ``visit_rows32``; ``update_bias`` does the
biases; ``apply_sample`` applies the per-sample accumulators at the end of a sample.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.counters import ELIGIBILITY_MACS, LFSR_DRAWS, ROWS_SKIPPED, WEIGHT_WRITES
from edgesnn.fixed import STOCHASTIC

from .arith import (BIAS, I32_MAX, biased_floor_shift, into, lane_consts, rnd, rnd_det,
                    rnd_lanes, saturate, stoch_shift, stoch_split, stoch_sum32, to_fmt, word_top)
from .constants import ALPHA_FRAC
from .counting import add_words, chunk_words, count_muls, real_mul, vec_access, word_table
from .layout import (CARRY, CMP_DELTA, DL_COFF, DL_COL, K_A, K_B, K_C, K_DB, K_DW, K_DWR, K_G,
                     K_H, K_PSI, K_W, K_WR, LC_BOFF, LC_DBOFF, LC_DWOFF, LC_DWROFF, LC_N, LC_NIN, LC_NOFF, LC_REC,
                     LC_TID, LC_WOFF, LC_WROFF, PAD, R_A, R_C, R_G, R_GP, R_H, R_PSI)
from .rng import FILL, POS, ensure, refill, words

ONE_ALPHA = 1 << ALPHA_FRAC


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
    fs = net.fmt.signal
    ft = net.fmt.trace
    ftr = ft.frac
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
                                                        fs.rounding, fs.lo, fs.hi, apost, apre)
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
                a, p_r, d = rnd(g * h, ftr, fs.rounding, rng, p_r)
                draws += d
                if apost != ONE_ALPHA:
                    a, p_r, d = rnd(a * apost, ALPHA_FRAC, fs.rounding, rng, p_r)
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


@njit(cache=True)
def factor_loop_det(g_, h_, psi_, a_, c_, gp_, n, ftr, mode, lo, hi, apost, apre):
    """``factor_loop`` for a deterministic, saturating signal format and 32-bit ``g``, ``h``,
    ``psi``: every product computed (a zero product rounds and clamps to 0, as the
    skip gives), branch-free, 32x32->64 multiplies: a SIMD loop.
    Returns ``(g*h products, g*psi products, overflows of a, of c, of gp)``.
    """
    bias, odd, away = lane_consts(ftr, mode)
    abias, _, _ = lane_consts(ALPHA_FRAC, mode)
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
        ac, f = saturate(a, lo, hi)
        sat_a += f
        gpc, f = saturate(rnd_lanes(y, ftr, bias, odd, away), lo, hi)
        sat_g += f
        c = gpc
        if scale_c:
            c = rnd_lanes(gpc * apre, ALPHA_FRAC, abias, odd, away)
        cc, f = saturate(c, lo, hi)
        sat_c += f
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
    ftr = net.fmt.trace.frac
    frac = net.fmt.signal.frac + ftr
    per_sample = net.per_sample
    ca = buf.cnt[l, 0]
    cc = buf.cnt[l, 1]
    lac = buf.act[0, off:off + ca]
    lc = buf.act[1, off:off + cc]
    W = st.W[woff:woff + rows * n]
    if per_sample:
        f = net.fmt.update
        sh = frac - f.frac
        dW = buf.dW[dwoff:dwoff + rows * n]
        tt = tdw
    else:
        f = net.fmt.weight
        sh = frac + net.lr - f.frac
        dW = buf.dW
        tt = tw
    epw = net.tens[1, tw]
    wt = buf.wtab
    # a learning axonal layer's input weights have a column copy (Buffers.wcol) to keep
    cs = 0
    coff = 0
    if not per_sample and woff == net.lay[l, LC_WOFF] and net.dly[l, DL_COL] != 0:
        cs = rows
        coff = net.dly[l, DL_COFF]
    wc = buf.wcol[coff:coff + cs * n]
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
    if (f.rounding == STOCHASTIC and 0 < sh <= 30 and bound + (1 << sh) <= I32_MAX
            and bound <= min(net.acc_hi, -net.acc_lo)):
        p_r, draws, macs, reads, writes, changed, sat = visit_rows32(
            W, dW, n, qv, x[xoff:xoff + rows], buf.act[:, off:off + n], c32, ca, cc, na, wt, epw,
            sh, f, per_sample, rng, rng[POS], buf.vis, wc, cs)
    else:
        p_r, draws, macs, reads, writes, changed, sat = visit_rows(
            W, dW, n, qv, x[xoff:xoff + rows], buf.act[:, off:off + n], cmp, ca, cc, na,
            cmax <= I32_MAX and qmax <= I32_MAX, bound, wt, epw, ftr, net.acc_lo, net.acc_hi,
            sh, f.rounding, f, per_sample, rng, rng[POS], wc, cs)
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
def visit_rows(W, dW, n, q, x, lists, cmp, ca, cc, na, narrow, bound, wt, epw, ftr, alo,
               ahi, sh, mode, f, per_sample, rng, p, wc, cs):
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
    pre, k = stoch_split(sh)
    rk = 32 - k
    fast = stoch and pre == 0 and bound <= min(ahi, -alo) and bound < BIAS and narrow
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
                          + word_top(rw[p + kk], rk))
                    dv = biased_floor_shift(pv, k)
                    dl[kk] = dv
                    nz |= dv
            else:
                for kk in range(cnt):
                    pv = np.int64(np.int32(c1[kk])) * q32 + word_top(rw[p + kk], rk)
                    dv = biased_floor_shift(pv, k)
                    dl[kk] = dv
                    nz |= dv
            p += cnt
            draws += cnt
        elif stoch:
            p = ensure(rng, p, cnt)
            for kk in range(cnt):
                dw, fl = saturate(cmp[ci, kk] * qj + (cmp[ci + 1, kk] << ftr), alo, ahi)
                sat += fl
                dv = stoch_shift(dw, pre, k, rw[p + kk])
                dl[kk] = dv
                nz |= dv
            p += cnt
            draws += cnt
        else:
            for kk in range(cnt):
                dw, fl = saturate(cmp[ci, kk] * qj + (cmp[ci + 1, kk] << ftr), alo, ahi)
                sat += fl
                dv = rnd_det(dw, sh, mode)
                dl[kk] = dv
                nz |= dv
        if nz == 0:
            continue
        ch, wr, fl = write_row(W, dW, dl, j * n, lists[t], cnt, f, per_sample, epw, wc, cs, j)
        changed += ch
        writes += wr
        sat += fl
    return p, draws, macs, reads, writes, changed, sat


@njit(cache=True, inline='always')
def write_row(W, dW, dl, base, lst, cnt, f, per_sample, epw, wc, cs, j):
    """Apply row ``j``'s updates ``dl[:cnt]`` at ``base + lst[:cnt]``: per step ``W -= dl``
    in format ``f`` (and, with ``cs > 0``, into the column copy ``wc[m * cs + j]``,
    ``Buffers.wcol``), per sample ``dW += dl``. Returns ``(changed, words written,
    overflows)``."""
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
        if cs > 0:
            wc[lst[kk] * cs + j] = new
        changed += 1
        if epw > 0:
            wd = e // epw
            if wd != last_w:
                writes += 1
                last_w = wd
        else:
            writes += -epw
    return changed, writes, sat


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
def visit_rows32(W, dW, n, q, x, lists, c32, ca, cc, na, wt, epw, k, f, per_sample, rng, p, vis,
                wc, cs):
    """``visit_rows`` in int32 lanes, for ``|dw| + 2**k < 2**31`` (no clamp, ``k <= 30``).

    Stochastic rounding ``dv = stoch_sum32(dw, word, 32 - k) >> k`` is nonzero iff
    ``uint32(stoch_sum32(dw, word, 32 - k)) >= 2**k``, so a first pass over a row only
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
                za = max(za, np.uint32(stoch_sum32(np.int32(ck * qa), rw[pa + kk], rk)))
                zb = max(zb, np.uint32(stoch_sum32(np.int32(ck * qb), rw[pb + kk], rk)))
                zc = max(zc, np.uint32(stoch_sum32(np.int32(ck * qc), rw[pc + kk], rk)))
                zd = max(zd, np.uint32(stoch_sum32(np.int32(ck * qd), rw[pd + kk], rk)))
            if max(max(za, zb), max(zc, zd)) >= lim:
                for h in range(4):
                    zh = za if h == 0 else (zb if h == 1 else (zc if h == 2 else zd))
                    if zh >= lim:
                        ch, wr, fl = row32(W, dW, c32, False, vis0[g + h], q, rw,
                                           np.uint64(p + vis1[g + h]), cc, rk, k, n, l1, f,
                                           per_sample, epw, wc, cs)
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
                    z = max(z, np.uint32(stoch_sum32(np.int32(c0[kk] * qs) + a0[kk],
                                                     rw[pr + kk], rk)))
            else:
                for kk in range(np.uint64(cc8)):
                    z = max(z, np.uint32(stoch_sum32(np.int32(c1[kk] * qs), rw[pr + kk], rk)))
            if z >= lim:
                ch, wr, fl = row32(W, dW, c32, with_a, rj, q, rw, pr, ca if with_a else cc, rk, k,
                                   n, l0 if with_a else l1, f, per_sample, epw, wc, cs)
                changed += ch
                writes += wr
                sat += fl
        p += used
    return p, draws, macs, reads, writes, changed, sat


@njit(cache=True, inline='always')
def row32(W, dW, c32, with_a, j, q, rw, p, cnt, rk, k, n, lst, f, per_sample, epw, wc, cs):
    """Row ``j`` of ``visit_rows32``: ``d = (c*q_j [+ a] + word >> (32-k)) >> k`` over the
    list (``c32`` row 0 with ``a`` in row 1, or row 2), stored in ``c32`` row 3 and
    written (``write_row``). Returns ``(changed, words written, overflows)``."""
    c = c32[0] if with_a else c32[2]
    a = c32[1]
    d = c32[3]
    qs = np.int32(q[j])
    k32 = np.int32(k)
    for kk in range(np.uint64(cnt)):
        v = stoch_sum32(np.int32(c[kk] * qs), rw[p + kk], rk)
        if with_a:
            v = np.int32(v + a[kk])
        d[kk] = v >> k32
    return write_row(W, dW, d, j * n, lst, cnt, f, per_sample, epw, wc, cs, j)


@njit(cache=True)
def update_bias(net, st, buf, l, vals, voff, frac):
    """b -= round(v * 2**-lr) (per step) or db += v (per sample) for the nonzero ``vals``.

    ``v = vals[voff + m]`` has ``frac`` fractional bits (gp, or the readout's e).
    """
    n = net.lay[l, LC_N]
    tb = net.lay[l, LC_TID + K_B]
    boff = net.lay[l, LC_BOFF]
    fb = net.fmt.bias
    fup = net.fmt.update
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
            r, p_r, d = rnd(v, frac - fup.frac, fup.rounding, rng, p_r)
            draws += d
            buf.db[k], f = into(buf.db[k] + r, fup)
            sat += f
            continue
        delta, p_r, d = rnd(v, frac + net.lr - fb.frac, fb.rounding, rng, p_r)
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
def apply_accumulated(net, st, buf, arr, aoff, acc, doff, size, f, tid, tdw):
    """Per-sample end: ``arr -= round(acc * 2**-lr)`` in format ``f`` over one accumulator,
    then clear it or (``net.per_sample == CARRY``) leave the rounding remainder in it.

    Remainder ``acc - (delta << shift)`` of the rounded ``delta`` (0 for a shift <= 0),
    brought into the update format (saturation counted on the accumulator). It is the
    rounding remainder only: what the weight format's saturation cuts off ``delta`` is
    dropped, as when clearing (carrying it would wind the accumulator up behind a weight
    held at its limit). Reads every word of the accumulator and writes it back (cleared,
    or holding remainders); reads the parameter words with a nonzero accumulator, writes
    those that changed.
    """
    fup = net.fmt.update
    sh = fup.frac + net.lr - f.frac
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
        delta, p_r, d = rnd(v, sh, f.rounding, rng, p_r)
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
    """Per-sample mode: one rounded update of every learning parameter from its accumulator."""
    for l in range(net.learn_from, net.L + 1):
        ly = net.lay[l]
        n = ly[LC_N]
        apply_accumulated(net, st, buf, st.W, ly[LC_WOFF], buf.dW, ly[LC_DWOFF], ly[LC_NIN] * n,
                          net.fmt.weight, ly[LC_TID + K_W], ly[LC_TID + K_DW])
        if ly[LC_REC]:
            apply_accumulated(net, st, buf, st.W, ly[LC_WROFF], buf.dW, ly[LC_DWROFF], n * n,
                              net.fmt.weight, ly[LC_TID + K_WR], ly[LC_TID + K_DWR])
        apply_accumulated(net, st, buf, st.b, ly[LC_BOFF], buf.db, ly[LC_DBOFF], n,
                          net.fmt.bias, ly[LC_TID + K_B], ly[LC_TID + K_DB])
