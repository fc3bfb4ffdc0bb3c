"""Learning signals of one window step in float64: readout error, BP, DFA, TESS.

As :mod:`edgesnn.signals` and ``reference.FloatEngine._window_grads``, batch 1:

* readout error ``e = softmax(u_out) - onehot(label)`` (``exp(z - max) / sum``);
* BP: the last spiking layer gets ``g = e @ W_out``, a layer below
  ``g = (g_above * psi_above) @ W_above``;
* DFA: ``g = e @ B_l``;
* TESS: ``g = unpool(softmax(pool(s) @ basis.T / temperature) - onehot) @ basis /
  temperature)`` from the layer's own spikes of this step.

Every signal reads the weights as they were at the start of the step (updates come
after all signals). Sums run in index order.
"""

from __future__ import annotations

import math

from numba import njit

from .layout import (LC_N, LC_NOFF, R_G, R_GP, R_S, R_U, T_E, T_LAT, T_Z, TL_BOFF,
                     TL_D, TL_GOFF)


@njit(cache=True)
def softmax_error(z, label, out):
    """``out = softmax(z) - onehot(label)`` for ``z (C,)``."""
    C = len(z)
    mx = z[0]
    for c in range(1, C):
        if z[c] > mx:
            mx = z[c]
    tot = 0.0
    for c in range(C):
        out[c] = math.exp(z[c] - mx)
        tot += out[c]
    for c in range(C):
        out[c] = out[c] / tot
    out[label] = out[label] - 1.0


@njit(cache=True)
def readout_error(net, buf, label):
    """The readout's error into its ``R_G`` columns."""
    off = net.lay[net.L, LC_NOFF]
    C = net.C
    softmax_error(buf.nrn[R_U, off:off + C], label, buf.nrn[R_G, off:off + C])


@njit(cache=True)
def project(e, M, g):
    """``g = e @ M`` for ``e (C,)``, ``M (C, n)``: rows of ``M`` accumulated in order."""
    g[:] = 0.0
    for c in range(M.shape[0]):
        ec = e[c]
        row = M[c]
        for m in range(M.shape[1]):
            g[m] += ec * row[m]


@njit(cache=True)
def signal_from_error(net, prm, buf, l, M):
    """BP to the last spiking layer (``M = W_out``) or DFA (``M = B_l``): ``g = e @ M``."""
    eoff = net.lay[net.L, LC_NOFF]
    off = net.lay[l, LC_NOFF]
    n = net.lay[l, LC_N]
    project(buf.nrn[R_G, eoff:eoff + net.C], M, buf.nrn[R_G, off:off + n])


@njit(cache=True)
def signal_from_above(net, prm, buf, l):
    """BP below the top: ``g_l = (g * psi)_{l+1} @ W_{l+1}``."""
    a_off = net.lay[l + 1, LC_NOFF]
    a_n = net.lay[l + 1, LC_N]
    off = net.lay[l, LC_NOFF]
    n = net.lay[l, LC_N]
    gp = buf.nrn[R_GP, a_off:a_off + a_n]
    g = buf.nrn[R_G, off:off + n]
    Wt = prm.W[l + 1]                    # input-major (n, a_n): row j = input j of layer l+1
    for j in range(n):
        row = Wt[j]
        acc = 0.0
        for m in range(a_n):
            acc += gp[m] * row[m]
        g[j] = acc


@njit(cache=True)
def signal_tess(net, buf, label, l):
    """TESS local signal of layer ``l`` from its spikes of this step (``edgesnn.signals.
    tess_signal`` with the pooling matrix): pool, project, softmax error, project back,
    unpool."""
    n = net.lay[l, LC_N]
    off = net.lay[l, LC_NOFF]
    D = net.tess_lay[l, TL_D]
    goff = net.tess_lay[l, TL_GOFF]
    boff = net.tess_lay[l, TL_BOFF]
    C = net.C
    grp = net.tess_grp
    inv = net.tess_inv
    basis = net.tess_basis
    s = buf.nrn[R_S, off:off + n]
    lat = buf.tsc[T_LAT]
    z = buf.tsc[T_Z]
    e = buf.tsc[T_E]
    tau = net.temperature
    for d in range(D):
        acc = 0.0
        r = inv[goff + d]
        for i in range(grp[goff + d, 0], grp[goff + d, 1]):
            acc += s[i] * r
        lat[d] = acc
    for c in range(C):
        acc = 0.0
        for d in range(D):
            acc += lat[d] * basis[boff + c * D + d]
        z[c] = acc if tau == 1.0 else acc / tau
    softmax_error(z[:C], label, e[:C])
    for d in range(D):                   # the latent's gradient (batch 1: / 1)
        acc = 0.0
        for c in range(C):
            acc += e[c] * basis[boff + c * D + d]
        lat[d] = acc if tau == 1.0 else acc / tau
    g = buf.nrn[R_G, off:off + n]
    g[:] = 0.0
    for d in range(D):
        share = lat[d] * inv[goff + d]
        for i in range(grp[goff + d, 0], grp[goff + d, 1]):
            g[i] += share
