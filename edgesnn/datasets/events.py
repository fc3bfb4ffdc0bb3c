"""Event data sets as per-sample spikes: SHD, SSC, N-MNIST, DVS Gesture.

``load_events(name, data_dir, T)`` reads the original files from local disk
(never the network) and returns ``(train, validation, test)`` ``EventSplit``s.
An ``EventSplit`` has the split protocol of ``datasets.base`` (``name``,
``labels``, ``n_inputs``, ``encodings``, ``spikes(i, T, encoding)``): sample
``i`` is read from its file, binned with tonic transforms and returned as
spikes ``(T, N)`` uint8 in {0, 1}; binned samples are kept in memory (packed
bits, up to ``cache_mb``).

Binning (``Binning``), per sample:

* events are tonic structured arrays, ``t`` in microseconds from the start of
  the recording, sorted by ``t`` before binning;
* DVS Gesture only: ``tonic.transforms.Downsample(spatial_factor=0.25)``,
  128x128 -> 32x32 (``x // 4``, ``y // 4``: 4x4 pixel blocks merge);
* ``tonic.transforms.ToFrame`` to ``T`` frames, then frames ``(T, P, H, W)``
  are flattened to channels ``n = p*H*W + y*W + x`` (SHD/SSC: ``n = unit``);
* counts are clipped to 1: channel ``n`` spikes at step ``t`` if it had at
  least one event in bin ``t`` (the engines take 0/1 spikes).

Time axis, ``fixed`` (default): bin ``t`` holds events with
``t*w <= time < (t+1)*w``, ``w = ceil(duration / T)`` whole microseconds,
from the start of the recording, the same for every sample (``ToFrame(
time_window=w, start_time=0, end_time=w*T)``); events after ``w*T`` are
dropped. Default durations (``EventFormat.duration_ms``): SHD 1400 ms, SSC
1000 ms, N-MNIST 320 ms, DVS Gesture 6000 ms. ``stretch=True`` instead uses
``ToFrame(n_time_bins=T)``: each sample is stretched between its own first
and last event, so a step means a different time in each sample; tonic then
drops the last event of every sample (bin width ``(t_last - t_first) // T``,
end excluded) and a sample spanning fewer than ``T`` microseconds bins empty.

Splits: the official ones; where a data set has no official validation split
(SHD, N-MNIST, DVS Gesture) it is carved from the official training split:
``max(1, round(validation_fraction * n_train))`` samples (10% by default) chosen by
``default_rng(seed).permutation(n_train)`` (seed 0 by default, independent of
the run's seed, so every run validates on the same samples), kept in that
random order; the training split keeps the rest in file order. SSC uses its
own validation file. ``split_sizes=(n_train, n_val, n_test)`` then keeps a
seeded random subset of each split (``None``: all), in random order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edgesnn.errors import DataError

EVENT_DATASETS = ("shd", "ssc", "nmnist", "dvsgesture")
ENCODING = "events"


@dataclass(frozen=True)
class EventFormat:
    """What a data set's events look like and how they are binned by default."""

    title: str                            # name in messages: "SHD"
    sensor_size: tuple[int, int, int]     # (W, H, P) of the recorded events (tonic's)
    spatial_factor: float                 # tonic Downsample factor applied before binning
    duration_ms: float                    # default binned window from t = 0
    classes: int

    @property
    def frame_size(self) -> tuple[int, int, int]:
        """(W, H, P) after spatial downsampling."""
        w, h, p = self.sensor_size
        f = self.spatial_factor
        return (int(w * f), max(int(h * f), 1), p)

    @property
    def channels(self) -> int:
        w, h, p = self.frame_size
        return w * h * p


class EventSource(Protocol):
    """One file set of a data set (an official split), read sample by sample."""

    labels: np.ndarray                    # (n,) int64

    def __len__(self) -> int: ...

    def events(self, j: int) -> np.ndarray:
        """Events of sample ``j``: a tonic structured array, ``t`` in microseconds."""

    def where(self, j: int) -> str:
        """The file (and sample) ``j`` comes from, for messages."""


