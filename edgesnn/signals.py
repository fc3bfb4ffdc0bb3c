"""Learning signals from softmax cross-entropy, and the S-TLLR ``net`` (recurrent hidden + readout).

Shapes: ``logits (B, C)``, ``label (B,)`` integer classes, hidden ``(B, N_hid)``.

At a window step ``t`` (``ls_mask[t]``), with ``err = softmax(logits[t]) - onehot``::

    loss_t   = mean_b CE(logits[t], label)
    g_out    = err / B                       readout signal (gradient of the batch-mean loss)
    BP:  g_hidden = g_out @ W_out            (B, N_hid)
    DFA: g_hidden = err @ B_fb               B_fb (C, N_hid), no 1/B

TESS (:func:`tess_signal`) is local: each spiking layer's own spikes, average-pooled
to ``D`` values and projected onto a fixed square-wave basis ``(C, D)``
(:mod:`edgesnn.rules.tess`), give a softmax cross-entropy whose gradient with
respect to the spikes is that layer's signal; nothing comes from the layer above.

The original passes ``float32(g_hidden)`` to the hidden layer (its spike tensor is
float32); :func:`net_learn` reproduces that with ``signal_dtype=np.float32`` and
leaves the signal exact with ``None`` (device/float reference mode).

The ``net`` is a recurrent S-TLLR layer (:mod:`edgesnn.rules.stllr`) whose spikes
``s[t]`` drive a leaky readout; readout updates ``dW_out += g_out.T @ q_out[t]``,
``db_out += sum_b g_out``; hidden updates are the dense/recurrent S-TLLR updates
with ``g = g_hidden``. All updates accumulate over the window.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from edgesnn.errors import SpecError
from edgesnn.rules.stllr import (DenseParams, DenseState, DenseStep, Grads, ReadoutLayerParams,
                                 ReadoutLayerState, ReadoutStep, dense_forward, dense_grads,
                                 dense_init, readout_forward, readout_grads, readout_layer_init)
from edgesnn.rules.tess import pool, unpool

FEEDBACK_MODES = ("BP", "DFA")


def softmax(z: np.ndarray) -> np.ndarray:
    """Row softmax of ``z (B, C)``."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def onehot(label: np.ndarray, C: int) -> np.ndarray:
    """``(B, C)`` one-hot rows of integer ``label (B,)``."""
    return np.eye(C)[np.asarray(label, dtype=np.int64)]


def cross_entropy(z: np.ndarray, label: np.ndarray) -> float:
    """Batch-mean cross-entropy of logits ``z (B, C)``."""
    m = z.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(z.shape[0]), label]))


