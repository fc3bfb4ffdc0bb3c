"""Learned delays (rules/delays.py, docs/delays.md): the gradient against finite
differences, rounding and clipping, initial values, masks, refusals, checkpoints, spec keys."""

from __future__ import annotations

import copy
import tomllib

import numpy as np
import pytest

from edgesnn.cli import main
from edgesnn.errors import SpecError
from edgesnn.hw import load_device
from edgesnn.neurons.lif import LIFParams
from edgesnn.params import connectivity_mask, init_params
from edgesnn.plan import make_plan
from edgesnn.reference import FloatEngine
from edgesnn.rules import delays as DL
from edgesnn.rules.stllr import Factors
from edgesnn.spec import load_spec, parse_spec
from edgesnn.train import spec_identity
from conftest import EXAMPLES

TIMING = EXAMPLES / "timing_delays.toml"
FACTORS = Factors(0.5, 0.5, 1.0, 1.0)


def _spec(**layer):
    """The timing example with ``layer`` keys of its spiking layer replaced (None: removed)."""
    data = tomllib.loads(TIMING.read_text())
    for k, v in layer.items():
        if v is None:
            data["layers"][0].pop(k, None)
        else:
            data["layers"][0][k] = v
    return parse_spec(data, "t.toml")


def _params(mode, W, d, beta=0.8, max_delay=6, sigma=0.7):
    lif = LIFParams(beta=beta, theta=1.0)
    return DL.DelayParams(W=W, b=np.zeros(W.shape[0]), lif=lif, factors=FACTORS, W_rec=None,
                          mode=mode, d=d, max_delay=max_delay, sigma=sigma)


# --------------------------------------------------------------- the gradient, checked

def _smooth_model(mode, d, x, W, c, beta, sigma, max_delay, variant="right"):
    """A model where the eligibility form is exact: a leaky integrator without reset on the
    smoothed input, ``v[t] = beta v[t-1] + sum_j W_oj xs_oj[t; d]``, loss
    ``L = sum_t c[t] . softplus(v[t])``. Returns ``(L, dL/dd)``; the gradient comes from
    the engine's own ``delay_forward`` (eligibility) and ``delay_grads`` (``g psi W eps``)."""
    p = _params(mode, W, d, beta, max_delay, sigma)
    st = DL.delay_init(W.shape[1], W.shape[0], p)
    hist = np.zeros_like(st.hist)
    v = np.zeros(W.shape[0])
    L, grad = 0.0, np.zeros_like(d)
    for t in range(x.shape[0]):
        step, st = DL.delay_forward(x[t][None], st, p)
        hist = DL.push(hist, x[t])
        xs = DL.smoothed(hist, d, sigma, max_delay)
        v = beta * v + (W @ xs if mode == "axonal" else (W * xs).sum(axis=1))
        L += float(c[t] @ np.logaddexp(0.0, v))
        psi = 1.0 / (1.0 + np.exp(-v))                      # softplus' = the surrogate here
        if variant == "no psi":
            psi = np.ones_like(psi)
        step = step._replace(psi=psi[None])
        dd = DL.delay_grads(c[t][None], step, p).dd
        grad += -dd if variant == "sign" else dd
    return L, grad


@pytest.mark.parametrize("mode", ["axonal", "synaptic"])
def test_delay_gradient_matches_finite_differences(mode):
    rng = np.random.default_rng(3)
    T, n_in, n_out, beta, sigma, max_delay = 24, 5, 3, 0.8, 0.7, 6
    x = (rng.random((T, n_in)) < 0.3).astype(float)
    W = rng.normal(0, 1, (n_out, n_in))
    c = rng.normal(0, 1, (T, n_out))
    shape = (n_in,) if mode == "axonal" else (n_out, n_in)
    # real delays kept 0.1 from the half-integers, where the integer delay (and so the
    # set of taps) would change under the finite-difference step
    d = np.floor(rng.uniform(0, max_delay, shape)) + rng.uniform(0.6, 1.4, shape) - 0.5
    d = np.clip(d, 0.1, max_delay - 0.1)
    _, grad = _smooth_model(mode, d, x, W, c, beta, sigma, max_delay)

    def fd():
        h, out = 1e-5, np.zeros_like(d)
        for idx in np.ndindex(d.shape):
            up, dn = d.copy(), d.copy()
            up[idx] += h
            dn[idx] -= h
            out[idx] = (_smooth_model(mode, up, x, W, c, beta, sigma, max_delay)[0]
                        - _smooth_model(mode, dn, x, W, c, beta, sigma, max_delay)[0]) / (2 * h)
        return out

    numeric = fd()
    rel = np.linalg.norm(grad - numeric) / np.linalg.norm(numeric)
    assert rel < 1e-4, rel
    # the check has teeth: a flipped sign or a missing surrogate fails it
    for variant in ("sign", "no psi"):
        wrong = _smooth_model(mode, d, x, W, c, beta, sigma, max_delay, variant)[1]
        assert np.linalg.norm(wrong - numeric) / np.linalg.norm(numeric) > 1e-2, variant


