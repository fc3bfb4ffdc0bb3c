"""Each small fixed-engine kernel against a naive reference (STUMPY style)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesnn.core import arith as AR
from edgesnn.core import counting as CT
from edgesnn.core import forward as FW
from edgesnn.core import layout as LY
from edgesnn.core import update as UP
from edgesnn.core import rng as R
from edgesnn.core.arith import leap_table
from edgesnn.core.constants import (decay_constant, exp_table, format_row, make_table, psi_table,
                                    surrogate)
from edgesnn.errors import DeviceError
from edgesnn.fixed import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, ROUNDING_MODES, STOCHASTIC,
                           lfsr_bits, lfsr_seed, overflow, shift_round)
from edgesnn.hw import NumberFormat

RNG = np.random.default_rng(1234)


# --------------------------------------------------------------------------- random words

def test_leap_tables_reproduce_lfsr_bits():
    """The DFA feedback LFSR: four byte-table lookups are 32 steps of fixed.lfsr_bits."""
    for state in [1, 0x80000000, lfsr_seed(3), *RNG.integers(1, 2 ** 32, 20).tolist()]:
        v, s = lfsr_bits(int(state), 32)
        assert tuple(int(a) for a in AR.draw32(state)) == (int(v), int(s))
    t = leap_table(64, outputs=False)
    s = int(lfsr_seed(9))
    e = t[0, s & 255] ^ t[1, (s >> 8) & 255] ^ t[2, (s >> 16) & 255] ^ t[3, (s >> 24) & 255]
    assert int(e) == int(lfsr_bits(lfsr_bits(s, 32)[1], 32)[1])


def test_xorshift32_is_marsaglias_and_has_no_short_cycle():
    # Marsaglia (2003), "Xorshift RNGs": y ^= y << 13; y ^= y >> 17; y ^= y << 5
    assert R.xorshift32(2463534242) == 723471715
    seen, x = set(), 1
    for _ in range(5000):
        x = R.xorshift32(x)
        assert 0 < x < 2 ** 32 and x not in seen
        seen.add(x)


def test_word_buffer_is_the_lane_sequence_across_refills():
    rng = R.new_state(7, 100)
    assert len(set(int(v) for v in rng[:R.LANES])) == R.LANES          # distinct seeds
    want = R.reference_words(rng, 3 * (len(rng) - R.WORDS))
    got, p = [], int(rng[R.POS])
    for k in range(len(want)):
        if k % 997 == 0:                          # refills at odd positions keep the order
            p = int(R.ensure(rng, p, 300))
        w, p = R.take(rng, p)
        got.append(int(w))
    assert got == want


def test_a_refill_leaves_capacity_minus_one_round():
    """visit_rows32 sizes its chunks by this: from any read position, ``ensure`` of
    ``capacity - LANES`` words leaves them all buffered."""
    rng = R.new_state(4, 100)
    need = R.capacity(rng) - R.LANES
    for p in [0, 1, 31, 33, 500, *range(R.capacity(rng) - 40, R.capacity(rng) + 1)]:
        r = rng.copy()
        R.refill(r, 0)
        p = min(p, int(r[R.FILL]))
        want = R.reference_words(np.concatenate([r[:R.POS], [p], r[R.FILL:]]), need)
        q = int(R.ensure(r, p, need))
        assert q + need <= r[R.FILL] <= R.capacity(r)
        assert [int(v) for v in R.words(r)[q:q + need]] == want


# --------------------------------------------------------------------------- rounding

@pytest.mark.parametrize("mode", [FLOOR, NEAREST_EVEN, NEAREST_AWAY])
def test_branch_free_rounding_equals_shift_round(mode):
    rng = R.new_state(1, 10)
    values = np.concatenate([RNG.integers(-2 ** 40, 2 ** 40, 3000), np.arange(-70, 70),
                             np.arange(-70, 70) * 8 + 4])
    for v in values:
        for sh in (-3, 0, 1, 2, 3, 7, 20, 33):
            want = shift_round(int(v), sh, mode, 0)
            got, p, d = AR.rnd(int(v), sh, mode, rng, 5)
            assert got == want and AR.rnd_det(int(v), sh, mode) == want, (v, sh)
            assert d == 0 and p == 5


def test_stochastic_rounding_takes_one_word_per_rounding():
    rng = R.new_state(5, 10)
    words = R.reference_words(rng, 10)
    p = int(rng[R.POS])
    cases = [(5 << 9, 9), (-(3 << 9), 9), (0, 4), (1234567, 9), (-1234567, 9), (-1, 40),
             (123456789012, 40), (7, 3)]
    for i, (v, sh) in enumerate(cases):
        x, k = (v >> (sh - 32), 32) if sh > 32 else (v, sh)
        want = shift_round(x, k, STOCHASTIC, words[i] >> (32 - k))
        got, p, d = AR.rnd(v, sh, STOCHASTIC, rng, p)
        assert (got, d, p) == (want, 1, i + 1)
        if v % (1 << sh) == 0:
            assert got == v >> sh                  # an exact value stays exact
    assert AR.rnd(12345, 0, STOCHASTIC, rng, p)[1:] == (p, 0)    # no shift: no word


def test_stochastic_rounding_is_unbiased():
    rng = R.new_state(8, 10)
    p = int(rng[R.POS])
    total = 0
    n = 4000
    for _ in range(n):
        got, p, _ = AR.rnd(3 << 8, 10, STOCHASTIC, rng, p)       # 0.75 of an LSB
        total += int(got)
    assert abs(total / n - 0.75) < 0.03


@pytest.mark.parametrize("fmt", [NumberFormat(signed=True, int_bits=3, frac_bits=4),
                                 NumberFormat(signed=False, int_bits=5, frac_bits=2),
                                 NumberFormat(signed=True, int_bits=3, frac_bits=4,
                                              overflow="wrap"),
                                 NumberFormat(signed=False, int_bits=5, frac_bits=2,
                                              overflow="wrap")])
def test_into_equals_fixed_overflow(fmt):
    f = format_row(fmt)
    for v in range(-700, 700, 3):
        want = overflow(v, f.lo, f.hi, f.bits, bool(f.signed), f.overflow)
        assert AR.into(v, f) == (want[0], want[1])


# --------------------------------------------------------------------------- factors

def _edge_values(draw, lo, hi, size):
    """``size`` integers in ``[lo, hi]``, mostly the edges: 0, +-1, lo, hi, their neighbours."""
    edges = [v for v in (0, 1, -1, 2, lo, lo + 1, hi, hi - 1, hi // 2) if lo <= v <= hi]
    return np.array(draw(st.lists(st.one_of(st.sampled_from(edges), st.integers(lo, hi)),
                                  min_size=size, max_size=size)), dtype=np.int64)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), mode=st.sampled_from([FLOOR, NEAREST_EVEN, NEAREST_AWAY]),
       sbits=st.sampled_from([4, 8, 16, 32]), tbits=st.sampled_from([4, 16, 31]),
       ftr=st.integers(1, 20), n=st.integers(1, 40),
       apost=st.sampled_from([UP.ONE_ALPHA, UP.ONE_ALPHA // 2, 3 * UP.ONE_ALPHA // 4 + 7,
                              5 * UP.ONE_ALPHA // 3]),
       apre=st.sampled_from([UP.ONE_ALPHA, UP.ONE_ALPHA // 4, 11 * UP.ONE_ALPHA // 10]))
def test_branch_free_factors_equal_the_skipping_loop(data, mode, sbits, tbits, ftr, n, apost,
                                                      apre):
    """factor_loop_det (every product, SIMD) gives factor_loop's codes, product counts and
    overflows: g at the signal format's edges (saturating a, c and gp), zero g, h, psi,
    each rounding mode, alphas 1, powers of two and others."""
    name = {v: k for k, v in ROUNDING_MODES.items()}[mode]
    fs = format_row(NumberFormat(signed=True, int_bits=sbits - 4, frac_bits=3, rounding=name))
    lo, hi = -(1 << (sbits - 1)), (1 << (sbits - 1)) - 1
    assert (fs.lo, fs.hi) == (lo, hi)
    g = _edge_values(data.draw, lo, hi, n)
    h = _edge_values(data.draw, 0, (1 << tbits) - 1, n)
    psi = _edge_values(data.draw, 0, (1 << tbits) - 1, n)
    outs = []
    for det in (False, True):
        a, c, gp = (np.full(n, 99, np.int64) for _ in range(3))
        if det:
            res = UP.factor_loop_det(g, h, psi, a, c, gp, n, ftr, mode, fs.lo, fs.hi, apost,
                                    apre)
        else:
            rng = R.new_state(0, 10)
            res = UP.factor_loop(g, h, psi, a, c, gp, n, ftr, fs, apost, apre, rng,
                                int(rng[R.POS]))[:5]
        outs.append((res, a, c, gp))
    assert outs[0][0] == outs[1][0]
    for want, got in zip(outs[0][1:], outs[1][1:]):
        assert np.array_equal(want, got)


@settings(max_examples=60, deadline=None)
@given(v=st.lists(st.sampled_from([0, 0, 0, 0, 1, -1, 7]), max_size=40), uint8=st.booleans())
def test_list_nonzero_is_np_flatnonzero(v, uint8):
    """Eight at a time with a scalar tail: any length, blocks all zero or not, negative values."""
    arr = np.array(v, dtype=np.int64)
    if uint8:
        arr = (arr != 0).astype(np.uint8)
    out = np.full(len(v) + 1, -1, np.int64)
    cnt = FW.list_nonzero(arr, out)
    assert list(out[:cnt]) == list(np.flatnonzero(arr))


def test_factor_lists_are_the_nonzero_neurons():
    a = np.array([0, 3, 0, 0, -1, 0, 7, 0])
    c = np.array([0, 0, 2, 0, -5, 0, 1, 0])
    act0, act1 = np.full(8, -1), np.full(8, -1)
    assert UP.list_factors(a, c, act0, act1, 8) == (4, 3, 3)
    assert list(act0[:4]) == [1, 2, 4, 6] and list(act1[:3]) == [2, 4, 6]


# --------------------------------------------------------------------------- SRAM words

def _naive_words(start, idx, epw):
    return len({(start + int(i)) // epw for i in idx})


def test_word_counts_equal_naive_sets():
    for epw in (1, 3, 4, 8, 64):
        for _ in range(30):
            n = int(RNG.integers(1, 40))
            idx = np.sort(RNG.choice(n, int(RNG.integers(1, n + 1)), replace=False))
            out = np.zeros(epw, dtype=np.int64)
            CT.word_table(epw, idx.astype(np.int64), len(idx), out)
            for j in range(5):
                start = j * n
                assert out[start % epw] == _naive_words(start, idx, epw)
                sh = CT.word_shift(epw)
                assert CT.list_words(epw, sh, start, idx.reshape(1, -1).astype(np.int64), 0, 0,
                                    len(idx)) == _naive_words(start, idx, epw)
            assert CT.range_words(epw, 5, n) == _naive_words(5, np.arange(n), epw)
            assert CT.vec_words(epw, n) == _naive_words(0, np.arange(n), epw)
    assert CT.vec_words(-2, 5) == 10 and CT.range_words(-3, 7, 4) == 12


# --------------------------------------------------------------------------- constants

def test_decay_constants():
    assert decay_constant(0.9, "shift", 12) == (7, 3)               # 1 - 2^-3 = 0.875
    assert decay_constant(0.9933071490757153, "shift", 12) == (127, 7)
    assert decay_constant(0.5, "shift", 12) == (1, 1)
    assert decay_constant(1.0, "shift", 12) == (1, 0)
    assert decay_constant(0.0, "multiply", 12) == (0, 0)
    assert decay_constant(0.9, "multiply", 12) == (58982, 16)     # round(0.9 * 65536 = 58982.4)
    assert decay_constant(0.9, "multiply", 20) == (943718, 20)    # round(943718.4)
    assert decay_constant(0.9, "multiply", 24).k == 24
    with pytest.raises(DeviceError):
        decay_constant(1.5, "shift", 12)


def _lookup(t, d_codes):
    idx = np.minimum((np.abs(d_codes) + t.half) >> t.shift, len(t.codes) - 1)
    return t.codes[idx] / 2.0 ** t.frac


@pytest.mark.parametrize("name", ["rational", "triangle"])
@pytest.mark.parametrize("entries,bits", [(256, 16), (64, 8), (0, 16)])
def test_psi_table_is_the_surrogate_within_its_stated_error(name, entries, bits):
    trace = format_row(NumberFormat(signed=False, int_bits=7, frac_bits=9))
    t = psi_table(name, entries, bits, 12, trace)
    f, support = surrogate(name)
    assert t.codes[-1] == 0 and t.frac == 9
    assert entries == 0 or len(t.codes) == entries
    d = RNG.integers(-3 * 4096, 3 * 4096, 20000)
    err = np.max(np.abs(_lookup(t, d) - f(d / 4096.0)))
    assert err <= t.error + 1e-12
    assert t.error < {"triangle": 0.01, "rational": 0.2}[name] if entries else t.error < 2e-3
    assert math.log2(t.step) == int(math.log2(t.step))            # a power of two: a shift


def test_exp_table():
    t = exp_table(256, 16, 12)
    assert t.codes[0] == 1 << 15 and t.codes[-1] == 0
    d = RNG.integers(0, 40 * 4096, 20000)
    assert np.max(np.abs(_lookup(t, d) - np.exp(-d / 4096.0))) <= t.error + 1e-12 < 0.02


def test_table_step_minimises_the_worst_error():
    f = lambda d: np.exp(-np.abs(d))                                # noqa: E731
    best = make_table(f, 32, 16, 10, 12.0, out_frac=15)
    for m in range(-4, 11):
        step = 2.0 ** -m
        k = np.arange(31)
        codes = np.append(np.rint(f(k * step) * 2 ** 15), 0).astype(np.int64)
        d = np.floor(np.linspace(0, 24.0, 200001) * 1024).astype(np.int64)
        sh = 10 - m
        idx = np.minimum((d + ((1 << sh) >> 1)) >> sh, 31)
        err = np.max(np.abs(codes[idx] / 2 ** 15 - f(d / 1024.0)))
        assert best.error <= err + 1e-12


def _visit_paths(seed, rows, n, x_rate, q_zero, k, per_sample, epw, start):
    """Run one weight matrix's update through visit_rows32 and both visit_rows paths.

    ``start`` words of the buffer are already read, so refills fall inside the call.
    Returns ``[(counts, W, dW, next words of the stream)]`` for int32, int64, generic.
    """
    rs = np.random.default_rng(seed)
    ca = int(rs.integers(0, n + 1))
    lst0 = np.sort(rs.choice(n, ca, replace=False)) if ca else np.zeros(0, np.int64)
    c_all = rs.integers(-40, 41, ca) * (rs.random(ca) < 0.7)
    a_all = rs.integers(-40, 41, ca)
    in1 = c_all != 0                         # list 1: the neurons of list 0 with c != 0
    lists = np.zeros((2, n), np.int64)
    lists[0, :ca] = lst0
    cc = int(in1.sum())
    lists[1, :cc] = lst0[in1]
    cmp = np.zeros((LY.CMP_DELTA + 1, n), np.int64)
    cmp[0, :ca], cmp[1, :ca], cmp[2, :cc] = c_all, a_all, c_all[in1]
    c32 = np.zeros((4, n + LY.PAD), np.int32)     # zeros after each list (PAD)
    ftr = 3
    c32[0, :n], c32[1, :n], c32[2, :n] = cmp[0], cmp[1] << ftr, cmp[2]
    q = rs.integers(1, 200, rows) * (rs.random(rows) >= q_zero)
    x = (rs.random(rows) < x_rate).astype(np.int64)
    fw = format_row(NumberFormat(signed=True, int_bits=3, frac_bits=0,
                                 rounding="stochastic"))  # saturates often
    W0 = rs.integers(-8, 8, rows * n).astype(np.int8)
    dW0 = rs.integers(-50, 50, rows * n) if per_sample else np.zeros(0, np.int64)
    wt = np.zeros((2, max(epw, 1)), np.int64)
    if epw > 0:
        CT.word_table(epw, lists[0], ca, wt[0])
        CT.word_table(epw, lists[1], cc, wt[1])
    na = int((a_all != 0).sum())
    bound = 40 * 200 + (40 << ftr)
    rng0 = R.new_state(seed % 1000, 4 * n)
    R.refill(rng0, 0)
    p0 = min(start, int(rng0[R.FILL]))
    vis = np.zeros((4, rows), np.int64)
    outs = []
    for path in ("int32", "int64", "generic"):   # generic: the clamped stochastic loop
        W, dW, rng = W0.copy(), dW0.copy(), rng0.copy()
        wc = W0.reshape(rows, n).T.copy().ravel()    # the column copy (Buffers.wcol)
        if path == "int32":
            res = UP.visit_rows32(W, dW, n, q, x, lists, c32, ca, cc, na, wt, epw, k, fw,
                                 per_sample, rng, p0, vis, wc, rows)
        else:
            res = UP.visit_rows(W, dW, n, q, x, lists, cmp, ca, cc, na, True,
                               bound if path == "int64" else 1 << 62, wt, epw, ftr,
                               -(1 << 40), 1 << 40, k, STOCHASTIC, fw, per_sample, rng, p0,
                               wc, rows)
        # every weight written is written into the column copy too
        np.testing.assert_array_equal(wc, W.reshape(rows, n).T.ravel())
        rng[R.POS] = res[0]                  # the paths refill at different points:
        outs.append((res[1:], W, dW, R.reference_words(rng, 40)))   # compare the stream
    return outs


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 40), n=st.integers(1, 24),
       x_rate=st.sampled_from([0.0, 0.1, 0.5]), q_zero=st.sampled_from([0.0, 0.3, 0.9]),
       k=st.integers(1, 14), per_sample=st.booleans(), epw=st.sampled_from([8, 4, 3, -1]),
       start=st.sampled_from([0, 4000, 4090]))
def test_int32_visit_equals_visit_rows(seed, rows, n, x_rate, q_zero, k, per_sample, epw, start):
    """visit_rows32 (int32 lanes, rows four at a time) gives visit_rows' bits and counts.

    Random runs of list-1 rows broken by list-0 rows (x = 1), skipped rows
    (q = 0), empty lists; per step and per sample; the word buffer nearly used
    up at the start, so it refills inside the call.
    """
    outs = _visit_paths(seed, rows, n, x_rate, q_zero, k, per_sample, epw, start)
    for res, W, dW, words in outs[1:]:
        assert res == outs[0][0]
        assert np.array_equal(W, outs[0][1]) and np.array_equal(dW, outs[0][2])
        assert words == outs[0][3]


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_int32_visit_in_chunks_equals_visit_rows(seed):
    """A call whose words overflow the buffer (700 rows x 24 synapses > 4096 words) runs
    in chunks and still gives visit_rows' bits, counts and word stream."""
    outs = _visit_paths(seed, 700, 24, 0.05, 0.0, 6, seed % 2 == 1, 8, 1000)
    assert outs[0][0][0] > 2 * 4096                  # draws: three chunks or more
    for res, W, dW, words in outs[1:]:
        assert res == outs[0][0]
        assert np.array_equal(W, outs[0][1]) and np.array_equal(dW, outs[0][2])
        assert words == outs[0][3]


