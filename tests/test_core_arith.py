"""Every rounding and overflow variant of ``core.arith`` against ``fixed.shift_round`` /
``fixed.overflow``, on one battery of edge cases.

The battery (``case``): formats of 1..62 bits, signed or not, every rounding and
overflow mode; shifts 0, 1, 2, 31, 32, 33, 61, 62, negative (exact left shifts) and
random; values at the format's bounds and one past them, at rounding ties (+-0.5 ulp
and one code either side) of the shift, scaled so that the rounded value lands on the
bounds, negative and positive; random words with their top and bottom bits set. Each
variant is checked compiled and, where it is a plain scalar function, as pure Python
(``.py_func``, what ``NUMBA_DISABLE_JIT=1`` runs) with numpy int64 operands.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesnn.core import arith as AR
from edgesnn.core import rng as R
from edgesnn.fixed import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, SATURATE, STOCHASTIC, WRAP,
                           clamp, overflow, shift_round)

DETERMINISTIC = (FLOOR, NEAREST_EVEN, NEAREST_AWAY)
MODES = (*DETERMINISTIC, STOCHASTIC)
SHIFTS = (0, 1, 2, 3, 31, 32, 33, 40, 61, 62)
WORDS = (0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 0x80000001, 0x55555555)
LIMIT = 1 << 62           # |values| the kernels form before a rounding (core.bounds)
BATTERY = settings(max_examples=300, deadline=None)


@st.composite
def fmt(draw, max_bits=62):
    """A format of 1..max_bits bits (mostly the edges 1, 2, 8, 31, 32, 33), any modes."""
    bits = draw(st.one_of(st.sampled_from([1, 2, 7, 8, 16, 31, 32, 33, max_bits]),
                          st.integers(1, max_bits)))
    signed = draw(st.booleans())
    lo = -(1 << (bits - 1)) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    return AR.Fmt(draw(st.integers(0, bits)), lo, hi, bits, int(signed),
                  draw(st.sampled_from(MODES)), draw(st.sampled_from([SATURATE, WRAP])))


@st.composite
def shift(draw, lo=0, hi=62):
    return draw(st.one_of(st.sampled_from([s for s in SHIFTS if lo <= s <= hi]),
                          st.integers(lo, hi)))


@st.composite
def value(draw, k, f=None, limit=LIMIT):
    """A value to shift right by ``k``: a rounding tie of ``k`` (+-0.5 ulp, one code either
    side, a whole ulp), offset from 0, +-1, a few multiples, or (with ``f``) from the
    format's bounds and one past them scaled by ``2**k``; or any value."""
    ulp = 1 << k if k > 0 else 1
    half = ulp >> 1
    bases = [0, 1, -1, 2, -2, 3, -7]
    if f is not None:
        bases += [f.lo, f.hi, f.lo - 1, f.hi + 1, f.lo + 1, f.hi - 1]
    base = draw(st.sampled_from(bases)) * ulp
    off = draw(st.sampled_from([0, half, -half, half + 1, half - 1, -half + 1, -half - 1,
                                ulp - 1, 1 - ulp, 1, -1]))
    v = draw(st.one_of(st.just(base + off), st.just(base + off), st.integers(-limit, limit)))
    return max(-limit, min(limit, v))


def word(draw):
    return draw(st.one_of(st.sampled_from(WORDS), st.integers(0, 2 ** 32 - 1)))


def both(fn, *args):
    """``fn`` compiled and as pure Python on numpy int64 operands: the same result."""
    got = fn(*args)
    py = fn.py_func(*(np.int64(a) if isinstance(a, int) else a for a in args))
    assert _ints(got) == _ints(py), (fn.__name__, args, got, py)
    return _ints(got)


def _ints(r):
    return tuple(int(v) for v in r) if isinstance(r, tuple) else int(r)


def ref_overflow(v, f):
    c, flag = overflow(v, f.lo, f.hi, f.bits, bool(f.signed), f.overflow)
    return int(c), int(flag)


def ref_stoch(x, s, w):
    """Stochastic rounding by ``s`` bits with a 32-bit word ``w``: its top ``min(s, 32)``
    bits are the random fraction, placed at the top of the ``s`` shifted-out bits."""
    k = min(s, 32)
    return int(shift_round(x, s, STOCHASTIC, (w >> (32 - k)) << (s - k)))


# --------------------------------------------------------------------------- overflow

@BATTERY
@given(data=st.data(), f=fmt())
def test_saturate_and_into_equal_fixed_overflow(data, f):
    v = data.draw(value(0, f))
    assert both(AR.saturate, v, f.lo, f.hi) == tuple(int(a) for a in clamp(v, f.lo, f.hi))
    assert _ints(AR.into(v, f)) == ref_overflow(v, f)
    # pure Python (what NUMBA_DISABLE_JIT runs): a Python-int format, a numpy value
    assert _ints(AR.into.py_func(np.int64(v), f)) == ref_overflow(v, f)


# --------------------------------------------------------------------------- rounding

@BATTERY
@given(data=st.data(), mode=st.sampled_from(DETERMINISTIC), k=shift(-20, 62))
def test_deterministic_shifts_equal_shift_round(data, mode, k):
    """floor/even/away, ``rnd_det`` (with exact left shifts) and the branch-free lanes."""
    x = data.draw(value(k if k > 0 else 0, limit=LIMIT >> max(0, -k)))
    want = int(shift_round(x, k, mode, 0))
    assert both(AR.rnd_det, x, k, mode) == want
    if k > 0:
        fn = {FLOOR: AR.floor_shift, NEAREST_EVEN: AR.even_shift, NEAREST_AWAY: AR.away_shift}
        assert both(fn[mode], x, k) == want
        assert both(AR.rnd_lanes, x, k, *both(AR.lane_consts, k, mode)) == want


