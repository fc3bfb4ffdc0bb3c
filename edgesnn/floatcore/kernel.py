"""The one-sample kernel of the float twin: one call runs one sample, all steps, all layers.

``run_sample_kernel(net, prm, buf, x, label, learn, lr)`` with the tuples of
:mod:`edgesnn.floatcore.layout`. Per step, as ``reference.FloatEngine._run``: every
spiking layer bottom-up and the readout (:mod:`~edgesnn.floatcore.forward`); in the
window the score sum and, when learning, the readout error, the signals top-down
(:mod:`~edgesnn.floatcore.signal`), each layer's factors, then every update
(:mod:`~edgesnn.floatcore.update`). Per-sample updates are applied after the last step.
"""

from __future__ import annotations

from numba import njit

from .forward import hidden_forward, readout_forward
from .layout import LC_IOFF, LC_NOFF, LC_REC, LZ_W, LZ_WR, R_S, R_SP, R_U, SIG_DFA, SIG_TESS
from .lazy import sync_all
from .signal import readout_error, signal_from_above, signal_from_error, signal_tess
from .update import apply_sample, factors, layer_update, readout_update


@njit(cache=True)
def learn_step(net, prm, buf, label, w, lr):
    """Error, signals top-down (TESS: each layer's own), factors, then every update."""
    L = net.L
    readout_error(net, buf, label)
    for l in range(L - 1, net.learn_from - 1, -1):
        if net.signal == SIG_TESS:
            signal_tess(net, buf, label, l)
        elif net.signal == SIG_DFA:
            signal_from_error(net, prm, buf, l, prm.B[l])
        elif l == L - 1:
            signal_from_error(net, prm, buf, l, prm.Wo)
        else:
            signal_from_above(net, prm, buf, l)
        factors(net, buf, l)
    # every update of a step uses the weights as they were at its start (signals are done)
    for l in range(net.learn_from, L):
        layer_update(net, prm, buf, l, w, lr)
    readout_update(net, prm, buf, lr)


@njit(cache=True)
def clear(buf):
    """Zero every per-sample array (state starts at zero, ``s[-1] = 0``)."""
    buf.nrn[:, :] = 0.0
    buf.inp[:, :] = 0.0
    buf.scores[:] = 0.0
    buf.u_win[:, :] = 0.0
    buf.spikes[:] = 0
    buf.synops[:] = 0
    for l in range(len(buf.dW)):
        buf.dW[l][:, :] = 0.0
        buf.dWr[l][:, :] = 0.0
    buf.dWo[:, :] = 0.0
    buf.pc[:, :] = 0.0
    buf.aw[:, :] = 0.0
    buf.lzi[:, :] = 0.0
    buf.lzi_t[:] = 0
    buf.lzr[:, :] = 0.0
    buf.lzr_t[:] = 0


@njit(cache=True)
def sync_deferred(net, prm, buf, lr):
    """End of a learned sample: every matrix with deferred updates brought up to date."""
    t0 = net.T - net.window
    for l in range(net.L):
        noff = net.lay[l, LC_NOFF]
        if net.lazy[l, LZ_W]:
            sync_all(prm.W[l], net.T, t0, net.window, buf.pc, buf.aw, noff, buf.lzi,
                     buf.lzi_t, net.lay[l, LC_IOFF], lr)
        if net.lay[l, LC_REC] and net.lazy[l, LZ_WR]:
            sync_all(prm.Wr[l], net.T, t0, net.window, buf.pc, buf.aw, noff, buf.lzr,
                     buf.lzr_t, noff, lr)


@njit(cache=True)
def run_sample_kernel(net, prm, buf, x, label, learn, lr):
    """Run one sample ``x (T, n_in)`` float64; learn from ``label`` when ``learn`` (learning
    rate ``lr``). Leaves the window's readout potentials in ``buf.u_win``, their sum in
    ``buf.scores``, spikes and synaptic accumulates in ``buf.spikes``, ``buf.synops``."""
    L = net.L
    C = net.C
    clear(buf)
    t0 = net.T - net.window
    eoff = net.lay[L, LC_NOFF]
    ntot = buf.nrn.shape[1]
    for t in range(net.T):
        for m in range(ntot):
            buf.nrn[R_SP, m] = buf.nrn[R_S, m]
        for l in range(L):
            hidden_forward(net, prm, buf, x, t, l, learn, lr)
        readout_forward(net, prm, buf, x, t)
        if t < t0:
            continue
        for c in range(C):
            buf.scores[c] += buf.nrn[R_U, eoff + c]
            buf.u_win[t - t0, c] = buf.nrn[R_U, eoff + c]
        if learn:
            learn_step(net, prm, buf, label, t - t0, lr)
    if learn and net.per_sample:
        apply_sample(net, prm, buf, lr)
    if learn:
        sync_deferred(net, prm, buf, lr)
