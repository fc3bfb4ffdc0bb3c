"""The fixed engine's delays against the float engine (issue 16, "Done when").

With wide formats (tests/test_core_engine.py's WIDE device, delays in Q6.16 with
nearest-even rounding, a 32-bit slope table) the fixed engine's integer delays, ring
buffers and table-driven eligibility give the float engine's spikes exactly and its
learned delays and weights to within the formats' resolution, over samples in which a
delay crosses a rounding boundary and delays sit at 0 and at ``max_delay``. A sparse
layer's masked synapses stay 0 and are neither visited nor counted; the numba kernels
and their pure-Python definitions give the same bits on a delay spec.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from edgesnn import counters as C
from edgesnn.core import FixedEngine
from edgesnn.core import layout as LY
from edgesnn.core.arith import Fmt
from edgesnn.core import delays as DK
from edgesnn.core.delays import eligibility_axonal, eligibility_by_input
from edgesnn.fixed import FLOOR, NEAREST_AWAY, NEAREST_EVEN, SATURATE, WRAP, overflow, shift_round
from edgesnn.hw import load_device, parse_device
from edgesnn.plan import make_plan
from edgesnn.reference import FloatEngine, init_params
from edgesnn.rules import delays as DL
from edgesnn.spec import load_spec
from conftest import EXAMPLES
from test_core_engine import WIDE, _digest

ROOT = Path(__file__).parents[1]
N_IN, N, T, MAX_DELAY = 8, 6, 20, 6

#: WIDE plus a delay format (6 integer bits hold 0..62, 16 fractional bits learn), a
#: 32-bit slope table and the Loihi-class largest delay
WIDE_DELAYS = WIDE.replace("[luts]", "[luts]\nslope_bits = 32").replace(
    "update   =",
    'delay    = { signed = false, int_bits = 6, frac_bits = 16, rounding = "nearest-even" }\n'
    "update   =") + "\n[limits]\nmax_delay = 62\n"

#: axonal initial delays: 0 and max_delay (clipped ends), 4.55 and 0.45 a step from a
#: rounding boundary, the rest inside a step
AXONAL_INIT = [0.0, 6.0, 2.3, 1.1, 4.55, 3.7, 5.2, 0.45]


def _synaptic_init() -> list:
    d = np.random.default_rng(0).uniform(0.1, 5.9, (N, N_IN)).round(1) + 0.02
    d[0, :3] = [0.0, 6.0, 4.55]
    return d.tolist()


def _spec(mode: str, init, *more: str):
    return load_spec(EXAMPLES / "timing_delays.toml", [
        f"layers.0.delays={mode}", f"layers.0.max_delay={MAX_DELAY}", f"layers.0.size={N}",
        f"network.time_steps={T}", f"learning.window={T}", f"layers.0.delay_init={init}",
        "layers.0.delay_lr=1", *more])


def _inputs(k: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((T, N_IN)) < 0.3).astype(np.uint8) for _ in range(k)]


@pytest.mark.parametrize("mode,kind", [("axonal", "dense"), ("synaptic", "dense"),
                                       ("axonal", "recurrent"), ("synaptic", "recurrent"),
                                       ("axonal", "sparse"), ("synaptic", "sparse")])
@pytest.mark.uncompiled
def test_fixed_delays_match_the_float_engine_with_wide_formats(mode, kind):
    """Spikes equal on every sample; delays within 1e-4 steps, weights within 1e-5 (the
    Q6.16 delay step is 1.5e-5, each update rounds once); a delay crosses a rounding
    boundary (its integer delay changes, and the spikes still agree afterwards); delays at
    0 and at max_delay stay in range. A recurrent layer's own connections keep their
    one-step delay. A sparse layer (half its synapses kept) learns its kept synapses' delays
    and weights only."""
    spec = _spec(mode, AXONAL_INIT if mode == "axonal" else _synaptic_init(),
                 *(["layers.0.connectivity=0.5"] if kind == "sparse" else
                   [f"layers.0.kind={kind}"]))
    params = init_params(spec, 3)
    fl = FloatEngine(spec, params.copy())
    fx = FixedEngine(make_plan(spec, parse_device(tomllib.loads(WIDE_DELAYS))),
                     params.copy(), 3)
    D0 = DL.integer_delays(params.d[0], MAX_DELAY)
    crossed = 0
    for k, x in enumerate(_inputs(6)):
        a, b = fl.trace(x, k % 4), fx.trace(x, k % 4)
        assert a["L0.s"].sum() > 0
        assert np.array_equal(a["L0.s"], b["L0.s"]), f"sample {k}: spikes differ"
        got = fx.float_params()
        assert np.max(np.abs(got.d[0] - fl.params.d[0])) < 1e-4, f"sample {k}: delays"
        assert np.max(np.abs(got.W[0] - fl.params.W[0])) < 1e-5, f"sample {k}: weights"
        assert np.max(np.abs(got.W_out - fl.params.W_out)) < 1e-5, f"sample {k}: readout"
        if kind == "recurrent":
            assert np.max(np.abs(got.W_rec[0] - fl.params.W_rec[0])) < 1e-5, f"sample {k}"
        if kind == "sparse":
            assert np.all(got.W[0][params.M[0] == 0] == 0), f"sample {k}: a masked weight"
        crossed = max(crossed, int(np.sum(DL.integer_delays(fl.params.d[0], MAX_DELAY) != D0)))
    assert crossed >= 1, "no delay crossed a rounding boundary: the test lost its point"
    d = fx.float_params().d[0]
    assert d.min() >= 0 and d.max() <= MAX_DELAY
    assert np.max(np.abs(d - params.d[0])) > 0.05                  # the delays learned


@pytest.mark.parametrize("mode", ["axonal", "synaptic"])
@pytest.mark.uncompiled
def test_fixed_buffer_work_is_the_float_count(mode):
    """The fixed engine accesses its buffers and accumulates as the float engine counts them
    and reads the slope table only at taps holding a spike: at most the float engine's
    every-tap count."""
    spec = _spec(mode, AXONAL_INIT if mode == "axonal" else _synaptic_init())
    params = init_params(spec, 3)
    fl = FloatEngine(spec, params.copy())
    fx = FixedEngine(make_plan(spec, parse_device(tomllib.loads(WIDE_DELAYS))),
                     params.copy(), 3)
    x = _inputs(1, seed=5)[0]
    a, b = fl.run_sample(x, 1).events, fx.run_sample(x, 1).events
    assert b[C.DELAY_BUFFER_OPS] == a[C.DELAY_BUFFER_OPS] > 0
    assert b[C.SYNOPS] == a[C.SYNOPS] > 0     # synaptic: counted when a spike is scheduled
    assert 0 < b[C.SLOPE_LOOKUPS] < a[C.SLOPE_LOOKUPS]


def test_sparse_layer_keeps_masked_weights_at_zero_and_counts_kept_synapses():
    """connectivity 0.25 on cortex-m7: 2 of 8 inputs per neuron. After learning, every
    masked weight is still 0; a sample with every input spiking once costs 16 x 2 hidden
    synaptic accumulates, as in the float engine."""
    spec = load_spec(EXAMPLES / "timing_weights.toml", ["layers.0.connectivity=0.25"])
    params = init_params(spec, 0)
    fx = FixedEngine(make_plan(spec, load_device("cortex-m7")), params, 0)
    rng = np.random.default_rng(2)
    for k in range(4):
        fx.run_sample((rng.random((spec.time_steps, 8)) < 0.3).astype(np.uint8), k % 4)
    W = fx.float_params().W[0]
    M = params.M[0].astype(bool)
    assert np.all(W[~M] == 0) and np.count_nonzero(W[M]) > 0.9 * M.sum()
    x = np.zeros((spec.time_steps, 8), np.uint8)
    x[0, :] = 1
    r = fx.run_sample(x, 0, learn=False)
    hidden = r.events[C.SYNOPS] - int(r.spikes[0]) * spec.classes
    assert hidden == 16 * 2


TWO_SPARSE = """
[network]
name = "two_sparse"
inputs = 8
time_steps = 32