@BATTERY
@given(data=st.data(), k=shift(1, 61))
def test_biased_floor_shift_is_floor(data, k):
    y = data.draw(value(k, limit=(1 << 61) - 1))
    assert both(AR.biased_floor_shift, y, k) == int(shift_round(y, k, FLOOR, 0))


@BATTERY
@given(data=st.data(), s=shift(1, 62))
def test_stochastic_shift_with_a_word_equals_shift_round(data, s):
    x, w = data.draw(value(s)), word(data.draw)
    pre, k = both(AR.stoch_split, s)
    assert (pre, k) == (max(s - 32, 0), min(s, 32))
    assert both(AR.word_top, w, 32 - k) == w >> (32 - k)
    assert both(AR.stoch_shift, x, pre, k, w) == ref_stoch(x, s, w)


@BATTERY
@given(data=st.data(), k=shift(1, 30))
def test_stochastic_rounding_in_int32_lanes(data, k):
    """``stoch_sum32(y, word, 32 - k) >> k`` where ``|y| + 2**k < 2**31`` (visit_rows32's
    gate), and its nonzero test ``uint32(sum) >= 2**k``."""
    w = word(data.draw)
    y = data.draw(value(k, limit=(1 << 31) - 1 - (1 << k)))
    rk = np.uint32(32 - k)
    assert int(AR.word_top32(np.uint32(w), rk)) == w >> (32 - k)
    assert int(AR.lshr32(np.uint32(w), rk)) == w >> (32 - k)
    s = AR.stoch_sum32(np.int32(y), np.uint32(w), rk)
    py = AR.stoch_sum32.py_func(np.int32(y), np.uint32(w), rk)
    assert int(s) == int(py) == y + (w >> (32 - k))
    d = int(s) >> k
    assert d == ref_stoch(y, k, w)
    assert (d != 0) == (int(np.uint32(np.int64(s) & 0xFFFFFFFF)) >= 1 << k)


@BATTERY
@given(data=st.data(), f=fmt(), s=shift(-8, 62), stream=st.integers(0, 5))
def test_rnd_and_to_fmt_take_the_next_word(data, f, s, stream):
    """``rnd`` / ``to_fmt``: one word from the rounding state for a stochastic shift (exact
    value or not), none otherwise; the value ``shift_round`` then ``overflow`` give."""
    x = data.draw(value(max(s, 0), f, limit=LIMIT >> max(0, -s)))
    rng = R.new_state(stream, 64)
    rng[R.POS] = rng[R.FILL] = 0
    w = R.reference_words(rng, 1)[0]
    stoch = f.rounding == STOCHASTIC and s > 0
    want = ref_stoch(x, s, w) if stoch else int(shift_round(x, s, f.rounding, 0))
    r, p, d = AR.rnd(x, s, f.rounding, rng, 0)
    assert (int(r), int(d)) == (want, int(stoch)) and int(p) == int(stoch)
    rng2 = R.new_state(stream, 64)
    rng2[R.POS] = rng2[R.FILL] = 0
    c, fl, p, d = AR.to_fmt(x, s, f, rng2, 0)
    assert (int(c), int(fl)) == ref_overflow(want, f) and int(d) == int(stoch)


@BATTERY
@given(data=st.data(), k=shift(0, 40), last=st.integers(0, 300))
def test_lut_index_is_the_nearest_entry_ties_up(data, k, last):
    d = abs(data.draw(value(k, limit=1 << 50)))
    half = (1 << k) >> 1
    assert both(AR.lut_index, d, half, k, last) == min(int(shift_round(d, k, NEAREST_AWAY, 0)),
                                                       last)


@BATTERY
@given(num=st.integers(0, 1 << 40), den=st.integers(1, 1 << 20))
def test_div_half_up_rounds_to_nearest_ties_up(num, den):
    want = int((Fraction(num, den) + Fraction(1, 2)).__floor__())
    assert both(AR.div_half_up, num, den) == want
    assert both(AR.div_half_up, den * 7 + den // 2, den) == (7 if den % 2 else 8)


# --------------------------------------------------------------------------- vectors

@settings(max_examples=60, deadline=None)
@given(data=st.data(), f=fmt(), s=shift(-4, 62), n=st.integers(0, 40), stream=st.integers(0, 3))
def test_round_vector_equals_element_by_element(data, f, s, n, stream):
    """In place, a stochastic format taking consecutive words (across a refill when the
    buffer runs short), saturations counted: ``shift_round`` then ``overflow`` per
    element."""
    xs = [data.draw(value(max(s, 0), f, limit=LIMIT >> max(0, -s))) for _ in range(n)]
    rng = R.new_state(stream, 64)
    R.refill(rng, 0)
    p0 = data.draw(st.integers(0, int(rng[R.FILL])))      # some words already used
    rng[R.POS] = p0
    before = rng.copy()
    stoch = f.rounding == STOCHASTIC and s > 0
    used = n if stoch else 0
    ws = R.reference_words(before, n + 3)
    want, sats = [], 0
    for j, x in enumerate(xs):
        r = ref_stoch(x, s, ws[j]) if stoch else int(shift_round(x, s, f.rounding, 0))
        c, fl = ref_overflow(r, f)
        want.append(c)
        sats += fl
    v = np.array([0, *xs, 0], dtype=np.int64)
    sat, draws, p = AR.round_vector(v, 1, n, s, f, rng, p0)
    assert v[1:n + 1].tolist() == want and (v[0], v[-1]) == (0, 0)
    assert (int(sat), int(draws)) == (sats, used)
    rng[R.POS] = p
    assert R.reference_words(rng, 3) == ws[used:used + 3]        # the sequence goes on