@pytest.mark.parametrize("target", [-1, 0, "lim-1", "lim", "mixed"])
def test_int32_visit_nonzero_test_at_its_edges(target):
    """visit_rows32 finds rows with a nonzero update by ``uint32(dw + r) >= 2**k``: words
    chosen so that ``dw + r`` sits exactly at -1, 0, 2**k - 1 or 2**k (list-1 rows four
    at a time and one at a time, list-0 rows) give visit_rows' bits."""
    rs = np.random.default_rng(5)
    n, rows, k, ftr = 8, 11, 10, 3
    lim = 1 << k
    lists = np.tile(np.arange(n), (2, 1))
    c = rs.integers(-6, 7, n)
    c[c == 0] = 1
    a = rs.integers(-3, 4, n)
    cmp = np.zeros((LY.CMP_DELTA + 1, n), np.int64)
    cmp[0], cmp[1], cmp[2] = c, a, c
    c32 = np.zeros((4, n + LY.PAD), np.int32)
    c32[0, :n], c32[1, :n], c32[2, :n] = c, a << ftr, c
    q = rs.integers(1, 20, rows)
    x = np.zeros(rows, np.int64)
    x[[4, 9]] = 1                            # list-1 rows 0-3 (a quad), 5-8 (a quad), 10 (alone)
    rng0 = R.new_state(3, 4 * n)
    R.refill(rng0, 0)
    w = R.words(rng0)
    pos = 0
    for j in range(rows):
        for m in range(n):
            dw = c[m] * q[j] + (a[m] << ftr if x[j] else 0)
            t = {"lim-1": lim - 1, "lim": lim}.get(target, target)
            if target == "mixed":
                t = [-1, 0, lim - 1, lim][int(rs.integers(0, 4))]
            r = t - dw
            if not 0 <= r < lim:
                r = int(rs.integers(0, lim))
            w[pos] = (r << (32 - k)) | int(rs.integers(0, 1 << (32 - k)))
            pos += 1
    fw = format_row(NumberFormat(signed=True, int_bits=7, frac_bits=0, rounding="stochastic"))
    W0 = rs.integers(-8, 8, rows * n).astype(np.int8)
    wt = np.zeros((2, 1), np.int64)
    outs = []
    for path in ("int32", "generic"):
        W, rng = W0.copy(), rng0.copy()
        if path == "int32":
            res = UP.visit_rows32(W, np.zeros(0, np.int64), n, q, x, lists, c32, n, n,
                                 int((a != 0).sum()), wt, -1, k, fw, False, rng, 0,
                                 np.zeros((4, rows), np.int64), W[:0], 0)
        else:
            res = UP.visit_rows(W, np.zeros(0, np.int64), n, q, x, lists, cmp, n, n,
                               int((a != 0).sum()), True, 1 << 62, wt, -1, ftr, -(1 << 40),
                               1 << 40, k, STOCHASTIC, fw, False, rng, 0, W[:0], 0)
        outs.append((res, W))
    assert outs[0][0] == outs[1][0] and np.array_equal(outs[0][1], outs[1][1])
    if target in ("lim", -1):
        assert outs[0][0][5] > 0                 # those sums round to a nonzero update


