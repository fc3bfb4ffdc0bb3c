"""The one-sample kernel of the fixed engine: one call runs one sample, all steps, all layers.

Entry point: ``run_sample_kernel(net, st, buf, x, label, learn, record, rec)`` with the
tuples of :mod:`edgesnn.core.layout` (``Net``, ``State``, ``Buffers``, ``Record``).
Per step it calls the phases of a chip step in order (DESIGN.md, "One time step on
the chip"), each from its module:

1-3. input events, neuron update, presynaptic traces: :mod:`edgesnn.core.forward`;
4.   in the window: the learning signals (:mod:`edgesnn.core.signal`), then factors
     and updates (:mod:`edgesnn.core.update`), driven by ``learn_step``;
5.   the readout is the last layer of the forward pass; the postsynaptic traces come
     after learning (``forward.post_traces``).

Functions that run per element take scalars, tuples or a few arrays only: numba
reference-counts every array of a tuple argument at each call.

Arithmetic follows docs/fixed_point.md, operation by operation; every result stored
into a format goes through the functions of :mod:`edgesnn.core.arith` (equal to
``fixed.shift_round`` / ``fixed.overflow``) and its overflow is counted per tensor.
All values stay below 2**63 by the bounds the engine checks at build
(:mod:`edgesnn.core.bounds`, which also derives the static fast-path gates in ``Net``).
"""

from __future__ import annotations

from numba import njit

from .counting import vec_access
from .delays import apply_delays, delay_grads, refresh_columns, update_synapses
from .forward import layer_forward, post_traces
from .layout import (CARRY, DL_MODE, DL_SIMPLE, K_DW, K_DWR, K_Q, K_QR, K_W, K_WR, LC_DWOFF, LC_DWROFF, LC_IOFF,
                     LC_N, LC_NIN, LC_NOFF, LC_REC, LC_TID, LC_WOFF, LC_WROFF, R_G, R_GP, R_H,
                     R_PSI, R_Q, R_QR, R_S, R_SP, R_U, R_XB)
from .signal import readout_error, signal_from_above, signal_from_error, signal_tess
from .update import apply_sample, factors, readout_factors, update_bias, update_rows


@njit(cache=True)
def learn_step(net, st, buf, label):
    """Phase 4 of a window step: error, signals (top-down; TESS: each layer's own), factors,
    then every update."""
    L = net.L
    readout_error(net, st, buf, label)
    for l in range(L - 1, net.learn_from - 1, -1):
        if net.tess:                     # local: from the layer's own spikes
            signal_tess(net, st, buf, label, l)
        elif net.dfa or l == L - 1:
            signal_from_error(net, st, buf, l)
        else:
            signal_from_above(net, st, buf, l)
        factors(net, st, buf, l)
        if net.dly[l, DL_MODE] != 0:
            delay_grads(net, st, buf, l)
    readout_factors(net, buf)
    # every update of a step uses the weights as they were at its start (signals are done)
    fs = net.fmt.signal.frac
    for l in range(net.learn_from, L + 1):
        ly = net.lay[l]
        if buf.cnt[l, 0] > 0:
            if net.dly[l, DL_SIMPLE]:        # masked or per-synapse: the kept synapses
                update_synapses(net, st, buf, l)
            else:
                vec_access(net.tens, buf.sram, ly[LC_TID + K_Q], ly[LC_NIN], 1, 0)
                update_rows(net, st, buf, l, ly[LC_WOFF], ly[LC_DWOFF], ly[LC_NIN],
                            buf.inp[R_Q], buf.inp[R_XB], ly[LC_IOFF], ly[LC_TID + K_W],
                            ly[LC_TID + K_DW])
            if ly[LC_REC]:
                vec_access(net.tens, buf.sram, ly[LC_TID + K_QR], ly[LC_N], 1, 0)
                update_rows(net, st, buf, l, ly[LC_WROFF], ly[LC_DWROFF], ly[LC_N], buf.nrn[R_QR],
                            buf.nrn[R_SP], ly[LC_NOFF], ly[LC_TID + K_WR], ly[LC_TID + K_DWR])
        update_bias(net, st, buf, l, buf.nrn[R_GP], net.lay[l, LC_NOFF], fs)


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
    buf.hist[:] = 0                      # delay buffers and eligibilities: per sample
    buf.ring[:] = 0
    buf.eps[:] = 0
    buf.qs[:] = 0
    if net.per_sample != CARRY:          # with carry the accumulators persist across samples
        buf.dW[:] = 0
        buf.db[:] = 0
    if learn and buf.colok[0] == 0:
        refresh_columns(net, st, buf)
        buf.colok[0] = 1
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
        apply_delays(net, st, buf)
        buf.colok[0] = 0                 # W changed outside the per-step writes
