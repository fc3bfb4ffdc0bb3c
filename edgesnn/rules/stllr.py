"""S-TLLR float mathematics: per-step forward and window updates of one layer.

Conventions (pinned by the golden vectors of S-TLLR @ 29c5755):

* ``factors = [lambda_post, lambda_pre, alpha_post, alpha_pre]``.
* States and traces are zero at ``t = -1`` (also ``s[-1] = 0``).
* Forward at step ``t`` (dense/recurrent, shapes ``(B, N_in)`` -> ``(B, N_out)``)::

      q[t]     = lambda_pre * q[t-1] + x[t]                  pre trace, includes x[t]
      v[t]     = beta*u[t-1] + (x[t] @ W.T + b) (+ s[t-1] @ W_rec.T)
      s, psi   = 1[v-theta > 0], PSI(v - theta)
      h_prev   = h[t-1];  h[t] = lambda_post * h[t-1] + psi[t]
      u[t]     = soft/hard reset of v[t]
      q_rec[t] = lambda_pre * q_rec[t-1] + s[t-1]            recurrent pre trace

* Update, only at window steps (``ls_mask[t]``), learning signal ``g`` ``(B, N_out)``,
  summed over the batch (sign = gradient, before any optimiser)::

      dW     = (g*alpha_post*h_prev).T @ x + (g*alpha_pre*psi).T @ q
      dW_rec = (g*alpha_post*h_prev).T @ s[t-1] + (g*alpha_pre*psi).T @ q_rec
      db     = sum_b g*psi
      grad_x = (g*psi) @ W          signal passed to the layer below, (B, N_in)

  The post trace used is ``h[t-1]``, BEFORE ``psi[t]`` is added; no gradient
  flows through ``s[t-1]``.
* ``W`` here is the effective weight. In paper mode it is the weight
  standardisation of a raw parameter (:func:`standardize`, VJP in
  :func:`standardize_vjp`); device mode uses the weights as they are.
* Readout (S-TLLR "accumulate" layer, non-spiking, no standardisation)::

      q[t] = lambda_pre*q[t-1] + x[t];  u[t] = beta*u[t-1] + x[t] @ W.T + b
      dW = g.T @ q;  db = sum_b g;  grad_x = g @ W      (alpha factors unused)

* Convolution (``Conv2dSTLLR``/``STLLRConv2dGrad``): PyTorch ``F.conv2d``
  convention, i.e. cross-correlation without kernel flip, NCHW layout,
  stride 1, dilation 1, groups 1, zero padding ``pad`` on every side::

      x (B, C_in, H, W), W (C_out, C_in, k, k) -> out (B, C_out, H+2pad-k+1, W+2pad-k+1)
      out[b,o,i,j] = b[o] + sum_{c,di,dj} W[o,c,di,dj] * xpad[b,c,i+di,j+dj]

  Weight update = ``alpha_post * conv2d_weight(x, g*h_prev) + alpha_pre *
  conv2d_weight(q, g*psi)`` (the weight-gradient of that correlation),
  ``db = sum_{b,i,j} g*psi``, ``grad_x`` = input-gradient (transposed
  correlation) of ``g*psi``. Standardisation is per output channel over
  ``(C_in, k, k)`` with ``fan_in = C_in*k*k``. The S-TLLR conv layer's own
  surrogate is ``0.3*max(0, 1-|d|)`` (:func:`psi_triangle`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgesnn.errors import SpecError
from edgesnn.neurons.lif import (LIFParams, LIFState, ReadoutParams, ReadoutState, lif_fire,
                                 lif_init, lif_integrate, lif_reset, readout_init, readout_step)

WS_EPS = 1e-4


class Factors(NamedTuple):
    """S-TLLR factors in the paper's order."""

    lambda_post: float
    lambda_pre: float
    alpha_post: float
    alpha_pre: float

    @classmethod
    def from_seq(cls, f) -> "Factors":
        """From ``[lambda_post, lambda_pre, alpha_post, alpha_pre]``."""
        vals = [float(v) for v in f]
        if len(vals) != 4:
            raise SpecError(f"factors need 4 numbers [lambda_post, lambda_pre, alpha_post, alpha_pre], got {len(vals)}")
        return cls(*vals)


