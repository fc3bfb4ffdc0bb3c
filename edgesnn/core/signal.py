"""Phase 4's learning signals in fixed point: the readout error, BP and DFA.

``readout_error`` forms ``e = softmax(u_out) - onehot(label)`` through the exp LUT;
``signal_from_error`` sends it to a hidden layer (BP through the readout weights, DFA
through stored or LFSR-regenerated feedback); ``signal_from_above`` is BP below the
top layer. A new learning signal (TESS) is a new function here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.counters import LFSR_DRAWS, LUT_LOOKUPS, SIGNAL_MACS, SIGNAL_MULTIPLIES

from .arith import div_half_up, draw32, into, lut_index, round_vector, saturate, to_fmt
from .counting import (add_words, count_muls, list_words, range_words, real_mul, vec_access,
                       word_shift)
from .layout import (K_FB, K_G, K_W, LC_FBOFF, LC_N, LC_NOFF, LC_TID, LC_WOFF, R_ACT,
                     R_G, R_GP, R_TMP, R_U)
from .rng import POS


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
        p[c] = lut[lut_index(umax - u_[off + c], net.exp_half, net.exp_sh, e_last)]
        total += p[c]
    buf.ev[LUT_LOOKUPS] += C
    fs = net.fmt.signal
    te = net.lay[L, LC_TID + K_G]
    sat = 0
    for c in range(C):
        e = div_half_up(p[c] << fs.frac, total)
        if c == label:
            e -= np.int64(1) << fs.frac
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
