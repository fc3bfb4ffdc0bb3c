"""Tests of edgesnn.fixed.

Oracles: fxpmath for what it implements (``rounding='floor'`` is floor --
note fxpmath's ``'trunc'`` rounds towards zero, not floor -- and
``rounding='around'`` is numpy ``around``, ties to even; ``overflow=
'saturate'|'wrap'``).  For ties-away-from-zero and stochastic rounding, which
fxpmath lacks, and for values too large for fxpmath's int64 wrap, the oracle
is exact rational arithmetic with ``fractions.Fraction`` and Python's
unbounded ints (``_round_exact`` / ``_overflow_exact`` below), which share no
code with the module under test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from fxpmath import Fxp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesnn import fixed as fx
from edgesnn.errors import DataError, DeviceError
from edgesnn.fixed import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, SATURATE, STOCHASTIC, WRAP,
                           QFormat, clamp, dequantize, draw_rand, fx_mul, lfsr_bits,
                           lfsr_fill, lfsr_next, lfsr_seed, overflow, quantize, requantize,
                           shift_round, wrap)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FXP_ROUNDING = {FLOOR: "floor", NEAREST_EVEN: "around"}
FXP_OVERFLOW = {SATURATE: "saturate", WRAP: "wrap"}
ALL_ROUNDING = (FLOOR, NEAREST_EVEN, NEAREST_AWAY, STOCHASTIC)


# --------------------------------------------------------------------------- exact oracles

def _round_exact(r: Fraction, mode: int, u: Fraction = Fraction(0)) -> int:
    """Exact rounding of a rational; ``u`` in [0, 1) is the stochastic offset."""
    if mode == FLOOR:
        return math.floor(r)
    if mode == NEAREST_EVEN:
        return round(r)                                   # Python: ties to even
    if mode == NEAREST_AWAY:
        a = math.floor(abs(r) + Fraction(1, 2))
        return a if r >= 0 else -a
    if mode == STOCHASTIC:
        return math.floor(r + u)
    raise AssertionError(mode)


def _overflow_exact(v: int, lo: int, hi: int, n: int, signed: bool, mode: int):
    if mode == SATURATE:
        c = min(max(v, lo), hi)
        return c, int(c != v)
    w = v % (1 << n)
    if signed and w >= 1 << (n - 1):
        w -= 1 << n
    return w, int(w != v)


@st.composite
def formats(draw, max_bits=32):
    signed = draw(st.booleans())
    n = draw(st.integers(1, max_bits))
    frac = draw(st.integers(0, n - int(signed)))
    return QFormat.from_total(signed, n, frac)


@st.composite
def values_for(draw, fmt: QFormat, size=(1, 24), far=True):
    """Real values around ``fmt``'s range: exact codes, ties, quarters, random, far out."""
    lo, hi = fmt.min_int, fmt.max_int
    span = hi - lo + 1
    n = draw(st.integers(*size))
    out = []
    for _ in range(n):
        k = draw(st.one_of(st.sampled_from([lo, hi, 0, 1, -1, lo - 1, hi + 1]),
                           st.integers(lo - 2 * span, hi + 2 * span)))
        off = draw(st.one_of(st.sampled_from([0.0, 0.5, 0.25, 0.75, -0.5]),
                             st.floats(0, 1, exclude_max=True)))
        out.append((k + off) / fmt.scale)
    if far:
        out += draw(st.lists(st.sampled_from([1e30, -1e30, 2.0 ** 70 + 2.0 ** 40, -3e12]),
                             max_size=2))
    return np.array(out, dtype=np.float64)


def _codes_exact(x: np.ndarray, fmt: QFormat, rmode: int, omode: int, draws=None, k=16):
    codes, n_ovf = [], 0
    for i, xi in enumerate(x.ravel()):
        u = Fraction(int(draws[i]), 1 << k) if draws is not None else Fraction(0)
        q = _round_exact(Fraction(float(xi)) * fmt.scale, rmode, u)
        c, flag = _overflow_exact(q, fmt.min_int, fmt.max_int, fmt.total_bits, fmt.signed, omode)
        codes.append(c)
        n_ovf += flag
    return np.array(codes, dtype=np.int64).reshape(x.shape), n_ovf


