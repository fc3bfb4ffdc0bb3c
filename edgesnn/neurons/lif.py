"""Float LIF neuron and leaky readout: pure step functions over NamedTuples (Norse style).

Arrays carry a leading batch axis ``B``; the neuron axes follow: ``(B, N)`` for a
dense layer, ``(B, C, H, W)`` for a convolutional one. Everything is float64.

One LIF step at time ``t`` (states are zero at ``t = -1``)::

    v[t]   = beta * u[t-1] + I[t]           I = synaptic current, bias included
    d[t]   = v[t] - theta                   theta is the effective threshold
    s[t]   = 1[d[t] > 0]
    psi[t] = PSI(d[t])                      surrogate ("secondary activation")
    u[t]   = v[t] - theta * s[t]            soft reset
           = v[t] * (1 - s[t])              hard reset

``v`` is what the S-TLLR code calls ``mem`` (potential before reset), ``u`` the
state carried to ``t+1``. The leaky readout has no threshold and no reset:
``u[t] = beta * u[t-1] + I[t]``.

Surrogates are named functions of ``d``: :func:`psi_rational`
(``1/(100|d|+1)^2``, the dense/recurrent default of S-TLLR) and
:func:`psi_triangle` (``0.3*max(0, 1-|d|)``, the convolutional default).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import numpy as np

from edgesnn.errors import SpecError

RESETS = ("soft", "hard")


def psi_rational(d: np.ndarray, scale: float = 100.0) -> np.ndarray:
    """``1 / (scale*|d| + 1)^2``; ``scale = 100`` is the S-TLLR dense/recurrent surrogate."""
    return 1.0 / np.power(scale * np.abs(d) + 1.0, 2)


def psi_triangle(d: np.ndarray, gamma: float = 0.3) -> np.ndarray:
    """``gamma * max(0, 1 - |d|)``; ``gamma = 0.3`` is the S-TLLR convolutional surrogate."""
    return gamma * np.maximum(1.0 - np.abs(d), 0.0)


def make_psi(form: str, coef: float) -> Callable[[np.ndarray], np.ndarray]:
    """A surrogate by name: ``("rational", scale)`` or ``("triangle", gamma)``."""
    if form == "rational":
        return psi_rational if coef == 100.0 else partial(psi_rational, scale=coef)
    if form == "triangle":
        return psi_triangle if coef == 0.3 else partial(psi_triangle, gamma=coef)
    raise SpecError(f"unknown surrogate form {form!r} (known: rational, triangle)")


class LIFParams(NamedTuple):
    """LIF constants: leak ``beta`` (= sigmoid(leak) in S-TLLR), effective threshold, reset, surrogate."""

    beta: float
    theta: float
    reset: str = "soft"
    psi: Callable[[np.ndarray], np.ndarray] = psi_rational


class LIFState(NamedTuple):
    """Membrane potential after reset, ``u`` of shape ``(B, *neurons)``."""

    u: np.ndarray


def lif_init(shape: tuple[int, ...]) -> LIFState:
    """Zero state of shape ``(B, *neurons)``."""
    return LIFState(u=np.zeros(shape, dtype=np.float64))


def check_lif_params(p: LIFParams) -> LIFParams:
    """Raise :class:`SpecError` for an unknown reset; return ``p`` unchanged."""
    if p.reset not in RESETS:
        raise SpecError(f"unknown reset {p.reset!r} (known: {', '.join(RESETS)})")
    return p


def lif_integrate(current: np.ndarray, state: LIFState, p: LIFParams) -> np.ndarray:
    """``v = beta*u + current`` (potential before threshold and reset)."""
    return p.beta * state.u + current


def lif_fire(v: np.ndarray, p: LIFParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(s, psi, d)`` from the pre-reset potential ``v``; ``d = v - theta``."""
    d = v - p.theta
    s = (d > 0).astype(np.float64)
    return s, p.psi(d), d


def lif_reset(v: np.ndarray, s: np.ndarray, p: LIFParams) -> LIFState:
    """State after reset: soft ``v - theta*s`` or hard ``v*(1-s)``."""
    if p.reset == "soft":
        return LIFState(u=v - p.theta * s)
    if p.reset == "hard":
        return LIFState(u=v * (1.0 - s))
    raise SpecError(f"unknown reset {p.reset!r} (known: {', '.join(RESETS)})")


def lif_step(current: np.ndarray, state: LIFState, p: LIFParams
             ) -> tuple[np.ndarray, np.ndarray, LIFState]:
    """One LIF step: ``(spikes, psi, new_state)``, all ``(B, *neurons)``."""
    v = lif_integrate(current, state, p)
    s, psi, _ = lif_fire(v, p)
    return s, psi, lif_reset(v, s, p)


class ReadoutParams(NamedTuple):
    """Leaky readout (non-spiking output layer) leak ``beta``."""

    beta: float


class ReadoutState(NamedTuple):
    """Readout potential ``u`` of shape ``(B, C)``; it is the logits."""

    u: np.ndarray


def readout_init(shape: tuple[int, ...]) -> ReadoutState:
    """Zero readout state of shape ``(B, C)``."""
    return ReadoutState(u=np.zeros(shape, dtype=np.float64))


def readout_step(current: np.ndarray, state: ReadoutState, p: ReadoutParams
                 ) -> tuple[np.ndarray, ReadoutState]:
    """``u = beta*u + current``; returns ``(u, new_state)`` (no threshold, no reset)."""
    u = p.beta * state.u + current
    return u, ReadoutState(u=u)