def ce_error(z: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``softmax(z) - onehot(label)``, ``(B, C)``."""
    return softmax(z) - onehot(label, z.shape[-1])


def bp_signal(err: np.ndarray, W_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BP: ``(g_out, g_hidden) = (err/B, (err/B) @ W_out)``; ``W_out (C, N_hid)``."""
    g_out = err / err.shape[0]
    return g_out, g_out @ W_out


def dfa_signal(err: np.ndarray, B_fb: np.ndarray) -> np.ndarray:
    """DFA: ``err @ B_fb`` with fixed ``B_fb (C, N_hid)``, no 1/B."""
    return err @ B_fb


def tess_local_ce(latents: np.ndarray, label: np.ndarray, basis: np.ndarray,
                  temperature: float = 1.0) -> tuple[float, np.ndarray]:
    """TESS local loss and its gradient w.r.t. the latents.

    ``latents (B, D)``, ``label (B,)``, ``basis (C, D)`` (``sign(sin)/D``), the
    authors' ``temperature`` (``compute_LLS``; 1 there)::

        z    = latents @ basis.T / temperature           (B, C)
        loss = mean_b CE(z, label)
        grad = (softmax(z) - onehot) @ basis / (B * temperature)   (B, D)
    """
    z = latents @ basis.T
    if temperature != 1.0:
        z = z / temperature
    grad = ce_error(z, label) @ basis / latents.shape[0]
    return cross_entropy(z, label), (grad if temperature == 1.0 else grad / temperature)


def tess_signal(s: np.ndarray, label, basis: np.ndarray, bounds: np.ndarray,
                P: Optional[np.ndarray] = None, temperature: float = 1.0) -> np.ndarray:
    """TESS learning signal of one spiking layer: ``d loss / d s``.

    ``s (n,)`` with an integer ``label``, or ``s (B, n)`` with ``label (B,)``: the
    layer's output spikes at this step (the authors' local loss takes the block's
    output, ``compute_LLS(out, ...)``). ``basis (C, D)`` from
    :func:`edgesnn.rules.tess.tess_basis`, ``bounds (D, 2)`` from
    :func:`~edgesnn.rules.tess.pool_bounds`. Returns ``g`` of the shape of ``s``::

        latent = pool(s)                          (D,)   adaptive average pooling
        e      = softmax(latent @ basis.T) - onehot(label)   (C,)
        g      = unpool(e @ basis)                (n,)   adjoint of the pooling

    the gradient of the local cross-entropy (batch mean for a batch). On a chip
    the spikes are counted per group (adds), the signs of the basis come from a
    phase counter, and the ``1/D`` of the basis and the ``1/size`` of each group
    are shifts (for powers of two) applied once per projected value, not per MAC.
    ``P``: the pooling matrix (:func:`~edgesnn.rules.tess.pool_matrix`), a faster path;
    ``temperature`` divides the local logits (and so the gradient).
    """
    one = np.ndim(s) == 1
    s2 = np.atleast_2d(np.asarray(s, dtype=np.float64))
    lab = np.atleast_1d(np.asarray(label, dtype=np.int64))
    if P is None:
        _, grad = tess_local_ce(pool(s2, bounds), lab, basis, temperature)
        g = unpool(grad, bounds, s2.shape[-1])
    else:                        # the same through the pooling matrix (the engine's path)
        _, grad = tess_local_ce(s2 @ P.T, lab, basis, temperature)
        g = grad @ P
    return g[0] if one else g


# --------------------------------------------------------------- the net kind

class NetParams(NamedTuple):
    """Hidden recurrent layer, readout, feedback mode (``BP``/``DFA``), ``B_fb (C, N_hid)`` for DFA."""

    hidden: DenseParams
    readout: ReadoutLayerParams
    feedback_mode: str = "BP"
    B_fb: Optional[np.ndarray] = None


class NetState(NamedTuple):
    """State of both layers."""

    hidden: DenseState
    readout: ReadoutLayerState


class NetStep(NamedTuple):
    """Forward records of one step of both layers."""

    hidden: DenseStep
    readout: ReadoutStep


class NetLearn(NamedTuple):
    """One window step: loss, signals ``(B, C)``/``(B, N_hid)`` and the updates of both layers."""

    loss: float
    g_out: np.ndarray
    g_hidden: np.ndarray       # exact signal
    g_hidden_used: np.ndarray  # signal the hidden layer learned from (maybe rounded)
    hidden: Grads
    readout: Grads


def check_net_params(p: NetParams) -> NetParams:
    """Raise :class:`SpecError` for an unknown feedback mode or a missing/misshaped ``B_fb``."""
    if p.feedback_mode not in FEEDBACK_MODES:
        raise SpecError(f"unknown feedback_mode {p.feedback_mode!r} (known: {', '.join(FEEDBACK_MODES)})")
    if p.hidden.W_rec is None:
        raise SpecError("net hidden layer must be recurrent (W_rec missing)")
    if p.feedback_mode == "DFA":
        want = (p.readout.W.shape[0], p.hidden.W.shape[0])
        if p.B_fb is None or p.B_fb.shape != want:
            raise SpecError(f"DFA needs B_fb of shape {want}")
    return p


def net_init(B: int, N_in: int, N_hid: int, C: int) -> NetState:
    """Zero state for batch ``B``."""
    return NetState(hidden=dense_init(B, N_in, N_hid), readout=readout_layer_init(B, N_hid, C))


def net_forward(x: np.ndarray, st: NetState, p: NetParams) -> tuple[NetStep, NetState]:
    """One forward step: ``x (B, N_in)`` -> hidden spikes -> readout potential (logits)."""
    hs, hst = dense_forward(x, st.hidden, p.hidden)
    rs, rst = readout_forward(hs.s, st.readout, p.readout)
    return NetStep(hidden=hs, readout=rs), NetState(hidden=hst, readout=rst)


def net_learn(label: np.ndarray, step: NetStep, p: NetParams,
              signal_dtype: Optional[type] = None,
              g_hidden_used: Optional[np.ndarray] = None) -> NetLearn:
    """Signals and updates of a window step.

    ``signal_dtype=np.float32`` rounds the hidden signal as the original does;
    ``g_hidden_used`` (B, N_hid) overrides the signal the hidden layer learns from.
    """
    z = step.readout.u
    err = ce_error(z, label)
    g_out, g_bp = bp_signal(err, p.readout.W)
    g_hidden = g_bp if p.feedback_mode == "BP" else dfa_signal(err, p.B_fb)
    if g_hidden_used is None:
        g_hidden_used = g_hidden if signal_dtype is None else g_hidden.astype(signal_dtype).astype(np.float64)
    return NetLearn(loss=cross_entropy(z, label), g_out=g_out, g_hidden=g_hidden,
                    g_hidden_used=g_hidden_used,
                    hidden=dense_grads(g_hidden_used, step.hidden, p.hidden),
                    readout=readout_grads(g_out, step.readout, p.readout))


def _acc(total: Optional[Grads], g: Grads) -> Grads:
    if total is None:
        return g
    return Grads(*[None if a is None else a + b for a, b in zip(total, g)])


class NetResult(NamedTuple):
    """Sequence records ``(T, B, ...)``; per-step loss ``(T,)`` (NaN outside the window); window sums.

    ``g_out (T, B, C)`` and ``g_hidden``/``g_hidden_used (T, B, N_hid)`` are zero outside the
    window; ``hidden_grads``/``readout_grads`` are window sums (their ``grad_x`` too).
    """

    hidden: DenseStep
    readout: ReadoutStep
    loss: np.ndarray
    g_out: np.ndarray
    g_hidden: np.ndarray
    g_hidden_used: np.ndarray
    hidden_grads: Grads
    readout_grads: Grads


def run_net(x: np.ndarray, label: np.ndarray, ls_mask: np.ndarray, p: NetParams,
            signal_dtype: Optional[type] = None,
            g_hidden_used: Optional[np.ndarray] = None) -> NetResult:
    """Drive the net over ``x (T, B, N_in)``; learn on ``ls_mask`` steps.

    ``g_hidden_used (T, B, N_hid)`` optionally replaces the hidden signal (used by
    the golden runner to learn from the recorded float32 signal).
    """
    check_net_params(p)
    T, B, N_in = x.shape
    N_hid, C = p.hidden.W.shape[0], p.readout.W.shape[0]
    st = net_init(B, N_in, N_hid, C)
    hs, rs = [], []
    loss = np.full(T, np.nan)
    g_out = np.zeros((T, B, C))
    g_hid = np.zeros((T, B, N_hid))
    g_used = np.zeros((T, B, N_hid))
    hg = rg = None
    for t in range(T):
        step, st = net_forward(x[t], st, p)
        hs.append(step.hidden)
        rs.append(step.readout)
        if not ls_mask[t]:
            continue
        ln = net_learn(label, step, p, signal_dtype,
                       None if g_hidden_used is None else g_hidden_used[t])
        loss[t], g_out[t], g_hid[t], g_used[t] = ln.loss, ln.g_out, ln.g_hidden, ln.g_hidden_used
        hg, rg = _acc(hg, ln.hidden), _acc(rg, ln.readout)
    if hg is None:
        hg = Grads(np.zeros_like(p.hidden.W), np.zeros(N_hid), np.zeros((B, N_in)), np.zeros_like(p.hidden.W_rec))
        rg = Grads(np.zeros_like(p.readout.W), np.zeros(C), np.zeros((B, N_hid)))

    def stack(items):
        return type(items[0])(*[np.stack(v) for v in zip(*items)])

    return NetResult(hidden=stack(hs), readout=stack(rs), loss=loss, g_out=g_out, g_hidden=g_hid,
                     g_hidden_used=g_used, hidden_grads=hg, readout_grads=rg)
