"""The float engine in device mode against the golden-verified S-TLLR maths."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.errors import DataError
from edgesnn.neurons.lif import LIFParams, psi_rational
from edgesnn.reference import FloatEngine, dfa_matrix, init_params
from edgesnn.rules.stllr import DenseParams, Factors, ReadoutLayerParams
from edgesnn.signals import NetParams, run_net
from edgesnn.spec import load_spec
from conftest import EXAMPLES


def _small_shd(signal="bp", update="per-sample"):
    over = ["network.inputs=12", "network.time_steps=20", "layers.0.size=9", "layers.1.size=4",
            "learning.window=8", f"learning.signal={signal}", f"learning.update={update}"]
    return load_spec(EXAMPLES / "shd.toml", over)


@pytest.mark.parametrize("signal", ["bp", "dfa"])
def test_per_sample_update_is_lr_times_the_golden_net_gradient(signal):
    """One sample in device mode moves W by -lr * (the window-summed S-TLLR update of run_net),
    the function the golden vectors pin down to 1e-10."""
    spec = _small_shd(signal)
    params = init_params(spec, seed=3)
    before = params.copy()
    eng = FloatEngine(spec, params)
    rng = np.random.default_rng(0)
    x = (rng.random((20, 12)) < 0.3).astype(np.uint8)
    eng.run_sample(x, label=2)
    L = spec.layers[0]
    ln = spec.learning
    f = Factors(ln.lambda_post, ln.lambda_pre, ln.alpha_post, ln.alpha_pre)
    hidden = DenseParams(W=before.W[0], b=before.b[0], W_rec=before.W_rec[0], factors=f,
                         lif=LIFParams(L.beta, L.threshold, L.reset, psi_rational))
    ro = spec.readout
    readout = ReadoutLayerParams(before.W_out, before.b_out, ro.beta, ro.trace_decay)
    mask = np.arange(20) >= 20 - 8
    net = NetParams(hidden, readout, signal.upper(), None if signal == "bp" else before.B_fb[0])
    res = run_net(x[:, None, :].astype(float), np.array([2]), mask, net)
    lr = 2.0 ** -ln.learning_rate_shift
    assert np.allclose(before.W[0] - params.W[0], lr * res.hidden_grads.dW, atol=1e-12)
    assert np.allclose(before.W_rec[0] - params.W_rec[0], lr * res.hidden_grads.dW_rec, atol=1e-12)
    assert np.allclose(before.W_out - params.W_out, lr * res.readout_grads.dW, atol=1e-12)
    assert np.allclose(before.b_out - params.b_out, lr * res.readout_grads.db, atol=1e-12)


def test_learning_one_sample_lowers_its_loss():
    spec = _small_shd(update="per-step")
    eng = FloatEngine(spec, init_params(spec, seed=1))
    x = (np.random.default_rng(5).random((20, 12)) < 0.4).astype(np.uint8)
    first = eng.run_sample(x, 1, learn=False).loss
    for _ in range(30):
        eng.run_sample(x, 1)
    assert eng.run_sample(x, 1, learn=False).loss < first


def test_evaluation_does_not_change_weights():
    spec = _small_shd()
    eng = FloatEngine(spec, init_params(spec, seed=1))
    w = eng.params.W[0].copy()
    eng.run_sample(np.ones((20, 12)), 0, learn=False)
    assert np.array_equal(w, eng.params.W[0])


def test_dfa_matrix_is_signs_times_a_power_of_two_and_seeded():
    B = dfa_matrix(7, 0, 4, 16)
    assert set(np.unique(B)) == {-0.25, 0.25}
    assert np.array_equal(B, dfa_matrix(7, 0, 4, 16))
    assert not np.array_equal(B, dfa_matrix(7, 1, 4, 16))


def test_synops_are_counted_per_active_input_and_fanout():
    spec = _small_shd()
    eng = FloatEngine(spec, init_params(spec, seed=1))
    x = np.zeros((20, 12), dtype=np.uint8)
    x[0, :3] = 1                               # 3 input spikes, fan-out 9
    r = eng.run_sample(x, 0, learn=False)
    hidden_spikes = r.spikes[0]
    # inputs 3*9, each hidden spike reaches 9 recurrent synapses (next step) and 4 readout ones
    recurrent_counted = r.events[0] - 27 - 4 * hidden_spikes
    assert 0 <= recurrent_counted <= 9 * hidden_spikes


@pytest.mark.parametrize("x,msg", [(np.zeros((20, 11)), "expects \\(time steps, 12 inputs\\)"),
                                   (np.zeros((19, 12)), "19 time steps"),
                                   (np.full((20, 12), np.nan), "NaN")])
def test_bad_samples_are_refused(x, msg):
    spec = _small_shd()
    with pytest.raises(DataError, match=msg):
        FloatEngine(spec, init_params(spec, 0)).run_sample(x, 0)