def test_smoothed_input_is_the_gaussian_around_the_delay():
    hist = np.zeros((10, 1))
    hist[4, 0] = 1.0                      # one spike 4 steps ago
    for d in (3.2, 4.0, 4.4):
        got = DL.smoothed(hist, np.array([d]), 1.0, 6)[0]
        assert got == pytest.approx(DL.gaussian(np.array(4 - d), 1.0))
    # the slope pulls the delay towards the spike: positive below it, negative above
    assert DL.smoothed(hist, np.array([3.6]), 1.0, 6, slope=True)[0] > 0
    assert DL.smoothed(hist, np.array([4.4]), 1.0, 6, slope=True)[0] < 0
    # taps below lag 0 (spikes not yet arrived) are cut: delay 0 sees only the past
    hist0 = np.zeros((10, 1))
    assert DL.smoothed(hist0, np.array([0.0]), 1.0, 6)[0] == 0.0
    assert DL.history_steps(6, 1.0) == 6 + 3 + 1


# --------------------------------------------------------------- integer delays

def test_integer_delays_round_half_up_and_clip():
    d = np.array([-0.3, 0.0, 0.49, 0.5, 1.49, 1.5, 5.9, 6.0, 7.2])
    assert DL.integer_delays(d, 6).tolist() == [0, 0, 0, 1, 1, 2, 6, 6, 6]


def _arrivals(mode, d, max_delay=6, T=14, t0=2):
    """Steps at which one input spike at ``t0`` reaches the layer, per synapse."""
    W = np.ones((2, 1))
    p = _params(mode, W, np.array(d, dtype=float), max_delay=max_delay)
    st = DL.delay_init(1, 2, p)
    seen = []
    for t in range(T):
        x = np.array([[1.0 if t == t0 else 0.0]])
        step, st = DL.delay_forward(x, st, p)
        seen.append(step.x.reshape(-1).copy())
    return [np.flatnonzero(col).tolist() for col in np.array(seen).T]


@pytest.mark.parametrize("d,arrival", [(0.0, 2), (1.4, 3), (1.6, 4), (6.0, 8)])
def test_axonal_spike_arrives_after_its_integer_delay(d, arrival):
    assert _arrivals("axonal", [d]) == [[arrival]]


def test_synaptic_delays_are_per_synapse_and_cross_an_integer():
    # one input, two neurons: delays 1.49 and 1.51 arrive a step apart; 0 and max_delay
    assert _arrivals("synaptic", [[1.49], [1.51]]) == [[3], [4]]
    assert _arrivals("synaptic", [[0.0], [6.0]]) == [[2], [8]]


def test_learned_delays_stay_in_range():
    d = np.array([0.2, 3.0, 5.8])
    DL.apply_delays(d, np.array([100.0, 0.0, -100.0]), 1, 6)
    assert d.tolist() == [0.0, 3.0, 6.0]


def test_a_delay_learns_across_an_integer_in_the_engine():
    spec = _spec(delay_init=[1.499] * 8, delay_lr=1.0, sigma=1.0)
    eng = FloatEngine(spec, init_params(spec, 0))
    x = np.zeros((spec.time_steps, 8))
    x[3, :] = 1.0
    for _ in range(3):
        eng.run_sample(x, 1)
    D = DL.integer_delays(eng.params.d[0], spec.layers[0].max_delay)
    assert 2 in D and 1 in D       # some delays moved up across 1.5, others down
    # the crossing delays now deliver their spike a step later
    p = eng._layer_params()[0]
    step, st = DL.delay_forward(x[0][None], DL.delay_init(8, 16, p), p)
    for t in range(1, 6):
        step, st = DL.delay_forward(x[t][None], st, p)
        if t == 5:
            assert np.array_equal(step.x[0] == 1, D == 2)


# --------------------------------------------------------------- initial values, masks

