"""Integer arithmetic of the fixed engine: formats, rounding, overflow, random words.

* ``Fmt`` / ``Formats``: a number format as the kernels see it, and the engine's seven
  formats by kind (``Net.fmt``; ``net.fmt.signal.frac``). All fields are int64, so
  ``Formats`` is a homogeneous tuple of homogeneous tuples: a field read is free.
* Overflow: ``saturate`` (branch-free clamp) and ``into`` (the format's saturate or
  wrap), both returning ``(code, flag)`` as ``fixed.overflow``.
* Rounding right shifts by ``k > 0`` bits: ``floor_shift``, ``even_shift``,
  ``away_shift``, ``stoch_shift`` (a random word's top bits added first),
  ``biased_floor_shift`` (floor as a logical shift, SIMD), ``rnd_lanes`` (any
  deterministic mode as one expression), ``stoch_sum32`` (stochastic rounding in int32
  lanes), ``lut_index`` (nearest table entry) and ``div_half_up`` (a rounded division);
  ``rnd_det`` / ``rnd`` / ``to_fmt`` dispatch on a mode, ``round_vector`` rounds a
  vector in place.
* Random words: the rounding words come from :mod:`edgesnn.core.rng` (``rnd`` takes one
  per stochastic rounding); ``draw32`` leaps the DFA feedback LFSR 32 steps.

Every rounding and every bringing of a value into a format that the phases perform is
one of these functions; each equals ``fixed.shift_round`` / ``fixed.overflow`` on its
domain (tests/test_core_arith.py). They are ``inline='always'`` and take scalars
only, so a loop that calls them compiles as if they were written out in it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numba import types as nt
from numba.extending import intrinsic, overload

from edgesnn.fixed import (FLOOR, NEAREST_AWAY, NEAREST_EVEN, SATURATE, STOCHASTIC, lfsr_bits,
                           wrap)

from .rng import ensure, take, words

#: offset that makes a floor shift a logical one (|values| < BIAS; a multiple of 2**32)
BIAS = np.int64(1) << 61
#: largest int32: what the int32 lanes may hold (the data-dependent gates of update_rows)
I32_MAX = (1 << 31) - 1


# --------------------------------------------------------------------------- formats

class Fmt(NamedTuple):
    """One fixed-point format (``constants.format_row`` builds it from a device format)."""

    frac: int                 # fractional bits: value = code / 2**frac
    lo: int                   # smallest code
    hi: int                   # largest code
    bits: int                 # total bits (what wrap keeps)
    signed: int               # 1: two's complement, 0: unsigned
    rounding: int             # fixed.FLOOR, NEAREST_EVEN, NEAREST_AWAY or STOCHASTIC
    overflow: int             # fixed.SATURATE or WRAP


class Formats(NamedTuple):
    """The engine's formats by kind (device ``[formats]`` names; ``Net.fmt``)."""

    weight: Fmt
    bias: Fmt
    membrane: Fmt
    current: Fmt
    trace: Fmt
    signal: Fmt
    update: Fmt


# --------------------------------------------------------------------------- random words

