"""Audio front end and the FSDD reader, on WAV files the tests write."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edgesnn.audio import AudioEncoder, delta_spikes, hz_to_mel, iaf_spikes, mel_filters
from edgesnn.datasets.fsdd import encode_all, load_fsdd
from edgesnn.errors import DataError
from conftest import fsdd_dir


def write_wav(path: Path, signal: np.ndarray, rate: int = 8000, channels: int = 1) -> Path:
    pcm = np.clip(signal * 32767, -32768, 32767).astype("<i2")
    if channels == 2:
        pcm = np.repeat(pcm, 2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def tone(freq: float, seconds: float = 0.5, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_a_tone_drives_the_band_that_contains_it():
    enc = AudioEncoder(steps=60, bands=16)
    fb = mel_filters(16, 256, 8000, enc.fmin, enc.fmax)
    freqs = np.fft.rfftfreq(256, 1 / 8000)
    for f in (300.0, 1000.0, 2500.0):
        s = enc.spikes(tone(f))
        expected_band = int(np.argmax(fb[:, np.argmin(np.abs(freqs - f))]))
        assert s.shape == (60, 16)
        assert int(np.argmax(s.sum(axis=0))) == expected_band


def test_silence_gives_no_spikes_and_padding_is_silent():
    enc = AudioEncoder(steps=100, bands=8, align="start")
    assert enc.spikes(np.zeros(4000)).sum() == 0
    s = enc.spikes(tone(700, seconds=0.2))          # 20 hops of sound, then silence
    assert s[:22].sum() > 0 and s[30:].sum() == 0
    e = AudioEncoder(steps=100, bands=8).spikes(tone(700, seconds=0.2))   # align = "end"
    assert e[:75].sum() == 0 and e[80:].sum() > 0


def test_mel_filters_are_triangles_spaced_in_mel():
    fb = mel_filters(10, 512, 8000, 100.0, 4000.0)
    assert fb.shape == (10, 257) and fb.max() <= 1.0 + 1e-12
    peaks = np.fft.rfftfreq(512, 1 / 8000)[fb.argmax(axis=1)]
    gaps = np.diff(hz_to_mel(peaks))
    assert gaps.std() < 0.15 * gaps.mean()


def test_iaf_counts_follow_the_drive():
    drive = np.array([[0.0, 0.25, 1.0]] * 40)
    assert list(iaf_spikes(drive).sum(axis=0)) == [0, 10, 40]


def test_delta_modulation_up_and_down():
    env = np.array([[0.0], [0.05], [0.2], [0.2], [0.05], [0.0]])
    s = delta_spikes(env, 0.1)
    assert s.shape == (6, 2)
    assert list(s[:, 0]) == [0, 0, 1, 0, 0, 0]      # up at the 0.2 step
    assert list(s[:, 1]) == [0, 0, 0, 0, 1, 0]      # down when back to 0.05


def _fsdd_folder(tmp_path: Path) -> Path:
    root = tmp_path / "recordings"
    root.mkdir()
    for digit in range(3):
        for idx in (0, 5, 12):
            write_wav(root / f"{digit}_alice_{idx}.wav", tone(300 + 600 * digit, 0.3))
    (root / "README.txt").write_text("not a recording")
    return tmp_path


def test_fsdd_official_split_and_labels(tmp_path):
    tr, va, te = load_fsdd(_fsdd_folder(tmp_path), AudioEncoder(steps=40, bands=8),
                           cache_dir=tmp_path / "cache")
    assert (len(tr), len(va), len(te)) == (3, 3, 3)      # index 10+ / 5-9 / 0-4
    assert sorted(tr.labels) == [0, 1, 2] and tr.data.shape == (3, 40, 8)
    assert tr.n_inputs == 8 and tr.spikes(0, 40, "iaf").shape == (40, 8)
    with pytest.raises(DataError, match="samples have 40 steps"):
        tr.spikes(0, 41, "iaf")


def test_fsdd_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    folder, cache = _fsdd_folder(tmp_path), tmp_path / "cache"
    enc = AudioEncoder(steps=30, bands=8)
    first = encode_all(folder, enc, cache)
    assert len(list(cache.glob("fsdd-*.npz"))) == 1
    calls = []
    original = AudioEncoder.spikes

    def counting(self, w):
        calls.append(1)
        return original(self, w)

    monkeypatch.setattr(AudioEncoder, "spikes", counting)
    again = encode_all(folder, enc, cache)                   # from the cache: no encoding
    assert calls == [] and np.array_equal(first[0], again[0])
    encode_all(folder, AudioEncoder(steps=30, bands=8, gain=0.5), cache)   # new parameters
    assert len(calls) == 9 and len(list(cache.glob("fsdd-*.npz"))) == 2
    write_wav(folder / "recordings" / "2_alice_13.wav", tone(900, 0.2))     # new file
    encode_all(folder, enc, cache)
    assert len(calls) == 9 + 10


@pytest.mark.parametrize("kind,message", [("stereo", "not mono 16-bit"),
                                          ("16k", "sampled at 16000 Hz"),
                                          ("garbage", "not a readable WAV")])
def test_bad_wav_files_are_one_line(tmp_path, kind, message):
    root = tmp_path / "recordings"
    root.mkdir()
    bad = root / "1_bob_0.wav"
    if kind == "stereo":
        write_wav(bad, tone(400), channels=2)
    elif kind == "16k":
        write_wav(bad, tone(400, rate=16000), rate=16000)
    else:
        bad.write_bytes(b"RIFF....not audio")
    with pytest.raises(DataError, match=message):
        encode_all(tmp_path, AudioEncoder(steps=20, bands=4), tmp_path / "cache")


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_fsdd(tmp_path / "none", AudioEncoder())
    with pytest.raises(DataError, match="no files named"):
        load_fsdd(tmp_path, AudioEncoder())


def test_real_fsdd_reads_all_3000_recordings(tmp_path):
    folder = fsdd_dir()
    tr, va, te = load_fsdd(folder, AudioEncoder(steps=100, bands=16), cache_dir=tmp_path)
    assert (len(tr), len(va), len(te)) == (2400, 300, 300)
    assert list(np.bincount(te.labels)) == [30] * 10
    assert 0.01 < tr.data.mean() < 0.5
