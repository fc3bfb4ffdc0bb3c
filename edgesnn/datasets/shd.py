"""SHD and SSC (Cramer, Stradmann, Schemmel, Zenke 2020) from the original HDF5 files.

Files: ``shd_train.h5``, ``shd_test.h5``; ``ssc_train.h5``, ``ssc_valid.h5``,
``ssc_test.h5`` (the ``.h5.gz`` files of https://zenkelab.org/datasets/,
decompressed), in ``data_dir`` or in ``data_dir/SHD`` (``data_dir/SSC``),
where ``tonic.datasets.SHD(save_to=data_dir)`` keeps them.

Layout, as ``tonic.datasets.hsd.HSD.__getitem__`` (tonic 1.7) reads it:

=================  =============================================================
``spikes/times``   ``(n,)`` variable-length float16: spike times in seconds
``spikes/units``   ``(n,)`` variable-length uint16: channel 0..699
``labels``         ``(n,)`` uint16: SHD 0..19 (ten digits, English and German),
                   SSC 0..34
``extra/...``      ``keys``, ``speaker``, ``meta_info``: not used here
=================  =============================================================

(float16 times: tonic issue #321 and tonic's own fake files; fixed-length 2-D
datasets, as tonic's tests write, are read too.) Events as tonic builds them:
``t = int(float64(time) * 1e6)`` microseconds (truncated), ``x = unit``,
``p = 1``; tonic's dtype ``[("t", int), ("x", int), ("p", int)]``, sensor
``(700, 1, 1)``. Binned to ``(T, 700)``: channel = unit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesnn.datasets.events import EventFormat, check_coordinates, locate
from edgesnn.errors import DataError

SENSOR_SIZE = (700, 1, 1)
DTYPE = np.dtype([("t", int), ("x", int), ("p", int)])
SHD_FORMAT = EventFormat("SHD", SENSOR_SIZE, 1.0, 1400.0, 20)
SSC_FORMAT = EventFormat("SSC", SENSOR_SIZE, 1.0, 1000.0, 35)
SHD_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
SSC_FILES = {"train": "ssc_train.h5", "validation": "ssc_valid.h5", "test": "ssc_test.h5"}
URL = "https://zenkelab.org/datasets/"
REQUIRED = ("spikes/times", "spikes/units", "labels")


class HeidelbergFile:
    """One SHD/SSC HDF5 file: ``labels (n,)`` read at once, spikes read per sample.

    Opened (read-only) to check it, closed, then opened again at the first
    sample read and kept open; reopened after pickling.
    """

    def __init__(self, fmt: EventFormat, path: Path):
        self.fmt, self.path = fmt, Path(path)
        self._h5 = None
        self.labels = self._validate()

    def _fail(self, what: str) -> DataError:
        return DataError(f"{self.fmt.title}: {self.path}: {what}")

    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except OSError:
            raise self._fail("not an HDF5 file (damaged, or still compressed?)") from None

    def _file(self):
        if self._h5 is None:
            self._h5 = self._open()
        return self._h5

    def _validate(self) -> np.ndarray:
        """Check the layout and read the labels; the file is closed again."""
        if self.path.stat().st_size == 0:
            raise self._fail("empty file")
        with self._open() as f:
            return self._check(f)

    def _check(self, f) -> np.ndarray:
        import h5py

        expected = {"spikes/times": ("f", "per-sample float arrays"),
                    "spikes/units": ("iu", "per-sample integer arrays"),
                    "labels": ("iu", "one integer per sample")}
        for key in REQUIRED:
            ds = f.get(key)
            if not isinstance(ds, h5py.Dataset):
                raise self._fail(f"no dataset '{key}': not an {self.fmt.title} file")
            vlen = h5py.check_vlen_dtype(ds.dtype)
            kinds, what = expected[key]
            ndim = 1 if key == "labels" or vlen is not None else 2
            if (vlen or ds.dtype).kind not in kinds or ds.ndim != ndim:
                raise self._fail(f"dataset '{key}' is {ds.ndim}-D {vlen or ds.dtype}, "
                                 f"expected {what}")
        labels = np.asarray(f["labels"][()]).astype(np.int64)
        n = len(labels)
        if n == 0:
            raise self._fail("no samples (empty labels)")
        for key in ("spikes/times", "spikes/units"):
            if f[key].shape[0] != n:
                raise self._fail(f"'{key}' has {f[key].shape[0]} samples, 'labels' {n}")
        bad = np.flatnonzero((labels < 0) | (labels >= self.fmt.classes))
        if len(bad):
            raise self._fail(f"label {labels[bad[0]]} of sample {bad[0]} outside "
                             f"0..{self.fmt.classes - 1}")
        return labels

    def __len__(self) -> int:
        return len(self.labels)

    def where(self, j: int) -> str:
        return f"{self.path} sample {j}"

    def events(self, j: int) -> np.ndarray:
        """Spikes of sample ``j`` as tonic's HSD gives them: ``t`` us, ``x`` unit, ``p`` 1."""
        f = self._file()
        try:
            times = np.asarray(f["spikes/times"][j], dtype=np.float64)
            units = np.asarray(f["spikes/units"][j]).astype(np.int64)
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.fmt.title}: {self.where(j)}: unreadable "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                            ) from None
        if times.ndim != 1 or times.shape != units.shape:
            raise DataError(f"{self.fmt.title}: {self.where(j)}: {times.size} times but "
                            f"{units.size} units")
        if not np.all(np.isfinite(times)) or (times.size and times.min() < 0):
            raise DataError(f"{self.fmt.title}: {self.where(j)}: spike times must be finite "
                            "seconds >= 0")
        check_coordinates(self.fmt.title, self.where(j), units, "unit", SENSOR_SIZE[0])
        ev = np.empty(len(times), dtype=DTYPE)
        ev["t"] = times * 1e6          # float -> int truncates, as tonic's make_structured_array
        ev["x"] = units
        ev["p"] = 1
        return ev

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"] = None
        return state


def find_file(fmt: EventFormat, data_dir: Path, filename: str) -> Path:
    """``data_dir/filename`` (or ``data_dir/<SHD|SSC>/filename``); else DataError: what to do."""
    found = locate(data_dir, filename, fmt.title)
    if found is not None and found.is_file():
        return found
    for ext, tool in ((".gz", "gunzip"), (".zip", "unzip")):
        packed = locate(data_dir, filename + ext, fmt.title)
        if packed is not None:
            raise DataError(f"{fmt.title}: {data_dir / filename} not found, but {packed} is: "
                            f"decompress it ({tool}) into {packed.parent}")
    raise DataError(f"{fmt.title}: {data_dir / filename} not found; download {filename}.gz "
                    f"from {URL} and gunzip it into {data_dir}")


def _open(fmt: EventFormat, files: dict[str, str], data_dir: Path) -> dict[str, HeidelbergFile]:
    paths = {split: find_file(fmt, Path(data_dir), name) for split, name in files.items()}
    return {split: HeidelbergFile(fmt, p) for split, p in paths.items()}


def open_shd(data_dir: Path) -> dict[str, HeidelbergFile]:
    """The official SHD files: ``{"train", "test"}``."""
    return _open(SHD_FORMAT, SHD_FILES, data_dir)


def open_ssc(data_dir: Path) -> dict[str, HeidelbergFile]:
    """The official SSC files: ``{"train", "validation", "test"}``."""
    return _open(SSC_FORMAT, SSC_FILES, data_dir)
