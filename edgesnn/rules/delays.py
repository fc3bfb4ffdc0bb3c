"""Learned axonal and synaptic delays: float mathematics of one delayed LIF layer.

The derivation is docs/delays.md; this module is its definition. Shapes are batch
first with ``B = 1`` as in :mod:`edgesnn.rules.stllr`; time is in steps.

* Delays ``d`` are real, in ``[0, max_delay]``: axonal ``(N_in,)`` (one per input,
  shared by its outgoing synapses), synaptic ``(N_out, N_in)``.
* Forward, integer delays ``D = clip(floor(d + 1/2), 0, max_delay)``; spikes stay
  binary. A history ``hist (H, N_in)``, ``hist[k] = x[t-k]`` and
  ``H = max_delay + R + 1``, holds the spikes; the delayed input is
  ``xd[..., j] = hist[D[..., j], j]`` and the layer is S-TLLR's dense layer on it::

      v[t] = beta*u[t-1] + sum_j W_oj xd_oj[t] + b (+ W_rec s[t-1], delay 1, unlearned)

* Learning, the input of synapse ``oj`` stands for its Gaussian-smoothed version
  ``xs[t] = sum_k G(k - d) x[t-k]`` over the taps ``k = max(0, D-R) .. D+R``,
  ``R = ceil(3 sigma)``, ``G(u) = exp(-u^2 / 2 sigma^2) / (sqrt(2 pi) sigma)``. Its
  slope in ``d`` is ``xs'[t] = sum_k (k - d)/sigma^2 G(k - d) x[t-k]``, filtered by the
  membrane decay into the eligibility ``eps[t] = beta*eps[t-1] + xs'[t]`` (per input
  when axonal, per synapse when synaptic). At a window step with learning signal
  ``g (B, N_out)`` the delay gradient is::

      axonal:   dd_j  = sum_o g_o psi_o W_oj * eps_j     = ((g*psi) @ W)_j eps_j
      synaptic: dd_oj = g_o psi_o W_oj eps_oj

  and the weights learn as in S-TLLR on the delayed spikes (synaptic delays need a
  pre trace per synapse: each synapse sees its own delayed train).
* ``apply_delays`` takes ``d -= 2**-shift * dd`` and clips to ``[0, max_delay]``.

A sparse layer's mask is applied to its weights (masked weights are zero and their
updates are dropped, :func:`mask_update`); it needs nothing else here.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from edgesnn.neurons.lif import LIFParams, lif_fire, lif_init, lif_integrate, lif_reset
from edgesnn.rules.stllr import DenseState, DenseStep, Factors, Grads


def reach(sigma: float) -> int:
    """``R = ceil(3 sigma)``: the taps on each side of the delay the kernel reads."""
    return int(math.ceil(3.0 * sigma))


def history_steps(max_delay: int, sigma: float) -> int:
    """Steps of spike history per source: ``max_delay + R + 1``."""
    return max_delay + reach(sigma) + 1


def integer_delays(d: np.ndarray, max_delay: int) -> np.ndarray:
    """``clip(floor(d + 1/2), 0, max_delay)`` as int64 (ties round up)."""
    return np.clip(np.floor(d + 0.5), 0, max_delay).astype(np.int64)


def gaussian(u: np.ndarray, sigma: float) -> np.ndarray:
    """``G(u) = exp(-u^2 / 2 sigma^2) / (sqrt(2 pi) sigma)``."""
    return np.exp(-0.5 * (u / sigma) ** 2) / (math.sqrt(2.0 * math.pi) * sigma)


def gaussian_slope(u: np.ndarray, sigma: float) -> np.ndarray:
    """``dG(k - d)/dd`` at ``u = k - d``: ``u / sigma^2 * G(u)``."""
    return u / sigma ** 2 * gaussian(u, sigma)


def push(hist: np.ndarray, x: np.ndarray) -> np.ndarray:
    """History ``(H, N_in)`` one step on: ``x (N_in,)`` at row 0, the oldest row dropped."""
    out = np.empty_like(hist)
    out[0] = x
    out[1:] = hist[:-1]
    return out


def delayed(hist: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Delayed spikes ``hist[D[..., j], j]``, of ``D``'s shape (``(N_in,)`` or
    ``(N_out, N_in)``)."""
    return hist[D, np.arange(hist.shape[1])]


