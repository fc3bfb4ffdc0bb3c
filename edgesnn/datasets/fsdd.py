"""The Free Spoken Digit Dataset from a folder of WAV files, encoded to spikes once.

Files are ``{digit}_{speaker}_{index}.wav`` (8 kHz, mono, 16-bit PCM), directly
in ``data_dir`` or in ``data_dir/recordings``. Splits: the official one,
indices 0-4 are the test set (300 files); of the rest, indices 5-9 are our
validation set (300 files) and 10-49 the training set (2,400 files). Every
speaker is in every split (the official split is not speaker-independent).

The spikes of every file are computed by an ``audio.AudioEncoder`` and cached
on disk (``cache_dir``, default ``$EDGESNN_CACHE`` or ``~/.cache/edgesnn``)
under a name made of the encoder's parameters and the folder listing (names,
sizes, modification times): a second run reads the cache; changing a
parameter or a file makes a new one.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import wave
from pathlib import Path

import numpy as np

from edgesnn.audio import AudioEncoder
from edgesnn.datasets.base import SpikeSplit
from edgesnn.errors import DataError, OutputError
from edgesnn.report import plural

NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
SPLITS = {"test": range(0, 5), "validation": range(5, 10), "train": range(10, 50)}


def find_files(data_dir: str | Path) -> list[Path]:
    """The FSDD WAV files under ``data_dir`` (or its ``recordings``), sorted by name."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"FSDD: folder {root} not found; give --data-dir the folder holding "
                        "the recordings (the free-spoken-digit-dataset repository's "
                        "'recordings' folder)")
    if (root / "recordings").is_dir():
        root = root / "recordings"
    files = sorted(p for p in root.iterdir() if NAME.match(p.name))
    if not files:
        raise DataError(f"FSDD: no files named DIGIT_SPEAKER_INDEX.wav in {root}")
    return files


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """Mono 16-bit PCM WAV -> float64 waveform in [-1, 1]; DataError on another format."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise DataError(f"FSDD: {path} is not mono 16-bit PCM "
                                f"({plural(w.getnchannels(), 'channel')}, {8 * w.getsampwidth()} bit)")
            if w.getframerate() != sample_rate:
                raise DataError(f"FSDD: {path} is sampled at {w.getframerate()} Hz, "
                                f"the encoder expects {sample_rate} Hz")
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise DataError(f"FSDD: {path} is not a readable WAV file ({exc})") from None
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


def _listing_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGESNN_CACHE", Path.home() / ".cache" / "edgesnn"))


def encode_all(data_dir: str | Path, encoder: AudioEncoder,
               cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(spikes (N, T, C) uint8, labels (N,), names)`` of every file, from the cache if there."""
    from edgesnn.report import write_atomic

    files = find_files(data_dir)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"fsdd-{encoder.fingerprint()}-{_listing_hash(files)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return z["spikes"], z["labels"], [str(n) for n in z["names"]]
        except Exception:       # a damaged cache is rebuilt, not trusted
            pass
    spikes = np.stack([encoder.spikes(read_wav(p, encoder.sample_rate)) for p in files])
    labels = np.array([int(NAME.match(p.name).group(1)) for p in files], dtype=np.int64)
    names = [p.name for p in files]
    buf = io.BytesIO()
    np.savez_compressed(buf, spikes=spikes, labels=labels, names=np.array(names))
    try:
        write_atomic(path, buf.getvalue())
    except (OSError, OutputError):   # a read-only cache folder only costs re-encoding
        pass
    return spikes, labels, names


def load_fsdd(data_dir: str | Path, encoder: AudioEncoder,
              cache_dir: str | Path | None = None) -> tuple[SpikeSplit, SpikeSplit, SpikeSplit]:
    """``(train, validation, test)`` spike splits of FSDD (see the module docstring)."""
    spikes, labels, names = encode_all(data_dir, encoder, cache_dir)
    index = np.array([int(NAME.match(n).group(3)) for n in names])
    out = []
    for split in ("train", "validation", "test"):
        r = SPLITS[split]
        mask = (index >= r.start) & (index < r.stop)
        if not mask.any():
            raise DataError(f"FSDD: no {split} files (indices {r.start}-{r.stop - 1}) in {data_dir}")
        out.append(SpikeSplit(f"fsdd-{split}", spikes[mask], labels[mask], encoder.method))
    return tuple(out)