# --------------------------------------------------------------------------- Q formats

@SETTINGS
@given(formats())
def test_qformat_matches_fxpmath(fmt):
    ref = Fxp(None, signed=fmt.signed, n_word=fmt.total_bits, n_frac=fmt.frac_bits)
    assert fmt.fxp_dtype == ref.dtype
    assert fmt.max_value == ref.upper and fmt.min_value == ref.lower
    assert fmt.resolution == ref.precision
    assert fmt.max_int - fmt.min_int + 1 == 2 ** fmt.total_bits
    assert fmt.scale == 2 ** ref.n_frac and fmt.total_bits == ref.n_word
    # one LSB (fxpmath's precision) is code 1, and code 1 is one LSB
    if fmt.max_int >= 1:
        assert quantize([ref.precision], fmt)[0].tolist() == [1]
    assert dequantize(np.array([1]), fmt).tolist() == [ref.precision]
    assert QFormat.from_total(fmt.signed, fmt.total_bits, fmt.frac_bits) == fmt


def test_qformat_str_and_args():
    assert str(QFormat(True, 1, 6)) == "Q1.6 (s8)"
    assert str(QFormat.from_total(False, 16, 12)) == "Q4.12 (u16)"
    f = QFormat.from_total(True, 12, 4)
    assert f.overflow_args == (-2048, 2047, 12, True)
    assert (f.min_value, f.max_value) == (-128.0, 127.9375)
    # by hand: Q1.6 has 64 codes per unit, an LSB of 1/64, codes -128..127
    q = QFormat(True, 1, 6)
    assert (q.scale, q.resolution, q.min_int, q.max_int) == (64, 0.015625, -128, 127)
    u = QFormat.from_total(False, 16, 12)                       # Q4.12: 0 .. 16 - 1/4096
    assert (u.scale, u.resolution, u.min_int, u.max_int) == (4096, 2.0 ** -12, 0, 65535)
    assert (u.min_value, u.max_value) == (0.0, 15.999755859375)
    z = QFormat(True, 7, 0)                                     # integers -128 .. 127
    assert (z.scale, z.resolution, z.max_value) == (1, 1.0, 127.0)


@pytest.mark.parametrize("args", [(True, 20, 12), (False, 33, 0), (False, 0, 0),
                                  (True, -1, 8), (True, 3, -1), (True, 2.5, 3), ("yes", 1, 6)])
def test_qformat_rejects_bad(args):
    with pytest.raises(DeviceError) as e:
        QFormat(*args)
    assert "\n" not in str(e.value) and str(e.value)


def test_qformat_from_total_rejects_negative_int_bits():
    with pytest.raises(DeviceError, match="int_bits"):
        QFormat.from_total(True, 8, 8)
    assert QFormat.from_total(True, 8, 7).int_bits == 0


def test_mode_names():
    assert fx.rounding_mode("stochastic") == STOCHASTIC
    assert fx.overflow_mode(WRAP) == WRAP
    for bad, fn in [("nearest", fx.rounding_mode), ("clip", fx.overflow_mode),
                    (7, fx.rounding_mode), (True, fx.overflow_mode)]:
        with pytest.raises(DeviceError) as e:
            fn(bad)
        assert "\n" not in str(e.value) and "allowed" in str(e.value)
    with pytest.raises(DeviceError, match="nearest-even"):
        quantize(np.zeros(3), QFormat(True, 1, 6), rounding="round")
    with pytest.raises(DeviceError, match="saturate"):
        quantize(np.zeros(3), QFormat(True, 1, 6), overflow="clip")


