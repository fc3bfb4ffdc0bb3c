"""Data sets by name: each returns train, validation and test splits (``datasets.base``)."""

from __future__ import annotations

from pathlib import Path

from edgesnn.errors import DataError

DATASETS = ("yinyang", "fsdd", "shd", "ssc", "nmnist", "dvsgesture", "timing")
#: the encodings each data set takes; the first is its default
ENCODINGS = {"yinyang": ("regular", "rate", "latency"), "fsdd": ("iaf", "delta"),
             "shd": ("events",), "ssc": ("events",), "nmnist": ("events",),
             "dvsgesture": ("events",), "timing": ("spikes",)}


def load_dataset(name: str, data_dir: str | Path | None = None, time_steps: int | None = None,
                 inputs: int | None = None, encoding: str | None = None,
                 cache_dir: str | Path | None = None):
    """``(train, validation, test)`` splits of a named data set.

    Yin-Yang and the timing task (``datasets.timing``, ``time_steps`` steps) are
    generated (no files). FSDD audio is read from ``data_dir`` and
    encoded to ``time_steps`` steps and ``inputs`` channels (the spec's) with
    ``encoding``; event data sets (SHD, SSC, N-MNIST, DVS Gesture) are read
    from ``data_dir`` and binned to ``time_steps`` steps (``datasets.events``).
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set '{name}'; data sets: {', '.join(DATASETS)}")
    encoding = encoding or ENCODINGS[name][0]
    if encoding not in ENCODINGS[name]:
        raise DataError(f"data set '{name}' takes --encoding {' or '.join(ENCODINGS[name])}, "
                        f"not '{encoding}'")
    if name == "yinyang":
        from edgesnn.datasets.base import PointSplit
        from edgesnn.datasets.yinyang import load_split

        return tuple(PointSplit(s, (d := load_split(s)).features, d.labels, seed)
                     for s, seed in (("train", 1), ("validation", 2), ("test", 3)))
    if name == "timing":
        from edgesnn.datasets.timing import load_splits

        return load_splits(time_steps)
    if data_dir is None:
        raise DataError(f"data set '{name}' reads local files: give --data-dir")
    from edgesnn.datasets.events import EVENT_DATASETS, load_events

    if name in EVENT_DATASETS:
        return load_events(name, data_dir, time_steps)
    from edgesnn.audio import AudioEncoder
    from edgesnn.datasets.fsdd import load_fsdd

    bands = inputs // 2 if encoding == "delta" else inputs
    if not bands or (encoding == "delta" and inputs % 2):
        raise DataError(f"the {encoding} audio encoder gives "
                        f"{'2 x bands' if encoding == 'delta' else 'one channel per band'}: "
                        f"network.inputs = {inputs} does not fit")
    enc = AudioEncoder(steps=time_steps, bands=bands, method=encoding)
    return load_fsdd(data_dir, enc, cache_dir)
