"""DVS Gesture (Amir et al. 2017) in the preprocessed layout tonic 1.7 reads.

``tonic.datasets.DVSGesture`` does not read the original aedat recordings: it
downloads ``ibmGestureTrain.tar.gz`` / ``ibmGestureTest.tar.gz`` (figshare),
where each recording has already been cut into one file per gesture and
times reduced to milliseconds. This module reads that layout:

``data_dir/ibmGestureTrain/user<NN>_<lighting>/<label>.npy`` and
``data_dir/ibmGestureTest/...`` (the extracted archives), also under
``data_dir/DVSGesture`` (tonic's ``save_to``).

* each ``.npy``: an ``(n, 4)`` numeric array, columns ``x, y, p, t``, ``t`` in
  milliseconds (float in the released files: fractional ms);
* label = file stem, 0..10 (tonic's class list: 0 hand clapping, 1 right hand
  wave, ..., 10 other gestures);
* events as ``DVSGesture.__getitem__`` makes them: ``t *= 1000`` (us), then
  ``unstructured_to_structured`` to ``[("x", int16), ("y", int16), ("p",
  bool), ("t", int64)]`` (so times truncate to whole microseconds). The
  multiplication is done in float64 here (tonic does it in the file's dtype;
  the same result unless an integer file would overflow).

Sensor ``(128, 128, 2)``; ``tonic.transforms.Downsample(spatial_factor=0.25)``
takes it to ``(32, 32, 2)`` (``x // 4``, ``y // 4``), binned to ``(T, 2048)``,
channel ``p*1024 + (y//4)*32 + x//4``. Order: by user number, lighting, label
(tonic lists files in file-system order).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgesnn.datasets.events import EventFormat, check_coordinates, locate
from edgesnn.errors import DataError

SENSOR_SIZE = (128, 128, 2)
DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
FORMAT = EventFormat("DVS Gesture", SENSOR_SIZE, 0.25, 6000.0, 11)
FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
URLS = {"train": "https://figshare.com/ndownloader/files/38022171",
        "test": "https://figshare.com/ndownloader/files/38020584"}
USER = re.compile(r"user(\d+)_(.+)")


class GestureFiles:
    """The ``.npy`` files of one split: ``labels``, ``users``, ``lighting``, ``events(j)``."""

    def __init__(self, root: Path, names: list[str], labels: list[int], users: list[int],
                 lighting: list[str]):
        self.root, self.names = Path(root), names
        self.labels = np.asarray(labels, dtype=np.int64)
        self.users = np.asarray(users, dtype=np.int64)
        self.lighting = lighting

    def __len__(self) -> int:
        return len(self.names)

    def where(self, j: int) -> str:
        return str(self.root / self.names[j])

    def events(self, j: int) -> np.ndarray:
        """Events of sample ``j`` as tonic's DVSGesture gives them: ``x, y, p, t`` (us)."""
        from numpy.lib import recfunctions as rfn

        where = self.where(j)
        try:
            arr = np.load(where, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"DVS Gesture: {where}: not a .npy array file "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                            ) from None
        if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != 4 \
                or arr.dtype.kind not in "iuf":
            raise DataError(f"DVS Gesture: {where}: expected an (n, 4) numeric array of "
                            f"x, y, p, t; found {getattr(arr, 'shape', '?')} "
                            f"{getattr(arr, 'dtype', '?')}")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"DVS Gesture: {where}: non-finite values")
        check_coordinates(FORMAT.title, where, arr[:, 0], "x", SENSOR_SIZE[0])
        check_coordinates(FORMAT.title, where, arr[:, 1], "y", SENSOR_SIZE[1])
        if not np.all((arr[:, 2] == 0) | (arr[:, 2] == 1)):
            raise DataError(f"DVS Gesture: {where}: polarity (column 2) must be 0 or 1")
        if len(arr) and arr[:, 3].min() < 0:
            raise DataError(f"DVS Gesture: {where}: negative time")
        arr[:, 3] *= 1000            # ms -> us, as tonic
        return rfn.unstructured_to_structured(arr, DTYPE)


def list_split(root: Path) -> GestureFiles:
    """``root/user<NN>_<lighting>/<label>.npy``, checked: names, labels 0..10, non-empty files."""
    rows = []
    for sub in (p for p in root.iterdir() if p.is_dir()):
        m = USER.fullmatch(sub.name)
        if m is None:
            raise DataError(f"DVS Gesture: {sub}: expected folders user<NN>_<lighting>")
        for f in (p for p in sub.iterdir() if p.suffix == ".npy"):
            if not re.fullmatch(r"\d+", f.stem) or int(f.stem) >= FORMAT.classes:
                raise DataError(f"DVS Gesture: {f}: unknown label '{f.stem}' (file names are "
                                f"the labels 0..{FORMAT.classes - 1})")
            if f.stat().st_size == 0:
                raise DataError(f"DVS Gesture: {f}: empty file")
            rows.append((int(m.group(1)), m.group(2), int(f.stem), f"{sub.name}/{f.name}"))
    if not rows:
        raise DataError(f"DVS Gesture: no user<NN>_<lighting>/<label>.npy files in {root}")
    rows.sort()
    users, lighting, labels, names = (list(c) for c in zip(*rows))
    return GestureFiles(root, names, labels, users, lighting)


def find_split(data_dir: Path, split: str) -> GestureFiles:
    """The extracted folder of a split, else a DataError saying what to do."""
    folder = FOLDERS[split]
    found = locate(data_dir, folder, "DVSGesture")
    if found is not None and found.is_dir():
        return list_split(found)
    archive = locate(data_dir, folder + ".tar.gz", "DVSGesture")
    if archive is not None:
        raise DataError(f"DVS Gesture: {data_dir / folder} not found, but {archive} is: "
                        f"extract it (tar xzf {archive} -C {archive.parent})")
    raise DataError(f"DVS Gesture: {data_dir / folder} not found; download {folder}.tar.gz "
                    f"(tonic's preprocessed DVS Gesture, {URLS[split]}) and extract it "
                    f"into {data_dir}")


def open_dvsgesture(data_dir: Path) -> dict[str, GestureFiles]:
    """The official DVS Gesture splits: ``{"train", "test"}``."""
    return {split: find_split(Path(data_dir), split) for split in FOLDERS}
