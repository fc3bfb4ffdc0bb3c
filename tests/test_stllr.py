"""Unit checks of the float LIF / S-TLLR / learning-signal maths."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgesnn.errors import SpecError
from edgesnn.neurons.lif import (LIFParams, lif_init, lif_step, psi_rational, psi_triangle,
                                 readout_init, readout_step, ReadoutParams)
from edgesnn.rules.stllr import (DenseParams, Factors, conv2d, conv2d_grad_input, conv2d_grad_weight,
                                 run_dense, standardize, standardize_vjp)
from edgesnn.signals import (NetParams, ReadoutLayerParams, bp_signal, ce_error, cross_entropy,
                             dfa_signal, run_net, softmax)


def test_psi_shapes_and_values():
    d = np.array([[-2.0, -0.01, 0.0, 0.5]])
    # by hand: 1/(100|d| + 1)^2 = 1/201^2, 1/2^2, 1, 1/51^2
    assert psi_rational(d).shape == (1, 4)
    assert np.allclose(psi_rational(d), [[1 / 40401, 0.25, 1.0, 1 / 2601]], rtol=1e-12, atol=0)
    assert np.allclose(psi_rational(np.array([0.03, -0.09, 0.01])), [1 / 16, 1 / 100, 1 / 4],
                       rtol=1e-12, atol=0)
    assert np.allclose(psi_rational(np.array([0.5, -0.1]), scale=10.0), [1 / 36, 1 / 4],
                       rtol=1e-12, atol=0)
    assert np.allclose(psi_triangle(d), [[0.0, 0.3 * 0.99, 0.3, 0.15]])
    assert np.allclose(psi_triangle(np.array([0.25, -1.5]), gamma=0.5), [0.375, 0.0])


#: the spike functions whose derivatives the surrogates are: a fast sigmoid
#: ``d / (scale |d| + 1)`` and the integral of the triangle
def _fast_sigmoid(d, scale=100.0):
    return d / (scale * np.abs(d) + 1.0)


def _triangle_integral(d, gamma=0.3):
    inside = gamma * (d - d * np.abs(d) / 2)
    return np.where(np.abs(d) <= 1.0, inside, gamma * np.sign(d) / 2)


@pytest.mark.parametrize("psi,integral,kw", [
    (psi_rational, _fast_sigmoid, {}), (psi_rational, _fast_sigmoid, {"scale": 7.0}),
    (psi_triangle, _triangle_integral, {}), (psi_triangle, _triangle_integral, {"gamma": 0.8}),
])
def test_psi_is_the_derivative_of_its_spike_function(psi, integral, kw):
    """Central differences of the integral (exact for a quadratic piece up to rounding)."""
    d = np.array([-3.0, -0.7, -0.2, -0.013, -0.004, 0.002, 0.011, 0.05, 0.3, 0.95, 2.5])
    h = 1e-7
    numeric = (integral(d + h, **kw) - integral(d - h, **kw)) / (2 * h)
    assert np.allclose(psi(d, **kw), numeric, rtol=1e-5, atol=1e-9)


def test_lif_soft_and_hard_reset():
    cur = np.array([[1.0, 0.2]])
    for reset, u_after in (("soft", [0.4, 0.2]), ("hard", [0.0, 0.2])):
        s, psi, stt = lif_step(cur, lif_init((1, 2)), LIFParams(beta=0.9, theta=0.6, reset=reset))
        assert s.tolist() == [[1.0, 0.0]]
        assert np.allclose(stt.u, [u_after])
        assert np.allclose(psi, [[1 / 1681, 1 / 1681]])         # d = +-0.4: 1/41^2
    with pytest.raises(SpecError):
        lif_step(cur, lif_init((1, 2)), LIFParams(beta=0.9, theta=0.6, reset="weird"))
    u, rs = readout_step(cur, readout_init((1, 2)), ReadoutParams(0.5))
    u, rs = readout_step(cur, rs, ReadoutParams(0.5))
    assert np.allclose(u, 1.5 * cur)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(3, 4), (2, 7), (4, 2, 2, 2)]))
def test_standardize_vjp_matches_complex_step(seed, shape):
    rng = np.random.default_rng(seed)
    W, gain, cot = rng.normal(size=shape), rng.uniform(0.5, 2, size=(shape[0], 1)), rng.normal(size=shape)
    dW, dg = standardize_vjp(W, gain, cot)
    h = 1e-30
    num = np.zeros(W.size)
    for i in range(W.size):
        E = np.zeros(W.size, complex)
        E[i] = 1j * h
        num[i] = np.sum(cot * standardize(W + E.reshape(shape), gain.astype(complex)).imag) / h
    assert np.allclose(dW.ravel(), num, atol=1e-12, rtol=1e-10)
    num_g = np.array([np.sum(cot * standardize(W, gain + 1j * h * (np.arange(shape[0]) == r)[:, None]).imag) / h
                      for r in range(shape[0])])
    assert dg.shape == gain.shape and np.allclose(dg.ravel(), num_g, atol=1e-12)
    We = standardize(W, gain).reshape(shape[0], -1)
    assert np.allclose(We.mean(axis=1), 0, atol=1e-12)


@pytest.mark.parametrize("pad,k", [(0, 3), (1, 3), (2, 2)])
def test_conv_adjoint_identities(pad, k):
    rng = np.random.default_rng(k + 10 * pad)
    x, W = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(4, 3, k, k))
    y = conv2d(x, W, pad)
    assert y.shape == (2, 4, 6 + 2 * pad - k + 1, 6 + 2 * pad - k + 1)
    # direct definition at one output: cross-correlation, no flip
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    assert np.isclose(y[1, 2, 1, 0], np.sum(W[2] * xp[1, :, 1:1 + k, 0:k]))
    G = rng.normal(size=y.shape)
    inner = np.sum(y * G)
    assert np.isclose(inner, np.sum(x * conv2d_grad_input(G, W, x.shape, pad)))
    assert np.isclose(inner, np.sum(W * conv2d_grad_weight(x, G, k, k, pad)))


def _dense(rng, N_in=6, N_out=4, rec=True):
    W = standardize(rng.normal(size=(N_out, N_in)), np.full((N_out, 1), 1.5))
    Wr = standardize(rng.normal(size=(N_out, N_out)), np.full((N_out, 1), 0.7)) if rec else None
    return DenseParams(W=W, b=rng.normal(0, 0.1, N_out), lif=LIFParams(0.9, 0.5), factors=Factors(0.5, 0.8, -0.2, 1.0),
                       W_rec=Wr)


#: the hand case: 2 inputs, 2 neurons, 3 steps, batch 1; beta 0.5, theta 1, a triangle
#: surrogate of height 0.5 (every value below is a dyadic fraction, exact in float64)
HAND_W = np.array([[0.75, 0.5], [0.25, -0.5]])
HAND_B = np.array([0.0, 0.125])
HAND_X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])[:, None, :]
HAND_G = np.array([[9.0, 9.0], [1.0, 2.0], [-1.0, 0.5]])[:, None, :]   # t0 is outside the window
HAND_MASK = np.array([False, True, True])


def _hand_params(reset):
    return DenseParams(W=HAND_W, b=HAND_B, factors=Factors(0.5, 0.5, -0.5, 1.0),
                       lif=LIFParams(0.5, 1.0, reset, partial(psi_triangle, gamma=0.5)))


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_dense_layer_unrolled_by_hand(reset):
    """Currents I = W x + b: t0 (0.75, 0.375), t1 (1.25, -0.125), t2 (0.5, -0.375).

    Neuron 0: v0 = 0.75; v1 = 0.375 + 1.25 = 1.625 > 1, a spike, u1 = 0.625 (soft) or 0
    (hard); v2 = 0.3125 + 0.5 = 0.8125 (soft) or 0.5 (hard). Neuron 1: v0 = 0.375,
    v1 = 0.1875 - 0.125 = 0.0625, v2 = 0.03125 - 0.375 = -0.34375; never spikes.
    psi = 0.5 max(0, 1 - |v - 1|); h[t] = 0.5 h[t-1] + psi[t]; q[t] = 0.5 q[t-1] + x[t].
    """
    soft = reset == "soft"
    res = run_dense(HAND_X, HAND_G, HAND_MASK, _hand_params(reset))
    r = res.records
    v0_2 = 0.8125 if soft else 0.5
    assert np.array_equal(r.v[:, 0], [[0.75, 0.375], [1.625, 0.0625], [v0_2, -0.34375]])
    assert np.array_equal(r.s[:, 0], [[0, 0], [1, 0], [0, 0]])
    assert np.array_equal(r.u[:, 0], [[0.75, 0.375], [0.625 if soft else 0.0, 0.0625],
                                      [v0_2, -0.34375]])
    psi2 = 0.40625 if soft else 0.25
    assert np.array_equal(r.psi[:, 0], [[0.375, 0.1875], [0.1875, 0.03125], [psi2, 0.0]])
    assert np.array_equal(r.h[:, 0], [[0.375, 0.1875], [0.375, 0.125],
                                      [0.1875 + psi2, 0.0625]])
    assert np.array_equal(r.h_prev[:, 0], [[0, 0], [0.375, 0.1875], [0.375, 0.125]])
    assert np.array_equal(r.q[:, 0], [[1.0, 0.0], [1.5, 1.0], [0.75, 1.5]])
    # window t1: a = g alpha_post h_prev = (-0.1875, -0.1875), c = g psi = (0.1875, 0.0625)
    #   dW = a x1^T + c q1^T = [[0.09375, 0], [-0.09375, -0.125]]
    # window t2: a = (0.1875, -0.03125), c = (-psi2, 0); x2 = (0, 1), q2 = (0.75, 1.5)
    #   dW = [[-0.75 psi2, 0.1875 - 1.5 psi2], [0, -0.03125]]
    t1 = np.array([[0.09375, 0.0], [-0.09375, -0.125]])
    t2 = np.array([[-0.75 * psi2, 0.1875 - 1.5 * psi2], [0.0, -0.03125]])
    assert np.array_equal(res.steps.dW, np.stack([np.zeros((2, 2)), t1, t2]))
    assert np.array_equal(res.total.dW, t1 + t2)
    # db = sum over the window of g psi; grad_x = (g psi) W
    assert np.array_equal(res.total.db, [0.1875 - psi2, 0.0625])
    assert np.array_equal(res.steps.grad_x[:, 0], [[0, 0], [0.15625, 0.0625],
                                                   [-0.75 * psi2, -0.5 * psi2]])
    assert res.total.dW_rec is None


def _decays(lam, T):
    """``D[t, k] = lam**(t-k)`` for ``k <= t``: ``D @ x`` is the leaky sum ``y[t] = lam y[t-1] + x[t]``."""
    t = np.arange(T)
    e = t[:, None] - t[None, :]
    return np.where(e >= 0, float(lam) ** np.maximum(e, 0), 0.0)


def _delayed(a):
    """``a[t-1]`` along the first axis, zero at ``t = 0``."""
    return np.concatenate([np.zeros_like(a[:1]), a[:-1]])


def test_recurrent_layer_equals_its_closed_form():
    """run_dense against the unrolled sums, given the spike trains it produced.

    With a soft reset ``u[t] = v[t] - theta s[t]`` and ``v[t] = beta u[t-1] + I[t]``, so
    ``v[t] = beta v[t-1] + I[t] - beta theta s[t-1]``: ``v = D_beta (W x + b + W_rec s[t-1]
    - beta theta s[t-1])`` with ``D_lam`` the leaky-sum matrix; the spikes are consistent
    iff ``s = [v > theta]``. Traces and the window update are sums over time with the same
    matrices; no step function of the module is reused.
    """
    rng = np.random.default_rng(0)
    p = _dense(rng)
    T, B, N_in, N = 9, 2, 6, 4
    x = (rng.random((T, B, N_in)) < 0.5).astype(float)
    g = rng.normal(size=(T, B, N))
    mask = np.arange(T) >= 4
    res = run_dense(x, g, mask, p)
    s = res.records.s
    assert 0 < s.sum() < s.size                      # spikes and silences both occur
    f, lif = p.factors, p.lif
    s_prev = _delayed(s)
    current = x @ p.W.T + p.b + s_prev @ p.W_rec.T
    Db = _decays(lif.beta, T)
    v = np.einsum("tk,kbn->tbn", Db, current - lif.beta * lif.theta * s_prev)
    assert np.allclose(res.records.v, v, atol=1e-12)
    assert np.array_equal(s, (v > lif.theta).astype(float))
    psi = lif.psi(v - lif.theta)
    h = np.einsum("tk,kbn->tbn", _decays(f.lambda_post, T), psi)
    q = np.einsum("tk,kbi->tbi", _decays(f.lambda_pre, T), x)
    q_rec = np.einsum("tk,kbn->tbn", _decays(f.lambda_pre, T), s_prev)
    a = g * f.alpha_post * _delayed(h) * mask[:, None, None]
    c = g * f.alpha_pre * psi * mask[:, None, None]
    dW = np.einsum("tbn,tbi->ni", a, x) + np.einsum("tbn,tbi->ni", c, q)
    dW_rec = np.einsum("tbn,tbk->nk", a, s_prev) + np.einsum("tbn,tbk->nk", c, q_rec)
    assert np.allclose(res.total.dW, dW, atol=1e-12)
    assert np.allclose(res.total.dW_rec, dW_rec, atol=1e-12)
    assert np.allclose(res.total.db, (g * psi * mask[:, None, None]).sum(axis=(0, 1)),
                       atol=1e-12)
    assert np.all(res.steps.dW[~mask] == 0)


def test_signals():
    rng = np.random.default_rng(1)
    z, label = rng.normal(size=(3, 5)), np.array([0, 4, 2])
    assert np.allclose(softmax(z).sum(axis=1), 1)
    err = ce_error(z, label)
    eps = 1e-6
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        dz = np.zeros_like(z)
        dz[i] = eps
        num[i] = (cross_entropy(z + dz, label) - cross_entropy(z - dz, label)) / (2 * eps)
    W_out = rng.normal(size=(5, 7))
    g_out, g_hid = bp_signal(err, W_out)
    assert np.allclose(g_out, num, atol=1e-8)          # g_out is dL/dlogits of the batch-mean loss
    assert np.allclose(g_hid, num @ W_out, atol=1e-8)
    # DFA by hand: (1, -2) through [[1, 0, 2], [0, 1, -1]] is (1, -2, 4); the batch of 2
    # is not divided by B
    fb = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    assert np.array_equal(dfa_signal(np.array([[1.0, -2.0]]), fb), [[1.0, -2.0, 4.0]])
    assert np.array_equal(dfa_signal(np.array([[1.0, -2.0], [0.5, 0.5]]), fb),
                          [[1.0, -2.0, 4.0], [0.5, 0.5, 0.5]])


def test_net_exact_signal_close_to_float32_signal():
    rng = np.random.default_rng(2)
    hidden = _dense(rng, N_in=8, N_out=6)
    readout = ReadoutLayerParams(W=rng.normal(size=(3, 6)), b=np.zeros(3), beta=0.9, lambda_pre=0.9)
    x = (rng.random((10, 2, 8)) < 0.4).astype(float)
    mask = np.arange(10) >= 6
    label = np.array([1, 2])
    a = run_net(x, label, mask, NetParams(hidden, readout, "BP"))
    b = run_net(x, label, mask, NetParams(hidden, readout, "BP"), signal_dtype=np.float32)
    assert np.all(np.isnan(a.loss[~mask])) and np.all(np.isfinite(a.loss[mask]))
    assert np.allclose(a.hidden_grads.dW, b.hidden_grads.dW, atol=1e-6)
    with pytest.raises(SpecError):
        run_net(x, label, mask, NetParams(hidden, readout, "DFA"))  # no B_fb
