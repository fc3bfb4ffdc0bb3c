"""Forward phases of one step in float64: input events, LIF update, traces, readout.

The maths is :func:`edgesnn.rules.stllr.dense_forward` / ``readout_forward`` operation
by operation (same products and sums, same order, except that the synaptic current
sums the weights of the active inputs only, in ascending input order, where numpy's
``x @ W.T`` sums every input in the BLAS order)::

    q     = lambda_pre * q + x                          (learning layers only)
    i     = sum over active j of x[j] * W[:, j]      (W input-major: row j)
    v     = beta * u + (i + b)  (+ sum over active k of s[t-1][k] * W_rec[:, k])
    s     = 1[v - theta > 0];  psi = PSI(v - theta)
    h_prev = h;  h = lambda_post * h + psi;  q_rec = lambda_pre * q_rec + s[t-1]
    u     = v - theta * s  (soft)  or  v * (1 - s)  (hard)

The readout: ``q = out_decay * q + x``, ``u = beta * u + (W x + b)``.
"""

from __future__ import annotations

from numba import njit

from .layout import (LC_IOFF, LC_N, LC_NIN, LC_NOFF, LC_REC, LZ_W, LZ_WR, PSI_RATIONAL, R_H,
                     R_HP, R_I, R_IR, R_PSI, R_Q, R_QR, R_S, R_SP, R_U, R_X, S_FF, S_REC)
from .lazy import mark_active, sync_accumulate


@njit(cache=True)
def psi_of(d, form, coef):
    """The surrogate of ``d = v - theta``: ``1/(coef|d|+1)**2`` or ``coef*max(0, 1-|d|)``."""
    if form == PSI_RATIONAL:
        y = coef * abs(d) + 1.0
        return 1.0 / (y * y)
    r = 1.0 - abs(d)
    return coef * (r if r > 0.0 else 0.0)


@njit(cache=True)
def list_active(v, out):
    """Indices of the nonzero entries of ``v`` (ascending) into ``out``; returns their count."""
    cnt = 0
    for j in range(len(v)):
        if v[j] != 0.0:
            out[cnt] = j
            cnt += 1
    return cnt


@njit(cache=True)
def accumulate_rows(Wt, xin, act, cnt, cur):
    """``cur[m] = sum_k xin[act[k]] * Wt[act[k], m]`` (input-major ``Wt (n_in, n)``), the
    active rows added in list order."""
    cur[:] = 0.0
    for k in range(cnt):
        j = act[k]
        xj = xin[j]
        row = Wt[j]
        for m in range(len(cur)):
            cur[m] += xj * row[m]


@njit(cache=True)
def accumulate(W, xin, act, cnt, cur):
    """``cur[m] = sum_k xin[act[k]] * W[m, act[k]]`` for every output ``m`` (``W (n, n_in)``)."""
    n = W.shape[0]
    for m in range(n):
        row = W[m]
        acc = 0.0
        for k in range(cnt):
            j = act[k]
            acc += xin[j] * row[j]
        cur[m] = acc


@njit(cache=True)
def gather_input(net, buf, x, t, l):
    """Copy layer ``l``'s input of step ``t`` (the sample row, or the spikes of layer
    ``l - 1``) into ``inp[R_X]``; returns the view."""
    n_in = net.lay[l, LC_NIN]
    ioff = net.lay[l, LC_IOFF]
    xin = buf.inp[R_X, ioff:ioff + n_in]
    if l == 0:
        xin[:] = x[t]
    else:
        poff = net.lay[l - 1, LC_NOFF]
        xin[:] = buf.nrn[R_S, poff:poff + n_in]
    return xin


@njit(cache=True)
def pre_trace(q, xin, lam):
    """``q = lam * q + x`` in place."""
    for j in range(len(q)):
        q[j] = lam * q[j] + xin[j]


