"""Analytic counts against the papers' formulas, worked by hand on a tiny network.

Network (tests/conftest.py TINY_SPEC): 3 inputs -> 4 recurrent LIF -> 2 readout,
T = 10, window Tl = 4, rates: inputs 0.5, hidden 0.25 spikes per step.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest

from edgesnn import analytic
from edgesnn.hw import parse_device
from edgesnn.plan import make_plan
from edgesnn.spec import parse_spec
from conftest import TINY_DEVICE, TINY_SPEC


@pytest.fixture
def spec():
    return parse_spec(tomllib.loads(TINY_SPEC))


def test_forward_counts_by_hand(spec):
    ops = analytic.forward_ops(spec, 0.5, 0.25)
    # per step: inputs 0.5*3*4 = 6, recurrence 0.25*4*4 = 4, readout 0.25*4*2 = 2 -> 12
    assert ops.synops == 120
    # 4 hidden + 2 readout neurons, 10 steps
    assert ops.neuron_updates == 60


def test_stllr_counts_by_hand(spec):
    ops = analytic.stllr_ops(spec, 0.5, 0.25)
    # traces per step: q 3 + h 4 + q_rec 4 (hidden) + q 4 (readout) = 15, 10 steps
    assert ops.trace_updates == 150
    # window step: hidden 4*(3+4) = 28 synapses x 2 MACs + 2 factors x 4 + 4 bias = 68;
    # readout 4*2 + 2 = 10; 4 window steps
    assert ops.eligibility_macs == 4 * 78
    # BP signal e @ W_out: 2*4 per window step
    assert ops.signal_macs == 4 * 8
    assert ops.learning_macs == 344
    # parameters 3*4 + 4*4 + 4 + 4*2 + 2 = 42, rewritten every window step
    assert ops.weight_writes == 4 * 42


def test_per_sample_update_writes_each_parameter_once(spec):
    s = replace(spec, learning=replace(spec.learning, update="per-sample"))
    assert analytic.stllr_ops(s, 0.5, 0.25).weight_writes == 42


def test_tess_counts_by_hand(spec):
    ops = analytic.tess_ops(spec, 0.5, 0.25)
    # LSG per window step: z = B a (2*4) and B^T e (2*4), spread to 4 neurons -> 20
    assert ops.signal_macs == 4 * 20
    assert ops.eligibility_macs == 4 * 78
    assert analytic.tess_state_elements(spec) == 15 + 4
    assert analytic.tess_state_elements(spec, pooled={0: 2}) == 15 + 2


def test_bptt_counts_by_hand(spec):
    ops = analytic.bptt_ops(spec, 0.5, 0.25)
    # weight gradients every step: hidden 12 + 16 + 4, readout 8 + 2 = 42
    assert ops.eligibility_macs == 10 * 42
    # adjoint per step: through recurrence 16 + surrogate 4; readout down to hidden 2*4 = 8
    assert ops.signal_macs == 10 * 28
    assert ops.weight_writes == 42


def test_state_elements_stllr_constant_bptt_linear(spec):
    assert analytic.stllr_state_elements(spec) == 15
    # per step: hidden x 3 + u 4 + s 4, readout x 4 + u 2 = 17
    assert analytic.bptt_state_elements(spec) == 170
    for T in (10, 100, 1000):
        s = replace(spec, time_steps=T)
        assert analytic.stllr_state_elements(s) == 15
        assert analytic.bptt_state_elements(s) == 17 * T


def test_energy_of_synaptic_ops_by_hand(spec):
    dev = parse_device(tomllib.loads(TINY_DEVICE))
    plan = make_plan(spec, dev)
    e = analytic.energy_pj(analytic.OpCounts(synops=100), plan)
    # one synop: int32 add of the current (0.1 pJ) + one eighth of a 64-bit read (10/8 pJ)
    assert e["synaptic"] == pytest.approx(100 * (0.1 + 10 / 8))
    assert e["total"] == pytest.approx(e["synaptic"])
    f = analytic.energy_pj(analytic.OpCounts(synops=100), plan, float32=True)
    # float32: fp32 add (0.9) + half a 64-bit read (10/2)
    assert f["synaptic"] == pytest.approx(100 * (0.9 + 10 / 2))
