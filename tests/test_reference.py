"""The float engine in device mode against the golden-verified S-TLLR maths."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.counters import INDEX
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


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_synops_are_counted_per_active_input_and_fanout(rate):
    """Synops = sum over steps of active inputs x fan-out, from the recorded spike rasters:
    each input spike reaches 9 hidden neurons; each hidden spike 4 readout neurons in its
    step and 9 recurrent synapses in the next, so those of the last step reach none."""
    spec = _small_shd()
    params = init_params(spec, seed=1)
    x = (np.random.default_rng(7).random((20, 12)) < rate).astype(np.uint8)
    x[0, :3] = 1                               # at least 3 input spikes at step 0
    r = FloatEngine(spec, params.copy()).run_sample(x, 0, learn=False)
    s = FloatEngine(spec, params.copy()).trace(x, 0)["L0.s"]     # (20, 9) hidden raster
    assert s.shape == (20, 9) and int(s.sum()) == r.spikes[0]
    if rate:
        assert s[-1].sum() > 0                 # last-step spikes (no recurrent synapse) occur
    per_step = x.sum(axis=1) * 9 + s.sum(axis=1) * 4 + np.concatenate([[0], s[:-1].sum(axis=1)]) * 9
    assert r.events[INDEX["synops"]] == int(per_step.sum())


@pytest.mark.parametrize("x,msg", [(np.zeros((20, 11)), "expects \\(time steps, 12 inputs\\)"),
                                   (np.zeros((19, 12)), "19 time steps"),
                                   (np.full((20, 12), np.nan), "NaN")])
def test_bad_samples_are_refused(x, msg):
    spec = _small_shd()
    with pytest.raises(DataError, match=msg):
        FloatEngine(spec, init_params(spec, 0)).run_sample(x, 0)


def test_paper_mode_first_adam_step_follows_the_golden_batch_gradient():
    """Two samples = one batch of 2: the first Adam step moves each raw weight by lr*sign(g),
    g the batch gradient through weight standardisation (run_net + standardize_vjp, both pinned
    by the golden vectors)."""
    from edgesnn.paper import PaperEngine
    from edgesnn.rules.stllr import standardize, standardize_vjp

    spec = _small_shd()
    params = init_params(spec, seed=4)
    eng = PaperEngine(spec, params, batch=2)
    raw0, gain0 = eng.raw[0].copy(), eng.gain[0].copy()
    rec0, gain_rec0 = eng.raw_rec[0].copy(), eng.gain_rec[0].copy()
    W_out0, b_out0 = eng.params.W_out.copy(), eng.params.b_out.copy()
    rng = np.random.default_rng(2)
    xs = (rng.random((2, 20, 12)) < 0.3).astype(np.uint8)
    labels = np.array([1, 3])
    for x, y in zip(xs, labels):
        eng.run_sample(x, int(y))
    L, ln, ro = spec.layers[0], spec.learning, spec.readout
    f = Factors(ln.lambda_post, ln.lambda_pre, ln.alpha_post, ln.alpha_pre)
    hidden = DenseParams(W=standardize(raw0, gain0), b=np.zeros(9), factors=f,
                         W_rec=standardize(rec0, gain_rec0),
                         lif=LIFParams(L.beta, L.threshold, L.reset, psi_rational))
    net = NetParams(hidden, ReadoutLayerParams(W_out0, b_out0, ro.beta, ro.trace_decay), "BP", None)
    res = run_net(np.transpose(xs, (1, 0, 2)).astype(float), labels, np.arange(20) >= 12, net)
    g_raw, _ = standardize_vjp(raw0, gain0, res.hidden_grads.dW)
    lr = ln.learning_rate
    for before, after, g in ((raw0, eng.raw[0], g_raw), (W_out0, eng.params.W_out,
                                                          res.readout_grads.dW)):
        # Adam's first step: m = (1-b1) g, v = (1-b2) g^2, bias-corrected -> g / (|g| + eps)
        assert np.abs(g).max() > 1e-3
        assert np.allclose(before - after, lr * g / (np.abs(g) + 1e-8), rtol=1e-6, atol=1e-12)
    # the effective weights used next are the standardisation of the new raw weights
    assert np.allclose(eng.params.W[0], standardize(eng.raw[0], eng.gain[0]))


def test_frozen_hidden_learns_the_readout_exactly_as_the_full_rule_does():
    """Per-sample updates: within one sample the hidden weights do not change under either
    setting, so the readout's update is the same; only the full rule moves the hidden layer."""
    over = ["layers.0.size=16", "network.time_steps=20", "learning.window=8",
            "learning.update=per-sample"]
    x = (np.random.default_rng(2).random((20, 4)) < 0.4).astype(np.uint8)
    engines = {}
    for hidden in ("learn", "frozen"):
        spec = load_spec(EXAMPLES / "yinyang.toml", [*over, f"learning.hidden={hidden}"])
        engines[hidden] = FloatEngine(spec, init_params(spec, 0))
    start = init_params(engines["learn"].spec, 0)
    for eng in engines.values():
        eng.run_sample(x, 1)
    learned, frozen = engines["learn"].params, engines["frozen"].params
    np.testing.assert_array_equal(frozen.W_out, learned.W_out)
    np.testing.assert_array_equal(frozen.b_out, learned.b_out)
    assert not np.array_equal(frozen.W_out, start.W_out)
    np.testing.assert_array_equal(frozen.W[0], start.W[0])
    np.testing.assert_array_equal(frozen.b[0], start.b[0])
    assert not np.array_equal(learned.W[0], start.W[0])
