"""TESS: basis, pooling, the local signal, the spec keys and the float engine under it."""

from __future__ import annotations

import json
import textwrap
import tomllib

import numpy as np
import pytest

import golden_cases as gc
from conftest import EXAMPLES, TINY_SPEC, golden_dir
from edgesnn import counters as C
from edgesnn.cli import main
from edgesnn.errors import SpecError
from edgesnn.reference import FloatEngine, init_params
from edgesnn.rules import tess
from edgesnn.rules.stllr import dense_grads
from edgesnn.signals import tess_local_ce, tess_signal
from edgesnn.spec import load_spec, parse_spec


# ------------------------------------------------------------------ basis

@pytest.mark.parametrize("C", [2, 3, 10, 11, 20, 37, 101])
@pytest.mark.parametrize("fmin,fmax", [(50.0, 512.0), (20.3, 300.7), (1e-3, 1e5)])
def test_frequencies_are_torch_linspace_float32(C, fmin, fmax):
    want = np.array(gc.torch_linspace_f32(fmin, fmax, C), dtype=np.float32)
    got = tess.tess_frequencies(C, fmin, fmax)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_frequencies_are_not_numpy_linspace_for_ten_classes():
    f = tess.tess_frequencies(10)
    assert f[0] == 50 and f[-1] == 512
    assert not np.array_equal(f, np.linspace(50, 512, 10).astype(np.float32))


def test_round_f32_rounds_once_ties_to_even():
    from fractions import Fraction

    one = Fraction(1)
    ulp = Fraction(1, 2 ** 23)
    assert tess.round_f32(one + ulp / 2) == np.float32(1.0)            # tie: to even
    assert tess.round_f32(one + 3 * ulp / 2) == np.float32(1 + 2 * float(ulp))
    assert tess.round_f32(one + ulp / 2 + Fraction(1, 2 ** 60)) == np.float32(1 + float(ulp))


def test_sines_and_basis_match_the_shipped_golden_arrays():
    with np.load(golden_dir() / "tess_lsg_basis.npz") as z:
        for C_, D in ((10, 1024), (11, 2048), (20, 64)):
            sin = tess.tess_sines(C_, D)
            assert np.abs(sin - z[f"sin_C{C_}_D{D}"]).max() <= 1e-6
            assert np.array_equal(tess.tess_basis(C_, D), z[f"B_C{C_}_D{D}"])
            signs = tess.tess_basis_signs(C_, D)
            assert signs.dtype == np.int8 and np.all(signs[:, 0] == 0)
            assert set(np.unique(signs[:, 1:])) <= {-1, 1}
        # f from numpy.linspace would miss the recorded sines of the 10-class basis at large k
        f_np = np.linspace(50, 512, 10).astype(np.float32).astype(np.float64)
        arg = (f_np[:, None] * np.arange(1024)).astype(np.float32)
        assert np.abs(np.sin(arg.astype(np.float64)) - z["sin_C10_D1024"]).max() > 1e-3


# ------------------------------------------------------------------ pooling

def test_pool_bounds_are_adaptive_avg_pool1d():
    assert tess.pool_bounds(10, 4).tolist() == [[0, 3], [2, 5], [5, 8], [7, 10]]
    assert tess.pool_bounds(5, 3).tolist() == [[0, 2], [1, 4], [3, 5]]
    assert tess.pool_bounds(8, 4).tolist() == [[0, 2], [2, 4], [4, 6], [6, 8]]
    assert tess.pool_bounds(6, 6).tolist() == [[i, i + 1] for i in range(6)]
    assert tess.pool_bounds(7, 1).tolist() == [[0, 7]]
    with pytest.raises(ValueError):
        tess.pool_bounds(3, 4)


def test_unpool_is_the_adjoint_of_pool():
    rng = np.random.default_rng(0)
    for n, D in ((10, 4), (5, 3), (7, 7), (9, 2)):
        b = tess.pool_bounds(n, D)
        s, y = rng.normal(size=(2, n)), rng.normal(size=(2, D))
        assert np.allclose((tess.pool(s, b) * y).sum(), (s * tess.unpool(y, b, n)).sum())
    a, y = rng.normal(size=(2, 3, 5, 7)), rng.normal(size=(2, 3, 2, 3))
    assert np.allclose((tess.pool2d(a, (2, 3)) * y).sum(), (a * tess.unpool2d(y, (5, 7))).sum())