DEFAULT_FACTORS = Factors(0.5, 0.8, -0.2, 1.0)  # LinearSTLLR / Conv2dSTLLR default


# --------------------------------------------------------------- weight standardisation (paper mode)

def _rows(W: np.ndarray) -> np.ndarray:
    return W.reshape(W.shape[0], -1)


def standardize(W_raw: np.ndarray, gain: np.ndarray, eps: float = WS_EPS) -> np.ndarray:
    """``W_eff = gain*(W_raw - rowmean)/sqrt(rowvar_unbiased*fan_in + eps)``.

    Rows are the first axis; mean/variance run over all other axes, ``fan_in``
    is their size. ``gain`` holds one value per row (any shape of that size).
    Returns an array of ``W_raw``'s shape.
    """
    R = _rows(W_raw)
    n = R.shape[1]
    c = R - R.mean(axis=1, keepdims=True)
    var = (c * c).sum(axis=1, keepdims=True) / (n - 1)
    Wh = c / np.sqrt(var * n + eps)
    return (Wh * np.reshape(gain, (-1, 1))).reshape(W_raw.shape)


def standardize_vjp(W_raw: np.ndarray, gain: np.ndarray, dW_eff: np.ndarray,
                    eps: float = WS_EPS) -> tuple[np.ndarray, np.ndarray]:
    """VJP of :func:`standardize` at ``W_raw``: ``(dW_raw, dgain)`` for cotangent ``dW_eff``.

    ``dW_raw`` has ``W_raw``'s shape, ``dgain`` has ``gain``'s shape.
    """
    R = _rows(W_raw)
    n = R.shape[1]
    c = R - R.mean(axis=1, keepdims=True)
    sd = np.sqrt((c * c).sum(axis=1, keepdims=True) / (n - 1) * n + eps)
    G = _rows(dW_eff)
    g = np.reshape(gain, (-1, 1))
    dgain = (G * (c / sd)).sum(axis=1)
    dWh = G * g
    dc = dWh / sd - c * ((dWh * c).sum(axis=1, keepdims=True) * n / ((n - 1) * sd ** 3))
    dW = dc - dc.mean(axis=1, keepdims=True)
    return dW.reshape(W_raw.shape), dgain.reshape(np.shape(gain))


# --------------------------------------------------------------- shared records

class Grads(NamedTuple):
    """One step's (or a window's) updates, summed over the batch; ``dW_rec`` None if no recurrence."""

    dW: np.ndarray
    db: np.ndarray
    grad_x: np.ndarray
    dW_rec: Optional[np.ndarray] = None


# --------------------------------------------------------------- dense / recurrent spiking layer

class DenseParams(NamedTuple):
    """``W (N_out, N_in)``, ``b (N_out,)``, ``W_rec (N_out, N_out)`` or None (feed-forward)."""

    W: np.ndarray
    b: np.ndarray
    lif: LIFParams
    factors: Factors
    W_rec: Optional[np.ndarray] = None


class DenseState(NamedTuple):
    """Carried state, batch first: ``u, h, s, q_rec (B, N_out)``, ``q (B, N_in)``."""

    lif: LIFState
    q: np.ndarray
    h: np.ndarray
    s: np.ndarray
    q_rec: np.ndarray


class DenseStep(NamedTuple):
    """What one step exposes (records and learning inputs), batch first."""

    x: np.ndarray       # (B, N_in) input x[t]
    q: np.ndarray       # (B, N_in) pre trace including x[t]
    v: np.ndarray       # (B, N_out) potential before reset
    u: np.ndarray       # (B, N_out) potential after reset
    s: np.ndarray       # (B, N_out) spikes s[t]
    psi: np.ndarray     # (B, N_out) surrogate psi[t]
    h_prev: np.ndarray  # (B, N_out) post trace h[t-1] (used by the update)
    h: np.ndarray       # (B, N_out) post trace h[t]
    x_rec: np.ndarray   # (B, N_out) recurrent input s[t-1]
    q_rec: np.ndarray   # (B, N_out) recurrent pre trace including s[t-1]
    i: np.ndarray       # (B, N_out) synaptic current W x[t] (+ W_rec s[t-1]), bias apart