# --------------------------------------------------------------------------- quantize

@SETTINGS
@given(st.data(), formats(), st.sampled_from([FLOOR, NEAREST_EVEN]), st.sampled_from([SATURATE, WRAP]))
def test_quantize_matches_fxpmath(data, fmt, rmode, omode):
    x = data.draw(values_for(fmt, far=False))
    codes, n_ovf, state = quantize(x, fmt, rmode, omode)
    ref = Fxp(x, signed=fmt.signed, n_word=fmt.total_bits, n_frac=fmt.frac_bits,
              rounding=FXP_ROUNDING[rmode], overflow=FXP_OVERFLOW[omode])
    assert codes.dtype == np.int64 and state is None
    np.testing.assert_array_equal(codes, np.asarray(ref.val).astype(np.int64))
    assert n_ovf == _codes_exact(x, fmt, rmode, omode)[1]


@SETTINGS
@given(st.data(), formats(), st.sampled_from([FLOOR, NEAREST_EVEN, NEAREST_AWAY]),
       st.sampled_from([SATURATE, WRAP]))
def test_quantize_matches_exact(data, fmt, rmode, omode):
    x = data.draw(values_for(fmt))
    codes, n_ovf, _ = quantize(x.reshape(1, -1), fmt, rmode, omode)
    ref, ref_n = _codes_exact(x, fmt, rmode, omode)
    np.testing.assert_array_equal(codes.ravel(), ref)
    assert codes.shape == (1, x.size) and n_ovf == ref_n
    np.testing.assert_array_equal(dequantize(codes, fmt).ravel(), [float(c) / fmt.scale for c in ref])


@pytest.mark.parametrize("fmt", [QFormat(True, 1, 6), QFormat(False, 0, 8), QFormat(True, 0, 0),
                                 QFormat.from_total(True, 32, 16), QFormat.from_total(False, 32, 32),
                                 QFormat.from_total(True, 32, 0)])
@pytest.mark.parametrize("rmode", [FLOOR, NEAREST_EVEN, NEAREST_AWAY])
@pytest.mark.parametrize("omode", [SATURATE, WRAP])
def test_quantize_edges(fmt, rmode, omode):
    r, lo, hi = Fraction(1, fmt.scale), fmt.min_int, fmt.max_int
    ex = [0, r, -r, Fraction(lo) * r, Fraction(hi) * r, (lo - 1) * r, (hi + 1) * r,
          r / 2, -r / 2, 3 * r / 2, -3 * r / 2, 5 * r / 2, -5 * r / 2,
          (lo - Fraction(1, 2)) * r, (hi + Fraction(1, 2)) * r, 1000 * (hi + 1) * r, -1000 * (hi + 1) * r]
    x = np.array([float(v) for v in ex] + [-0.0, 1e300, -1e300])
    codes, n_ovf, _ = quantize(x, fmt, rmode, omode)
    ref, ref_n = _codes_exact(x, fmt, rmode, omode)
    np.testing.assert_array_equal(codes, ref)
    assert n_ovf == ref_n
    if rmode in FXP_ROUNDING:
        small = np.abs(x) < 2.0 ** 40               # fxpmath's wrap fails beyond int64
        fref = Fxp(x[small], signed=fmt.signed, n_word=fmt.total_bits, n_frac=fmt.frac_bits,
                   rounding=FXP_ROUNDING[rmode], overflow=FXP_OVERFLOW[omode])
        np.testing.assert_array_equal(codes[small], np.asarray(fref.val).astype(np.int64))


