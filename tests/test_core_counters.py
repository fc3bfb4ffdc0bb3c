"""Counters of the fixed engine against counts worked out by hand on tiny cases.

Network: 3 inputs -> 2 LIF neurons (dense, beta 0.9 -> shift leak 7/8,
threshold 0.5, soft reset) -> 2-class readout. Every input weight is 1.0, so
the spikes are known: an input spike lifts both membranes by 1.0.

Device: weights in a 32-bit bank (8-bit weights, 4 per word), everything else
in a 64-bit bank (16-bit state 4 per word, 32-bit currents 2 per word, spikes
64 per word). Deterministic rounding, so the counts do not depend on the random
words (one test makes the weights stochastic and counts the words).
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from edgesnn import cost
from edgesnn.core import FixedEngine
from edgesnn.core import rng as R
from edgesnn.hw import parse_device
from edgesnn.plan import make_plan
from edgesnn.counters import NAMES, update_multiplies
from edgesnn.reference import FloatEngine, init_params
from edgesnn.spec import parse_spec
from conftest import ENERGY

DEVICE = """
[device]
name = "hand"
clock_mhz = 100.0
decay = "shift"
accumulator_bits = 32
[[banks]]
name = "wts"
size_bytes = 4096
word_bits = 32
read_pj = 1.0
write_pj = 1.0
holds = ["weight"]
[[banks]]
name = "state"
size_bytes = 4096
word_bits = 64
read_pj = 1.0
write_pj = 1.0
[formats]
weight   = { signed = true,  int_bits = 1, frac_bits = 6 }
bias     = { signed = true,  int_bits = 3, frac_bits = 12 }
membrane = { signed = true,  int_bits = 3, frac_bits = 12 }
current  = { signed = true,  int_bits = 7, frac_bits = 24 }
trace    = { signed = false, int_bits = 7, frac_bits = 9 }
signal   = { signed = true,  int_bits = 3, frac_bits = 12 }
update   = { signed = true,  int_bits = 7, frac_bits = 24 }
""" + ENERGY + """
[luts]
psi_entries = 64
psi_bits = 8
exp_entries = 64
exp_bits = 16
"""


MULTIPLY = DEVICE.replace('decay = "shift"', 'decay = "multiply"')


def _spec(T: int, **learning):
    return parse_spec({
        "network": {"name": "hand", "inputs": 3, "time_steps": T},
        "layers": [{"kind": "dense", "size": 2, "beta": 0.9, "threshold": 0.5},
                   {"kind": "readout", "size": 2, "beta": 0.9, "trace_decay": 0.9}],
        "learning": {"window": 1, "lambda_pre": 1.0, "lambda_post": 0.5,
                     "learning_rate": 1.0, "surrogate": "triangle", "update": "per-step",
                     **learning}})


def _engine(T: int, device: str = DEVICE, weight: int = 64, **learning) -> FixedEngine:
    """The hand network; every input weight ``weight`` (codes of 2**-6), ``learning``
    overrides the learning table."""
    spec = _spec(T, **learning)
    eng = FixedEngine(make_plan(spec, parse_device(tomllib.loads(device))),
                      init_params(spec, 0), seed=0)
    st = eng.state()
    st["L0.W"][:] = weight                                 # 1.0 everywhere by default
    st["out.W"][:] = np.array([[32, -32], [-16, 16]])      # rows = hidden neurons
    st["L0.b"][:] = 0
    st["out.b"][:] = 0
    eng.load_state(st)
    return eng


def _changed_rows(before: np.ndarray, after: np.ndarray) -> int:
    """Rows (inputs) of an input-major matrix with a changed weight (here 1 word each)."""
    return int(np.count_nonzero((before != after).any(axis=1)))


def test_counts_of_a_three_step_sample_by_hand():
    """Inputs: t0 {0}, t1 {}, t2 {0, 1}; the window is t2.

    Membrane: t0 v = 1.0 (spike, u = 0.5), t1 v = 0.4375 (none), t2 v = 2.38
    (spike): the hidden layer spikes twice at t0 and twice at t2. psi(t2) = 0
    (|v - theta| > 1), h[t1] != 0: at t2 both neurons have a != 0, c = 0.
    """
    eng = _engine(3)
    x = np.zeros((3, 3), dtype=np.uint8)
    x[0, 0] = 1
    x[2, [0, 1]] = 1
    before = eng.state()
    r = eng.run_sample(x, label=0)
    after = eng.state()
    c = eng.last_counters
    assert list(r.spikes) == [4]
    assert c["synops"] == 3 * 2 + 4 * 2                   # input events x 2, hidden spikes x 2
    assert c["neuron_updates"] == 3 * (2 + 2)
    assert c["trace_updates"] == 3 * (3 + 2 + 2)          # q (3 inputs), h (2), readout q (2)
    assert c["lut_lookups"] == 3 * 2 + 2                  # psi per neuron-step, exp per class
    assert c["signal_macs"] == 2 * 2                      # g = e W_out^T: 2 neurons x 2 classes
    # hidden: a for 2 neurons, rows j=0,1 (x=1) x 2 neurons; readout: 2 biases, 2 rows x 2
    assert c["eligibility_macs"] == 2 + 4 + 2 + 4
    assert c["rows_skipped"] == 0
    assert c["lfsr_draws"] == 0
    # multiplies: g = e W_out^T (4, signal width); g*h for the 2 neurons (alpha 1: no
    # scaling); no c*q (c = 0); the readout's e*q for 2 classes x 2 nonzero q_out (4). The
    # a*x terms of rows 0, 1 and the biases are adds; the shift leaks are no multiplies.
    assert c["multiplies"] == 4 + 2 + 4
    assert (c["membrane_multiplies"], c["trace_multiplies"]) == (0, 0)
    assert c["signal_multiplies"] == 4 and c["update_multiplies"] == 6
    changed = sum(int(np.count_nonzero(before[k] != after[k]))
                  for k in ("L0.W", "L0.b", "out.W", "out.b"))
    assert changed == 2 * 2 + 2 * 2 + 2                    # learning rate 1: all move
    assert c["weight_writes"] == changed
    # SRAM words. Forward, every step, 64-bit bank: reads input, u, i, b, q, L0.s, out.u,
    # out.i, out.b, out.q, psi, h (12); writes input, u, i, s, psi, q, out.u, out.i, out.q,
    # h (10). Each of the 7 events reads a weight row (1 word, 32-bit bank) and
    # read-modify-writes the 2 currents (1 word).
    # Learning at t2: reads e, g, psi, h, q, out.q, out.b (7); writes e, g, out.b (3);
    # weight words: W_out for g (1), 2 rows of W, 2 rows of W_out (5 reads).
    # A learning row reads its words and writes back those holding a changed weight, row by
    # row: rows 0 and 1 of W (elements 0-3) share one 32-bit word, read and written twice.
    assert c.sram_reads == {"wts": 7 + 5, "state": 3 * 12 + 7 + 7}
    rows_changed = sum(_changed_rows(before[k], after[k]) for k in ("L0.W", "out.W"))
    assert rows_changed == 4
    assert c.sram_writes == {"wts": rows_changed, "state": 3 * 10 + 7 + 3}
    assert all(v == 0 for v in c.saturations.values())


def _three_step_sample() -> np.ndarray:
    x = np.zeros((3, 3), dtype=np.uint8)
    x[0, 0] = 1
    x[2, [0, 1]] = 1
    return x


def test_multiplying_leaks_are_counted_per_neuron_and_trace():
    """The three-step sample on a ``decay = "multiply"`` device: the spikes, signals and
    factors are those of the shift device (beta 0.9 instead of 7/8 changes no sign), plus
    per step the leaks of 2 hidden and 2 readout membranes (beta 0.9) and the readout's
    2 presynaptic traces (0.9). lambda_pre = 1 (code 1) and lambda_post = 0.5 (2**15) are
    shifts: the hidden q and h count none."""
    eng = _engine(3, MULTIPLY)
    r = eng.run_sample(_three_step_sample(), label=0)
    c = eng.last_counters
    assert list(r.spikes) == [4]
    assert c["membrane_multiplies"] == 3 * (2 + 2)
    assert c["trace_multiplies"] == 3 * 2
    assert c["signal_multiplies"] == 4 and c["update_multiplies"] == 6
    assert c["multiplies"] == 12 + 6 + 4 + 6


def _psi_sample() -> np.ndarray:
    """Weights 0.25: t0 all inputs (v = 0.75, spikes, psi > 0), t1 input 0 (v ~ 0.47:
    psi > 0, h[t0] > 0, every q > 0): every factor and trace of the window is nonzero."""
    x = np.zeros((2, 3), dtype=np.uint8)
    x[0, :] = 1
    x[1, 0] = 1
    return x


@pytest.mark.parametrize("alpha,scalings", [(1.0, 0), (0.5, 0), (0.75, 4), (-2.0, 0),
                                            (1.5, 4)])
def test_alpha_scalings_multiply_unless_a_power_of_two(alpha, scalings):
    """Window t1 of ``_psi_sample``: signal 2 neurons x 2 classes; factors g*h and g*psi
    for 2 neurons; c*q for 2 neurons x 3 inputs; readout e*q 2 x 2 (q_out = 0.9 after the
    t0 spikes). alpha = 1 is skipped; alpha = 0.5 or -2 is a shift; 0.75 or 1.5 adds one
    multiply per factor (a and c) per neuron."""
    eng = _engine(2, weight=16, alpha_post=alpha, alpha_pre=alpha)
    r = eng.run_sample(_psi_sample(), label=1)
    c = eng.last_counters
    assert list(r.spikes) == [2]
    assert c["rows_skipped"] == 0
    assert c["signal_multiplies"] == 4
    assert c["update_multiplies"] == 2 * 2 + scalings + 2 * 3 + 2 * 2
    assert c["multiplies"] == 4 + 14 + scalings


@pytest.mark.parametrize("signal,feedback,products", [("bp", "regenerated", 4),
                                                      ("dfa", "stored", 4),
                                                      ("dfa", "regenerated", 0)])
def test_signal_products(signal, feedback, products):
    """4 signal MACs each way; a regenerated DFA entry is +-2**-k (a sign and a shift)."""
    eng = _engine(2, weight=16, signal=signal, feedback=feedback)
    eng.run_sample(_psi_sample(), label=1)
    c = eng.last_counters
    assert c["signal_macs"] == 4
    assert c["signal_multiplies"] == products


@pytest.mark.parametrize("device", [DEVICE, MULTIPLY])
def test_both_engines_count_the_same_multiplies_where_every_product_happens(device):
    """On ``_psi_sample`` every factor and trace of the window is nonzero, so the fixed
    engine's event-driven products are the float engine's dense ones (alpha 0.75: the
    scalings too). The leaks agree on a multiplying device; on a shift device the fixed
    engine has none and the float engine (which has no shift decay) the same as there."""
    spec = _spec(2, alpha_post=0.75, alpha_pre=0.75)
    fixed = _engine(2, device, weight=16, alpha_post=0.75, alpha_pre=0.75)
    fixed.run_sample(_psi_sample(), label=1)
    c = fixed.last_counters
    ev = FloatEngine(spec, init_params(spec, 0)).run_sample(_psi_sample(), label=1).events
    fl = dict(zip(NAMES, ev))
    for name in ("signal_multiplies", "signal_macs"):
        assert c[name] == fl[name], name
    # the MACs still differ: the float count includes a*x of the rows with x = 0 (2 x 2)
    assert fl["eligibility_macs"] - c["eligibility_macs"] == 4
    assert c["update_multiplies"] == update_multiplies(fl) == 18
    assert fl["membrane_multiplies"] == 2 * 4 and fl["trace_multiplies"] == 2 * 2
    if device == MULTIPLY:
        assert c["multiplies"] == fl["multiplies"] == 4 + 18 + 8 + 4
        assert c["membrane_multiplies"] == 8 and c["trace_multiplies"] == 4
    else:
        assert c["membrane_multiplies"] == c["trace_multiplies"] == 0
        assert fl["multiplies"] - c["multiplies"] == 8 + 4


def test_energy_of_the_hand_sample_charges_the_counted_multiplies():
    """``cost.energy_pj`` on the counters of the three-step sample (multiplying device):
    each MAC an add, each multiply at its width (all formats here are 16 or 32 bits)."""
    eng = _engine(3, MULTIPLY)
    eng.run_sample(_three_step_sample(), label=0)
    c = eng.last_counters
    plan = make_plan(_spec(3), parse_device(tomllib.loads(MULTIPLY)))
    e = cost.energy_pj(c, plan)
    add16, add32, mul16, mul32 = 0.05, 0.1, 0.8, 3.1
    # membrane 16 bit: 12 updates x 3 adds, 12 leaks; trace 16 bit: 21 adds, 6 decays
    assert e["neuron"] == pytest.approx(12 * 3 * add16 + 12 * mul16)
    assert e["trace"] == pytest.approx(21 * add16 + 6 * mul16)
    # update 32 bit: 12 MACs, 6 multiplies; signal 16 bit: 4 MACs, 4 multiplies
    assert e["learning"] == pytest.approx(12 * add32 + 6 * mul32 + 4 * add16 + 4 * mul16)
    # the old inference charged a multiply per MAC and per update: more than counted


def test_a_stochastic_weight_format_takes_one_word_per_visited_synapse():
    """The sample of the test above with stochastically rounded weights: the 4 hidden
    synapses of rows 0, 1 and the 4 readout synapses of the window step each take one
    32-bit word (rounded by 15 bits); the biases round by 0 bits (exact, no word)."""
    weight = "weight   = { signed = true,  int_bits = 1, frac_bits = 6 }"
    eng = _engine(3, DEVICE.replace(weight, weight[:-2] + ', rounding = "stochastic" }'))
    assert eng.fmt["weight"].rounding == "stochastic"
    x = np.zeros((3, 3), dtype=np.uint8)
    x[0, 0] = 1
    x[2, [0, 1]] = 1
    words = eng.state()["rng"]
    eng.run_sample(x, label=0)
    assert eng.last_counters["lfsr_draws"] == 4 + 4
    assert R.reference_words(eng.state()["rng"], 1) == R.reference_words(words, 9)[8:]


def test_rows_with_zero_factors_are_skipped_and_not_counted():
    """One step, all three inputs spike: v = 3.0, psi = 0, h_prev = 0: a = c = 0 for both
    neurons, whose rows are skipped; the readout still learns."""
    eng = _engine(1)
    before = eng.state()
    r = eng.run_sample(np.ones((1, 3), dtype=np.uint8), label=1)
    after = eng.state()
    c = eng.last_counters
    assert list(r.spikes) == [2]
    assert c["rows_skipped"] == 2
    assert c["eligibility_macs"] == 2 + 2 * 2             # readout biases and 2 rows x 2
    assert c["signal_macs"] == 4
    assert np.array_equal(before["L0.W"], after["L0.W"])
    assert np.array_equal(before["L0.b"], after["L0.b"])
    assert not np.array_equal(before["out.W"], after["out.W"])
    # weight words: 3 input rows, 2 readout rows, W_out for g, 2 readout learning rows
    assert c.sram_reads["wts"] == 3 + 2 + 1 + 2


def test_inference_counts_no_learning_work():
    eng = _engine(3)
    x = np.zeros((3, 3), dtype=np.uint8)
    x[0, 0] = 1
    eng.run_sample(x, label=0, learn=False)
    c = eng.last_counters
    for name in ("eligibility_macs", "signal_macs", "weight_writes", "rows_skipped",
                 "lfsr_draws", "multiplies"):
        assert c[name] == 0, name
    assert c["lut_lookups"] == 3 * 2


def test_inference_multiplies_are_the_leaks():
    eng = _engine(3, MULTIPLY)
    x = np.zeros((3, 3), dtype=np.uint8)
    x[0, 0] = 1
    eng.run_sample(x, label=0, learn=False)
    c = eng.last_counters
    assert c["multiplies"] == c["membrane_multiplies"] + c["trace_multiplies"] == 3 * 4 + 3 * 2
    assert c["signal_multiplies"] == c["update_multiplies"] == 0