def dense_init(B: int, N_in: int, N_out: int) -> DenseState:
    """Zero state for batch ``B``."""
    z = np.zeros((B, N_out))
    return DenseState(lif=lif_init((B, N_out)), q=np.zeros((B, N_in)), h=z, s=z, q_rec=z)


def dense_forward(x: np.ndarray, st: DenseState, p: DenseParams) -> tuple[DenseStep, DenseState]:
    """One forward step of a feed-forward (``W_rec`` None) or recurrent layer."""
    f = p.factors
    q = f.lambda_pre * st.q + x
    syn = x @ p.W.T
    v = lif_integrate(syn + p.b, st.lif, p.lif)
    if p.W_rec is not None:
        rec = st.s @ p.W_rec.T
        v = v + rec
        syn = syn + rec
    s, psi, _ = lif_fire(v, p.lif)
    h = f.lambda_post * st.h + psi
    q_rec = f.lambda_pre * st.q_rec + st.s
    new_lif = lif_reset(v, s, p.lif)
    step = DenseStep(x=x, q=q, v=v, u=new_lif.u, s=s, psi=psi, h_prev=st.h, h=h,
                     x_rec=st.s, q_rec=q_rec, i=syn)
    return step, DenseState(lif=new_lif, q=q, h=h, s=s, q_rec=q_rec)


def dense_grads(g: np.ndarray, st: DenseStep, p: DenseParams) -> Grads:
    """Window update of one step for learning signal ``g (B, N_out)``."""
    f = p.factors
    a = g * (f.alpha_post * st.h_prev)   # (B, N_out) factor on the input itself
    c = g * (f.alpha_pre * st.psi)       # (B, N_out) factor on the pre trace
    gp = g * st.psi
    dW = a.T @ st.x + c.T @ st.q
    dW_rec = None if p.W_rec is None else a.T @ st.x_rec + c.T @ st.q_rec
    return Grads(dW=dW, db=gp.sum(axis=0), grad_x=gp @ p.W, dW_rec=dW_rec)


# --------------------------------------------------------------- 2-D convolutional spiking layer