@pytest.mark.parametrize("n,D,C_", [(10, 4, 3), (6, 6, 2), (5, 3, 4)])
def test_signal_is_the_gradient_of_the_local_cross_entropy(n, D, C_):
    """Central differences of loss(s) = CE(pool(s) @ B.T, label) against tess_signal."""
    rng = np.random.default_rng(n + D)
    s = (rng.random(n) < 0.5).astype(float)
    basis, bounds = tess.tess_basis(C_, D), tess.pool_bounds(n, D)
    g = tess_signal(s, 1, basis, bounds)
    eps = 1e-6
    fd = np.zeros(n)
    for j in range(n):
        up, dn = s.copy(), s.copy()
        up[j] += eps
        dn[j] -= eps
        loss = lambda v: tess_local_ce(tess.pool(v[None], bounds), np.array([1]), basis)[0]  # noqa: E731
        fd[j] = (loss(up) - loss(dn)) / (2 * eps)
    assert g.shape == (n,) and np.allclose(g, fd, atol=1e-8)
    assert np.abs(g).max() > 0
    # a batch: rows of the batch-mean gradient are the per-sample gradients / B
    batch = np.stack([s, 1 - s])
    gb = tess_signal(batch, np.array([1, 0]), basis, bounds)
    assert np.allclose(gb[0], g / 2) and np.allclose(gb[1], tess_signal(1 - s, 0, basis, bounds) / 2)


def test_signal_work_counts():
    # n = 10, D = 4: memberships 12, C = 3: 2*12 + 2*12 + 3; sizes 3 multiply, 1/4 shifts
    assert tess.signal_work(10, 4, 3) == (2 * 12 + 2 * 3 * 4 + 3, 2 * 4)
    assert tess.signal_work(64, 16, 3) == (2 * 64 + 2 * 3 * 16 + 3, 0)
    assert tess.signal_work(6, 3, 2) == (2 * 6 + 2 * 2 * 3 + 2, 2 + 3)


# ------------------------------------------------------------------ spec

def _tiny(**learning):
    data = tomllib.loads(TINY_SPEC)
    data["learning"].update(signal="tess", **learning)
    return data


def test_spec_tess_defaults_and_groups():
    s = parse_spec(_tiny())
    assert s.learning.signal == "tess"
    assert (s.learning.tess_fmin, s.learning.tess_fmax) == (50.0, 512.0)
    assert s.layers[0].tess_groups == 4 and s.readout.tess_groups is None
    data = _tiny(tess_fmin=10.0, tess_fmax=100.0)
    data["layers"][0]["tess_groups"] = 3
    s = parse_spec(data)
    assert s.layers[0].tess_groups == 3 and s.learning.tess_fmax == 100.0
    assert tess.spec_layers(s)[0].signs.shape == (2, 3)


@pytest.mark.parametrize("where,key,value,message", [
    (0, "tess_groups", 5, r"^x\.toml: key 'layers\[0\]\.tess_groups': must be <= the layer's "
                          r"size \(4\): D groups of its neurons, got 5$"),
    (0, "tess_groups", 0, r"key 'layers\[0\]\.tess_groups': must be an integer >= 1, got 0$"),
    (0, "tess_groups", 2.5, r"key 'layers\[0\]\.tess_groups': must be an integer >= 1"),
    (1, "tess_groups", 2, r"key 'layers\[1\]\.tess_groups': applies to spiking layers only"),
    ("learning", "tess_fmax", 40.0, r"key 'learning\.tess_fmax': must be above tess_fmin \(50\), "
                                    r"got 40$"),
    ("learning", "tess_fmin", 0.0, r"key 'learning\.tess_fmin': must be a number in \(0\.0, "),
])
def test_spec_tess_refusals_are_one_line(where, key, value, message):
    data = _tiny()
    (data["learning"] if where == "learning" else data["layers"][where])[key] = value
    with pytest.raises(SpecError, match=message) as err:
        parse_spec(data, source="x.toml")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("signal", ["bp", "dfa"])
def test_spec_tess_keys_need_the_tess_signal(signal):
    data = tomllib.loads(TINY_SPEC)
    data["learning"]["signal"] = signal
    data["layers"][0]["tess_groups"] = 2
    with pytest.raises(SpecError, match=r"key 'layers\[0\]\.tess_groups': only applies with "
                                        rf"learning\.signal = \"tess\" \(signal is \"{signal}\"\)$"):
        parse_spec(data, source="x.toml")
    del data["layers"][0]["tess_groups"]
    data["learning"]["tess_fmin"] = 10.0
    with pytest.raises(SpecError, match=r"key 'learning\.tess_fmin': only applies with signal"):
        parse_spec(data, source="x.toml")


# ------------------------------------------------------------------ float engine