@dataclass(frozen=True)
class Binning:
    """Events (tonic structured array: ``t`` us, ``x``, [``y``], ``p``) -> spikes ``(T, N)`` uint8.

    ``duration_us`` None: ``ToFrame(n_time_bins=T)`` (per-sample stretch);
    otherwise fixed bins of ``window_us`` from t = 0 (see the module docstring).
    """

    fmt: EventFormat
    T: int
    duration_us: int | None
    _transform: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        import tonic.transforms as tt

        steps = []
        if self.fmt.spatial_factor != 1:
            steps.append(tt.Downsample(spatial_factor=self.fmt.spatial_factor))
        if self.duration_us is None:
            steps.append(tt.ToFrame(sensor_size=self.fmt.frame_size, n_time_bins=self.T))
        else:
            w = self.window_us
            steps.append(tt.ToFrame(sensor_size=self.fmt.frame_size, time_window=w,
                                    start_time=0, end_time=w * self.T))
        object.__setattr__(self, "_transform", tt.Compose(steps))

    @property
    def window_us(self) -> int | None:
        return None if self.duration_us is None else math.ceil(self.duration_us / self.T)

    @property
    def channels(self) -> int:
        return self.fmt.channels

    def __call__(self, events: np.ndarray) -> np.ndarray:
        out = np.zeros((self.T, self.channels), dtype=np.uint8)
        if len(events) == 0:          # ToFrame's empty branch gives another shape: skip it
            return out
        events = events[np.argsort(events["t"], kind="stable")]   # tonic slicers need sorted t
        frames = np.asarray(self._transform(events))
        frames = frames.reshape(frames.shape[0], -1)
        if frames.shape != out.shape:  # tonic's contract, checked: a bug, not bad data
            raise AssertionError(f"ToFrame gave {frames.shape}, expected {out.shape}")
        np.minimum(frames, 1, out=out, casting="unsafe")
        return out


class SpikeCache:
    """Binned samples as packed bits, up to ``limit_bytes`` (then new samples are not kept)."""

    def __init__(self, limit_bytes: int):
        self.limit, self.used = int(limit_bytes), 0
        self._store: dict[tuple[int, int], np.ndarray] = {}

    def get(self, key: tuple[int, int], shape: tuple[int, int]) -> np.ndarray | None:
        packed = self._store.get(key)
        if packed is None:
            return None
        return np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape)

    def put(self, key: tuple[int, int], spikes: np.ndarray) -> None:
        packed = np.packbits(spikes, axis=None)
        if self.used + packed.nbytes <= self.limit:
            self._store[key] = packed
            self.used += packed.nbytes


@dataclass(frozen=True, eq=False)
class EventSplit:
    """Samples ``index[i]`` of an event source, binned on demand: ``spikes(i) -> (T, N)`` uint8.

    ``labels (n,)`` int64; ``n_inputs`` = N channels; ``encodings`` = ("events",).
    """

    name: str
    source: EventSource
    index: np.ndarray
    binning: Binning
    cache: SpikeCache = field(default_factory=lambda: SpikeCache(0), repr=False)
    labels: np.ndarray = field(init=False, repr=False)

    encodings = (ENCODING,)

    def __post_init__(self):
        object.__setattr__(self, "labels", np.asarray(self.source.labels)[self.index]
                           .astype(np.int64))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def T(self) -> int:
        return self.binning.T

    @property
    def n_inputs(self) -> int:
        return self.binning.channels

    def events(self, i: int) -> np.ndarray:
        """The raw events of sample ``i`` (tonic structured array, ``t`` in us)."""
        return self.source.events(int(self.index[i]))

    def where(self, i: int) -> str:
        return self.source.where(int(self.index[i]))

    def spikes(self, i: int, T: int | None = None, encoding: str | None = None) -> np.ndarray:
        """Sample ``i`` as spikes ``(T, N)`` uint8 0/1 (a fresh array the caller may modify)."""
        if T is not None and T != self.T:
            raise DataError(f"{self.name}: samples are binned to {self.T} steps, "
                            f"the spec expects {T}")
        if encoding not in (None, ENCODING):
            raise DataError(f"{self.name}: event data takes encoding '{ENCODING}', "
                            f"not '{encoding}'")
        j = int(self.index[i])
        key = (id(self.source), j)
        shape = (self.T, self.n_inputs)
        x = self.cache.get(key, shape)
        if x is None:
            x = self.binning(self.source.events(j))
            self.cache.put(key, x)
        return x


def _formats() -> dict[str, EventFormat]:
    from edgesnn.datasets import dvsgesture, nmnist, shd

    return {"shd": shd.SHD_FORMAT, "ssc": shd.SSC_FORMAT, "nmnist": nmnist.FORMAT,
            "dvsgesture": dvsgesture.FORMAT}


