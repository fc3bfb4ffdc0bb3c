"""Yin-Yang generator and the spike encoders."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.datasets.yinyang import generate, load_split, which_class
from edgesnn.encoders import encode, latency_encode, rate_encode, regular_encode
from edgesnn.errors import DataError


def test_known_points_have_known_classes():
    assert which_class(0.75, 0.5) == 2      # centre of the right dot
    assert which_class(0.25, 0.5) == 2      # centre of the left dot
    assert which_class(0.5, 0.9) == 1       # top of the big circle: yin
    assert which_class(0.5, 0.1) == 0       # bottom: yang


def test_splits_are_standard_balanced_and_deterministic():
    tr = load_split("train")
    assert len(tr) == 5000 and len(load_split("test")) == 1000
    counts = np.bincount(tr.labels, minlength=3)
    assert counts.min() > 1500                     # balanced by construction (draw class first)
    f = tr.features
    assert np.allclose(f[:, 0] + f[:, 2], 1) and np.allclose(f[:, 1] + f[:, 3], 1)
    assert ((f[:, 0] - 0.5) ** 2 + (f[:, 1] - 0.5) ** 2 <= 0.25 + 1e-12).all()
    assert all(which_class(x, y) == c for (x, y, _, _), c in zip(f[:200], tr.labels[:200]))
    again = generate(5000, 42)
    assert np.array_equal(again.features, f)
    assert not np.array_equal(load_split("validation").features[:10], f[:10])


def test_a_shorter_split_is_the_first_points_of_the_split_and_read_only():
    short = load_split("train", 300)
    fresh = generate(300, 42)
    assert np.array_equal(short.features, fresh.features)
    assert np.array_equal(short.labels, fresh.labels)
    assert np.array_equal(load_split("test", 1200).features[:1000], load_split("test").features)
    with pytest.raises(ValueError, match="read-only"):
        short.features[0, 0] = 0.0          # the shared split cannot be changed by a caller


def test_regular_encoder_counts_are_value_times_T():
    v = np.array([0.0, 0.25, 0.5, 1.0, 0.3])
    s = regular_encode(v, 40)
    assert s.shape == (40, 5) and s.dtype == np.uint8
    assert list(s.sum(axis=0)) == [0, 10, 20, 40, 12]


def test_rate_encoder_depends_only_on_seed_and_index():
    v = np.full(4, 0.5)
    a, b = rate_encode(v, 200, 1, 7), rate_encode(v, 200, 1, 7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, rate_encode(v, 200, 1, 8))
    assert abs(a.mean() - 0.5) < 0.06


def test_latency_encoder_one_spike_early_for_large_values():
    s = latency_encode(np.array([1.0, 0.0, 0.5]), 11)
    assert list(s.sum(axis=0)) == [1, 1, 1]
    assert list(s.argmax(axis=0)) == [0, 10, 5]


@pytest.mark.parametrize("bad", [np.array([1.5]), np.array([-0.1]), np.array([np.nan])])
def test_encoders_refuse_values_outside_unit_range(bad):
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        encode(bad, 10, "regular", 0, 0)


def test_unknown_encoding_and_split():
    with pytest.raises(DataError, match="unknown encoding 'morse'"):
        encode(np.zeros(2), 5, "morse", 0, 0)
    with pytest.raises(DataError, match="unknown Yin-Yang split"):
        load_split("dev")