def _stack_spec(update):
    text = f"""
    [network]
    name = "stack"
    inputs = 5
    time_steps = 12
    [[layers]]
    kind = "dense"
    size = 10
    beta = 0.9
    threshold = 0.3
    tess_groups = 4
    [[layers]]
    kind = "recurrent"
    size = 6
    beta = 0.8
    threshold = 0.3
    [[layers]]
    kind = "readout"
    size = 3
    beta = 0.9
    trace_decay = 0.9
    [learning]
    signal = "tess"
    window = 5
    learning_rate = 0.0078125
    update = "{update}"
    init_scale = 3.0
    surrogate = "triangle"
    alpha_post = 0.5
    """
    return parse_spec(tomllib.loads(textwrap.dedent(text)))


def test_each_hidden_layer_learns_from_its_own_spikes():
    spec = _stack_spec("per-step")
    eng = FloatEngine(spec, init_params(spec, 4))
    x = (np.random.default_rng(1).random((12, 5)) < 0.5).astype(float)
    tr = eng.trace(x, label=2)
    T, Tl = 12, 5
    assert np.all(tr["L0.g"][:T - Tl] == 0) and np.all(tr["L1.g"][:T - Tl] == 0)
    assert tr["L0.s"][T - Tl:].sum() > 0 and tr["L1.s"][T - Tl:].sum() > 0
    for i, layer in enumerate(spec.hidden):
        t_ = eng.tess[i]
        for t in range(T - Tl, T):
            want = tess_signal(tr[f"L{i}.s"][t], 2, t_.basis, t_.bounds)
            assert np.allclose(tr[f"L{i}.g"][t], want, atol=1e-15)
    assert eng.tess[0].signs.shape == (3, 4) and eng.tess[1].signs.shape == (3, 6)


def test_tess_update_is_lr_times_the_stllr_update_with_the_local_signal():
    """Per-sample: W moves by -lr * sum over the window of dense_grads(local g)."""
    spec = _stack_spec("per-sample")
    params = init_params(spec, 4)
    before = params.copy()
    eng = FloatEngine(spec, params)
    x = (np.random.default_rng(1).random((12, 5)) < 0.5).astype(float)
    ref = FloatEngine(spec, before.copy())
    dW = [np.zeros_like(w) for w in before.W]
    # replay the forward of the reference engine without learning to get the steps
    from edgesnn.rules.stllr import dense_forward, dense_init
    states = [dense_init(1, spec.fan_in(i), layer.size) for i, layer in enumerate(spec.hidden)]
    lps = ref._layer_params()
    for t in range(12):
        inp = x[t][None]
        for i, lp in enumerate(lps):
            step, states[i] = dense_forward(inp, states[i], lp)
            if t >= 12 - 5:
                t_ = ref.tess[i]
                dW[i] += dense_grads(tess_signal(step.s, np.array([2]), t_.basis, t_.bounds),
                                     step, lp).dW
            inp = step.s
    r = eng.run_sample(x, label=2)
    for i in range(2):
        assert np.abs(dW[i]).max() > 0
        assert np.allclose(before.W[i] - params.W[i], eng.lr * dW[i], atol=1e-13)
    # counted: every window step, both layers' local signals
    work = sum(tess.signal_work(layer.size, layer.tess_groups, 3)[0] for layer in spec.hidden)
    muls = sum(tess.signal_work(layer.size, layer.tess_groups, 3)[1] for layer in spec.hidden)
    assert r.events[C.LOCAL_SIGNAL_MACS] == r.events[C.SIGNAL_MACS] == 5 * work
    # layer 0: groups of 3 scale by multiplies (2*4); layer 1: its basis 1/6 (3 + 6)
    assert r.events[C.SIGNAL_MULTIPLIES] == 5 * muls == 5 * (8 + 9)
    # names only ever append: TESS's two sit right after the signal multiplies
    i = C.NAMES.index("signal_multiplies")
    assert C.NAMES[i + 1:i + 3] == ("local_signal_macs", "phase_adds")


def test_bp_and_dfa_count_no_local_signal():
    spec = load_spec(EXAMPLES / "yinyang.toml")
    eng = FloatEngine(spec, init_params(spec, 0))
    x = (np.random.default_rng(2).random((spec.time_steps, 4)) < 0.4).astype(float)
    assert eng.run_sample(x, 1).events[C.LOCAL_SIGNAL_MACS] == 0