def _patches(x: np.ndarray, kh: int, kw: int, pad: int) -> np.ndarray:
    """``(B, C, Ho, Wo, kh, kw)`` zero-padded sliding windows of ``x (B, C, H, W)``."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))


def conv2d(x: np.ndarray, W: np.ndarray, pad: int) -> np.ndarray:
    """Cross-correlation ``(B,C_in,H,W) * (C_out,C_in,kh,kw) -> (B,C_out,Ho,Wo)``, stride 1."""
    P = _patches(x, W.shape[2], W.shape[3], pad)
    return np.tensordot(P, W, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def conv2d_grad_weight(x: np.ndarray, G: np.ndarray, kh: int, kw: int, pad: int) -> np.ndarray:
    """Weight-gradient of :func:`conv2d` for output cotangent ``G (B,C_out,Ho,Wo)``, summed over batch."""
    P = _patches(x, kh, kw, pad)
    return np.tensordot(G, P, axes=([0, 2, 3], [0, 2, 3]))


def conv2d_grad_input(G: np.ndarray, W: np.ndarray, x_shape: tuple[int, ...], pad: int) -> np.ndarray:
    """Input-gradient of :func:`conv2d` for output cotangent ``G``; shape ``x_shape``."""
    B, C_in, H, Wd = x_shape
    kh, kw = W.shape[2], W.shape[3]
    Ho, Wo = G.shape[2], G.shape[3]
    gxp = np.zeros((B, C_in, H + 2 * pad, Wd + 2 * pad))
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i:i + Ho, j:j + Wo] += np.tensordot(G, W[:, :, i, j], axes=([1], [0])).transpose(0, 3, 1, 2)
    return gxp[:, :, pad:pad + H, pad:pad + Wd]


class ConvParams(NamedTuple):
    """``W (C_out, C_in, k, k)``, ``b (C_out,)``, zero padding ``pad`` (stride 1)."""

    W: np.ndarray
    b: np.ndarray
    pad: int
    lif: LIFParams
    factors: Factors


class ConvState(NamedTuple):
    """``u, h (B, C_out, Ho, Wo)``, ``q (B, C_in, H, W)``."""

    lif: LIFState
    q: np.ndarray
    h: np.ndarray


class ConvStep(NamedTuple):
    """Per-step records; as :class:`DenseStep` with image-shaped neuron axes."""

    x: np.ndarray
    q: np.ndarray
    v: np.ndarray
    u: np.ndarray
    s: np.ndarray
    psi: np.ndarray
    h_prev: np.ndarray
    h: np.ndarray


def conv_out_hw(H: int, W: int, k: int, pad: int) -> tuple[int, int]:
    """Output size for stride 1: ``(H+2pad-k+1, W+2pad-k+1)``."""
    return H + 2 * pad - k + 1, W + 2 * pad - k + 1


def conv_init(x_shape: tuple[int, ...], W: np.ndarray, pad: int) -> ConvState:
    """Zero state for input ``x_shape = (B, C_in, H, W)`` and kernel ``W``."""
    B, _, H, Wd = x_shape
    Ho, Wo = conv_out_hw(H, Wd, W.shape[2], pad)
    out = (B, W.shape[0], Ho, Wo)
    return ConvState(lif=lif_init(out), q=np.zeros(x_shape), h=np.zeros(out))


def conv_forward(x: np.ndarray, st: ConvState, p: ConvParams) -> tuple[ConvStep, ConvState]:
    """One forward step of the convolutional layer."""
    f = p.factors
    q = f.lambda_pre * st.q + x
    current = conv2d(x, p.W, p.pad) + p.b[None, :, None, None]
    v = lif_integrate(current, st.lif, p.lif)
    s, psi, _ = lif_fire(v, p.lif)
    h = f.lambda_post * st.h + psi
    new_lif = lif_reset(v, s, p.lif)
    step = ConvStep(x=x, q=q, v=v, u=new_lif.u, s=s, psi=psi, h_prev=st.h, h=h)
    return step, ConvState(lif=new_lif, q=q, h=h)


def conv_grads(g: np.ndarray, st: ConvStep, p: ConvParams) -> Grads:
    """Window update of one step for learning signal ``g (B, C_out, Ho, Wo)``."""
    f = p.factors
    kh, kw = p.W.shape[2], p.W.shape[3]
    gp = g * st.psi
    dW = (f.alpha_post * conv2d_grad_weight(st.x, g * st.h_prev, kh, kw, p.pad)
          + f.alpha_pre * conv2d_grad_weight(st.q, gp, kh, kw, p.pad))
    return Grads(dW=dW, db=gp.sum(axis=(0, 2, 3)),
                 grad_x=conv2d_grad_input(gp, p.W, st.x.shape, p.pad))


# --------------------------------------------------------------- leaky readout layer

class ReadoutLayerParams(NamedTuple):
    """``W (C, N_in)``, ``b (C,)``, leak ``beta`` and pre-trace decay ``lambda_pre``."""

    W: np.ndarray
    b: np.ndarray
    beta: float
    lambda_pre: float


class ReadoutLayerState(NamedTuple):
    """``u (B, C)`` (the logits), ``q (B, N_in)``."""

    out: ReadoutState
    q: np.ndarray


class ReadoutStep(NamedTuple):
    """``x, q (B, N_in)``; ``u (B, C)``; ``i (B, C)`` the synaptic current ``W x`` (bias apart)."""

    x: np.ndarray
    q: np.ndarray
    u: np.ndarray
    i: np.ndarray


def readout_layer_init(B: int, N_in: int, C: int) -> ReadoutLayerState:
    """Zero readout state."""
    return ReadoutLayerState(out=readout_init((B, C)), q=np.zeros((B, N_in)))


def readout_forward(x: np.ndarray, st: ReadoutLayerState, p: ReadoutLayerParams
                    ) -> tuple[ReadoutStep, ReadoutLayerState]:
    """One step of the leaky readout (no spike, no reset)."""
    q = p.lambda_pre * st.q + x
    syn = x @ p.W.T
    u, out = readout_step(syn + p.b, st.out, ReadoutParams(p.beta))
    return ReadoutStep(x=x, q=q, u=u, i=syn), ReadoutLayerState(out=out, q=q)


def readout_grads(g: np.ndarray, st: ReadoutStep, p: ReadoutLayerParams) -> Grads:
    """``dW = g.T @ q``, ``db = sum_b g``, ``grad_x = g @ W`` for ``g (B, C)``."""
    return Grads(dW=g.T @ st.q, db=g.sum(axis=0), grad_x=g @ p.W)


# --------------------------------------------------------------- sequence driver

class SequenceResult(NamedTuple):
    """Stacked per-step records (each field ``(T, ...)``), per-step grads and window sums.

    Grads outside the window are zero; ``steps.dW`` is ``(T, *W.shape)``.
    """

    records: Any
    steps: Grads
    total: Grads


def _stack(items: list) -> Any:
    first = items[0]
    return type(first)(*[None if getattr(first, k) is None else np.stack([getattr(it, k) for it in items])
                         for k in first._fields])


def run_sequence(forward: Callable, grads: Callable, state: Any, params: Any,
                 x: np.ndarray, g: Optional[np.ndarray], ls_mask: np.ndarray) -> SequenceResult:
    """Drive a layer over ``x (T, B, ...)`` with signal ``g (T, B, ...)`` on the ``ls_mask (T,)`` steps."""
    recs, gsteps = [], []
    zero = None
    for t in range(x.shape[0]):
        rec, state = forward(x[t], state, params)
        recs.append(rec)
        if ls_mask[t] and g is not None:
            gsteps.append(grads(g[t], rec, params))
        else:
            gsteps.append(None)
    for gs in gsteps:
        if gs is not None:
            zero = Grads(*[None if a is None else np.zeros_like(a) for a in gs])
            break
    if zero is None:  # empty window: shapes from a dummy update
        dummy = grads(np.zeros_like(recs[0].s if hasattr(recs[0], "s") else recs[0].u), recs[0], params)
        zero = Grads(*[None if a is None else np.zeros_like(a) for a in dummy])
    steps = _stack([zero if gs is None else gs for gs in gsteps])
    total = Grads(*[None if a is None else a.sum(axis=0) for a in steps])
    return SequenceResult(records=_stack(recs), steps=steps, total=total)


def run_dense(x: np.ndarray, g: Optional[np.ndarray], ls_mask: np.ndarray, p: DenseParams) -> SequenceResult:
    """Feed-forward or recurrent layer over ``x (T, B, N_in)``, ``g (T, B, N_out)``."""
    return run_sequence(dense_forward, dense_grads, dense_init(x.shape[1], x.shape[2], p.W.shape[0]),
                        p, x, g, ls_mask)


def run_conv(x: np.ndarray, g: Optional[np.ndarray], ls_mask: np.ndarray, p: ConvParams) -> SequenceResult:
    """Convolutional layer over ``x (T, B, C_in, H, W)``, ``g (T, B, C_out, Ho, Wo)``."""
    return run_sequence(conv_forward, conv_grads, conv_init(x.shape[1:], p.W, p.pad), p, x, g, ls_mask)


def run_readout(x: np.ndarray, g: Optional[np.ndarray], ls_mask: np.ndarray,
                p: ReadoutLayerParams) -> SequenceResult:
    """Leaky readout over ``x (T, B, N_in)``, ``g (T, B, C)``."""
    return run_sequence(readout_forward, readout_grads,
                        readout_layer_init(x.shape[1], x.shape[2], p.W.shape[0]), p, x, g, ls_mask)