def smoothed(hist: np.ndarray, d: np.ndarray, sigma: float, max_delay: int,
             slope: bool = False) -> np.ndarray:
    """The Gaussian-smoothed input ``xs`` (or, ``slope``, its derivative in ``d``) of
    every delay, of ``d``'s shape: taps ``max(0, D-R) .. D+R`` of ``hist``."""
    R = reach(sigma)
    D = integer_delays(d, max_delay)
    k = D[..., None] + np.arange(-R, R + 1)                  # (..., 2R+1) tap lags
    valid = k >= 0
    kc = np.where(valid, k, 0)
    x = hist[kc, np.arange(hist.shape[1])[:, None]]          # (..., N_in, 2R+1)
    kern = (gaussian_slope if slope else gaussian)(k - d[..., None], sigma)
    return (np.where(valid, kern, 0.0) * x).sum(axis=-1)


# --------------------------------------------------------------- one delayed layer

class DelayParams(NamedTuple):
    """A delayed layer: S-TLLR's dense parameters plus ``mode`` ("axonal"/"synaptic"),
    delays ``d`` (steps), ``max_delay`` and ``sigma`` (steps)."""

    W: np.ndarray
    b: np.ndarray
    lif: LIFParams
    factors: Factors
    W_rec: Optional[np.ndarray]
    mode: str
    d: np.ndarray
    max_delay: int
    sigma: float


class DelayState(NamedTuple):
    """``dense``: S-TLLR's carried state (its ``q`` is ``(B, N_out, N_in)`` when synaptic);
    ``hist (H, N_in)`` spike history; ``eps`` the delay eligibility, of ``d``'s shape."""

    dense: DenseState
    hist: np.ndarray
    eps: np.ndarray


#: What one step of a delayed layer exposes: the fields of :class:`DenseStep` (``x`` and
#: ``q`` the delayed spikes and their trace: ``(B, N_in)`` axonal, ``(B, N_out, N_in)``
#: synaptic) and the delay eligibility ``eps`` (``d``'s shape).
DelayStep = NamedTuple("DelayStep", [*((f, np.ndarray) for f in DenseStep._fields),
                                     ("eps", np.ndarray)])


def delay_init(N_in: int, N_out: int, p: DelayParams) -> DelayState:
    """Zero state (batch 1): empty history, zero traces."""
    z = np.zeros((1, N_out))
    q = np.zeros((1, N_in) if p.mode == "axonal" else (1, N_out, N_in))
    return DelayState(dense=DenseState(lif=lif_init((1, N_out)), q=q, h=z, s=z, q_rec=z),
                      hist=np.zeros((history_steps(p.max_delay, p.sigma), N_in)),
                      eps=np.zeros_like(p.d))


def delay_forward(x: np.ndarray, st: DelayState, p: DelayParams
                  ) -> tuple[DelayStep, DelayState]:
    """One step of a delayed layer for input spikes ``x (1, N_in)``."""
    f, ds = p.factors, st.dense
    hist = push(st.hist, x[0])
    xd = delayed(hist, integer_delays(p.d, p.max_delay))[None]
    eps = p.lif.beta * st.eps + smoothed(hist, p.d, p.sigma, p.max_delay, slope=True)
    q = f.lambda_pre * ds.q + xd
    syn = xd @ p.W.T if p.mode == "axonal" else (p.W * xd).sum(axis=-1)
    v = lif_integrate(syn + p.b, ds.lif, p.lif)
    if p.W_rec is not None:
        rec = ds.s @ p.W_rec.T
        v, syn = v + rec, syn + rec
    s, psi, _ = lif_fire(v, p.lif)
    h = f.lambda_post * ds.h + psi
    q_rec = f.lambda_pre * ds.q_rec + ds.s
    new_lif = lif_reset(v, s, p.lif)
    step = DelayStep(x=xd, q=q, v=v, u=new_lif.u, s=s, psi=psi, h_prev=ds.h, h=h,
                     x_rec=ds.s, q_rec=q_rec, i=syn, eps=eps)
    return step, DelayState(DenseState(lif=new_lif, q=q, h=h, s=s, q_rec=q_rec), hist, eps)


class DelayGrads(NamedTuple):
    """S-TLLR's :class:`Grads` of the weights and ``dd``, the delays' gradient."""

    dW: np.ndarray
    db: np.ndarray
    grad_x: np.ndarray
    dW_rec: Optional[np.ndarray]
    dd: np.ndarray