def test_the_example_counts_match_analytic():
    from edgesnn import analytic

    spec = load_spec(EXAMPLES / "yinyang_tess.toml")
    eng = FloatEngine(spec, init_params(spec, 0))
    x = (np.random.default_rng(2).random((spec.time_steps, 4)) < 0.4).astype(float)
    ev = dict(zip(C.NAMES, eng.run_sample(x, 1).events))
    ops = analytic.stllr_ops(spec, 0.4, 0.1)
    for name in ("signal_macs", "local_signal_macs", "signal_multiplies", "eligibility_macs"):
        assert ev[name] == getattr(ops, name), name


# ------------------------------------------------------------------ command line

def test_simulate_tess_runs_in_every_engine(runner, tmp_path):
    spec = str(EXAMPLES / "yinyang_tess.toml")
    fast = ["--samples", "20", "--eval-every", "20", "--eval-samples", "20", "--quiet"]
    for engine, names in (("float", ("float",)), ("both", ("fixed", "float"))):
        res = runner.invoke(main, ["simulate", spec, "--engine", engine, *fast,
                                   "--out", str(tmp_path / engine)])
        assert res.exit_code == 0, res.output
        r = json.loads((tmp_path / engine / "report.json").read_text())
        assert r["spec"]["signal"] == "tess"
        for name in names:
            assert r[name]["ops_per_sample"]["local_signal_macs"] > 0
        assert any("L0.latent" in b["tensors"] for b in r["memory"]["banks"])
        # cortex-m7 declares a generated 16-bit basis: equal to the authors' signs here
        assert r["tess_basis"]["basis"] == "generated" and r["tess_basis"]["differ"] == 0


def test_profile_of_a_tess_spec(runner):
    res = runner.invoke(main, ["profile", str(EXAMPLES / "yinyang_tess.toml"), "--format", "json"])
    assert res.exit_code == 0, res.output


def test_paper_engine_runs_tess():
    from edgesnn.paper import PaperEngine

    spec = _stack_spec("per-sample")
    eng = PaperEngine(spec, init_params(spec, 4), batch=2)
    raw = [w.copy() for w in eng.raw]
    x = (np.random.default_rng(1).random((12, 5)) < 0.5).astype(float)
    eng.run_sample(x, 2)
    assert all(np.array_equal(a, b) for a, b in zip(raw, eng.raw))      # half a batch
    eng.run_sample(x, 0)
    assert all(not np.array_equal(a, b) for a, b in zip(raw, eng.raw))  # one Adam step


@pytest.mark.parametrize("n, D", [(10, 4), (12, 12), (7, 3), (9, 1)])
def test_the_pooling_matrix_path_gives_the_same_signal(n, D):
    from edgesnn.rules.tess import pool_bounds, pool_matrix, tess_basis
    from edgesnn.signals import tess_signal

    s = (np.random.default_rng(n * D).random(n) < 0.5).astype(np.float64)
    bounds, basis = pool_bounds(n, D), tess_basis(3, D)
    P = pool_matrix(bounds, n)
    np.testing.assert_allclose(tess_signal(s, 1, basis, bounds, P),
                               tess_signal(s, 1, basis, bounds), rtol=0, atol=1e-15)


def test_temperature_divides_the_logits_and_the_gradient():
    """tau: z = latent @ B.T / tau; the gradient is (softmax(z) - y) @ B / tau; checked
    against central differences of the local loss."""
    from edgesnn.rules.tess import tess_basis

    rng = np.random.default_rng(4)
    lat = rng.random((1, 8))
    B = tess_basis(4, 8)
    for tau in (1.0, 0.25, 1 / 64):
        loss, grad = tess_local_ce(lat, np.array([2]), B, tau)
        num = np.zeros_like(lat)
        for k in range(8):
            d = np.zeros_like(lat)
            d[0, k] = 1e-6
            num[0, k] = (tess_local_ce(lat + d, np.array([2]), B, tau)[0]
                         - tess_local_ce(lat - d, np.array([2]), B, tau)[0]) / 2e-6
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    assert tess_local_ce(lat, np.array([2]), B, 1 / 64)[0] != tess_local_ce(lat, np.array([2]), B)[0]


def test_temperature_must_be_a_power_of_two_and_needs_tess():
    data = tomllib.loads(TINY_SPEC)
    data["learning"]["tess_temperature"] = 0.25
    with pytest.raises(SpecError, match="only applies with signal"):
        parse_spec(data, source="x.toml")
    data["learning"]["signal"] = "tess"
    assert parse_spec(data).learning.tess_temperature == 0.25
    data["learning"]["tess_temperature"] = 0.3
    with pytest.raises(SpecError, match="must be a power of two"):
        parse_spec(data, source="x.toml")
