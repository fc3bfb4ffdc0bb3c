"""Miniature event data set files, written in the original formats.

* SHD/SSC: HDF5 as released by the Zenke lab: ``spikes/times`` variable-length
  float16 seconds, ``spikes/units`` variable-length uint16, ``labels`` uint16,
  ``extra/keys`` (class names), ``extra/speaker`` uint16.
* N-MNIST: Orchard's 5-byte events, packed here by hand (not with tonic), in
  ``Train|Test/<digit>/<5 digits>.bin``, or zipped like ``train.zip``.
* DVS Gesture: tonic's preprocessed ``.npy`` (n, 4) float64 ``x, y, p, t[ms]``
  in ``ibmGestureTrain|ibmGestureTest/user<NN>_<lighting>/<label>.npy``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


def write_heidelberg(path: Path, samples: list[tuple[list[float], list[int]]],
                     labels: list[int], n_classes: int = 20) -> Path:
    """An SHD/SSC file: ``samples`` = [(times in s, units)], one label each."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),),
                                 dtype=h5py.vlen_dtype(np.dtype("float16")))
        units = f.create_dataset("spikes/units", (len(samples),),
                                 dtype=h5py.vlen_dtype(np.dtype("uint16")))
        for i, (t, u) in enumerate(samples):
            times[i] = np.asarray(t, dtype=np.float16)
            units[i] = np.asarray(u, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        f.create_dataset("extra/keys", data=[f"class-{k}".encode() for k in range(n_classes)])
        f.create_dataset("extra/speaker", data=np.arange(len(samples), dtype=np.uint16) % 12)
    return path


def nmnist_bytes(events: list[tuple[int, int, int, int]]) -> bytes:
    """(x, y, t us, p) events -> N-MNIST bytes: x, y, p<<7 | t[22:16], t[15:8], t[7:0]."""
    out = bytearray()
    for x, y, t, p in events:
        assert 0 <= t < 2 ** 23 and p in (0, 1) and 0 <= x < 256 and 0 <= y < 256
        out += bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def write_nmnist(root: Path, split: str, samples: list[tuple[int, list]]) -> list[Path]:
    """``root/<Train|Test>/<digit>/<00001>.bin`` for each (digit, events)."""
    paths = []
    for k, (digit, events) in enumerate(samples):
        p = root / split / str(digit) / f"{k + 1:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(nmnist_bytes(events))
        paths.append(p)
    return paths


def zip_nmnist(root: Path, split: str, zip_path: Path) -> Path:
    """Zip ``root/<split>`` as ``<split>/<digit>/<name>.bin`` members (like train.zip)."""
    with zipfile.ZipFile(zip_path, "w") as z:
        for p in sorted((root / split).rglob("*.bin")):
            z.write(p, p.relative_to(root).as_posix())
    return zip_path


def write_gesture(root: Path, folder: str, user: int, lighting: str, label: int,
                  events: list[tuple[int, int, int, float]]) -> Path:
    """``root/<folder>/user<NN>_<lighting>/<label>.npy``: (n, 4) float64 x, y, p, t[ms]."""
    p = root / folder / f"user{user:02d}_{lighting}" / f"{label}.npy"
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, np.asarray(events, dtype=np.float64).reshape(-1, 4))
    return p


# -- the miniature data sets the tests use -----------------------------------

def shd_dir(root: Path) -> dict:
    """SHD train (10 samples) and test (3); sample 0 of train has hand-placed spikes."""
    train = [([0.5, 0.5, 0.0625, 1.5], [123, 123, 7, 699])] + [
        ([0.01 * k, 0.2 + 0.01 * k], [k, 300 + k]) for k in range(1, 10)]
    train_labels = [3] + [k % 20 for k in range(1, 10)]
    test = [([0.25], [42]), ([0.75, 0.8], [0, 1]), ([], [])]
    write_heidelberg(root / "shd_train.h5", train, train_labels)
    write_heidelberg(root / "shd_test.h5", test, [19, 0, 5])
    return {"train": train, "train_labels": train_labels, "test": test,
            "test_labels": [19, 0, 5]}


def ssc_dir(root: Path) -> dict:
    """SSC train/valid/test, labels up to 34."""
    files = {"ssc_train.h5": ([([0.1], [10]), ([0.2], [20]), ([0.3], [30])], [0, 17, 34]),
             "ssc_valid.h5": ([([0.4], [40]), ([0.5], [50])], [33, 1]),
             "ssc_test.h5": ([([0.6], [60])], [2])}
    for name, (samples, labels) in files.items():
        write_heidelberg(root / name, samples, labels, n_classes=35)
    return files


#: N-MNIST samples: (digit, [(x, y, t us, p)])
NMNIST_TRAIN = [(0, [(5, 7, 1234, 1), (33, 33, 100_000, 0), (5, 7, 1300, 1)]),
                (0, [(1, 1, 10, 0)]),
                (3, [(0, 0, 0, 1), (10, 20, 319_999, 1)]),
                (3, [(2, 2, 50_000, 1)]),
                (7, [(4, 4, 200_000, 0), (4, 4, 8_000_000, 0)]),
                (9, [(6, 6, 64_000, 1)]),
                (9, [(8, 8, 128_000, 1)]),
                (9, [(9, 9, 250_000, 0)]),
                (1, [(3, 3, 3_000, 1)]),
                (1, [(12, 13, 14_000, 0)])]
NMNIST_TEST = [(2, [(30, 31, 5_000, 1)]), (8, [(0, 33, 300_000, 0)])]


def nmnist_dir(root: Path) -> None:
    write_nmnist(root, "Train", NMNIST_TRAIN)
    write_nmnist(root, "Test", NMNIST_TEST)


#: DVS Gesture files: (folder, user, lighting, label, [(x, y, p, t ms)])
GESTURES = [("ibmGestureTrain", 1, "fluorescent", 0, [(100, 37, 1, 2.5), (0, 0, 0, 0.0)]),
            ("ibmGestureTrain", 1, "fluorescent", 5, [(127, 127, 0, 5999.9)]),
            ("ibmGestureTrain", 2, "led", 10, [(64, 64, 1, 3000.0)]),
            ("ibmGestureTrain", 3, "natural", 7, [(3, 4, 1, 1.0)]),
            ("ibmGestureTest", 24, "natural", 3, [(8, 9, 0, 10.0), (9, 8, 1, 20.0)])]


def gesture_dir(root: Path) -> None:
    for folder, user, light, label, events in GESTURES:
        write_gesture(root, folder, user, light, label, events)