def leap_table(steps: int = 32, outputs: bool = True) -> np.ndarray:
    """``(4, 256)`` int64: XOR of ``T[b, byte_b(state)]`` is ``steps`` LFSR steps at once.

    The Galois LFSR step of ``edgesnn.fixed`` is linear over GF(2), so the state after
    ``steps`` steps (and the first 32 output bits) are XORs of the contributions of
    each state bit. Entry = ``(bits << 32) | new_state`` (a uint64 seen as int64) with
    ``outputs``, else just the new state.
    """
    basis = np.zeros(32, dtype=np.uint64)
    for b in range(32):
        v, st = lfsr_bits(1 << b, 32)
        st2 = st
        for _ in range(steps // 32 - 1):
            _, st2 = lfsr_bits(int(st2), 32)
        out = (np.uint64(int(v)) << np.uint64(32)) if outputs else np.uint64(0)
        basis[b] = out | np.uint64(int(st2))
    table = np.zeros((4, 256), dtype=np.uint64)
    for byte in range(4):
        for val in range(256):
            acc = np.uint64(0)
            for bit in range(8):
                if val >> bit & 1:
                    acc ^= basis[8 * byte + bit]
            table[byte, val] = acc
    return table.view(np.int64)


#: 32-step LFSR leap tables (output bits and state) for the DFA feedback LFSR:
#: a compile-time constant of every kernel (no argument passing)
LEAP = leap_table(32)


@njit(cache=True, inline='always')
def draw32(state):
    """One 32-bit LFSR draw: ``(bits, new_state)``, equal to ``fixed.lfsr_bits(state, 32)``."""
    s = np.int64(state)
    e = (LEAP[0, s & 255] ^ LEAP[1, (s >> 8) & 255] ^ LEAP[2, (s >> 16) & 255]
         ^ LEAP[3, (s >> 24) & 255])
    return (e >> 32) & 0xFFFFFFFF, e & 0xFFFFFFFF


# --------------------------------------------------------------------------- overflow

@njit(cache=True, inline='always')
def saturate(v, lo, hi):
    """Clamp ``v`` to ``[lo, hi]`` branch-free: ``(code, flag)``, flag 1 iff clamped
    (``fixed.clamp``; min/max, so a loop of them vectorises)."""
    c = min(max(v, lo), hi)
    return c, np.int64(v != c)


@njit(cache=True, inline='always')
def into(v, f):
    """Bring ``v`` into format ``f`` (no rounding): ``(code, overflow flag)``.

    Saturate clamps to ``[f.lo, f.hi]``; wrap keeps the low ``f.bits`` bits
    (``fixed.wrap``): ``fixed.overflow``, written so that it inlines.
    """
    if v < f.lo:
        if f.overflow == SATURATE:
            return f.lo, np.int64(1)
        return wrap(v, f.bits, f.signed != 0), np.int64(1)
    if v > f.hi:
        if f.overflow == SATURATE:
            return f.hi, np.int64(1)
        return wrap(v, f.bits, f.signed != 0), np.int64(1)
    return np.int64(v), np.int64(0)


# --------------------------------------------------------------------------- rounding

@njit(cache=True, inline='always')
def floor_shift(x, k):
    """``floor(x / 2**k)``."""
    return x >> k


@njit(cache=True, inline='always')
def even_shift(x, k):
    """``x / 2**k`` to nearest, ties to even (``k > 0``): ``(x + 2**(k-1) - 1 + odd) >> k``
    with ``odd`` the lowest bit of ``x >> k``."""
    half = np.int64(1) << (k - 1)
    return (x + (half - 1) + ((x >> k) & 1)) >> k


@njit(cache=True, inline='always')
def away_shift(x, k):
    """``x / 2**k`` to nearest, ties away from zero (``k > 0``):
    ``(x + 2**(k-1) - [x < 0]) >> k``."""
    half = np.int64(1) << (k - 1)
    return (x + half - (x >> 63 & 1)) >> k


@njit(cache=True, inline='always')
def word_top(word, rk):
    """The top ``32 - rk`` bits of a 32-bit random word (``0 <= rk <= 32``), as int64."""
    return np.int64(word) >> rk


@njit(cache=True, inline='always')
def stoch_split(shift):
    """``(pre, k)`` of a stochastic shift by ``shift > 0`` bits: a word has 32 bits, so
    the ``pre = shift - 32`` lowest bits of a longer shift are floored first."""
    return max(shift - 32, 0), min(shift, 32)


@njit(cache=True, inline='always')
def stoch_shift(x, pre, k, word):
    """Stochastic rounding of ``x / 2**(pre + k)`` (``0 < k <= 32``, ``(pre, k) =
    stoch_split(shift)``): ``floor((floor(x / 2**pre) + r) / 2**k)``, ``r`` the word's
    top ``k`` bits; ``fixed.shift_round(x, pre + k, STOCHASTIC, r << pre)``."""
    return ((x >> pre) + word_top(word, 32 - k)) >> k


@njit(cache=True, inline='always')
def biased_floor_shift(y, k):
    """``floor(y / 2**k)`` for ``|y| < BIAS`` as a logical shift of ``y + BIAS`` (unsigned
    shifts vectorise where arithmetic 64-bit ones do not)."""
    return np.int64(np.uint64(y + BIAS) >> np.uint64(k)) - (BIAS >> k)


@njit(cache=True, inline='always')
def lane_consts(k, mode):
    """``(bias, odd, away)`` of ``rnd_lanes`` for a deterministic ``mode`` and ``k > 0``."""
    half = np.int64(1) << (k - 1)
    bias = half - 1 if mode == NEAREST_EVEN else (half if mode == NEAREST_AWAY else 0)
    return bias, np.int64(mode == NEAREST_EVEN), np.int64(mode == NEAREST_AWAY)


@njit(cache=True, inline='always')
def rnd_lanes(x, k, bias, odd, away):
    """``rnd_det(x, k, mode)`` for ``k > 0`` as one expression (no branch on the mode),
    ``(bias, odd, away) = lane_consts(k, mode)``: floor ``bias = odd = away = 0``;
    nearest-even ``bias = 2**(k-1) - 1, odd = 1``; nearest-away ``bias = 2**(k-1),
    away = 1``."""
    return (x + bias + ((x >> k) & odd) - ((x >> 63) & away)) >> k


@njit(cache=True, inline='always')
def rnd_det(x, shift, mode):
    """``x / 2**shift`` rounded by a deterministic ``mode`` (no words); ``shift <= 0`` is
    an exact left shift."""
    if shift <= 0:
        return x << (-shift)
    if mode == FLOOR:
        return floor_shift(x, shift)
    if mode == NEAREST_EVEN:
        return even_shift(x, shift)
    return away_shift(x, shift)


@njit(cache=True, inline='always')
def rnd(v, shift, mode, rng, p):
    """``v / 2**shift`` rounded by ``mode``: ``(value, read position, draws made)``.

    Deterministic modes as ``rnd_det``. Stochastic rounding takes one 32-bit word
    (``rng.take``) at read position ``p``, exact value or not (``stoch_shift``).
    ``shift <= 0`` is an exact left shift (no word). The caller keeps ``p`` in a
    local, stores it in ``rng[POS]`` when done and counts the draws.
    """
    x = np.int64(v)
    if shift <= 0:
        return x << (-shift), p, 0
    if mode == FLOOR:
        return floor_shift(x, shift), p, 0
    if mode == NEAREST_EVEN:
        return even_shift(x, shift), p, 0
    if mode == NEAREST_AWAY:
        return away_shift(x, shift), p, 0
    pre, k = stoch_split(shift)
    r, p = take(rng, p)
    return stoch_shift(x, pre, k, r), p, 1


@njit(cache=True, inline='always')
def to_fmt(v, shift, f, rng, p):
    """Round ``v`` by ``shift`` bits into format ``f``: ``(code, overflow, position, draws)``."""
    r, p, d = rnd(v, shift, f.rounding, rng, p)
    c, fl = into(r, f)
    return c, fl, p, d


@njit(cache=True, inline='always')
def lut_index(d, half, shift, last):
    """Entry of ``d >= 0`` in a table of step ``2**shift``: the nearest (ties up,
    ``half = 2**shift >> 1``), at most ``last`` (``constants.Table``)."""
    return min((d + half) >> shift, last)


@njit(cache=True, inline='always')
def div_half_up(num, den):
    """``num / den`` to nearest, ties up (``den > 0``): ``floor((2*num + den) / (2*den))``."""
    return (2 * num + den) // (2 * den)


@njit(cache=True)
def round_vector(v, off, count, shift, f, rng, p):
    """``v[off+j] = into(round(v[off+j] / 2**shift), f)`` for ``j < count``, in place.

    Returns ``(overflows, words drawn, read position)``. With saturation the
    loops are branch-free (SIMD); a stochastic format takes ``count``
    consecutive words (``rnd``'s rule).
    """
    vr = v[off:off + count]
    sat = 0
    mode = f.rounding
    if f.overflow != SATURATE:
        draws = 0
        for j in range(count):
            c, fl, p, d = to_fmt(vr[j], shift, f, rng, p)
            draws += d
            vr[j] = c
            sat += fl
        return sat, draws, p
    lo = f.lo
    hi = f.hi
    if mode == STOCHASTIC and shift > 0:
        p = ensure(rng, p, count)
        w = words(rng)[p:p + count]
        pre, k = stoch_split(shift)
        for j in range(count):
            c, fl = saturate(stoch_shift(vr[j], pre, k, w[j]), lo, hi)
            sat += fl
            vr[j] = c
        return sat, count, p + count
    for j in range(count):
        c, fl = saturate(rnd_det(vr[j], shift, mode), lo, hi)
        sat += fl
        vr[j] = c
    return sat, 0, p


# --------------------------------------------------------------------------- int32 lanes

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


@njit(cache=True, inline='always')
def word_top32(word, rk):
    """``word_top`` in an int32 lane: the top ``32 - rk`` bits of a uint32 word
    (``rk >= 1``, a ``np.uint32``)."""
    return np.int32(lshr32(word, rk))


@njit(cache=True, inline='always')
def stoch_sum32(y, word, rk):
    """Stochastic rounding by ``k = 32 - rk`` bits in an int32 lane, before its shift:
    ``y + word_top32(word, rk)``; the rounded value is ``stoch_sum32(...) >> k``, nonzero
    iff ``uint32(stoch_sum32(...)) >= 2**k``. Needs ``|y| + 2**k < 2**31``."""
    return np.int32(y + word_top32(word, rk))
