"""The two shapes of data a run learns from: points encoded on demand, or spikes.

Both give the trainer what it needs: ``labels (N,)``, ``n_inputs`` and
``spikes(i, T, encoding) -> (T, n_inputs)`` uint8 0/1 for sample ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesnn.encoders import ENCODINGS, encode
from edgesnn.errors import DataError


@dataclass(frozen=True)
class PointSplit:
    """Real-valued points ``features (N, F)`` in [0, 1], spike-encoded on demand.

    ``seed`` seeds the stochastic encoders, per split, so a sample's spikes
    depend only on (split, index).
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    seed: int

    encodings = ENCODINGS

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_inputs(self) -> int:
        return int(self.features.shape[1])

    def spikes(self, i: int, T: int, encoding: str) -> np.ndarray:
        return encode(self.features[i], T, encoding, self.seed, i)


@dataclass(frozen=True)
class SpikeSplit:
    """Spikes encoded once (audio front end, binned events): ``data (N, T, C)`` uint8."""

    name: str
    data: np.ndarray
    labels: np.ndarray
    encoding: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_inputs(self) -> int:
        return int(self.data.shape[2])

    @property
    def encodings(self) -> tuple[str, ...]:
        return (self.encoding,)

    def spikes(self, i: int, T: int, encoding: str) -> np.ndarray:
        if self.data.shape[1] != T:
            raise DataError(f"{self.name}: samples have {self.data.shape[1]} steps, "
                            f"the spec expects {T}")
        return self.data[i]
