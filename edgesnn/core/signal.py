"""Phase 4's learning signals in fixed point: the readout error, BP, DFA and TESS.

``readout_error`` forms ``e = softmax(u_out) - onehot(label)`` through the exp LUT
(``softmax_error``, which TESS's local error shares); ``signal_from_error`` sends it to
a hidden layer (BP through the readout weights, DFA through stored or LFSR-regenerated
feedback); ``signal_from_above`` is BP below the top layer; ``signal_tess`` is a
spiking layer's TESS local signal from its own spikes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.counters import (LFSR_DRAWS, LOCAL_SIGNAL_MACS, LUT_LOOKUPS, PHASE_ADDS,
                              SIGNAL_MACS, SIGNAL_MULTIPLIES)

from .arith import div_half_up, draw32, into, lut_index, round_vector, saturate, to_fmt
from .counting import (add_words, count_muls, list_words, range_words, real_mul, vec_access,
                       word_shift)
from .layout import (G_A, G_B, G_RC, G_RK, G_WC, G_WK, K_BAS, K_EL, K_FB, K_G, K_LAT, K_S, K_W,
                     K_ZL, LC_FBOFF, LC_N, LC_NOFF, LC_TID, LC_WOFF, R_ACT, R_EL, R_G, R_GP,
                     R_LAT, R_S, R_TMP, R_U, R_ZL, TL_D, TL_GOFF, TL_SOFF, TL_ZC, TL_ZK)
from .forward import list_nonzero
from .rng import POS


@njit(cache=True)
def softmax_error(net, z, zoff, C, label, p, out, ooff):
    """``out[ooff+c] = softmax(z)_c - [c = label]`` in the signal format, ``z[zoff:zoff+C]``
    membrane-format logits, through the exp LUT; ``p`` (C,) scratch. Returns the overflows.

    ``p_c = EXP[(max z - z_c) >> shift]``, ``e_c = round_half_up(p_c * 2**f / sum p)`` (one
    integer division per class) minus ``2**f`` at the label. The caller counts the ``C``
    lookups and the words.
    """
    zmax = z[zoff]
    for c in range(1, C):
        if z[zoff + c] > zmax:
            zmax = z[zoff + c]
    lut = net.exp_lut
    e_last = len(lut) - 1
    total = np.int64(0)
    for c in range(C):
        p[c] = lut[lut_index(zmax - z[zoff + c], net.exp_half, net.exp_sh, e_last)]
        total += p[c]
    fs = net.fmt.signal
    sat = 0
    for c in range(C):
        e = div_half_up(p[c] << fs.frac, total)
        if c == label:
            e -= np.int64(1) << fs.frac
        e, f = into(e, fs)
        sat += f
        out[ooff + c] = e
    return sat


@njit(cache=True)
def readout_error(net, st, buf, label):
    """e = softmax(u_out) - onehot(label) in the signal format, through the exp LUT
    (``softmax_error`` of the readout potentials)."""
    L = net.L
    C = net.C
    off = net.lay[L, LC_NOFF]
    te = net.lay[L, LC_TID + K_G]
    sat = softmax_error(net, buf.nrn[R_U], off, C, label, buf.scr[R_TMP], buf.nrn[R_G], off)
    buf.ev[LUT_LOOKUPS] += C
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
                    a, f = saturate(a + g_[eoff + c] * W[base + c], alo, ahi)
                    sat += f
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
                    acc[m], f = saturate(acc[m] + (pr if bit else -pr), alo, ahi)
                    sat += f
    else:
        fo = net.lay[l, LC_FBOFF]
        B = st.B
        for c in range(C):
            e = g_[eoff + c]
            if e == 0:
                continue
            for m in range(n):
                acc[m], f = saturate(acc[m] + e * B[fo + c * n + m], alo, ahi)
                sat += f
        if nnz > 0:
            tb = net.lay[l, LC_TID + K_FB]
            add_words(buf.sram, net.tens, 0, tb, range_words(net.tens[1, tb], 0, C * n))
    fs = net.fmt.signal
    fw = net.fmt.weight.frac
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
    fs = net.fmt.signal
    fw = net.fmt.weight.frac
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
            a, f = saturate(a + gp[uoff + k] * wrow[k], alo, ahi)
            sat += f
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
def signal_tess(net, st, buf, label, l):
    """TESS local signal ``g`` of spiking layer ``l`` from its spikes ``s`` of this step
    (docs/fixed_point.md, "TESS"), into ``nrn[R_G]``; the factors follow as for BP.

    1. pooling: ``cnt_d`` = spikes of group ``d`` (an add per spike per group holding it),
       ``lat_d = into S of cnt_d * (1/size_d)``;
    2. logits: ``z_c = into U of (sum_d sign[c, d] lat_d) * 1/(D*temperature)`` over the
       nonzero latents (adds and subtracts in the accumulator);
    3. ``e = softmax(z) - onehot(label)`` (``softmax_error``, the readout's exp LUT);
    4. shares: ``u_d = into S of (sum_c e_c sign[c, d]) * 1/(D*temperature*size_d)`` over
       the classes with ``e_c != 0``;
    5. unpooling: ``g_i = into S of sum over the groups d holding i of u_d``.

    Each constant is ``code / 2**k`` (``constants.reciprocal_constant``): a multiply unless
    a power of two. Signs come from ``net.tess_sgn`` (the plan's bits); a stored basis
    reads the words of ``L{l}.basis`` holding them, a generated one counts its phase
    accumulator's adds (``D - 1`` per class pass) instead.
    """
    C = net.C
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    tid = net.lay[l, LC_TID:]
    D = net.tess_lay[l, TL_D]
    g0 = net.tess_lay[l, TL_GOFF]
    s0 = net.tess_lay[l, TL_SOFF]
    zc = net.tess_lay[l, TL_ZC]
    zk = net.tess_lay[l, TL_ZK]
    grp = net.tess_grp
    sg = net.tess_sgn
    s_ = buf.nrn[R_S]
    g_ = buf.nrn[R_G]
    lat = buf.scr[R_LAT]
    z = buf.scr[R_ZL]
    err = buf.scr[R_EL]
    act = buf.scr[R_ACT]
    fs = net.fmt.signal
    fu = net.fmt.membrane
    alo = net.acc_lo
    ahi = net.acc_hi
    tens = net.tens
    sram = buf.sram
    ev = buf.ev
    rng = st.rng
    p_r = rng[POS]
    draws = 0
    macs = 0
    muls = 0
    passes = 0
    tb = tid[K_BAS]
    bank_words = 0
    epw = tens[1, tb] if tb >= 0 else 1
    esh = word_shift(epw)
    act2 = act.reshape((1, act.size))

    # groups are disjoint (each neuron in one) iff D divides n: then a neuron's group is
    # i // size, and its signal is its group's share as it stands (fast paths, same bits)
    disjoint = n % D == 0
    size = n // D

    # 1. pooling: spike counts per group, then the latents (groups without spikes skipped)
    vec_access(tens, sram, tid[K_S], n, 1, 0)
    if disjoint:                         # from the list of spikes (a few per step)
        for d in range(D):
            lat[d] = 0
        ns = list_nonzero(s_[off:off + n], act)
        for kk in range(ns):
            lat[act[kk] // size] += 1
    else:
        for d in range(D):
            cnt = np.int64(0)
            for i in range(grp[g0 + d, G_A], grp[g0 + d, G_B]):
                cnt += s_[off + i]
            lat[d] = cnt
    sat_l = 0
    nact = 0
    for d in range(D):
        cnt = lat[d]
        macs += cnt
        v = np.int64(0)
        if cnt != 0:
            rc = grp[g0 + d, G_RC]
            v, f, p_r, dr = to_fmt(cnt * rc, grp[g0 + d, G_RK] - fs.frac, fs, rng, p_r)
            draws += dr
            sat_l += f
            muls += real_mul(rc)
        lat[d] = v
        act[nact] = d
        nact += np.int64(v != 0)
    vec_access(tens, sram, tid[K_LAT], D, 0, 1)

    # 2. local logits over the nonzero latents
    sat_z = 0
    if nact > 0:
        vec_access(tens, sram, tid[K_LAT], D, 1, 0)
        passes += C
        zsh = fs.frac + zk - fu.frac
        for c in range(C):
            row = s0 + c * D
            a = np.int64(0)
            for kk in range(nact):
                d = act[kk]
                a, f = saturate(a + sg[row + d] * lat[d], alo, ahi)
                sat_z += f
            v = np.int64(0)
            if a != 0:
                v, f, p_r, dr = to_fmt(a * zc, zsh, fu, rng, p_r)
                draws += dr
                sat_z += f
                muls += real_mul(zc)
            z[c] = v
            if tb >= 0:
                bank_words += list_words(epw, esh, c * D, act2, 0, 0, nact)
        macs += C * nact
    else:
        for c in range(C):
            z[c] = 0
    vec_access(tens, sram, tid[K_ZL], C, 0, 1)

    # 3. local error
    vec_access(tens, sram, tid[K_ZL], C, 1, 0)
    sat_e = softmax_error(net, z, 0, C, label, buf.scr[R_TMP], err, 0)
    ev[LUT_LOOKUPS] += C
    macs += C
    vec_access(tens, sram, tid[K_EL], C, 0, 1)

    # 4. the latent gradient's shares, over the classes with e != 0
    vec_access(tens, sram, tid[K_EL], C, 1, 0)
    sat_u = 0
    for d in range(D):
        lat[d] = 0
    nnz = 0
    # no sum of C errors can leave the accumulator: no clamp to test (same bits)
    wide = C * max(-fs.lo, fs.hi) <= min(ahi, -alo)
    for c in range(C):
        e = err[c]
        if e == 0:
            continue
        nnz += 1
        row = s0 + c * D
        if wide:
            for d in range(D):
                lat[d] += sg[row + d] * e
        else:
            for d in range(D):
                lat[d], f = saturate(lat[d] + sg[row + d] * e, alo, ahi)
                sat_u += f
        if tb >= 0:
            bank_words += range_words(epw, c * D, D)
    macs += nnz * D
    passes += nnz
    for d in range(D):
        a = lat[d]
        if a != 0:
            wc = grp[g0 + d, G_WC]
            v, f, p_r, dr = to_fmt(a * wc, grp[g0 + d, G_WK], fs, rng, p_r)
            draws += dr
            sat_u += f
            muls += real_mul(wc)
            lat[d] = v
    vec_access(tens, sram, tid[K_LAT], D, 0, 1)

    # 5. unpooling: each neuron sums the shares of the groups holding it
    vec_access(tens, sram, tid[K_LAT], D, 1, 0)
    sat_g = 0
    if disjoint:                         # g_i is its one group's share, already in S
        for d in range(D):
            u = lat[d]
            macs += size * np.int64(u != 0)
            for i in range(d * size, (d + 1) * size):
                g_[off + i] = u
    else:
        for i in range(n):
            g_[off + i] = 0
        for d in range(D):
            u = lat[d]
            if u != 0:
                a0 = grp[g0 + d, G_A]
                b0 = grp[g0 + d, G_B]
                for i in range(a0, b0):
                    g_[off + i] += u
                macs += b0 - a0
        for i in range(n):
            g_[off + i], f = into(g_[off + i], fs)
            sat_g += f
    vec_access(tens, sram, tid[K_G], n, 0, 1)

    if tb >= 0:
        add_words(sram, tens, 0, tb, bank_words)
    if net.tess_gen:
        ev[PHASE_ADDS] += passes * (D - 1)
    rng[POS] = p_r
    ev[LFSR_DRAWS] += draws
    ev[SIGNAL_MACS] += macs
    ev[LOCAL_SIGNAL_MACS] += macs
    count_muls(ev, SIGNAL_MULTIPLIES, muls)
    buf.sats[tid[K_LAT]] += sat_l + sat_u
    buf.sats[tid[K_ZL]] += sat_z
    buf.sats[tid[K_EL]] += sat_e
    buf.sats[tid[K_G]] += sat_g