def event_format(name: str) -> EventFormat:
    """The format of a named event data set (channels, classes, default duration)."""
    formats = _formats()
    if name not in formats:
        raise DataError(f"unknown event data set '{name}'; event data sets: "
                        f"{', '.join(EVENT_DATASETS)}")
    return formats[name]


def _open(name: str, data_dir: Path) -> dict[str, EventSource]:
    from edgesnn.datasets import dvsgesture, nmnist, shd

    if name == "shd":
        return shd.open_shd(data_dir)
    if name == "ssc":
        return shd.open_ssc(data_dir)
    if name == "nmnist":
        return nmnist.open_nmnist(data_dir)
    return dvsgesture.open_dvsgesture(data_dir)


def carve(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices of ``range(n)``: validation the first
    ``max(1, round(fraction*n))`` of ``default_rng(seed).permutation(n)`` in that order,
    train the rest in ascending order."""
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(fraction * n)))
    return np.sort(perm[k:]), perm[:k]


def load_events(name: str, data_dir: str | Path, T: int,
                split_sizes: tuple[int | None, int | None, int | None] | None = None, *,
                duration_ms: float | None = None, stretch: bool = False,
                validation_fraction: float = 0.1, seed: int = 0,
                cache_mb: float = 512) -> tuple[EventSplit, EventSplit, EventSplit]:
    """``(train, validation, test)`` of an event data set read from ``data_dir``.

    ``T`` steps per sample; ``duration_ms`` the binned window (default: the
    data set's); ``stretch`` bins each sample between its first and last event
    instead; ``cache_mb`` bounds the memory of binned samples kept, shared by
    the three splits. Raises ``DataError`` (one line) on a missing or
    malformed file.
    """
    fmt = event_format(name)
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise DataError(f"{fmt.title}: T (time steps) must be an integer >= 1, got {T!r}")
    if not 0 < validation_fraction < 1:
        raise DataError(f"{fmt.title}: validation fraction must be in (0, 1), "
                        f"got {validation_fraction}")
    duration = fmt.duration_ms if duration_ms is None else duration_ms
    if not stretch and not (np.isfinite(duration) and duration > 0):
        raise DataError(f"{fmt.title}: duration must be > 0 ms, got {duration}")
    binning = Binning(fmt, int(T), None if stretch else int(round(duration * 1000)))
    sources = _open(name, Path(data_dir))

    train_src, test_src = sources["train"], sources["test"]
    if "validation" in sources:
        val_src = sources["validation"]
        parts = [(train_src, np.arange(len(train_src))), (val_src, np.arange(len(val_src)))]
    else:
        tr, va = carve(len(train_src), validation_fraction, seed)
        if len(tr) == 0:
            raise DataError(f"{fmt.title}: {len(train_src)} training sample(s) cannot give "
                            "both a training and a validation split")
        parts = [(train_src, tr), (train_src, va)]
    parts.append((test_src, np.arange(len(test_src))))

    sizes = (None, None, None) if split_sizes is None else tuple(split_sizes)
    if len(sizes) != 3:
        raise DataError(f"{fmt.title}: split sizes are (train, validation, test), got {sizes}")
    cache = SpikeCache(int(cache_mb * 2**20))
    splits = []
    for code, ((src, idx), size, split) in enumerate(zip(parts, sizes,
                                                          ("train", "validation", "test"))):
        if size is not None:
            if not 1 <= size <= len(idx):
                raise DataError(f"{fmt.title}: asked for {size} {split} samples; the {split} "
                                f"split has {len(idx)}")
            idx = idx[np.random.default_rng([seed, code]).permutation(len(idx))[:size]]
        splits.append(EventSplit(f"{name}/{split}", src, np.asarray(idx, dtype=np.int64),
                                 binning, cache))
    return tuple(splits)


# -- helpers shared by the readers ----------------------------------------

def locate(data_dir: Path, relative: str, tonic_folder: str) -> Path | None:
    """``data_dir/relative`` or, as tonic saves it, ``data_dir/tonic_folder/relative``."""
    for base in (data_dir, data_dir / tonic_folder):
        p = base / relative
        if p.exists():
            return p
    return None


def check_coordinates(title: str, where: str, values: np.ndarray, axis: str, size: int) -> None:
    """DataError unless every ``values`` lies in ``[0, size)``."""
    if len(values) and (values.min() < 0 or values.max() >= size):
        bad = values[(values < 0) | (values >= size)][0]
        raise DataError(f"{title}: {where}: {axis} = {int(bad)} outside 0..{size - 1}; "
                        "not a file of this data set, or damaged")
