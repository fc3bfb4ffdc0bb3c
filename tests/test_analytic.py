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
    # LSG per window step (D = n = 4, groups of one): pool 4, z = B a (2*4), softmax 2,
    # B^T e (2*4), unpool 4 -> 26, all of them local
    assert ops.signal_macs == ops.local_signal_macs == 4 * 26
    assert ops.eligibility_macs == 4 * 78
    # D = 2: groups [0,2), [2,4): pool 4, z 2*2, softmax 2, back 2*2, unpool 4 -> 18
    assert analytic.tess_ops(spec, 0.5, 0.25, pooled={0: 2}).signal_macs == 4 * 18
    # D = 3 over 4 neurons: groups [0,2), [1,3), [2,4), 6 memberships: 6 + 6 + 2 + 6 + 6
    assert analytic.tess_ops(spec, 0.5, 0.25, pooled={0: 3}).signal_macs == 4 * 26
    assert analytic.tess_state_elements(spec) == 15 + 4
    # the basis in 2*C = 4 class passes per window step: generated, D - 1 = 3 phase adds
    # each; stored, D = 4 sign reads each; none under BP
    assert (ops.phase_adds, ops.basis_reads) == (4 * 4 * 3, 0)
    stored = analytic.tess_ops(spec, 0.5, 0.25, basis="stored")
    assert (stored.phase_adds, stored.basis_reads) == (0, 4 * 4 * 4)
    assert analytic.tess_ops(spec, 0.5, 0.25, pooled={0: 1}).phase_adds == 0
    assert analytic.stllr_ops(spec, 0.5, 0.25).phase_adds == 0
    with pytest.raises(ValueError, match="basis"):
        analytic.tess_ops(spec, 0.5, 0.25, basis="rom")
    assert analytic.tess_state_elements(spec, pooled={0: 2}) == 15 + 2
    # a TESS spec: stllr_ops counts its local signal; BP/DFA count none as local
    t = replace(spec, learning=replace(spec.learning, signal="tess"),
                layers=(replace(spec.layers[0], tess_groups=2), spec.layers[1]))
    assert analytic.stllr_ops(t, 0.5, 0.25) == analytic.tess_ops(t, 0.5, 0.25)
    assert analytic.stllr_ops(t, 0.5, 0.25).signal_macs == 4 * 18
    assert analytic.tess_state_elements(t) == 15 + 2
    assert analytic.stllr_ops(spec, 0.5, 0.25).local_signal_macs == 0


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
    assert e["total"] == pytest.approx(135.0)                  # nothing but the synops
    f = analytic.energy_pj(analytic.OpCounts(synops=100), plan, float32=True)
    # float32: fp32 add (0.9) + half a 64-bit read (10/2)
    assert f["synaptic"] == pytest.approx(100 * (0.9 + 10 / 2))


def test_stllr_multiplies_by_hand(spec):
    ops = analytic.stllr_ops(spec, 0.5, 0.25, decay="multiply")
    # leaks per step: 4 hidden + 2 readout (beta 0.9), 10 steps
    assert ops.membrane_multiplies == 60
    # trace decays per step: readout q (4, 0.9); hidden q, q_rec (lambda_pre 1) and h
    # (lambda_post 0.5) are shifts
    assert ops.trace_multiplies == 40
    # window step: c*q 4*(3+4) = 28, g*h and g*psi 2*4 (alpha 1), readout e*q 4*2 = 8
    assert ops.update_multiplies == 4 * 44
    assert ops.signal_multiplies == 4 * 8                    # e @ W_out
    assert ops.multiplies == 60 + 40 + 176 + 32
    shift = analytic.stllr_ops(spec, 0.5, 0.25, decay="shift")
    assert (shift.membrane_multiplies, shift.trace_multiplies) == (0, 0)
    assert shift.multiplies == 176 + 32
    alphas = replace(spec, learning=replace(spec.learning, alpha_post=0.3, alpha_pre=0.25))
    assert analytic.stllr_ops(alphas, 0.5, 0.25).update_multiplies == 4 * (44 + 4)
    dfa = replace(spec, learning=replace(spec.learning, signal="dfa"))
    assert analytic.stllr_ops(dfa, 0.5, 0.25).signal_multiplies == 0     # +-1/2: shifts
    stored = replace(dfa, learning=replace(dfa.learning, feedback="stored"))
    assert analytic.stllr_ops(stored, 0.5, 0.25).signal_multiplies == 4 * 8
    with pytest.raises(ValueError, match="decay"):
        analytic.stllr_ops(spec, 0.5, 0.25, decay="mul")


