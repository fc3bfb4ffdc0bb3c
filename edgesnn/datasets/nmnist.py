"""N-MNIST (Orchard, Jayawant, Cohen, Thakor 2015) from the original binary files.

Files: ``data_dir/Train/<digit>/<name>.bin`` and ``data_dir/Test/<digit>/<name>.bin``
(the extracted ``train.zip`` / ``test.zip``, as ``tonic.datasets.NMNIST``
downloads and extracts them), or those zips themselves, read without
extracting (``train.zip`` or ``Train.zip``; members ``.../Train/<digit>/*.bin``);
also under ``data_dir/NMNIST`` (tonic's ``save_to``). Label = digit folder.
Order: by folder, then file name (tonic's sorted walk).

Format, as ``tonic.io.read_mnist_file`` (tonic 1.7, after Orchard's
eventvision.py) decodes it: 5 bytes per event,

* byte 0: x (0..33); byte 1: y (0..33);
* byte 2: bit 7 polarity (1 = ON), bits 6..0 = timestamp bits 22..16;
* bytes 3, 4: timestamp bits 15..8 and 7..0, in microseconds;
* an event with y == 240 is a timestamp-overflow marker: tonic adds 2^13 us
  to the events after it and drops it.

Events are decoded by tonic's reader (dtype ``[("x", int), ("y", int),
("t", int), ("p", int)]``, sensor ``(34, 34, 2)``); binned to
``(T, 2*34*34)``, channel ``p*1156 + y*34 + x``, no spatial downsampling.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from edgesnn.datasets.events import EventFormat, check_coordinates, locate
from edgesnn.errors import DataError

SENSOR_SIZE = (34, 34, 2)
DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
FORMAT = EventFormat("N-MNIST", SENSOR_SIZE, 1.0, 320.0, 10)
FOLDERS = {"train": "Train", "test": "Test"}
ZIPS = {"train": ("train.zip", "Train.zip"), "test": ("test.zip", "Test.zip")}
HINT = ("from https://www.garrickorchard.com/datasets/n-mnist (or the Mendeley data set "
        "468j46mzdv that tonic downloads)")
EVENT_BYTES = 5


class NmnistFiles:
    """The ``.bin`` files of one split, in a folder or a zip: ``labels``, ``events(j)``."""

    def __init__(self, location: Path, names: list[str], labels: list[int], zipped: bool):
        self.location, self.names, self.zipped = Path(location), names, zipped
        self.labels = np.asarray(labels, dtype=np.int64)
        self._zip: zipfile.ZipFile | None = None

    def __len__(self) -> int:
        return len(self.names)

    def where(self, j: int) -> str:
        if self.zipped:
            return f"{self.location}:{self.names[j]}"
        return str(self.location / self.names[j])

    def _raw(self, j: int) -> bytes:
        if not self.zipped:
            return (self.location / self.names[j]).read_bytes()
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.location)
        return self._zip.read(self.names[j])

    def events(self, j: int) -> np.ndarray:
        """Events of sample ``j`` decoded by ``tonic.io.read_mnist_file``: ``x, y, t`` us, ``p``."""
        from tonic.io import read_mnist_file

        try:
            raw = self._raw(j)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise DataError(f"N-MNIST: {self.where(j)}: unreadable ({exc})") from None
        _check_size(self.where(j), len(raw))
        ev = read_mnist_file(io.BytesIO(raw), dtype=DTYPE, is_stream=True)
        check_coordinates(FORMAT.title, self.where(j), ev["x"], "x", SENSOR_SIZE[0])
        check_coordinates(FORMAT.title, self.where(j), ev["y"], "y", SENSOR_SIZE[1])
        return ev

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_zip"] = None
        return state


def _check_size(where: str, size: int) -> None:
    if size == 0:
        raise DataError(f"N-MNIST: {where}: empty file")
    if size % EVENT_BYTES:
        raise DataError(f"N-MNIST: {where}: {size} bytes is not a whole number of 5-byte "
                        "events; not an N-MNIST file, or truncated")


def _label(folder: str, where: str) -> int:
    if not re.fullmatch(r"\d", folder):
        raise DataError(f"N-MNIST: {where}: expected digit folders 0..9, found '{folder}'")
    return int(folder)


def list_folder(root: Path) -> NmnistFiles:
    """``root/<digit>/*.bin``, sorted by digit then name; sizes checked."""
    names, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        label = _label(sub.name, str(sub))
        for f in sorted(p for p in sub.iterdir() if p.suffix == ".bin"):
            _check_size(str(f), f.stat().st_size)
            names.append(f"{sub.name}/{f.name}")
            labels.append(label)
    if not names:
        raise DataError(f"N-MNIST: no <digit>/*.bin files in {root}")
    return NmnistFiles(root, names, labels, zipped=False)


def list_zip(path: Path, folder: str) -> NmnistFiles:
    """Members ``.../<folder>/<digit>/*.bin`` of the zip, sorted by name; sizes checked."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"N-MNIST: {path}: not a readable zip file ({exc})") from None
    pattern = re.compile(rf"(?:^|.*/){folder}/([^/]+)/[^/]+\.bin")
    names, labels = [], []
    for info in sorted(infos, key=lambda i: i.filename):
        m = pattern.fullmatch(info.filename)
        if m is None:
            continue
        labels.append(_label(m.group(1), f"{path}:{info.filename}"))
        _check_size(f"{path}:{info.filename}", info.file_size)
        names.append(info.filename)
    if not names:
        raise DataError(f"N-MNIST: {path} holds no {folder}/<digit>/*.bin files")
    return NmnistFiles(path, names, labels, zipped=True)


def find_split(data_dir: Path, split: str) -> NmnistFiles:
    """The folder ``Train``/``Test`` if there, else the zip; DataError saying what to do."""
    folder = FOLDERS[split]
    found = locate(data_dir, folder, "NMNIST")
    if found is not None and found.is_dir():
        return list_folder(found)
    for name in ZIPS[split]:
        z = locate(data_dir, name, "NMNIST")
        if z is not None and z.is_file():
            return list_zip(z, folder)
    raise DataError(f"N-MNIST: {data_dir / folder} not found (nor {ZIPS[split][0]}); download "
                    f"{ZIPS[split][0]} {HINT} and put it, or its extracted {folder} folder, "
                    f"in {data_dir}")


def open_nmnist(data_dir: Path) -> dict[str, NmnistFiles]:
    """The official N-MNIST splits: ``{"train", "test"}``."""
    return {split: find_split(Path(data_dir), split) for split in FOLDERS}