@njit(cache=True)
def hidden_forward(net, prm, buf, x, t, l, learn, lr):
    """Phases 1-3 of spiking layer ``l`` at step ``t``: events, LIF update, traces. When
    learning, a matrix with deferred updates (``Net.lazy``) has the columns it reads
    brought up to date first (:mod:`edgesnn.floatcore.lazy`)."""
    n_in = net.lay[l, LC_NIN]
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    ioff = net.lay[l, LC_IOFF]
    rec = net.lay[l, LC_REC]
    learns = l >= net.learn_from
    nrn = buf.nrn
    xin = gather_input(net, buf, x, t, l)
    act = buf.scr[S_FF]
    cnt = list_active(xin, act)
    buf.synops[0] += cnt * n
    t0 = net.T - net.window
    lazy_w = learn and net.lazy[l, LZ_W] != 0
    lazy_r = learn and rec and net.lazy[l, LZ_WR] != 0
    cur = nrn[R_I, off:off + n]
    if lazy_w:                           # bring the rows read up to date, then add them
        sync_accumulate(prm.W[l], xin, act, cnt, cur, t, t0, net.window, buf.pc, buf.aw,
                        off, buf.lzi, buf.lzi_t, ioff, lr)
    else:
        accumulate_rows(prm.W[l], xin, act, cnt, cur)
    sp = nrn[R_SP, off:off + n]
    rcur = nrn[R_IR, off:off + n]
    ract = buf.scr[S_REC]
    rcnt = 0
    if rec:
        rcnt = list_active(sp, ract)
        buf.synops[0] += rcnt * n
        if lazy_r:
            sync_accumulate(prm.Wr[l], sp, ract, rcnt, rcur, t, t0, net.window, buf.pc,
                            buf.aw, off, buf.lzr, buf.lzr_t, off, lr)
        else:
            accumulate_rows(prm.Wr[l], sp, ract, rcnt, rcur)
    if learns:
        q = buf.inp[R_Q, ioff:ioff + n_in]
        pre_trace(q, xin, net.lambda_pre)
        if lazy_w:
            mark_active(act, cnt, t, q, xin, buf.lzi, buf.lzi_t, ioff)
    beta = net.beta[l]
    theta = net.theta[l]
    hard = net.hard[l]
    lpost = net.lambda_post
    form = net.psi_form
    coef = net.psi_coef
    b = prm.b[l]
    u = nrn[R_U, off:off + n]
    s = nrn[R_S, off:off + n]
    psi = nrn[R_PSI, off:off + n]
    h = nrn[R_H, off:off + n]
    hp = nrn[R_HP, off:off + n]
    nsp = 0
    for m in range(n):
        v = beta * u[m] + (cur[m] + b[m])
        if rec:
            v = v + rcur[m]
        d = v - theta
        spk = 1.0 if d > 0.0 else 0.0
        nsp += d > 0.0
        s[m] = spk
        if learns:
            p = psi_of(d, form, coef)
            psi[m] = p
            hp[m] = h[m]
            h[m] = lpost * h[m] + p
        if hard:
            u[m] = v * (1.0 - spk)
        else:
            u[m] = v - theta * spk
    if learns and rec:
        qr = nrn[R_QR, off:off + n]
        pre_trace(qr, sp, net.lambda_pre)
        if lazy_r:
            mark_active(ract, rcnt, t, qr, sp, buf.lzr, buf.lzr_t, off)
    buf.spikes[l] += nsp


@njit(cache=True)
def readout_forward(net, prm, buf, x, t):
    """The readout's step: events from the last spiking layer, leaky integration, its trace."""
    L = net.L
    n_in = net.lay[L, LC_NIN]
    n = net.lay[L, LC_N]
    off = net.lay[L, LC_NOFF]
    ioff = net.lay[L, LC_IOFF]
    xin = gather_input(net, buf, x, t, L)
    act = buf.scr[S_FF]
    cnt = list_active(xin, act)
    buf.synops[0] += cnt * n
    cur = buf.nrn[R_I, off:off + n]
    accumulate(prm.Wo, xin, act, cnt, cur)
    pre_trace(buf.inp[R_Q, ioff:ioff + n_in], xin, net.out_decay)
    beta = net.beta[L]
    u = buf.nrn[R_U, off:off + n]
    bo = prm.bo
    for c in range(n):
        u[c] = beta * u[c] + (cur[c] + bo[c])
