"""Online loop: deterministic stream, checkpoint and bit-identical resume."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.errors import CheckpointError
from edgesnn.hw import load_device
from edgesnn.simulate import SimulateOptions, prepare
from edgesnn.spec import load_spec
from edgesnn.train import TrainConfig
from conftest import EXAMPLES

SMALL = ["layers.0.size=16", "network.time_steps=12", "learning.window=6"]


def _trainer(samples, seed=0, ckpt=None, every=0, resume=None, overrides=SMALL):
    spec = load_spec(EXAMPLES / "yinyang.toml", overrides)
    cfg = TrainConfig(samples=samples, eval_every=20, eval_samples=15, seed=seed,
                      checkpoint_every=every, checkpoint_path=ckpt)
    return prepare(spec, load_device("cortex-m7"), SimulateOptions(config=cfg, resume=resume))


def test_stream_is_a_function_of_seed_and_position():
    a, b = _trainer(10).stream, _trainer(10).stream
    assert [a.index(k) for k in range(5010, 5020)] == [b.index(k) for k in range(5010, 5020)]
    # each epoch is a permutation of the whole split
    assert sorted(a.index(k) for k in range(5000)) == list(range(5000))
    assert [a.index(k) for k in range(5)] != [a.index(k) for k in range(5000, 5005)]
    assert [a.index(k) for k in range(5)] != [_trainer(10, seed=1).stream.index(k)
                                              for k in range(5)]


def test_resumed_run_ends_bit_identical(tmp_path):
    ckpt = str(tmp_path / "c.npz")
    whole = _trainer(60)
    whole.run()
    # run only the first half, as an interrupted run would
    first = _trainer(30, ckpt=ckpt, every=30)
    first.run()
    assert first.k == 30
    resumed = _trainer(60, resume=ckpt)
    assert resumed.k == 30
    # the checkpoint holds the first half's state: the resumed run starts from it
    for name, arr in first.engines["float"].state().items():
        assert np.array_equal(arr, resumed.engines["float"].state()[name]), name
    resumed.run()
    for name, arr in whole.engines["float"].state().items():
        assert np.array_equal(arr, resumed.engines["float"].state()[name]), name
    assert whole.history.accuracy == resumed.history.accuracy
    assert whole.history.samples == resumed.history.samples
    assert np.array_equal(whole.totals.counters["float"].events, resumed.totals.counters["float"].events)


def test_checkpoint_for_another_seed_or_spec_is_refused(tmp_path):
    ckpt = str(tmp_path / "c.npz")
    t = _trainer(20, ckpt=ckpt, every=20)
    t.run()
    with pytest.raises(CheckpointError, match="seed, encoding or evaluation"):
        _trainer(40, seed=5, resume=ckpt)
    with pytest.raises(CheckpointError, match="network spec"):
        _trainer(40, resume=ckpt, overrides=SMALL + ["layers.0.size=17"])


def test_damaged_or_missing_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="bad.npz: damaged or truncated checkpoint"):
        _trainer(20, resume=str(bad))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        _trainer(20, resume=str(tmp_path / "none.npz"))


def test_checkpoint_from_before_a_counter_existed_is_refused(tmp_path):
    """Totals without the newer counters cannot be continued (they would be undercounted)."""
    ckpt = tmp_path / "c.npz"
    _trainer(20, ckpt=str(ckpt), every=20).run()
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["totals/float/events"] = arrays["totals/float/events"][:9]     # before multiplies
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    with pytest.raises(CheckpointError, match="before the counters multiplies, membrane_mul"):
        _trainer(40, resume=str(old))
