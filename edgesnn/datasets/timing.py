"""A generated temporal task that only delays solve: classes differ in spike timing alone.

Generator (``generate(size, seed, T)``, ``numpy.random.default_rng(seed)``):

* ``C = 4`` classes, ``2C = 8`` input channels in ``C`` pairs ``(2p, 2p+1)``; every
  channel spikes exactly once in every sample, so each channel's spike count is 1 in
  every class and rates carry nothing.
* Pair ``p`` has a key lag ``KEY_LAGS[p]`` (3, 5, 7, 9 steps). In a sample of class
  ``c`` the lag ``t(2c+1) - t(2c)`` of pair ``c`` is its key lag plus a jitter uniform
  in ``{-1, 0, 1}``; the lag of every other pair ``p != c`` is its key lag plus or minus
  ``MARGIN + 1 .. MARGIN + SPREAD`` (3 to 6 steps), uniform over those 8 values: symmetric
  about the key, so that a pair's mean lag is its key lag in every class. The class is
  *which pair is at its key lag*; lags run from -3 to ``MAX_LAG`` (15) steps.
* Each pair's earlier spike is placed uniformly so that both spikes fall in the first
  ``T - TAIL`` steps (``TAIL = 8`` steps at the end carry no input): absolute times carry
  no class either.

A neuron that delays channel ``2p`` by ``KEY_LAGS[p]`` sees the two spikes of pair ``p``
arrive together (within one step) in class ``p`` only, and at least ``MARGIN + 1`` steps
apart in the others: with a fast membrane decay and a threshold between one and two
inputs it is a coincidence detector of its class. With axonal delays one delay per
channel suffices (``d[2p] = KEY_LAGS[p]``, ``d[2p+1] = 0``). Weights alone see one
spike per channel in every class and can use timing only through the membrane decay.
``ideal_delays()`` gives those hand-set delays (docs/delays.md, "The timing task").

Splits: train 4000 samples (seed 42), validation 500 (seed 41), test 1000 (seed 40);
spikes ``(N, T, 8)`` uint8, labels drawn uniformly per sample.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import DataError

CLASSES = 4
CHANNELS = 2 * CLASSES
KEY_LAGS = (3, 5, 7, 9)
MARGIN = 2
SPREAD = 4
MAX_LAG = max(KEY_LAGS) + MARGIN + SPREAD
JITTER = 1
TAIL = 8
SPLITS = {"train": (4000, 42), "validation": (500, 41), "test": (1000, 40)}
ENCODING = "spikes"


def min_steps() -> int:
    """The shortest sample that holds a pair at the largest lag and the quiet tail."""
    return MAX_LAG + 1 + TAIL + 4


def ideal_delays() -> np.ndarray:
    """``(8,)`` axonal delays that align every pair at its key lag: ``d[2p] = KEY_LAGS[p]``."""
    d = np.zeros(CHANNELS)
    d[0::2] = KEY_LAGS
    return d


def _other_lags(p: int) -> np.ndarray:
    """Lags of pair ``p`` outside its class: its key lag +- ``MARGIN + 1 .. MARGIN + SPREAD``
    (symmetric about the key, so the lag's mean is the key lag in every class)."""
    off = np.arange(MARGIN + 1, MARGIN + SPREAD + 1)
    return np.concatenate([KEY_LAGS[p] - off[::-1], KEY_LAGS[p] + off])


def generate(size: int, seed: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """``(spikes (size, T, 8) uint8, labels (size,) int64)``; see the module docstring."""
    if size < 1:
        raise DataError(f"timing task size must be >= 1, got {size}")
    if T < min_steps():
        raise DataError(f"the timing task needs network.time_steps >= {min_steps()} "
                        f"(lags up to {MAX_LAG} steps and a {TAIL}-step quiet tail), got {T}")
    rng = np.random.default_rng(seed)
    span = T - TAIL
    x = np.zeros((size, T, CHANNELS), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, size)
    others = [_other_lags(p) for p in range(CLASSES)]
    for n, c in enumerate(labels):
        for p in range(CLASSES):
            lag = KEY_LAGS[p] + rng.integers(-JITTER, JITTER + 1) if p == c \
                else rng.choice(others[p])
            first = rng.integers(0, span - abs(lag))
            a, b = (first, first + lag) if lag >= 0 else (first - lag, first)
            x[n, a, 2 * p] = 1
            x[n, b, 2 * p + 1] = 1
    return x, labels.astype(np.int64)


def load_splits(T: int):
    """``(train, validation, test)`` as ``SpikeSplit``s of ``T`` steps."""
    from edgesnn.datasets.base import SpikeSplit

    out = []
    for name, (size, seed) in SPLITS.items():
        x, y = generate(size, seed, T)
        out.append(SpikeSplit(name, x, y, ENCODING))
    return tuple(out)