# --------------------------------------------------------------------------- synaptic events

@pytest.mark.parametrize("device", ["cortex-m7", "saturate", "wrap"])
@pytest.mark.parametrize("seed", range(6))
def test_accumulate_rows_equals_one_event_at_a_time(device, seed):
    """The currents after the feed-forward then the recurrent rows of a step equal a sum one
    synapse event at a time with the current format's overflow after each: the int32 path
    (cortex-m7: 32-bit currents; rows four at a time plus the rest) and the clamped path
    (16-bit currents: extreme weights saturate or wrap), with the overflow counts."""
    from test_core_reference import make_device, make_spec
    from edgesnn.core import FixedEngine
    from edgesnn.hw import load_device
    from edgesnn.plan import make_plan
    from edgesnn.reference import init_params

    rs = np.random.default_rng(seed)
    spec = make_spec(layers=[("recurrent", 9, "soft")], inputs=13)
    dev = load_device(device) if device == "cortex-m7" else make_device(covf=device)
    eng = FixedEngine(make_plan(spec, dev), init_params(spec, 0), 0)
    net, stt, buf = eng.net, eng.st, eng.buf
    W = stt.W
    W[:] = rs.choice([127, 127, 126, -128], len(W)) if seed % 2 else rs.integers(-128, 128, len(W))
    fi = net.fmt.current
    sh = int(fi.frac - net.fmt.weight.frac)
    n, lay = 9, net.lay[0]
    cur = [0] * n
    sats = 0
    buf.nrn[LY.R_I, :] = 0
    prior = 0
    for woff, rows_total, tid in ((lay[LY.LC_WOFF], 13, lay[LY.LC_TID + LY.K_W]),
                                  (lay[LY.LC_WROFF], 9, lay[LY.LC_TID + LY.K_WR])):
        k = int(rs.integers(6 if seed % 2 else 0, rows_total + 1))
        rows = np.sort(rs.choice(rows_total, k, replace=False))
        buf.scr[LY.R_ACT, :len(rows)] = rows
        before = int(buf.sats[tid])
        FW.accumulate_rows(net, stt, buf, 0, woff, len(rows), tid, prior)
        for j in rows:
            for m in range(n):
                v, f = overflow(cur[m] + (int(W[woff + j * n + m]) << sh), int(fi.lo), int(fi.hi),
                                int(fi.bits), bool(fi.signed), int(fi.overflow))
                cur[m] = v
                sats += f
        prior += len(rows)
        assert list(buf.nrn[LY.R_I, :n]) == cur
        assert int(buf.sats[lay[LY.LC_TID + LY.K_I]]) == sats and int(buf.sats[tid]) == before
    assert not buf.acc32.any()               # the int32 scratch is left cleared
    if device != "cortex-m7" and seed % 2:
        assert sats > 0                      # the extreme weights did overflow
