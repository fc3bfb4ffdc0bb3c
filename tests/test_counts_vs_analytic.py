"""Counted events of both engines against the analytic formulas of `edgesnn profile`.

At the spike rates measured on a sample, the analytic forward counts
(`analytic.forward_ops`, the figures `profile` reports) equal what the
engines count: synaptic operations are T x rate x fan-in x fan-out summed
over layers, neuron and trace updates one per element per step (this
network is feed-forward; in a recurrent layer the spikes of a sample's last
step reach no recurrent synapse within the sample, so the count is lower by
exactly those). The leak and trace-decay multiplies are one per element per
step too, so they are equal as well (the fixed engine's under its device's
decay mode, the float engine's as multiplies). Learning
counts differ by design: the analytic ones are dense upper bounds, the fixed
engine skips rows whose factors are zero, so its counts are at most those;
the float engine counts densely, so its counts equal them.
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

from edgesnn.counters import INDEX, update_multiplies

#: the devices: a shift leak and a multiplying one
DEVICES = ("cortex-m7", "spinnaker2-pe")


@pytest.fixture(scope="module")
def spec():
    return load_spec(EXAMPLES / "yinyang.toml", ["layers.0.size=24", "network.time_steps=20",
                                                 "learning.window=8"])


def _engine(kind, spec, device="cortex-m7"):
    params = init_params(spec, 0)
    if kind == "float":
        return FloatEngine(spec, params)
    return FixedEngine(make_plan(spec, load_device(device)), params, 0)


def _events(r) -> dict[str, int]:
    return {k: int(r.events[i]) for k, i in INDEX.items()}


def _decay(kind: str, device: str) -> str:
    """The decay mode an engine's counts follow: the device's, or float multiplies."""
    return load_device(device).decay if kind == "fixed" else "multiply"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["fixed", "float"])
def test_counted_forward_work_equals_the_formulas_at_measured_rates(spec, kind, device):
    eng = _engine(kind, spec, device)
    x = (np.random.default_rng(3).random((20, 4)) < 0.4).astype(np.uint8)
    r = eng.run_sample(x, 1, learn=True)
    T, n = spec.time_steps, spec.layers[0].size
    input_rate = x.sum() / (T * spec.inputs)
    hidden_rate = r.spikes[0] / (T * n)
    counted = _events(r)
    formula = analytic.stllr_ops(spec, input_rate, hidden_rate, _decay(kind, device))
    assert counted["synops"] == pytest.approx(formula.synops, rel=1e-12)
    assert counted["neuron_updates"] == formula.neuron_updates
    assert counted["trace_updates"] == formula.trace_updates
    assert counted["membrane_multiplies"] == formula.membrane_multiplies
    assert counted["trace_multiplies"] == formula.trace_multiplies
    # yinyang: beta 0.9, lambda_pre 0.9, readout trace 0.9 multiply; lambda_post 0.5 shifts
    multiplies = _decay(kind, device) == "multiply"
    assert formula.membrane_multiplies == multiplies * T * (n + 3)
    assert formula.trace_multiplies == multiplies * T * (4 + n)


@pytest.mark.parametrize("device", DEVICES)
def test_inference_multiplies_are_the_forward_formula(spec, device):
    """Without learning: the leaks of forward_ops plus the trace decays of the sample."""
    x = (np.random.default_rng(6).random((20, 4)) < 0.4).astype(np.uint8)
    for kind in ("fixed", "float"):
        ev = _events(_engine(kind, spec, device).run_sample(x, 0, learn=False))
        fwd = analytic.forward_ops(spec, 0.0, 0.0, _decay(kind, device))
        dense = analytic.stllr_ops(spec, 0.0, 0.0, _decay(kind, device))
        assert ev["membrane_multiplies"] == fwd.membrane_multiplies == fwd.multiplies
        assert ev["multiplies"] == fwd.multiplies + dense.trace_multiplies


@pytest.mark.parametrize("update,residual,device", [("per-step", "clear", "cortex-m7"),
                                                    ("per-sample", "clear", "spinnaker2-pe"),
                                                    ("per-sample", "carry", "cortex-m7")])
def test_fixed_learning_work_is_at_most_the_dense_formula(spec, update, residual, device):
    spec = replace(spec, learning=replace(spec.learning, update=update, residual=residual))
    eng = _engine("fixed", spec, device)
    dense = analytic.stllr_ops(spec, 0.0, 0.0, load_device(device).decay)
    rng = np.random.default_rng(4)
    for k in range(5):
        x = (rng.random((20, 4)) < 0.4).astype(np.uint8)
        ev = _events(eng.run_sample(x, k % 3))
        assert 0 <= ev["eligibility_macs"] <= dense.eligibility_macs
        assert 0 <= ev["signal_macs"] <= dense.signal_macs
        assert 0 <= ev["weight_writes"] <= dense.weight_writes
        assert 0 < ev["signal_multiplies"] <= dense.signal_multiplies
        assert 0 < update_multiplies(ev) <= dense.update_multiplies
        assert ev["trace_multiplies"] == dense.trace_multiplies
        assert ev["multiplies"] <= dense.multiplies


@pytest.mark.parametrize("overrides", [[], ["learning.signal=dfa"],
                                       ["learning.signal=dfa", "learning.feedback=stored"],
                                       ["learning.alpha_post=0.8", "learning.alpha_pre=0.5"]])
def test_float_learning_counts_are_the_dense_formula(spec, overrides):
    if overrides:
        spec = load_spec(EXAMPLES / "yinyang.toml", ["layers.0.size=24", "network.time_steps=20",
                                                     "learning.window=8", *overrides])
    eng = _engine("float", spec)
    x = (np.random.default_rng(5).random((20, 4)) < 0.4).astype(np.uint8)
    ev = _events(eng.run_sample(x, 2))
    dense = analytic.stllr_ops(spec, 0.0, 0.0)
    for name in ("eligibility_macs", "signal_macs", "weight_writes", "multiplies",
                 "membrane_multiplies", "trace_multiplies", "signal_multiplies"):
        assert ev[name] == getattr(dense, name), name
    # yinyang, 24 hidden, 3 classes, window 8: c*q 24*4 + g*h, g*psi 2*24 (+ 24 for
    # alpha_post 0.8; alpha_pre 0.5 shifts) + e*q 3*24; BP e W_out 3*24, DFA stored 3*24,
    # DFA regenerated (+-1/4 on 24 neurons: 2**-round(log2 sqrt 24)) 0
    alpha = 24 if "learning.alpha_post=0.8" in overrides else 0
    assert update_multiplies(ev) == 8 * (24 * 4 + 48 + alpha + 72)
    regenerated = overrides == ["learning.signal=dfa"]
    assert ev["signal_multiplies"] == (0 if regenerated else 8 * 72)


def test_two_hidden_layers_with_recurrence():
    """BP below the top layer (``(g*psi) W`` products), a recurrent trace and recurrent
    rows, alphas that multiply, on a multiplying device. Leaks per step: L0 8, readout 3
    (L1's beta 0.5 is a shift). Traces per step: L0 q 4, q_rec 8, h 8; L1 q 8, h 6;
    readout q 6 (every decay multiplies: 0.9, 0.6)."""
    from edgesnn.spec import parse_spec

    spec = parse_spec({
        "network": {"name": "deep", "inputs": 4, "time_steps": 12},
        "layers": [{"kind": "recurrent", "size": 8, "beta": 0.9, "threshold": 0.4},
                   {"kind": "dense", "size": 6, "beta": 0.5, "threshold": 0.4},
                   {"kind": "readout", "size": 3, "beta": 0.9, "trace_decay": 0.9}],
        "learning": {"window": 5, "lambda_pre": 0.9, "lambda_post": 0.6, "alpha_post": 0.7,
                     "alpha_pre": 1.0, "learning_rate": 2.0 ** -6, "surrogate": "triangle",
                     "init_scale": 3.0}})
    dense = analytic.stllr_ops(spec, 0.0, 0.0)
    # per window step: signal e W_out 3*6 + gp W 6*8; factors (2 + alpha_post) per neuron;
    # c*q 8*(4+8) + 6*8; readout e*q 3*6
    assert dense.signal_multiplies == 5 * (18 + 48)
    assert dense.update_multiplies == 5 * (3 * 14 + 96 + 48 + 18)
    rng = np.random.default_rng(8)
    x = (rng.random((12, 4)) < 0.5).astype(np.uint8)
    fixed = FixedEngine(make_plan(spec, load_device("spinnaker2-pe")), init_params(spec, 0), 0)
    ev = _events(fixed.run_sample(x, 1))
    assert ev["signal_multiplies"] == ev["signal_macs"] > 0      # BP: every signal MAC multiplies
    assert ev["membrane_multiplies"] == dense.membrane_multiplies == 12 * (8 + 3)
    assert ev["trace_multiplies"] == dense.trace_multiplies == 12 * (4 + 8 + 8 + 8 + 6 + 6)
    assert 0 < update_multiplies(ev) <= dense.update_multiplies
    fl = _events(FloatEngine(spec, init_params(spec, 0)).run_sample(x, 1))
    for name in ("multiplies", "membrane_multiplies", "trace_multiplies", "signal_multiplies"):
        assert fl[name] == getattr(dense, name), name
