"""Encoders: real values to spike trains ``(T, N)`` of 0/1 (uint8).

* ``rate``: each step, channel ``n`` spikes with probability ``v[n] * max_rate``
  (Bernoulli). The random draws come from a generator seeded by
  ``(seed, index)`` so a sample's spikes depend only on the seed and its
  position in its split: the same in every epoch, every run, every engine.
* ``regular``: deterministic rate code, a sigma-delta (integrate-and-fire)
  converter per channel: ``acc += v``; spike and ``acc -= 1`` when ``acc >= 1``
  (``acc`` starts at 0.5). Spike counts are ``v*T`` within one spike, no noise.
* ``latency``: one spike per channel at step ``round((1 - v) * (T - 1) *
  spread)``: large values spike early. Deterministic.

Values must lie in [0, 1] (Yin-Yang features do).
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import DataError

ENCODINGS = ("regular", "rate", "latency")


def rate_encode(values: np.ndarray, T: int, seed: int, index: int,
                max_rate: float = 1.0) -> np.ndarray:
    """``values (N,)`` in [0, 1] -> spikes ``(T, N)`` uint8, Bernoulli per step."""
    v = _check(values)
    rng = np.random.default_rng([seed, index])
    return (rng.random((T, v.size)) < v * max_rate).astype(np.uint8)


def regular_encode(values: np.ndarray, T: int) -> np.ndarray:
    """``values (N,)`` in [0, 1] -> deterministic regular spike trains ``(T, N)`` uint8."""
    v = _check(values)
    # spikes up to step t: floor(0.5 + (t+1) v); a spike where that count increases
    counts = np.floor(0.5 + np.arange(1, T + 1)[:, None] * v[None, :])
    prev = np.vstack([np.zeros((1, v.size)), counts[:-1]])
    return (counts > prev).astype(np.uint8)


def latency_encode(values: np.ndarray, T: int, spread: float = 1.0) -> np.ndarray:
    """``values (N,)`` in [0, 1] -> one spike per channel, ``(T, N)`` uint8."""
    v = _check(values)
    t = np.rint((1.0 - v) * (T - 1) * spread).astype(np.int64)
    out = np.zeros((T, v.size), dtype=np.uint8)
    out[t, np.arange(v.size)] = 1
    return out


def encode(values: np.ndarray, T: int, method: str, seed: int, index: int) -> np.ndarray:
    """Dispatch by name; ``method`` in ``ENCODINGS``."""
    if method == "regular":
        return regular_encode(values, T)
    if method == "rate":
        return rate_encode(values, T, seed, index)
    if method == "latency":
        return latency_encode(values, T)
    raise DataError(f"unknown encoding '{method}'; encodings: {', '.join(ENCODINGS)}")


def _check(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)) or v.min(initial=0) < 0 or v.max(initial=0) > 1:
        raise DataError("encoder input must be finite values in [0, 1]")
    return v