def test_quantize_saturation_counts_and_specials():
    f = QFormat(True, 1, 6)                          # codes -128..127, values -2..1.984375
    codes, n, _ = quantize([0.0, 1.984375, 1.99, 2.0, -2.0, -2.01, 5.0, np.inf, -np.inf], f)
    assert codes.tolist() == [0, 127, 127, 127, -128, -128, 127, 127, -128]
    assert n == 5
    codes, n, _ = quantize([2.0, -2.015625, 1.0], f, overflow="wrap")
    assert codes.tolist() == [-128, 127, 64] and n == 2
    with pytest.raises(DataError):
        quantize([0.0, np.nan], f)
    with pytest.raises(DataError):
        quantize([np.inf], f, overflow="wrap")
    with pytest.raises(ValueError, match="lfsr_state"):
        quantize([0.1], f, "stochastic")


@SETTINGS
@given(formats(max_bits=24), st.lists(st.integers(-(2 ** 24), 2 ** 24), min_size=1, max_size=20),
       st.sampled_from(ALL_ROUNDING))
def test_dequantize_roundtrip(fmt, ks, rmode):
    codes = np.clip(np.array(ks, dtype=np.int64), fmt.min_int, fmt.max_int)
    back, n, _ = quantize(dequantize(codes, fmt), fmt, rmode, lfsr_state=lfsr_seed(1))
    np.testing.assert_array_equal(back, codes)
    assert n == 0


# --------------------------------------------------------------------------- stochastic rounding

@SETTINGS
@given(st.data(), formats(), st.integers(0, 2 ** 40), st.sampled_from([SATURATE, WRAP]),
       st.sampled_from([4, 16, 31]))
def test_quantize_stochastic_exact_and_within_one_lsb(data, fmt, seed, omode, k):
    x = data.draw(values_for(fmt))
    state = lfsr_seed(seed)
    codes, n_ovf, new_state = quantize(x, fmt, "stochastic", omode, lfsr_state=state, rand_bits=k)
    draws, end = lfsr_fill(state, k, x.size)
    assert new_state == end                          # k LFSR steps per element, C order
    ref, ref_n = _codes_exact(x, fmt, STOCHASTIC, omode, draws, k)
    np.testing.assert_array_equal(codes, ref)
    assert n_ovf == ref_n
    t = [Fraction(float(v)) * fmt.scale for v in x]
    for c, ti in zip(codes, t):
        if fmt.min_int <= ti <= fmt.max_int:
            assert c in (math.floor(ti), math.ceil(ti))   # never more than 1 LSB off


@pytest.mark.parametrize("lsb_offset", [0.5, 0.25, -2.75, 1.0 / 3.0])
def test_quantize_stochastic_unbiased(lsb_offset):
    f = QFormat(True, 3, 8)
    n = 20000
    x = np.full(n, lsb_offset / f.scale)
    codes, _, _ = quantize(x, f, "stochastic", lfsr_state=lfsr_seed(2024))
    target = lsb_offset
    p = target - math.floor(target)
    se = math.sqrt(p * (1 - p) / n)
    assert abs(codes.mean() - target) < 5 * se + 2.0 ** -16
    assert set(np.unique(codes)) == {math.floor(target), math.floor(target) + 1}


def test_shift_round_stochastic_unbiased():
    state = lfsr_seed(99)
    for v, shift in [(8, 4), (-8, 4), (-3, 2), (1, 3)]:
        total, n = 0, 5000
        for _ in range(n):
            rand, state = draw_rand(STOCHASTIC, shift, state)
            total += shift_round(v, shift, STOCHASTIC, rand)
        target = v / 2 ** shift
        p = target - math.floor(target)
        assert abs(total / n - target) < 5 * math.sqrt(p * (1 - p) / n)


def test_stochastic_deterministic_given_seed():
    f = QFormat(True, 1, 6)
    x = np.full((40, 25), 0.5 / f.scale)
    a = quantize(x, f, STOCHASTIC, lfsr_state=lfsr_seed(5))
    b = quantize(x, f, STOCHASTIC, lfsr_state=lfsr_seed(5))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2] and a[2] != lfsr_seed(5)
    c = quantize(x, f, STOCHASTIC, lfsr_state=lfsr_seed(6))
    d = quantize(x, f, STOCHASTIC, lfsr_state=a[2])        # continuing the stream
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])
    # C order: element i of the raveled array uses draw i
    flat = quantize(x.ravel(), f, STOCHASTIC, lfsr_state=lfsr_seed(5))
    np.testing.assert_array_equal(a[0].ravel(), flat[0])
    assert quantize(x, f, FLOOR, lfsr_state=123)[2] == 123    # other modes leave the state alone


