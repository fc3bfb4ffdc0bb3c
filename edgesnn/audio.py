"""Audio to spikes, the way an edge front end does it: filter bank, envelope, spikes.

``AudioEncoder`` turns a mono waveform into spikes ``(T, C)`` (uint8 0/1):

1. **Filter bank**: a short-time Fourier transform (Hann window of
   ``frame_ms``, hop ``hop_ms``) and ``bands`` triangular mel filters between
   ``fmin`` and ``fmax`` (the HTK mel scale); the power in each band per hop.
   An analog front end (Xylo's, for example) uses band-pass filters and
   rectifiers instead: the envelope per band per step is the same quantity.
2. **Envelope**: ``log(1 + power / floor)``, divided by the sample's largest
   value (an automatic gain control), so each band lies in [0, 1].
3. **Spikes**, one of:

   * ``iaf``: an integrate-and-fire converter per band, ``acc += gain * env``;
     a spike and ``acc -= 1`` when ``acc >= 1`` (``C = bands`` channels);
   * ``delta``: delta modulation of the envelope with threshold ``delta``:
     an UP spike when it has risen by ``delta`` since the last spike, a DOWN
     spike when it has fallen by ``delta`` (``C = 2 * bands`` channels: the
     UP channels, then the DOWN channels).

Time: step ``t`` covers hop ``t``. With ``align = "end"`` (the default) a
recording shorter than ``T`` hops is preceded by silence, so the word ends at
the last step, where the learning window and the decision are (a keyword
spotter decides at the end of the utterance); a longer one keeps its last
``T`` hops. ``align = "start"`` pads after and cuts the end instead. FSDD
recordings are 0.14-2.3 s, median 0.42 s; T = 100 hops of 10 ms keep all but
20 of the 3,000 whole.

All numpy, vectorised over frames and bands.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from edgesnn.errors import DataError

SPIKE_METHODS = ("iaf", "delta")


@dataclass(frozen=True)
class AudioEncoder:
    """Front-end parameters; ``channels`` outputs per step, ``steps`` steps per sample."""

    sample_rate: int = 8000
    steps: int = 100
    bands: int = 16
    frame_ms: float = 32.0
    hop_ms: float = 10.0
    fmin: float = 100.0
    fmax: float = 4000.0
    floor: float = 1e-4
    method: str = "iaf"
    gain: float = 1.0
    delta: float = 0.1
    align: str = "end"

    def __post_init__(self):
        if self.align not in ("start", "end"):
            raise DataError(f"audio align must be start or end, got '{self.align}'")
        if self.method not in SPIKE_METHODS:
            raise DataError(f"unknown audio spike method '{self.method}'; methods: "
                            f"{', '.join(SPIKE_METHODS)}")
        if not 0 < self.fmin < self.fmax <= self.sample_rate / 2:
            raise DataError(f"audio band edges must satisfy 0 < fmin < fmax <= sample_rate/2, "
                            f"got {self.fmin}, {self.fmax} at {self.sample_rate} Hz")
        if self.bands < 1 or self.steps < 1:
            raise DataError("audio bands and steps must be >= 1")

    @property
    def channels(self) -> int:
        return self.bands * (2 if self.method == "delta" else 1)

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def frame(self) -> int:
        return int(round(self.sample_rate * self.frame_ms / 1000))

    def fingerprint(self) -> str:
        """Hash of the parameters (and the encoder version) for the on-disk cache."""
        blob = json.dumps({"v": 1, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # -- stages ---------------------------------------------------------------
    def envelope(self, wave: np.ndarray) -> np.ndarray:
        """Band envelopes ``(steps, bands)`` in [0, 1] of a mono waveform in [-1, 1]."""
        w = np.asarray(wave, dtype=np.float64).ravel()
        n_fft = 1 << int(np.ceil(np.log2(self.frame)))
        span = self.steps * self.hop                    # samples the T steps cover
        if self.align == "end":
            w = w[-span:]
            w = np.pad(w, (span - len(w) + self.frame // 2, self.frame))
        else:
            w = w[:span]
            w = np.pad(w, (self.frame // 2, span - len(w) + self.frame))
        starts = np.arange(self.steps) * self.hop
        frames = w[starts[:, None] + np.arange(self.frame)[None, :]] * np.hanning(self.frame)
        power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
        env = np.log1p(power @ mel_filters(self.bands, n_fft, self.sample_rate,
                                           self.fmin, self.fmax).T / self.floor)
        peak = env.max()
        return env / peak if peak > 0 else env

    def spikes(self, wave: np.ndarray) -> np.ndarray:
        """Spikes ``(steps, channels)`` uint8 of one waveform."""
        env = self.envelope(wave)
        if self.method == "iaf":
            return iaf_spikes(self.gain * env)
        return delta_spikes(env, self.delta)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filters(bands: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """``(bands, n_fft//2+1)`` triangular filters, centres equally spaced in mel."""
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lo) / (mid - lo)
    fall = (hi - freqs[None, :]) / (hi - mid)
    return np.clip(np.minimum(rise, fall), 0.0, None)


def iaf_spikes(drive: np.ndarray) -> np.ndarray:
    """Integrate-and-fire per channel: ``(T, C)`` drive in [0, 1] -> 0/1 spikes.

    ``acc`` starts at 0.5; the spike count up to step t is ``floor(0.5 +
    cumsum(drive))``, so a spike marks each step where it increases.
    """
    counts = np.floor(0.5 + np.cumsum(np.clip(drive, 0.0, 1.0), axis=0))
    prev = np.vstack([np.zeros((1, drive.shape[1])), counts[:-1]])
    return (counts > prev).astype(np.uint8)


def delta_spikes(env: np.ndarray, delta: float) -> np.ndarray:
    """Delta modulation: ``(T, C)`` -> ``(T, 2C)`` UP then DOWN spikes, at most one per step."""
    T, C = env.shape
    out = np.zeros((T, 2 * C), dtype=np.uint8)
    ref = env[0].copy()
    for t in range(1, T):          # a short loop over steps, vectorised over channels
        up = env[t] - ref >= delta
        down = ref - env[t] >= delta
        out[t, :C], out[t, C:] = up, down
        ref = np.where(up | down, env[t], ref)
    return out
