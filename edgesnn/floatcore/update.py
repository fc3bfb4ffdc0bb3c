"""Factors and weight updates of one window step in float64 (S-TLLR, device mode).

As :func:`edgesnn.rules.stllr.dense_grads` / ``readout_grads`` and
``FloatEngine._apply``, batch 1, learning rate ``lr = 2**-shift``::

    a  = g * (alpha_post * h_prev);  c = g * (alpha_pre * psi);  gp = g * psi
    dW[m, j]     = a[m] * x[j]      + c[m] * q[j]      (stored input-major: [j, m])
    dW_rec[m, k] = a[m] * s[t-1][k] + c[m] * q_rec[k]
    db = gp;  readout: dW_out[c, k] = e[c] * q_out[k], db_out = e

Per-step updates apply ``W -= lr * dW`` at once (every signal of the step was
computed before, from the weights at its start); per-sample updates add ``dW`` into
accumulators (``acc = acc + dW``) applied once at the end of the sample
(``W -= lr * acc``). A row whose ``a`` and ``c`` are both zero adds exactly zero, so it
is skipped, and so is an input whose ``x`` and ``q`` are both zero: the arithmetic of the
other elements is the numpy engine's, element by element.
"""

from __future__ import annotations

from numba import njit

from .layout import (LC_IOFF, LC_N, LC_NIN, LC_NOFF, LC_REC, LZ_W, LZ_WR, R_A, R_C, R_DB, R_G,
                     R_GP, R_HP, R_PSI, R_Q, R_QR, R_SP, R_X)
from .lazy import record_step


@njit(cache=True)
def factors(net, buf, l):
    """``a``, ``c`` and ``g * psi`` of spiking layer ``l`` from its signal ``g``."""
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    nrn = buf.nrn
    apost = net.alpha_post
    apre = net.alpha_pre
    for m in range(off, off + n):
        g = nrn[R_G, m]
        nrn[R_A, m] = g * (apost * nrn[R_HP, m])
        nrn[R_C, m] = g * (apre * nrn[R_PSI, m])
        nrn[R_GP, m] = g * nrn[R_PSI, m]


@njit(cache=True)
def rows_add(Wt, a, c, x, q, scale):
    """``Wt[j, m] += scale * (a[m] * x[j] + c[m] * q[j])`` over input-major ``Wt (k, n)``,
    rows with ``x_j = q_j = 0`` skipped: per step ``scale = -lr`` on the weights (the same
    bits as ``w - lr * dw``), per sample ``scale = 1`` on the accumulators."""
    for j in range(Wt.shape[0]):
        xj = x[j]
        qj = q[j]
        if xj == 0.0 and qj == 0.0:
            continue
        row = Wt[j]
        for m in range(Wt.shape[1]):
            row[m] = row[m] + scale * (a[m] * xj + c[m] * qj)


@njit(cache=True)
def layer_update(net, prm, buf, l, w, lr):
    """Every update of spiking layer ``l`` at window step ``w`` (weights, recurrent
    weights, bias): accumulated, applied, or for a matrix with deferred updates
    (``Net.lazy``) its factors recorded (:mod:`edgesnn.floatcore.lazy`)."""
    n_in = net.lay[l, LC_NIN]
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    ioff = net.lay[l, LC_IOFF]
    nrn = buf.nrn
    a = nrn[R_A, off:off + n]
    c = nrn[R_C, off:off + n]
    gp = nrn[R_GP, off:off + n]
    x = buf.inp[R_X, ioff:ioff + n_in]
    q = buf.inp[R_Q, ioff:ioff + n_in]
    rec = net.lay[l, LC_REC]
    if net.per_sample:
        rows_add(buf.dW[l], a, c, x, q, 1.0)
        if rec:
            rows_add(buf.dWr[l], a, c, nrn[R_SP, off:off + n], nrn[R_QR, off:off + n], 1.0)
        db = nrn[R_DB, off:off + n]
        for m in range(n):
            db[m] = db[m] + gp[m]
    else:
        lazy_w = net.lazy[l, LZ_W] != 0
        lazy_r = rec and net.lazy[l, LZ_WR] != 0
        if lazy_w or lazy_r:
            record_step(buf.pc, buf.aw, w, a, c, off)
        if not lazy_w:
            rows_add(prm.W[l], a, c, x, q, -lr)
        if rec and not lazy_r:
            rows_add(prm.Wr[l], a, c, nrn[R_SP, off:off + n], nrn[R_QR, off:off + n], -lr)
        b = prm.b[l]
        for m in range(n):
            b[m] = b[m] - lr * gp[m]


@njit(cache=True)
def readout_update(net, prm, buf, lr):
    """The readout's update from its error ``e`` and presynaptic trace ``q_out``."""
    L = net.L
    C = net.C
    off = net.lay[L, LC_NOFF]
    ioff = net.lay[L, LC_IOFF]
    n_in = net.lay[L, LC_NIN]
    e = buf.nrn[R_G, off:off + C]
    q = buf.inp[R_Q, ioff:ioff + n_in]
    if net.per_sample:
        dW = buf.dWo
        db = buf.nrn[R_DB, off:off + C]
        for c in range(C):
            ec = e[c]
            row = dW[c]
            for k in range(n_in):
                row[k] = row[k] + ec * q[k]
            db[c] = db[c] + ec
    else:
        W = prm.Wo
        bo = prm.bo
        for c in range(C):
            ec = e[c]
            row = W[c]
            for k in range(n_in):
                row[k] = row[k] - lr * (ec * q[k])
            bo[c] = bo[c] - lr * ec


@njit(cache=True)
def sub_scaled(W, dW, lr):
    """``W -= lr * dW`` elementwise (2-D)."""
    for m in range(W.shape[0]):
        row = W[m]
        drow = dW[m]
        for j in range(W.shape[1]):
            row[j] = row[j] - lr * drow[j]


@njit(cache=True)
def apply_sample(net, prm, buf, lr):
    """Per-sample updates: every accumulator applied once, ``W -= lr * acc``."""
    nrn = buf.nrn
    for l in range(net.learn_from, net.L):
        n = net.lay[l, LC_N]
        off = net.lay[l, LC_NOFF]
        sub_scaled(prm.W[l], buf.dW[l], lr)
        if net.lay[l, LC_REC]:
            sub_scaled(prm.Wr[l], buf.dWr[l], lr)
        b = prm.b[l]
        for m in range(n):
            b[m] = b[m] - lr * nrn[R_DB, off + m]
    sub_scaled(prm.Wo, buf.dWo, lr)
    off = net.lay[net.L, LC_NOFF]
    bo = prm.bo
    for c in range(net.C):
        bo[c] = bo[c] - lr * nrn[R_DB, off + c]