def test_tess_and_bptt_multiplies_by_hand(spec):
    # TESS basis +-1/D, scaled once per projected value: D = 4 shifts; D = 3 multiplies
    # C + D = 5 per step (its groups of 2 pool and unpool by shifts); groups of 3 multiply
    assert analytic.tess_ops(spec, 0.5, 0.25).signal_multiplies == 0
    assert analytic.tess_ops(spec, 0.5, 0.25, pooled={0: 3}).signal_multiplies == 4 * 5
    assert analytic.tess_ops(spec, 0.5, 0.25, pooled={0: 2}).signal_multiplies == 0
    assert analytic.tess_ops(spec, 0.5, 0.25, pooled={0: 1}).signal_multiplies == 0
    # 4 neurons in groups [0,2), [1,3), [2,4) are sizes 2; 3 over 5 ([0,2),[1,4),[3,5)) 2, 3, 2
    s5 = replace(spec, layers=(replace(spec.layers[0], size=5), spec.layers[1]))
    assert analytic.tess_ops(s5, 0.5, 0.25, pooled={0: 3}).signal_multiplies == 4 * (2 * 1 + 5)
    ops = analytic.bptt_ops(spec, 0.5, 0.25)
    # leaks forward and back (6 per step each); adjoint 16 + 8 + 4 per step; dW multiplies
    # spikes (adds)
    assert ops.membrane_multiplies == 120
    assert ops.signal_multiplies == 280
    assert ops.multiplies == 400 and ops.update_multiplies == 0
    assert analytic.bptt_ops(spec, 0.5, 0.25, decay="shift").multiplies == 280


def test_energy_charges_the_multiplies_at_their_width(spec):
    dev = parse_device(tomllib.loads(TINY_DEVICE.replace(
        "trace    = { signed = false, int_bits = 7, frac_bits = 9 }",
        "trace    = { signed = false, int_bits = 3, frac_bits = 5 }\n"
        "signal   = { signed = true,  int_bits = 3, frac_bits = 12 }")))
    plan = make_plan(spec, dev)
    # multiplies (conftest.ENERGY): trace u8 0.2, membrane and signal s16 0.8, update s32 3.1
    base = analytic.OpCounts(neuron_updates=10, trace_updates=10, eligibility_macs=30,
                             signal_macs=8)
    more = replace(base, multiplies=5 + 4 + 3 + 2, membrane_multiplies=5, trace_multiplies=4,
                   signal_multiplies=3)
    e0, e1 = analytic.energy_pj(base, plan), analytic.energy_pj(more, plan)
    assert e1["neuron"] - e0["neuron"] == pytest.approx(5 * 0.8)
    assert e1["trace"] - e0["trace"] == pytest.approx(4 * 0.2)
    assert e1["learning"] - e0["learning"] == pytest.approx(3 * 0.8 + 2 * 3.1)
    # without multiplies a MAC is an add (s32: 0.1): the a*x terms and biases cost no multiply
    macs = analytic.energy_pj(analytic.OpCounts(eligibility_macs=30), plan)
    assert macs["learning"] == pytest.approx(30 * 0.1)


def test_energy_of_a_tess_basis_by_hand(spec):
    """A generated basis: each phase add at ``[tess] phase_bits`` (16: int16, 0.05 pJ); a
    stored one: each sign read as its share of a word of the bank holding it (64-bit words
    of 2-bit signs: 1/32 of 10 pJ); neither in float32."""
    t = replace(spec, learning=replace(spec.learning, signal="tess"))
    dev = parse_device(tomllib.loads(TINY_DEVICE))
    plan = make_plan(t, dev)
    ops = analytic.OpCounts(phase_adds=100)
    assert analytic.energy_pj(ops, plan)["basis"] == pytest.approx(100 * 0.05)
    assert analytic.energy_pj(ops, plan, float32=True)["basis"] == 0
    stored = replace(dev, tess=replace(dev.tess, basis="stored"),
                     banks=tuple(replace(b, holds=(*b.holds, "feedback")) for b in dev.banks))
    plan_s = make_plan(t, stored)
    assert plan_s.placement("L0.basis").bank == "main"
    e = analytic.energy_pj(analytic.OpCounts(basis_reads=64), plan_s)
    assert e["basis"] == pytest.approx(64 * 10 / 32)
    assert e["total"] == pytest.approx(e["basis"])


def test_energy_of_delay_buffers_by_hand():
    """Each buffer access: a spike bit's share of a word of the bank holding ``L0.hist``,
    at the mean of its read and write energy; each slope read a LUT read; float32: 32-bit
    elements and no table."""
    from edgesnn.hw import load_device
    from edgesnn.spec import load_spec
    from conftest import EXAMPLES

    spec = load_spec(EXAMPLES / "timing_delays.toml")
    plan = make_plan(spec, load_device("cortex-m7"))
    bank = plan.device.bank(plan.placement("L0.hist").bank)
    ops = analytic.OpCounts(delay_buffer_ops=640, slope_lookups=10)
    mean = (bank.read_pj + bank.write_pj) / 2
    e = analytic.energy_pj(ops, plan)
    assert e["delay_buffers"] == pytest.approx(640 * mean / bank.word_bits
                                               + 10 * plan.device.energy.lut_read_pj)
    assert e["total"] == pytest.approx(e["delay_buffers"])
    f = analytic.energy_pj(ops, plan, float32=True)
    assert f["delay_buffers"] == pytest.approx(640 * mean / (bank.word_bits // 32))
