"""Integer arithmetic of the fixed engine: rounding, formats, random words.

Every rounding and every bringing of a value into a format that the phases perform is
one of the small ``inline='always'`` functions here, equal to ``fixed.shift_round`` /
``fixed.overflow`` (tests/test_core_arith.py). They take scalars only and inline, so a
loop that calls them compiles as if they were written out.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba import types as nt
from numba.extending import intrinsic, overload

from edgesnn.fixed import FLOOR, NEAREST_AWAY, NEAREST_EVEN, SATURATE, STOCHASTIC, wrap

from .constants import HI, LO, NB, OV, RM, SG, leap_table
from .rng import ensure, take, words

#: 32-step LFSR leap tables (output bits and state) for the DFA feedback LFSR:
#: a compile-time constant of every kernel (no argument passing)

#: 32-step LFSR leap tables (output bits and state) for the DFA feedback LFSR:
#: a compile-time constant of every kernel (no argument passing)
LEAP = leap_table(32)
#: offset that makes a floor shift a logical one (|values| < BIAS; a multiple of 2**32)
BIAS = np.int64(1) << 61
#: largest int32: what the int32 lanes may hold (the data-dependent gates of update_rows)
I32_MAX = (1 << 31) - 1


@njit(cache=True, inline='always')
def draw32(state):
    """One 32-bit LFSR draw: ``(bits, new_state)``, equal to ``fixed.lfsr_bits(state, 32)``."""
    s = np.int64(state)
    e = (LEAP[0, s & 255] ^ LEAP[1, (s >> 8) & 255] ^ LEAP[2, (s >> 16) & 255]
         ^ LEAP[3, (s >> 24) & 255])
    return (e >> 32) & 0xFFFFFFFF, e & 0xFFFFFFFF


@njit(cache=True, inline='always')
def rnd(v, shift, mode, rng, p):
    """``v / 2**shift`` rounded by ``mode``: ``(value, read position, draws made)``.

    Deterministic modes are ``fixed.shift_round`` written branch-free (tested
    equal): floor ``x >> k``; nearest-even ``(x + 2**(k-1) - 1 + ((x >> k) & 1)) >> k``;
    nearest-away ``(x + 2**(k-1) - [x < 0]) >> k``. Stochastic rounding takes
    one 32-bit word (``rng.take``) at read position ``p``, exact value or not:
    ``floor((x + r) / 2**k)`` with ``r`` the word's top ``k`` bits; with
    ``shift > 32`` the bits below the top 32 discarded ones are floored first.
    ``shift <= 0`` is an exact left shift (no word). The caller keeps ``p`` in
    a local, stores it in ``rng[POS]`` when done and counts the draws.
    """
    x = np.int64(v)
    if shift <= 0:
        return x << (-shift), p, 0
    if mode == FLOOR:
        return x >> shift, p, 0
    half = np.int64(1) << (shift - 1)
    if mode == NEAREST_EVEN:
        return (x + (half - 1) + ((x >> shift) & 1)) >> shift, p, 0
    if mode == NEAREST_AWAY:
        return (x + half - (x >> 63 & 1)) >> shift, p, 0
    sh = shift
    if sh > 32:
        x = x >> (sh - 32)
        sh = 32
    r, p = take(rng, p)
    return (x + (r >> (32 - sh))) >> sh, p, 1


@njit(cache=True, inline='always')
def into(v, f):
    """Bring ``v`` into format row ``f`` (no rounding): ``(code, overflow flag)``.

    Saturate clamps to ``[lo, hi]``; wrap keeps the low bits (``fixed.wrap``):
    the logic of ``fixed.overflow``, written out so that it inlines.
    """
    if v < f[LO]:
        if f[OV] == SATURATE:
            return f[LO], np.int64(1)
        return wrap(v, f[NB], f[SG] != 0), np.int64(1)
    if v > f[HI]:
        if f[OV] == SATURATE:
            return f[HI], np.int64(1)
        return wrap(v, f[NB], f[SG] != 0), np.int64(1)
    return np.int64(v), np.int64(0)


@njit(cache=True, inline='always')
def to_fmt(v, shift, f, rng, p):
    """Round ``v`` by ``shift`` bits into format row ``f``: ``(code, overflow, position, draws)``."""
    r, p, d = rnd(v, shift, f[RM], rng, p)
    c, fl = into(r, f)
    return c, fl, p, d


@njit(cache=True, inline='always')
def rnd_det(x, shift, mode):
    """``rnd`` for the deterministic modes (no words): the same integer logic."""
    if shift <= 0:
        return x << (-shift)
    if mode == FLOOR:
        return x >> shift
    half = np.int64(1) << (shift - 1)
    if mode == NEAREST_EVEN:
        return (x + (half - 1) + ((x >> shift) & 1)) >> shift
    return (x + half - (x >> 63 & 1)) >> shift


@njit(cache=True, inline='always')
def rnd_lanes(x, k, bias, odd, away):
    """``rnd_det(x, k, mode)`` for ``k > 0`` as one expression (no branch on the mode):
    floor ``bias = odd = away = 0``; nearest-even ``bias = 2**(k-1) - 1, odd = 1``;
    nearest-away ``bias = 2**(k-1), away = 1``."""
    return (x + bias + ((x >> k) & odd) - ((x >> 63) & away)) >> k


@njit(cache=True)
def round_vector(v, off, count, shift, f, rng, p):
    """``v[off+j] = into(round(v[off+j] / 2**shift), f)`` for ``j < count``, in place.

    Returns ``(overflows, words drawn, read position)``. With saturation the
    loops are branch-free (SIMD); a stochastic format takes ``count``
    consecutive words (``rnd``'s rule, written out).
    """
    vr = v[off:off + count]
    sat = 0
    mode = f[RM]
    if f[OV] != SATURATE:
        draws = 0
        for j in range(count):
            c, fl, p, d = to_fmt(vr[j], shift, f, rng, p)
            draws += d
            vr[j] = c
            sat += fl
        return sat, draws, p
    lo = f[LO]
    hi = f[HI]
    if mode == STOCHASTIC and shift > 0:
        p = ensure(rng, p, count)
        w = words(rng)[p:p + count]
        pre = max(shift - 32, 0)
        k = min(shift, 32)
        for j in range(count):
            r = ((vr[j] >> pre) + (np.int64(w[j]) >> (32 - k))) >> k
            c = min(max(r, lo), hi)
            sat += np.int64(r != c)
            vr[j] = c
        return sat, count, p + count
    for j in range(count):
        r = rnd_det(vr[j], shift, mode)
        c = min(max(r, lo), hi)
        sat += np.int64(r != c)
        vr[j] = c
    return sat, 0, p


def lshr32(a, b):
    """``a >> b`` of two uint32 in 32 bits (``b < 32``). Compiled, it is one LLVM ``lshr i32``:
    numba widens integer shifts to 64 bits, which halves the lanes of a SIMD loop."""
    return np.uint32(a) >> np.uint32(b)


@intrinsic
def _lshr32_ir(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.lshr(args[0], args[1])
    return nt.uint32(nt.uint32, nt.uint32), codegen


@overload(lshr32)
def _lshr32_jit(a, b):
    return lambda a, b: _lshr32_ir(a, b)