# --------------------------------------------------------------------------- scalar kernels

@settings(max_examples=400, deadline=None)
@given(st.integers(-(2 ** 62), 2 ** 62), st.integers(0, 62), st.sampled_from(ALL_ROUNDING),
       st.integers(0, 2 ** 62))
def test_shift_round_exact(v, shift, mode, rand):
    u = Fraction(rand % (1 << shift), 1 << shift)
    assert shift_round(v, shift, mode, rand) == _round_exact(Fraction(v, 1 << shift), mode, u)


@settings(max_examples=150, deadline=None)
@given(st.integers(-(2 ** 52), 2 ** 52), st.integers(0, 40), st.sampled_from([FLOOR, NEAREST_EVEN]))
def test_shift_round_matches_fxpmath(v, shift, mode):
    ref = Fxp(v / 2.0 ** shift, signed=True, n_word=64, n_frac=0, rounding=FXP_ROUNDING[mode])
    assert shift_round(v, shift, mode, 0) == int(ref.val)


def test_shift_round_ties_negative():
    # v / 4 for v = -10..10: ties at odd multiples of 2
    for v in range(-10, 11):
        r = Fraction(v, 4)
        assert shift_round(v, 2, FLOOR, 0) == math.floor(r)
        assert shift_round(v, 2, NEAREST_EVEN, 0) == round(r)
        assert shift_round(v, 2, NEAREST_AWAY, 0) == (math.floor(r + Fraction(1, 2)) if v >= 0
                                                       else -math.floor(-r + Fraction(1, 2)))
    assert [shift_round(v, 1, NEAREST_AWAY, 0) for v in (-3, -1, 1, 3)] == [-2, -1, 1, 2]
    assert [shift_round(v, 1, NEAREST_EVEN, 0) for v in (-3, -1, 1, 3)] == [-2, 0, 0, 2]


@SETTINGS
@given(st.integers(-(2 ** 40), 2 ** 40), st.integers(0, 22), st.sampled_from(ALL_ROUNDING))
def test_shift_round_left_and_zero(v, s, mode):
    assert shift_round(v, -s, mode, 12345) == v * 2 ** s
    assert shift_round(v, 0, mode, 12345) == v


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2 ** 61), 2 ** 61), st.integers(1, 62), st.booleans(), st.sampled_from([SATURATE, WRAP]),
       st.integers(-(2 ** 40), 2 ** 40), st.integers(0, 2 ** 40))
def test_clamp_wrap_overflow_exact(v, n, signed, mode, lo, width):
    hi = lo + width
    assert clamp(v, lo, hi) == (min(max(v, lo), hi), int(not lo <= v <= hi))
    assert wrap(v, n, signed) == _overflow_exact(v, 0, 0, n, signed, WRAP)[0]
    assert overflow(v, lo, hi, n, signed, mode) == _overflow_exact(v, lo, hi, n, signed, mode)


@SETTINGS
@given(st.integers(-(2 ** 50), 2 ** 50), formats())
def test_wrap_matches_fxpmath(v, fmt):
    ref = Fxp(float(v), signed=fmt.signed, n_word=fmt.total_bits, n_frac=0, overflow="wrap")
    assert wrap(v, fmt.total_bits, fmt.signed) == int(ref.val)


