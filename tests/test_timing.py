"""The timing task (datasets/timing.py): shapes, equal counts, reproducible, solvable by delays."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.datasets import load_dataset
from edgesnn.datasets import timing
from edgesnn.errors import DataError
from edgesnn.params import init_params
from edgesnn.reference import FloatEngine
from edgesnn.spec import load_spec
from conftest import EXAMPLES


def test_shapes_and_labels():
    x, y = timing.generate(200, 5, 32)
    assert x.shape == (200, 32, timing.CHANNELS) and x.dtype == np.uint8
    assert y.shape == (200,) and set(y.tolist()) == set(range(timing.CLASSES))
    train, validation, test = load_dataset("timing", time_steps=32)
    assert (len(train), len(validation), len(test)) == (4000, 500, 1000)
    assert train.n_inputs == 8 and train.spikes(0, 32, "spikes").shape == (32, 8)


def test_every_channel_spikes_once_in_every_class_and_none_in_the_tail():
    x, y = timing.generate(400, 1, 30)
    assert np.all(x.sum(axis=1) == 1)                   # one spike per channel, every sample
    assert not x[:, 30 - timing.TAIL:].any()


def test_class_is_the_pair_at_its_key_lag():
    x, y = timing.generate(300, 2, 32)
    t = x.argmax(axis=1)                                # (N, 8) spike times
    lags = t[:, 1::2] - t[:, 0::2]                      # (N, 4) per pair
    err = np.abs(lags - np.array(timing.KEY_LAGS))
    assert np.all(err[np.arange(len(y)), y] <= timing.JITTER)
    others = np.ones_like(err, dtype=bool)
    others[np.arange(len(y)), y] = False
    assert np.all(err[others] > timing.MARGIN)


def test_reproducible_and_seeded():
    a, b = timing.generate(50, 9, 32), timing.generate(50, 9, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], timing.generate(50, 10, 32)[0])


def test_too_short_samples_are_refused():
    with pytest.raises(DataError, match="network.time_steps >= 28"):
        timing.generate(5, 0, 20)


def test_hand_set_delays_solve_it():
    spec = load_spec(EXAMPLES / "timing_delays.toml")
    p = init_params(spec, 0)
    p.W[0][...] = 0.0
    p.W_out[...] = 0.0
    for c in range(timing.CLASSES):
        p.W[0][c, 2 * c] = p.W[0][c, 2 * c + 1] = 0.7      # one input < threshold < two
        p.W_out[c, c] = 1.0
    p.d[0][...] = timing.ideal_delays()
    eng = FloatEngine(spec, p)
    x, y = timing.generate(100, 40, spec.time_steps)
    pred = [eng.run_sample(x[i], int(y[i]), learn=False).prediction for i in range(len(y))]
    assert np.mean(np.array(pred) == y) >= 0.95