[[layers]]
kind = "dense"
size = 16
neuron = "lif"
beta = 0.5
threshold = 1.0
reset = "soft"
connectivity = 0.25

[[layers]]
kind = "dense"
size = 12
neuron = "lif"
beta = 0.5
threshold = 1.0
reset = "soft"
connectivity = 0.5

[[layers]]
kind = "readout"
size = 4
beta = 0.9
trace_decay = 0.9

[learning]
rule = "stllr"
signal = "bp"
window = 32
lambda_pre = 0.5
lambda_post = 0.5
alpha_pre = 1.0
alpha_post = 1.0
learning_rate = 0.0078125
update = "per-step"          # the WIDE per-sample accumulators saturate over 32 steps
init_scale = 2.0
surrogate = "triangle"
"""


@pytest.mark.uncompiled
def test_two_sparse_layers_keep_their_own_masks(tmp_path):
    """Two sparse layers: each visits its own kept synapses (the second layer's index lists
    follow the first's). With wide formats the fixed engine's spikes and synaptic operation
    count equal the float engine's on every sample, and after learning every masked weight
    of both layers is still 0."""
    path = tmp_path / "two_sparse.toml"
    path.write_text(TWO_SPARSE)
    spec = load_spec(path)
    params = init_params(spec, 0)
    fl = FloatEngine(spec, params.copy())
    fx = FixedEngine(make_plan(spec, parse_device(tomllib.loads(WIDE_DELAYS))),
                     params.copy(), 0)
    rng = np.random.default_rng(2)
    for k in range(4):
        x = (rng.random((spec.time_steps, 8)) < 0.3).astype(np.uint8)
        a, b = fl.run_sample(x, k % 4), fx.run_sample(x, k % 4)
        assert np.array_equal(a.spikes, b.spikes) and a.spikes[1] > 0, f"sample {k}"
        assert a.events[C.SYNOPS] == b.events[C.SYNOPS], f"sample {k}"
    got = fx.float_params()
    for l in range(2):
        M = params.M[l].astype(bool)
        assert np.all(got.W[l][~M] == 0), f"layer {l}: a masked weight learned"
        assert np.max(np.abs(got.W[l] - fl.params.W[l])) < 1e-5, f"layer {l}"


def test_sparse_synaptic_state_is_one_entry_per_kept_synapse():
    """A sparse synaptic layer keeps its delays, eligibilities and delay accumulators for its
    kept synapses only: the end-of-sample delay update reads and writes one accumulator per
    kept synapse (not one per input-neuron pair), and state() still shows every pair (a
    masked one its initial delay), which load_state takes back."""
    spec = _spec("synaptic", _synaptic_init(), "layers.0.connectivity=0.4")
    params = init_params(spec, 1)
    eng = FixedEngine(make_plan(spec, load_device("cortex-m7")), params, 1)
    kept = int(params.M[0].sum())
    assert 0 < kept < N * N_IN and eng.st.d.size == eng.buf.eps.size == kept
    before = eng.state()["L0.d"].copy()
    for k, x in enumerate(_inputs(3, seed=4)):
        eng.run_sample(x, k % 4)
    after = eng.state()["L0.d"]
    masked = ~params.M[0].T.astype(bool)                    # (n_in, n), input-major
    assert np.array_equal(after[masked], before[masked]) and np.any(after != before)
    tid = eng.net.lay[0, LY.LC_TID + LY.K_DD]
    bank, per_word = eng.net.tens[0, tid], eng.net.tens[1, tid]
    eng.buf.sram[:] = 0
    DK.apply_delays(eng.net, eng.st, eng.buf)
    words = -(-kept // per_word)
    assert eng.buf.sram[0, bank] == words and eng.buf.sram[1, bank] == words
    other = FixedEngine(make_plan(spec, load_device("cortex-m7")), init_params(spec, 1), 2)
    assert not np.array_equal(other.st.d, eng.st.d)
    other.load_state(eng.state())
    assert np.array_equal(other.st.d, eng.st.d)


def _delay_digest(mode: str, device: str = "audio-edge") -> str:
    """test_core_engine's ``_digest`` of three per-step learning samples on ``device``
    (audio-edge: 8-bit weights, Q6.4 delay codes moved by stochastic rounding, the general
    loops; cortex-m7: nearest-even delays and eligibilities, the axonal fast paths)."""
    spec = _spec(mode, AXONAL_INIT if mode == "axonal" else _synaptic_init(),
                 "learning.update=per-step")
    eng = FixedEngine(make_plan(spec, load_device(device)), init_params(spec, 1), 1)
    d0 = eng.state()["L0.d"].copy()
    digest = _digest(eng, [(x, k % 4, True) for k, x in enumerate(_inputs(3, seed=4))])
    assert not np.array_equal(eng.state()["L0.d"], d0)          # the delays moved
    return digest


JIT_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
from test_core_delays import _delay_digest
print(_delay_digest({mode!r}, {device!r}))
"""


@pytest.mark.parametrize("mode,device", [("axonal", "audio-edge"), ("synaptic", "audio-edge"),
                                         ("axonal", "cortex-m7"), ("synaptic", "cortex-m7")])
def test_delay_kernels_jit_and_pure_python_give_the_same_bits(mode, device):
    """The compiled kernels here, their pure-Python definitions in a subprocess."""
    want = _delay_digest(mode, device)
    script = JIT_SCRIPT.format(paths=[str(Path(__file__).parent), str(ROOT)], mode=mode,
                               device=device)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == want


@pytest.mark.parametrize("mode", ["axonal", "synaptic"])
@pytest.mark.uncompiled
def test_histories_longer_than_a_word_match_the_float_engine(mode):
    """max_delay 62 (H = 66 steps: two words a register): delays at 62 and near it read
    their taps across the words' boundary; spikes equal the float engine's on every sample
    and the delays stay within 1e-4 steps of it."""
    top, steps = 62, 90
    init = ([0.0, 62.0, 61.6, 60.5, 61.45, 30.2, 1.1, 59.4] if mode == "axonal" else
            np.random.default_rng(1).uniform(55.0, 62.0, (N, N_IN)).round(1).tolist())
    spec = load_spec(EXAMPLES / "timing_delays.toml", [
        f"layers.0.delays={mode}", f"layers.0.max_delay={top}", f"layers.0.size={N}",
        f"network.time_steps={steps}", "learning.window=20",     # (WIDE's per-sample sums
        f"layers.0.delay_init={init}", "layers.0.delay_lr=1"])   # saturate over 90 steps)
    params = init_params(spec, 3)
    fl = FloatEngine(spec, params.copy())
    fx = FixedEngine(make_plan(spec, parse_device(tomllib.loads(WIDE_DELAYS))),
                     params.copy(), 3)
    assert int(fx.net.dly[0][LY.DL_HW]) == 2
    rng = np.random.default_rng(7)
    for k in range(3):
        x = (rng.random((steps, N_IN)) < 0.2).astype(np.uint8)
        a, b = fl.trace(x, k % 4), fx.trace(x, k % 4)
        assert a["L0.s"][top:].sum() > 0                  # spikes after the longest delay
        assert np.array_equal(a["L0.s"], b["L0.s"]), f"sample {k}: spikes differ"
        got = fx.float_params()
        assert np.max(np.abs(got.d[0] - fl.params.d[0])) < 1e-4, f"sample {k}: delays"
    assert np.max(np.abs(fx.float_params().d[0] - params.d[0])) > 0.01      # they learned


@pytest.mark.parametrize("update", ["per-step", "per-sample"])
def test_column_copy_of_axonal_weights_follows_every_weight_write(update):
    """An axonal layer's (g psi) W runs over a column copy of its input weights: after
    each learned sample it equals the weights (per step), or is marked stale and copied
    again (per sample); after load_state the next sample learns as a fresh engine with
    those weights does."""
    spec = _spec("axonal", AXONAL_INIT, f"learning.update={update}")
    plan = make_plan(spec, load_device("cortex-m7"))
    eng = FixedEngine(plan, init_params(spec, 1), 1)
    fresh = FixedEngine(plan, init_params(spec, 1), 1)
    start = {k: v.copy() for k, v in fresh.state().items()}
    xs = _inputs(4, seed=2)
    n_in, n = N_IN, N
    for k, x in enumerate(xs[:3]):
        eng.run_sample(x, k % 4)
        W = eng.st.W[:n_in * n].reshape(n_in, n)
        if eng.buf.colok[0]:
            np.testing.assert_array_equal(eng.buf.wcol.reshape(n, n_in), W.T)
        else:
            assert update == "per-sample"
    assert not np.array_equal(eng.state()["L0.W"], start["L0.W"])
    eng.load_state(start)
    eng.run_sample(xs[3], 1)
    fresh.run_sample(xs[3], 1)
    for name, a in fresh.state().items():
        np.testing.assert_array_equal(eng.state()[name], a, err_msg=name)


def _eps_reference(codes, words, eps, slope, synapses, hw, R, M, fd, nf, ec, ek, fe):
    """The eligibility of docs/delays.md, synapse by synapse in plain integers: the integer
    delay ``D = floor(code / 2**fd + 1/2)`` (at most ``M``), the table column ``code - D 2**fd
    + 2**(fd-1)``, ``acc`` = the slope entries of the taps ``max(0, D-R)..D+R`` holding a
    spike (bit ``k`` of the input's history), ``eps = fmt(round((eps ec + acc 2**ek) 2**-ek))``.
    ``synapses``: ``(input, index)`` pairs. Returns ``(eps, lookups, overflows)``."""
    eps = eps.copy()
    looks = sats = 0
    half = (1 << (fd - 1)) if fd else 0
    for j, s in synapses:
        h = sum(int(words[j * hw + w]) << (64 * w) for w in range(hw))
        D = min((int(codes[s]) + half) >> fd, M)
        col = int(codes[s]) - (D << fd) + half
        acc = 0
        for k in range(max(0, D - R), D + R + 1):
            if (h >> k) & 1:
                acc += int(slope[(k - D + R) * nf + col])
                looks += 1
        v = shift_round(int(eps[s]) * ec + (acc << ek), ek, fe.rounding, 0)
        eps[s], f = overflow(v, fe.lo, fe.hi, fe.bits, fe.signed, fe.overflow)
        sats += int(f)
    return eps, looks, sats


@hs.composite
def _eligibility_case(draw, hw_choices=(1, 2)):
    """A layer's delay state at its edges: codes at 0, at the top, on rounding ties; full,
    empty and random history words; traces at the format's ends; large slope entries."""
    hw = draw(hs.sampled_from(hw_choices))
    M = draw(hs.one_of(hs.integers(0, 64 * hw - 4), hs.just(64 * hw - 4)))
    R = draw(hs.integers(0, 3))
    fd = draw(hs.integers(0, 4))
    nf = 1 << fd
    n_in, n = draw(hs.integers(1, 5)), draw(hs.integers(1, 4))
    half = (1 << (fd - 1)) if fd else 0
    top = M << fd
    code = hs.one_of(hs.integers(0, top), hs.sampled_from(
        sorted({0, top, max(0, top - half), min(top, half), min(top, 3 * half)})))
    word = hs.one_of(hs.integers(0, 2**64 - 1), hs.sampled_from([0, 2**64 - 1, 1, 2**63]))
    bits = draw(hs.sampled_from([8, 16]))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    fe = Fmt(draw(hs.integers(4, 10)), lo, hi, bits, 1,
             draw(hs.sampled_from([FLOOR, NEAREST_EVEN, NEAREST_AWAY])),
             draw(hs.sampled_from([SATURATE, WRAP])))
    ek = draw(hs.integers(1, 12))
    ec = draw(hs.integers(0, 1 << ek))
    size = n_in * n
    codes = np.array(draw(hs.lists(code, min_size=size, max_size=size)), dtype=np.int64)
    # per input: its words as drawn, or only the oldest word holding spikes (the newest
    # word empty: a test of the whole register, not of its first word)
    words = []
    for _ in range(n_in):
        ws = draw(hs.lists(word, min_size=hw, max_size=hw))
        if hw > 1 and draw(hs.booleans()):
            ws[0] = 0
        words += ws
    words = np.array(words, dtype=np.uint64)
    eps = np.array(draw(hs.lists(hs.one_of(hs.integers(lo, hi), hs.sampled_from([lo, hi, 0, -1])),
                                 min_size=size, max_size=size)), dtype=np.int64)
    slope = np.array(draw(hs.lists(hs.integers(-hi, hi), min_size=(2 * R + 1) * nf,
                                   max_size=(2 * R + 1) * nf)), dtype=np.int64)
    keep = np.array(draw(hs.lists(hs.booleans(), min_size=size, max_size=size))).reshape(n, n_in)
    return dict(hw=hw, M=M, R=R, fd=fd, nf=nf, n_in=n_in, n=n, fe=fe, ek=ek, ec=ec,
                codes=codes, words=words, eps=eps, slope=slope, keep=keep)


@settings(max_examples=150, deadline=None)
@given(_eligibility_case())
def test_synaptic_eligibility_by_input_is_the_definition(c):
    """The input-major kernel of a synaptic layer with deterministic rounding gives the
    reference's traces, lookups and overflows, one per kept synapse."""
    n, n_in = c["n"], c["n_in"]
    keep = c["keep"]
    K = int(keep.sum())
    # the layer's pointers start after another layer's synapses (3 of them)
    iptr = 3 + np.concatenate([[0], np.cumsum(keep.T.sum(axis=1))]).astype(np.int64)
    inputs = [j for j in range(n_in) for m in range(n) if keep[m, j]]   # input-major
    codes, eps0 = c["codes"][:K], c["eps"][:K]
    want, looks, sats = _eps_reference(codes, c["words"], eps0, c["slope"],
                                       list(zip(inputs, range(K))), c["hw"], c["R"], c["M"],
                                       c["fd"], c["nf"], c["ec"], c["ek"], c["fe"])
    eps = eps0.copy()
    got = eligibility_by_input(codes, c["words"], eps, c["slope"], iptr, n_in, c["hw"], c["R"],
                               c["M"], c["fd"], c["nf"], c["ec"], c["ek"], c["fe"])
    assert np.array_equal(eps, want)
    assert got == (looks, K, sats)


@settings(max_examples=150, deadline=None)
@given(_eligibility_case(hw_choices=(1,)))
def test_axonal_eligibility_fast_path_is_the_definition(c):
    """The axonal fast path (one-word histories, deterministic rounding into a saturating
    format) gives the reference's traces, lookups and overflows."""
    fe = c["fe"]._replace(overflow=SATURATE)
    n_in = c["n_in"]
    codes, eps0 = c["codes"][:n_in], c["eps"][:n_in]
    want, looks, sats = _eps_reference(codes, c["words"], eps0, c["slope"],
                                       [(j, j) for j in range(n_in)], 1, c["R"], c["M"],
                                       c["fd"], c["nf"], c["ec"], c["ek"], fe)
    eps = eps0.copy()
    got = eligibility_axonal(codes, c["words"], eps, c["slope"], np.zeros(n_in, np.int64), n_in,
                             c["R"], c["M"], c["fd"], c["nf"], c["ec"], c["ek"], fe)
    assert np.array_equal(eps, want)
    assert got == (looks, sats)