@st.composite
def mul_case(draw):
    fa, fb, fo = draw(formats()), draw(formats()), draw(formats())
    if not (fa.signed or fb.signed) and fa.total_bits + fb.total_bits > 63:
        fb = QFormat.from_total(True, fb.total_bits, min(fb.frac_bits, fb.total_bits - 1))
    a = draw(st.integers(fa.min_int, fa.max_int))
    b = draw(st.integers(fb.min_int, fb.max_int))
    return fa, fb, fo, a, b


@settings(max_examples=300, deadline=None)
@given(mul_case(), st.sampled_from(ALL_ROUNDING), st.sampled_from([SATURATE, WRAP]), st.integers(0, 2 ** 62))
def test_fx_mul_exact(case, mode, omode, rand):
    fa, fb, fo, a, b = case
    shift = fa.frac_bits + fb.frac_bits - fo.frac_bits
    # exact: real product expressed in output LSBs, rounded, then overflowed
    real = Fraction(a, fa.scale) * Fraction(b, fb.scale)
    u = Fraction(rand % (1 << shift), 1 << shift) if shift > 0 else Fraction(0)
    q = _round_exact(real * fo.scale, mode, u)
    ref = _overflow_exact(q, fo.min_int, fo.max_int, fo.total_bits, fo.signed, omode)
    got = fx_mul(a, b, shift, mode, rand, *fo.overflow_args, omode)
    assert got == ref
    assert requantize(a, fa.frac_bits, fo.frac_bits, mode, rand, *fo.overflow_args, omode) == \
        _overflow_exact(_round_exact(Fraction(a, fa.scale) * fo.scale, mode,
                                     Fraction(rand % (1 << (fa.frac_bits - fo.frac_bits)),
                                              1 << (fa.frac_bits - fo.frac_bits))
                                     if fa.frac_bits > fo.frac_bits else Fraction(0)),
                        fo.min_int, fo.max_int, fo.total_bits, fo.signed, omode)


@SETTINGS
@given(st.integers(-(2 ** 11), 2 ** 11 - 1), st.integers(-(2 ** 11), 2 ** 11 - 1), formats(max_bits=16),
       st.sampled_from([FLOOR, NEAREST_EVEN]), st.sampled_from([SATURATE, WRAP]))
def test_fx_mul_matches_fxpmath(a, b, fo, mode, omode):
    fa, fb = QFormat(True, 3, 8), QFormat(True, 1, 10)
    shift = fa.frac_bits + fb.frac_bits - fo.frac_bits
    real = (a / fa.scale) * (b / fb.scale)           # exact in float64 (24 significant bits)
    ref = Fxp(real, signed=fo.signed, n_word=fo.total_bits, n_frac=fo.frac_bits,
              rounding=FXP_ROUNDING[mode], overflow=FXP_OVERFLOW[omode])
    assert fx_mul(a, b, shift, mode, 0, *fo.overflow_args, omode)[0] == int(ref.val)


# --------------------------------------------------------------------------- LFSR

def _gf2_apply(cols, v):
    r, i = 0, 0
    while v:
        if v & 1:
            r ^= cols[i]
        v >>= 1
        i += 1
    return r


def _gf2_pow(cols, e):
    res = [1 << i for i in range(32)]
    while e:
        if e & 1:
            res = [_gf2_apply(res, c) for c in cols]
        cols = [_gf2_apply(cols, c) for c in cols]
        e >>= 1
    return res