def test_delay_init_zero_uniform_and_values():
    assert np.all(init_params(_spec(delay_init="zero"), 0).d[0] == 0)
    u = init_params(_spec(delay_init="uniform"), 0).d[0]
    assert u.shape == (8,) and u.min() >= 0 and u.max() <= 12 and len(set(u)) == 8
    assert np.array_equal(u, init_params(_spec(delay_init="uniform"), 0).d[0])
    assert not np.array_equal(u, init_params(_spec(delay_init="uniform"), 1).d[0])
    vals = [float(i) for i in range(8)]
    assert init_params(_spec(delay_init=vals), 0).d[0].tolist() == vals
    syn = _spec(delays="synaptic", delay_init=[[1.0] * 8] * 16)
    assert init_params(syn, 0).d[0].shape == (16, 8)


def test_delays_do_not_disturb_the_other_random_streams():
    plain = init_params(_spec(delays=None, max_delay=None, delay_init=None, sigma=None,
                              delay_lr=None), 0)
    delayed = init_params(_spec(delay_init="uniform"), 0)
    assert plain.d is None and plain.M is None
    for a, b in zip(plain.arrays().values(), delayed.arrays().values()):
        assert np.array_equal(a, b)


def test_mask_keeps_a_fixed_count_per_neuron_reproducibly():
    spec = _spec(connectivity=0.4)
    k = spec.kept_inputs(0)
    M = connectivity_mask(spec, 0, 7)
    assert k == 3 and M.shape == (16, 8) and np.all(M.sum(axis=1) == k)
    assert np.array_equal(M, connectivity_mask(spec, 0, 7))
    assert not np.array_equal(M, connectivity_mask(spec, 0, 8))
    p = init_params(spec, 7)
    assert np.array_equal(p.M[0], M) and np.all(p.W[0][M == 0] == 0)
    dense = init_params(_spec(), 7)
    assert np.array_equal(p.W_out, dense.W_out) and np.array_equal(p.d[0], dense.d[0])
    # learning keeps masked weights at zero
    eng = FloatEngine(spec, p)
    x = (np.random.default_rng(0).random((spec.time_steps, 8)) < 0.2).astype(float)
    eng.run_sample(x, 2)
    assert np.all(eng.params.W[0][M == 0] == 0)


# --------------------------------------------------------------- engines that refuse

def test_paper_engine_refuses_delays_and_masks_in_one_line():
    from edgesnn.paper import PaperEngine

    with pytest.raises(SpecError, match="not yet in the paper engine"):
        spec = _spec()
        PaperEngine(spec, init_params(spec, 0))
    sparse = _spec(delays=None, max_delay=None, delay_init=None, sigma=None, delay_lr=None,
                   connectivity=0.5)
    with pytest.raises(SpecError, match="connectivity = 0.5"):
        PaperEngine(sparse, init_params(sparse, 0))