def delay_grads(g: np.ndarray, st: DelayStep, p: DelayParams) -> DelayGrads:
    """Window update of one step for learning signal ``g (1, N_out)``."""
    f = p.factors
    a = g * (f.alpha_post * st.h_prev)
    c = g * (f.alpha_pre * st.psi)
    gp = g * st.psi
    grad_x = gp @ p.W
    if p.mode == "axonal":
        dW = a.T @ st.x + c.T @ st.q
        dd = grad_x[0] * st.eps
    else:
        dW = a[0][:, None] * st.x[0] + c[0][:, None] * st.q[0]
        dd = gp[0][:, None] * p.W * st.eps
    dW_rec = None if p.W_rec is None else a.T @ st.x_rec + c.T @ st.q_rec
    return DelayGrads(dW=dW, db=gp.sum(axis=0), grad_x=grad_x, dW_rec=dW_rec, dd=dd)


def as_grads(gr: DelayGrads) -> Grads:
    """The weights' part of a delayed layer's update, as S-TLLR's :class:`Grads`."""
    return Grads(dW=gr.dW, db=gr.db, grad_x=gr.grad_x, dW_rec=gr.dW_rec)


def apply_delays(d: np.ndarray, dd: np.ndarray, shift: int, max_delay: int) -> None:
    """``d -= 2**-shift * dd`` in place, clipped to ``[0, max_delay]``."""
    d -= 2.0 ** -shift * dd
    np.clip(d, 0.0, max_delay, out=d)


def mask_update(dW: np.ndarray, M: Optional[np.ndarray]) -> np.ndarray:
    """A sparse layer's weight update restricted to its kept synapses (``M`` 0/1)."""
    return dW if M is None else dW * M


def step_work(mode: str, n_in: int, n_out: int, sigma: float,
              kept: int | None = None) -> tuple[int, int]:
    """``(trace updates, MACs)`` of one step's delay eligibility: one ``eps`` element per
    delay, ``2R+1`` tap products each (the dense count; a device visits only the taps
    holding a spike), plus the synaptic per-synapse pre trace ``q`` (beyond the ``N_in``
    that S-TLLR counts). ``kept``: inputs each neuron keeps (default all ``N_in``); a
    sparse layer's synapses are ``kept x N_out``."""
    synapses = (n_in if kept is None else kept) * n_out
    n = n_in if mode == "axonal" else synapses
    extra_q = 0 if mode == "axonal" else synapses - n_in
    return n + extra_q, n * (2 * reach(sigma) + 1)


def buffer_work(mode: str, n_in: int, n_out: int, sigma: float, kept: int | None = None,
                learns: bool = True) -> tuple[int, int]:
    """``(delay buffer accesses, slope-table reads)`` of one step of a delayed layer, the
    dense count (``counters``: ``delay_buffer_ops``, ``slope_lookups``): the history push
    (``N_in``), the delayed reads (axonal: ``N_in``; synaptic: the ring row, ``N_out``),
    and when the layer ``learns`` the synaptic per-synapse delayed reads (``kept x N_out``)
    and the eligibility's ``2R + 1`` tap reads per delay, each tap one slope read (a device
    reads the table only at taps holding a spike: at most as many). Not included: the
    synaptic ring's adds, one per synaptic accumulate of the layer (its ``synops``)."""
    synapses = (n_in if kept is None else kept) * n_out
    axonal = mode == "axonal"
    ops = n_in + (n_in if axonal else n_out)
    if not learns:
        return ops, 0
    taps = (n_in if axonal else synapses) * (2 * reach(sigma) + 1)
    return ops + (0 if axonal else synapses) + taps, taps


def window_work(mode: str, n_in: int, n_out: int, kept: int | None = None,
                forms_signal: bool = False) -> int:
    """MACs of one window step's delay gradient: axonal ``eps_j`` times ``(g*psi) @ W``:
    ``N_in``, plus forming ``(g*psi) @ W`` (a MAC per kept synapse) when no learning layer
    below already gets it as its signal (``forms_signal``: the first layer); synaptic
    ``g psi W eps``: 2 per kept synapse."""
    synapses = (n_in if kept is None else kept) * n_out
    if mode == "axonal":
        return n_in + (synapses if forms_signal else 0)
    return 2 * synapses