def test_lfsr_is_maximal_length():
    """The step is linear over GF(2); the orbit of a state has length exactly
    2**32 - 1 iff M**N fixes it and M**(N/q) does not, for each prime q | N."""
    cols = [int(lfsr_next(1 << i)) for i in range(32)]
    n = 2 ** 32 - 1
    assert 3 * 5 * 17 * 257 * 65537 == n
    for seed in (1, 2, 12345):
        v = lfsr_seed(seed)
        assert _gf2_apply(_gf2_pow(cols, n), v) == v
        for q in (3, 5, 17, 257, 65537):
            assert _gf2_apply(_gf2_pow(cols, n // q), v) != v


@SETTINGS
@given(st.integers(1, 2 ** 32 - 1), st.integers(1, 2 ** 32 - 1))
def test_lfsr_linear_and_in_range(a, b):
    if a != b:
        assert lfsr_next(a ^ b) == lfsr_next(a) ^ lfsr_next(b)
    assert 1 <= lfsr_next(a) < 2 ** 32


def test_lfsr_short_period_check_and_polynomial():
    s = lfsr_seed(3)
    seen, bits = set(), []
    for _ in range(1 << 16):
        assert 0 < s < 2 ** 32 and s not in seen
        seen.add(s)
        bits.append(s & 1)
        s = lfsr_next(s)
    # output bits follow the reciprocal of x^32 + x^22 + x^2 + x + 1
    assert all(bits[i + 32] == bits[i + 31] ^ bits[i + 30] ^ bits[i + 10] ^ bits[i]
               for i in range(len(bits) - 32))
    assert lfsr_next(1) == 0x80200003 and lfsr_next(2) == 1


@SETTINGS
@given(st.integers(1, 2 ** 32 - 1), st.integers(0, 62))
def test_lfsr_bits_costs_k_steps(state, k):
    value, new = lfsr_bits(state, k)
    s, expect = state, 0
    for _ in range(k):
        expect = (expect << 1) | (s & 1)              # first bit drawn is the MSB
        s = lfsr_next(s)
    assert (value, new) == (expect, s) and 0 <= value < 2 ** k
    assert draw_rand(STOCHASTIC, k, state) == (value, new)
    assert draw_rand(NEAREST_EVEN, k, state) == (0, state)


def test_lfsr_seed_and_reproducible_sequence():
    seeds = [0, 1, 2, -1, -(2 ** 70), 2 ** 64, 2 ** 64 + 1, 10 ** 30] + list(range(3, 1000))
    states = [lfsr_seed(s) for s in seeds]
    assert all(isinstance(s, int) and 0 < s < 2 ** 32 for s in states)
    # seeds are taken mod 2**64: 0 == 2**64 == -2**70 and 1 == 2**64 + 1, all others distinct
    assert len(set(states)) == len(states) - 3
    assert lfsr_seed(0) == lfsr_seed(2 ** 64) == lfsr_seed(-(2 ** 70))
    assert lfsr_seed(1) == lfsr_seed(2 ** 64 + 1) != lfsr_seed(0)
    # golden: pins the seed mixer and the taps (a change breaks old checkpoints)
    s = lfsr_seed(12345)
    seq = [s]
    for _ in range(5):
        seq.append(int(lfsr_next(seq[-1])))
    assert seq == GOLDEN_SEQ
    assert lfsr_fill(s, 8, 3)[0].tolist() == GOLDEN_BYTES


GOLDEN_SEQ = [0x22118258, 0x1108C12C, 0x08846096, 0x0442304B, 0x82011826, 0x41008C13]
GOLDEN_BYTES = [0x15, 0xDA, 0x0D]


# --------------------------------------------------------------------------- JIT == pure Python

BATTERY = r"""
import json
import numpy as np
from edgesnn import fixed as fx

out = {"kind": type(fx.shift_round).__name__, "r": []}
R = out["r"].append
vals = [0, 1, -1, 2, -2, 3, -3, 5, -5, 6, -6, 7, -7, 8, -8, 127, -128, 128, -129, 255, 256,
        1000, -1000, 2**31 - 1, -2**31, 2**31, 3 * 2**39, -3 * 2**39, 2**61 + 12345, -2**61 - 12345]
state = fx.lfsr_seed(42)
for v in vals:
    for sh in (0, 1, 2, 3, 7, 31, 62, -1, -5):
        for mode in (0, 1, 2, 3):
            rand, state = fx.draw_rand(mode, max(sh, 0), state)
            if sh < 0 and abs(v) > 2**50:
                continue
            R(int(fx.shift_round(v, sh, mode, rand)))
    for n, signed in ((1, True), (1, False), (8, True), (8, False), (32, True), (32, False), (62, True)):
        R(int(fx.wrap(v, n, signed)))
        R([int(t) for t in fx.overflow(v, -100, 100, n, signed, 0)])
        R([int(t) for t in fx.overflow(v, -100, 100, n, signed, 1)])
    R([int(t) for t in fx.clamp(v, -(2**31), 2**31 - 1)])
R(int(state))
# numpy-typed arguments must not change the bits
R(int(fx.shift_round(np.int32(-77), np.uint8(3), 1, np.uint32(5))))
R(int(fx.wrap(np.uint32(4000000000), np.int64(32), True)))
R([int(t) for t in fx.fx_mul(np.int16(-300), np.int32(70000), np.int8(9), 2, 0, -2**15, 2**15 - 1, 16, True, 1)])
fa = fx.QFormat(True, 1, 6)
codes = list(range(-128, 128, 7))
for a in codes:
    for b in (-128, -65, -1, 0, 1, 33, 127):
        for mode in (0, 1, 2, 3):
            for ovf in (0, 1):
                rand, state = fx.draw_rand(mode, 6, state)
                R([int(t) for t in fx.fx_mul(a, b, 6, mode, rand, *fa.overflow_args, ovf)])
                R([int(t) for t in fx.requantize(a * b, 12, 3, mode, rand, -50, 50, 8, False, ovf)])
s = fx.lfsr_seed(7)
for k in range(0, 63, 5):
    v, s = fx.lfsr_bits(s, k)
    R([int(v), int(s)])
d, s = fx.lfsr_fill(s, 13, 50)
R([int(t) for t in d] + [int(s)])
x = np.concatenate([np.linspace(-3, 3, 97), [0.5 / 64, -0.5 / 64, 1.5 / 64, -1.5 / 64, 1e20, -1e20]])
for fmt in (fa, fx.QFormat(False, 2, 5), fx.QFormat.from_total(True, 32, 20)):
    for rmode in fx.ROUNDING_MODES:
        for omode in fx.OVERFLOW_MODES:
            c, n, s = fx.quantize(x, fmt, rmode, omode, lfsr_state=s if rmode == "stochastic" else None)
            if s is None:
                s = 99
            R(c.tolist() + [n, int(s)])
            R(fx.dequantize(c, fmt).tolist())
print(json.dumps(out))
"""


def test_jit_and_pure_python_give_same_bits():
    procs = {}
    for disable in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=disable)
        procs[disable] = subprocess.Popen([sys.executable, "-c", BATTERY], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = {}
    for disable, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        res[disable] = json.loads(stdout)
    assert res["1"]["kind"] == "function" and res["0"]["kind"] == "CPUDispatcher"
    assert len(res["0"]["r"]) > 2000
    for i, (a, b) in enumerate(zip(res["0"]["r"], res["1"]["r"])):
        assert a == b, f"item {i}: jit {a} != pure {b}"
    assert len(res["0"]["r"]) == len(res["1"]["r"])


@pytest.mark.parametrize("omode", [SATURATE, WRAP])
def test_fx_mul_left_shift_out_of_int64(omode):
    """The hypothesis counterexample: 4151 * 2069366 * 2**30 leaves int64 (was 0)."""
    fo = QFormat(True, 15, 16)
    real_code = 4151 * 2069366 << 30
    got = fx_mul(4151, 2069366, -30, NEAREST_EVEN, 0, *fo.overflow_args, omode)
    assert got == _overflow_exact(real_code, fo.min_int, fo.max_int, fo.total_bits, fo.signed,
                                  omode)
    got = fx_mul(-4151, 2069366, -30, NEAREST_EVEN, 0, *fo.overflow_args, omode)
    assert got == _overflow_exact(-real_code, fo.min_int, fo.max_int, fo.total_bits, fo.signed,
                                  omode)
