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

from edgesnn.core import FixedEngine
from edgesnn.core import rng as R
from edgesnn.hw import parse_device
from edgesnn.plan import make_plan
from edgesnn.reference import init_params
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


def _engine(T: int, device: str = DEVICE) -> FixedEngine:
    spec = parse_spec({
        "network": {"name": "hand", "inputs": 3, "time_steps": T},
        "layers": [{"kind": "dense", "size": 2, "beta": 0.9, "threshold": 0.5},
                   {"kind": "readout", "size": 2, "beta": 0.9, "trace_decay": 0.9}],
        "learning": {"window": 1, "lambda_pre": 1.0, "lambda_post": 0.5,
                     "learning_rate": 1.0, "surrogate": "triangle", "update": "per-step"}})
    eng = FixedEngine(make_plan(spec, parse_device(tomllib.loads(device))),
                      init_params(spec, 0), seed=0)
    st = eng.state()
    st["L0.W"][:] = 64                                     # 1.0 everywhere
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
                 "lfsr_draws"):
        assert c[name] == 0, name
    assert c["lut_lookups"] == 3 * 2
