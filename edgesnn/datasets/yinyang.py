"""The Yin-Yang data set (Kriener, Göltz et al. 2021), generated, seeded.

Points (x, y) uniform in the big circle of radius ``r_big = 0.5`` centred at
(0.5, 0.5), labelled yin (1), yang (0) or dot (2; the two small circles of
radius ``r_small = 0.1``). Each sample's class is drawn first (uniform over
the three), then points are rejected until one of that class is found: the
three classes are balanced. Features are ``(x, y, 1-x, 1-y)``, each in [0, 1].

The standard splits of the reference implementation: train 5000 points
(seed 42), validation 1000 (seed 41), test 1000 (seed 40). No download, no
files: this is the built-in default data set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgesnn.errors import DataError

SPLITS = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}
CLASSES = ("yang", "yin", "dot")


@dataclass(frozen=True)
class PointSet:
    """``features`` (N, 4) float64 in [0, 1]; ``labels`` (N,) int64 in {0, 1, 2}."""

    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def which_class(x: float, y: float, r_small: float = 0.1, r_big: float = 0.5) -> int:
    """Class of a point inside the big circle: 0 yang, 1 yin, 2 dot."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    if d_right < r_small or d_left < r_small:
        return 2
    yin = (d_right <= r_small or r_small < d_left <= 0.5 * r_big
           or (y > r_big and d_right > 0.5 * r_big))
    return int(yin)


def generate(size: int, seed: int, r_small: float = 0.1, r_big: float = 0.5) -> PointSet:
    """``size`` points with balanced classes from ``np.random.RandomState(seed)``."""
    if size < 1:
        raise DataError(f"Yin-Yang size must be >= 1, got {size}")
    rng = np.random.RandomState(seed)
    feats = np.empty((size, 4))
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if np.hypot(x - r_big, y - r_big) > r_big:
                continue
            if which_class(x, y, r_small, r_big) == goal:
                break
        feats[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = goal
    return PointSet(feats, labels)


def load_split(split: str, size: int | None = None) -> PointSet:
    """One of the standard splits; ``size`` takes its first ``size`` points.

    The arrays are read-only and shared: a process generates each split once (a sweep
    worker runs many points on the same splits; generating the three costs about
    0.3 s). The first ``size`` points of a split are ``generate(size, seed)``: each
    point's draws follow the previous point's."""
    if split not in SPLITS:
        raise DataError(f"unknown Yin-Yang split '{split}'; splits: {', '.join(SPLITS)}")
    full, seed = SPLITS[split]
    n = full if size is None else size
    if n > full:
        return _read_only(generate(n, seed))
    points = _standard(split)
    return points if n == full else PointSet(points.features[:n], points.labels[:n])


@functools.lru_cache(maxsize=None)
def _standard(split: str) -> PointSet:
    full, seed = SPLITS[split]
    return _read_only(generate(full, seed))


def _read_only(points: PointSet) -> PointSet:
    points.features.flags.writeable = False
    points.labels.flags.writeable = False
    return points