def test_cli_refusals_are_one_line(tmp_path):
    from click.testing import CliRunner

    runner = CliRunner()
    res = runner.invoke(main, ["profile", str(TIMING), "--hw", "xylo-audio"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "the device has no delays" in res.stderr
    res = runner.invoke(main, ["simulate", str(TIMING), "--data", "timing", "--engine", "paper",
                               "--samples", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "not yet in the paper engine" in res.stderr
    assert not (tmp_path / "o").exists()


def test_numba_twin_declines_and_float_falls_back_to_numpy():
    from edgesnn.floatcore import unsupported
    from edgesnn.simulate import float_engine

    spec = _spec()
    assert "numpy" in unsupported(spec)
    eng = float_engine(spec, init_params(spec, 0), None, "numba")
    assert type(eng) is FloatEngine


# --------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_restores_delays(tmp_path):
    from edgesnn.simulate import SimulateOptions, prepare
    from edgesnn.train import TrainConfig

    spec = load_spec(TIMING, ["layers.0.size=4"])
    ckpt = str(tmp_path / "c.npz")

    def trainer(samples, every=0, resume=None):
        cfg = TrainConfig(samples=samples, eval_every=10, eval_samples=5, seed=0,
                          checkpoint_every=every, checkpoint_path=ckpt, encoding="spikes")
        return prepare(spec, load_device("cortex-m7"),
                       SimulateOptions(config=cfg, data="timing", resume=resume))

    first = trainer(10, every=10)
    first.run()
    saved = first.engines["float"].state()
    assert "L0.d" in saved
    resumed = trainer(20, resume=ckpt)
    for name, arr in saved.items():
        assert np.array_equal(arr, resumed.engines["float"].state()[name]), name
    with pytest.raises(Exception, match="L0.d"):
        FloatEngine(spec, init_params(spec, 0)).load_state(
            {k: v for k, v in saved.items() if k != "L0.d"})


# --------------------------------------------------------------- spec keys

@pytest.mark.parametrize("keys,message", [
    ({"delays": "dendritic"}, r"'layers\[0\].delays': must be one of none, axonal, synaptic"),
    ({"max_delay": None}, r"'layers\[0\].max_delay': is required"),
    ({"max_delay": 0}, r"'layers\[0\].max_delay': must be an integer in \[1, "),
    ({"delay_lr": 0}, r"'layers\[0\].delay_lr': must be a number in \(0.0, 1.0\]"),
    ({"delay_lr": 2.0}, r"'layers\[0\].delay_lr'"),
    ({"sigma": -1.0}, r"'layers\[0\].sigma': must be a number"),
    ({"connectivity": 0.0}, r"'layers\[0\].connectivity': must be a number in \(0.0, 1.0\]"),
    ({"connectivity": 1.5}, r"'layers\[0\].connectivity'"),
    ({"delay_init": "gaussian"}, r"'layers\[0\].delay_init': must be one of zero, uniform"),
    ({"delay_init": [1.0] * 7}, r"'layers\[0\].delay_init': a list of initial delays needs 8 "
                                r"\(one per input\) values, got 7"),
    ({"delay_init": [13.0] * 8}, r"'layers\[0\].delay_init': must be .* in \[0, 12\]"),
    ({"delays": "none"}, r"'layers\[0\].max_delay': only applies with delays"),
])
def test_bad_delay_keys_name_the_key(keys, message):
    with pytest.raises(SpecError, match=message):
        _spec(**keys)


def test_readout_refuses_delay_keys():
    data = tomllib.loads(TIMING.read_text())
    data["layers"][1]["connectivity"] = 0.5
    with pytest.raises(SpecError, match=r"'layers\[1\].connectivity': applies to spiking"):
        parse_spec(data)


def test_delay_rate_is_a_power_of_two_defaulting_to_128_times_the_weights():
    assert _spec(delay_lr=0.3).layers[0].delay_lr_shift == 2
    default = _spec(delay_lr=None).layers[0]
    assert default.delay_lr == pytest.approx(128 * 2 ** -7)


def test_a_spec_without_delay_keys_keeps_its_identity():
    spec = load_spec(EXAMPLES / "yinyang.toml")
    ident = spec_identity(spec)
    assert all(k not in layer for layer in ident["layers"]
               for k in ("delays", "max_delay", "delay_init", "delay_lr", "sigma",
                         "connectivity"))
    assert spec_identity(_spec())["layers"][0]["delays"] == "axonal"
    data = tomllib.loads((EXAMPLES / "yinyang.toml").read_text())
    sparse = copy.deepcopy(data)
    sparse["layers"][0]["connectivity"] = 0.5
    assert spec_identity(parse_spec(sparse)) != ident


@pytest.mark.parametrize("mode", ["axonal", "synaptic"])
def test_per_step_updates_and_trace_run_with_delays(mode):
    data = tomllib.loads(TIMING.read_text())
    data["layers"][0].update(delays=mode, size=4)
    data["learning"]["update"] = "per-step"
    spec = parse_spec(data)
    eng = FloatEngine(spec, init_params(spec, 0))
    x = (np.random.default_rng(1).random((spec.time_steps, 8)) < 0.3).astype(float)
    d0 = eng.params.d[0].copy()
    rec = eng.trace(x, 1)
    assert rec["L0.s"].shape == (spec.time_steps, 4)
    assert not np.array_equal(d0, eng.params.d[0]) and eng.nonfinite() is None


def test_synaptic_ops_count_arriving_spikes_on_kept_synapses():
    spec = _spec(delays=None, max_delay=None, delay_init=None, sigma=None, delay_lr=None,
                 connectivity=0.25)
    eng = FloatEngine(spec, init_params(spec, 0))
    x = np.zeros((spec.time_steps, 8))
    x[0, :] = 1.0                                   # every input once: each neuron's 2 kept
    from edgesnn import counters as C
    r = eng.run_sample(x, 0, learn=False)
    hidden = r.events[C.SYNOPS] - int(r.spikes[0]) * spec.classes
    assert hidden == 16 * 2


def test_sweep_refuses_a_point_whose_device_has_no_delays_in_one_line(tmp_path):
    from click.testing import CliRunner

    grid = tmp_path / "grid.toml"
    grid.write_text('hw = ["cortex-m7", "xylo-audio"]\n[spec]\n"layers.0.size" = [4, 8]\n')
    res = CliRunner().invoke(main, ["sweep", str(TIMING), "--grid", str(grid), "--data",
                                    "timing", "--samples", "1", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "xylo-audio" in res.stderr and "no delays" in res.stderr
    assert not (tmp_path / "s").exists()
