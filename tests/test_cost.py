"""Cycle and energy model on hand-made counters of a tiny device."""

from __future__ import annotations

import tomllib

import pytest

from edgesnn import cost
from edgesnn.counters import INDEX, Counters
from edgesnn.hw import parse_device
from edgesnn.plan import make_plan
from edgesnn.spec import parse_spec
from conftest import TINY_DEVICE, TINY_SPEC


#: the tiny device with multiplying leaks, an 8-bit trace and a 16-bit signal: a multiply
#: costs a different energy at each of the membrane, trace, signal and update widths
MULTIPLY_TRACE8 = TINY_DEVICE.replace('decay = "shift"', 'decay = "multiply"').replace(
    "trace    = { signed = false, int_bits = 7, frac_bits = 9 }",
    "trace    = { signed = false, int_bits = 3, frac_bits = 5 }\n"
    "signal   = { signed = true,  int_bits = 3, frac_bits = 12 }")
assert MULTIPLY_TRACE8.count("frac_bits = 5") == 1


def _counters(**events) -> Counters:
    c = Counters()
    for k, v in events.items():
        c.events[INDEX[k]] = v
    return c


@pytest.fixture
def plan():
    return make_plan(parse_spec(tomllib.loads(TINY_SPEC)), parse_device(tomllib.loads(TINY_DEVICE)))


def test_cycles_by_hand(plan):
    # tiny device: 2 synaptic accumulators, 1 MAC, 1 neuron unit, 1 LFSR; one bank, 1 port
    c = _counters(synops=101, neuron_updates=60, trace_updates=150, eligibility_macs=300,
                  signal_macs=32, weight_writes=41, lfsr_draws=0)
    c.sram_reads["main"], c.sram_writes["main"] = 500, 100
    r = cost.cycles(c, plan.device, steps=10)
    assert r.phases == {"input_events": 51, "neuron_update": 60, "traces": 150, "learning": 332,
                        "weight_update": 21, "random": 0, "basis": 0}
    # five active phases, 2 cycles each per step, 10 steps
    assert r.compute_cycles == 51 + 60 + 150 + 332 + 21 + 5 * 2 * 10
    assert r.memory_cycles == 600
    assert r.cycles == 714 and r.bound == "compute"
    assert r.latency_us == pytest.approx(714 / 100.0)        # 100 MHz


def test_memory_bound_when_a_bank_is_busier(plan):
    c = _counters(synops=10)
    c.sram_reads["main"] = 5000
    r = cost.cycles(c, plan.device, steps=1)
    assert r.cycles == 5000 and r.bound == "memory: main"


def test_energy_by_hand(plan):
    c = _counters(synops=100, neuron_updates=10, trace_updates=7, lut_lookups=10,
                  lfsr_draws=4)
    c.sram_reads["main"], c.sram_writes["main"] = 20, 5
    e = cost.energy_pj(c, plan)
    assert e["synaptic"] == pytest.approx(100 * 0.1)              # int32 current add
    # shift decay (an int16 add) + 3 int16 adds at the 16-bit membrane
    assert e["neuron"] == pytest.approx(10 * 4 * 0.05)
    # a trace update: shift decay and the add of x, both at the trace's width (u16: 0.05)
    assert e["trace"] == pytest.approx(7 * 2 * 0.05)
    assert e["lut"] == pytest.approx(10 * 1.0) and e["lfsr"] == pytest.approx(0.4)
    assert e["sram"] == pytest.approx(20 * 10.0 + 5 * 12.0)
    assert e["learning"] == 0.0 and e["weight_update"] == 0.0
    assert e["total"] == pytest.approx(10.0 + 2.0 + 0.7 + 10.0 + 0.4 + 260.0)


def test_a_multiplying_leak_charges_the_counted_multiplies():
    """A multiplying device: the updates are charged their adds, the leaks as counted (a
    decay of 1 or 0.5 is no multiply, so fewer leaks than updates). Membrane s16: add
    0.05, multiply 0.8 pJ; trace u8: add 0.03, multiply 0.2 pJ (conftest.ENERGY)."""
    dev = parse_device(tomllib.loads(MULTIPLY_TRACE8))
    plan = make_plan(parse_spec(tomllib.loads(TINY_SPEC)), dev)
    e = cost.energy_pj(_counters(neuron_updates=10, trace_updates=7, multiplies=14,
                                 membrane_multiplies=8, trace_multiplies=6), plan)
    assert e["neuron"] == pytest.approx(8 * 0.8 + 10 * 3 * 0.05)
    assert e["trace"] == pytest.approx(6 * 0.2 + 7 * 0.03)
    assert e["learning"] == 0.0


def test_learning_charges_an_add_per_mac_and_the_multiplies_at_their_width():
    """30 eligibility MACs of which 12 multiplied (the rest a*x or bias adds), 8 signal MACs
    of which 8 multiplied; 20 leaks at the membrane width, 4 decays at the trace width.
    Update s32: add 0.1, multiply 3.1 pJ; signal and membrane s16: 0.05, 0.8; trace u8:
    multiply 0.2."""
    c = _counters(eligibility_macs=30, signal_macs=8, multiplies=12 + 8 + 20 + 4,
                  signal_multiplies=8, membrane_multiplies=20, trace_multiplies=4)
    assert c["update_multiplies"] == 12
    plan = make_plan(parse_spec(tomllib.loads(TINY_SPEC)),
                     parse_device(tomllib.loads(MULTIPLY_TRACE8)))
    e = cost.energy_pj(c, plan)
    assert e["learning"] == pytest.approx(30 * 0.1 + 12 * 3.1 + 8 * 0.05 + 8 * 0.8)
    assert e["neuron"] == pytest.approx(20 * 0.8)
    assert e["trace"] == pytest.approx(4 * 0.2)
    f = cost.energy_pj(c, plan, float_reference=True)
    assert f["learning"] == pytest.approx(38 * 0.9 + 20 * 3.7)      # fp32 adds and multiplies
    assert f["neuron"] == pytest.approx(20 * 3.7)


def test_float_reference_costs_fp32_ops_and_32_bit_accesses(plan):
    c = _counters(synops=100)
    e = cost.energy_pj(c, plan, float_reference=True)
    assert e["synaptic"] == pytest.approx(100 * 0.9)
    # each synop reads one 32-bit weight: half a 64-bit word at 10 pJ
    assert e["sram"] == pytest.approx(100 * 10.0 / 2)


def test_per_sample_division(plan):
    c = _counters(synops=200)
    assert cost.energy_pj(c, plan, samples=2)["synaptic"] == pytest.approx(100 * 0.1)
    assert cost.cycles(c, plan.device, steps=10, samples=2).phases["input_events"] == 50


def test_slope_reads_are_lut_reads_and_float_buffer_accesses_32_bit_reads(plan):
    """Fixed point: each slope-table read a LUT read (1 pJ on the tiny device), the buffer
    accesses in the counted SRAM words; float reference: each buffer access one 32-bit
    element read (half a 64-bit word at 10 pJ), the table free."""
    c = _counters(slope_lookups=6, delay_buffer_ops=40)
    assert cost.energy_pj(c, plan)["lut"] == pytest.approx(6 * 1.0)
    f = cost.energy_pj(c, plan, float_reference=True)
    assert f["lut"] == 0.0 and f["sram"] == pytest.approx(40 * 10.0 / 2)
