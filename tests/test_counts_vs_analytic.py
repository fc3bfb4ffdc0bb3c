"""Counted events of both engines against the analytic formulas of `edgesnn profile`.

At the spike rates measured on a sample, the analytic forward counts
(`analytic.forward_ops`, the figures `profile` reports) equal what the
engines count: synaptic operations are T x rate x fan-in x fan-out summed
over layers, neuron and trace updates one per element per step (this
network is feed-forward; in a recurrent layer the spikes of a sample's last
step reach no recurrent synapse within the sample, so the count is lower by
exactly those). Learning
counts differ by design: the analytic ones are dense upper bounds, the fixed
engine skips rows whose factors are zero, so its counts are at most those.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgesnn import analytic
from edgesnn.core import FixedEngine
from edgesnn.hw import load_device
from edgesnn.plan import make_plan
from edgesnn.reference import FloatEngine, init_params
from edgesnn.spec import load_spec
from conftest import EXAMPLES

NAMES = ("synops", "neuron_updates", "trace_updates", "eligibility_macs", "signal_macs",
         "weight_writes")


@pytest.fixture(scope="module")
def spec():
    return load_spec(EXAMPLES / "yinyang.toml", ["layers.0.size=24", "network.time_steps=20",
                                                 "learning.window=8"])


def _engine(kind, spec):
    params = init_params(spec, 0)
    if kind == "float":
        return FloatEngine(spec, params)
    return FixedEngine(make_plan(spec, load_device("cortex-m7")), params, 0)


@pytest.mark.parametrize("kind", ["fixed", "float"])
def test_counted_forward_work_equals_the_formulas_at_measured_rates(spec, kind):
    eng = _engine(kind, spec)
    x = (np.random.default_rng(3).random((20, 4)) < 0.4).astype(np.uint8)
    r = eng.run_sample(x, 1, learn=True)
    T, n = spec.time_steps, spec.layers[0].size
    input_rate = x.sum() / (T * spec.inputs)
    hidden_rate = r.spikes[0] / (T * n)
    counted = dict(zip(("synops", "neuron_updates", "trace_updates"), r.events[:3]))
    formula = analytic.stllr_ops(spec, input_rate, hidden_rate)
    assert counted["synops"] == pytest.approx(formula.synops, rel=1e-12)
    assert counted["neuron_updates"] == formula.neuron_updates
    assert counted["trace_updates"] == formula.trace_updates


@pytest.mark.parametrize("update,residual", [("per-step", "clear"), ("per-sample", "clear"),
                                             ("per-sample", "carry")])
def test_fixed_learning_work_is_at_most_the_dense_formula(spec, update, residual):
    spec = replace(spec, learning=replace(spec.learning, update=update, residual=residual))
    eng = _engine("fixed", spec)
    dense = analytic.stllr_ops(spec, 0.0, 0.0)
    rng = np.random.default_rng(4)
    for k in range(5):
        x = (rng.random((20, 4)) < 0.4).astype(np.uint8)
        ev = dict(zip(("synops", "neuron_updates", "trace_updates", "eligibility_macs",
                       "signal_macs", "weight_writes"), eng.run_sample(x, k % 3).events[:6]))
        assert 0 <= ev["eligibility_macs"] <= dense.eligibility_macs
        assert 0 <= ev["signal_macs"] <= dense.signal_macs
        assert 0 <= ev["weight_writes"] <= dense.weight_writes


def test_float_learning_counts_are_the_dense_formula(spec):
    eng = _engine("float", spec)
    x = (np.random.default_rng(5).random((20, 4)) < 0.4).astype(np.uint8)
    ev = eng.run_sample(x, 2).events
    dense = analytic.stllr_ops(spec, 0.0, 0.0)
    assert ev[3] == dense.eligibility_macs and ev[4] == dense.signal_macs
    assert ev[5] == dense.weight_writes
