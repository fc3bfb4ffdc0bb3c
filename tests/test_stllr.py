"""Unit checks of the float LIF / S-TLLR / learning-signal maths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgesnn.errors import SpecError
from edgesnn.neurons.lif import (LIFParams, lif_init, lif_step, psi_rational, psi_triangle,
                                 readout_init, readout_step, ReadoutParams)
from edgesnn.rules.stllr import (DenseParams, Factors, conv2d, conv2d_grad_input, conv2d_grad_weight,
                                 dense_forward, dense_grads, dense_init, run_dense, standardize,
                                 standardize_vjp)
from edgesnn.signals import (NetParams, ReadoutLayerParams, bp_signal, ce_error, cross_entropy,
                             dfa_signal, run_net, softmax)


def test_psi_shapes_and_values():
    d = np.array([[-2.0, -0.01, 0.0, 0.5]])
    assert np.allclose(psi_rational(d), 1 / (100 * np.abs(d) + 1) ** 2)
    assert np.allclose(psi_triangle(d), [[0.0, 0.3 * 0.99, 0.3, 0.15]])


def test_lif_soft_and_hard_reset():
    cur = np.array([[1.0, 0.2]])
    for reset, u_after in (("soft", [0.4, 0.2]), ("hard", [0.0, 0.2])):
        s, psi, stt = lif_step(cur, lif_init((1, 2)), LIFParams(beta=0.9, theta=0.6, reset=reset))
        assert s.tolist() == [[1.0, 0.0]]
        assert np.allclose(stt.u, [u_after])
        assert np.allclose(psi, psi_rational(cur - 0.6))
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


def test_online_steps_equal_sequence_driver():
    rng = np.random.default_rng(0)
    p = _dense(rng)
    T, B = 8, 2
    x = (rng.random((T, B, 6)) < 0.4).astype(float)
    g = rng.normal(size=(T, B, 4))
    mask = np.arange(T) >= 5
    res = run_dense(x, g, mask, p)
    st_ = dense_init(B, 6, 4)
    dW = np.zeros_like(p.W)
    for t in range(T):  # as a per-sample online engine would call it
        step, st_ = dense_forward(x[t], st_, p)
        if mask[t]:
            dW += dense_grads(g[t], step, p).dW
    assert np.allclose(dW, res.total.dW)
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
    W_out, B_fb = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    g_out, g_hid = bp_signal(err, W_out)
    assert np.allclose(g_out, num, atol=1e-8)          # g_out is dL/dlogits of the batch-mean loss
    assert np.allclose(g_hid, num @ W_out, atol=1e-8)
    assert np.allclose(dfa_signal(err, B_fb), err @ B_fb)  # no 1/B


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
