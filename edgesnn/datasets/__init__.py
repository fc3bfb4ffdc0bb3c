"""Data sets by name: each returns train, validation and test ``Split``s."""

from __future__ import annotations

from edgesnn.errors import DataError

DATASETS = ("yinyang",)


def load_dataset(name: str, **options):
    """``(train, validation, test)`` splits of a named data set."""
    if name == "yinyang":
        from edgesnn.datasets.yinyang import load_split
        from edgesnn.train import Split

        return tuple(Split(s, (d := load_split(s)).features, d.labels, seed)
                     for s, seed in (("train", 1), ("validation", 2), ("test", 3)))
    raise DataError(f"unknown data set '{name}'; data sets: {', '.join(DATASETS)}")
