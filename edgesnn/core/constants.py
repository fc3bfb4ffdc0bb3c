"""Integer constants the fixed engine derives from a plan (see docs/fixed_point.md).

Everything here runs once per engine, in Python/numpy; the results are plain
int64 arrays and ints that the kernel (:mod:`edgesnn.core.kernel`) takes.

* ``format_row``: a device ``NumberFormat`` as the kernels' ``arith.Fmt``.
* ``decay_constant``: ``beta`` as ``(code, k)`` with ``x*beta ~ x*code >> k``:
  a Q0.k multiply (``k = max(16, frac bits of x)``) or the shift leak
  ``x - (x >> k)`` written as ``x*(2**k - 1) >> k``.
* ``reciprocal_constant``: a positive constant (TESS's ``1/size``, ``1/(D*temperature)``)
  as ``(code, k)``, ``value ~ code / 2**k`` with 24 significant bits; a power of two is
  ``2**23 / 2**k`` exactly (a shift).
* ``psi_table`` / ``exp_table``: lookup tables indexed by a rounded right
  shift of a membrane-format distance; the step (a power of two) is the one
  with the smallest worst-case error of the whole table.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, NamedTuple

import numpy as np

from edgesnn.errors import DeviceError
from edgesnn.fixed import OVERFLOW_MODES, ROUNDING_MODES
from edgesnn.hw import NumberFormat

from .arith import Fmt

#: Fractional bits of the alpha constants (``alpha * 2**16``, signed).
ALPHA_FRAC = 16
#: Fewest fractional bits of a multiplicative decay constant.
DECAY_MIN_BITS = 16
#: Largest k of a decay constant (keeps ``x * code`` inside int64).
DECAY_MAX_BITS = 30
#: Largest internal table (entries) for a function the device computes exactly.
EXACT_TABLE_MAX = 1 << 22


def format_row(fmt: NumberFormat) -> Fmt:
    """The kernels' ``Fmt`` (frac, lo, hi, bits, signed, rounding, overflow; Python ints)
    of a fixed-point device format."""
    if fmt.is_float:
        raise DeviceError(f"format {fmt} is floating point; the fixed engine needs Q formats")
    if fmt.bits > 62:
        raise DeviceError(f"format {fmt}: the fixed engine handles at most 62 bits")
    lo = -(1 << (fmt.bits - 1)) if fmt.signed else 0
    hi = (1 << (fmt.bits - 1)) - 1 if fmt.signed else (1 << fmt.bits) - 1
    return Fmt(int(fmt.frac_bits), int(lo), int(hi), int(fmt.bits), int(fmt.signed),
               ROUNDING_MODES[fmt.rounding], OVERFLOW_MODES[fmt.overflow])


def quantize_const(value: float, frac: int, lo: int, hi: int, what: str) -> int:
    """A constant (threshold, alpha) as a nearest-even code; DeviceError if it does not fit."""
    code = int(np.rint(value * 2.0 ** frac))
    if not lo <= code <= hi:
        raise DeviceError(f"{what} = {value:g} does not fit its format "
                          f"(codes {lo}..{hi} at {frac} fractional bits)")
    return code


# --------------------------------------------------------------------------- decays

class Decay(NamedTuple):
    """``x*beta`` is computed as ``x*code`` with ``k`` extra fractional bits."""

    code: int
    k: int

    @property
    def effective(self) -> float:
        """The decay the device applies: ``code / 2**k``."""
        return self.code / 2.0 ** self.k


def decay_constant(beta: float, mode: str, frac_bits: int) -> Decay:
    """The device's version of a decay ``beta`` in [0, 1] for a state of ``frac_bits``.

    ``multiply``: ``code = round(beta * 2**k)``, ``k = max(16, frac_bits)`` (<= 30).
    ``shift``: ``x - (x >> k)`` with ``k = round(-log2(1 - beta))`` (1..30), i.e.
    ``code = 2**k - 1``: effective ``1 - 2**-k``. ``beta = 1`` keeps the state
    (``code = 1, k = 0``), ``beta = 0`` clears it.
    """
    if not 0.0 <= beta <= 1.0:
        raise DeviceError(f"decay {beta} outside [0, 1]")
    if beta == 1.0:
        return Decay(1, 0)
    if beta == 0.0:
        return Decay(0, 0)
    if mode == "shift":
        k = int(min(DECAY_MAX_BITS, max(1, round(-math.log2(1.0 - beta)))))
        return Decay((1 << k) - 1, k)
    k = int(min(DECAY_MAX_BITS, max(DECAY_MIN_BITS, frac_bits)))
    return Decay(int(round(beta * (1 << k))), k)


# --------------------------------------------------------------------------- reciprocals

#: significant bits of a reciprocal constant: codes in [2**(RECIP_BITS-1), 2**RECIP_BITS]
RECIP_BITS = 24


def reciprocal_constant(value: Fraction) -> Decay:
    """A constant ``value > 0`` (exact) as ``code / 2**k``, ``code = round(value * 2**k)``
    (nearest, ties to even) with ``k`` such that ``code`` has ``RECIP_BITS`` significant
    bits. A power of two gives ``code = 2**(RECIP_BITS-1)``: the product is then a shift
    (``counting.real_mul``), and exact. DeviceError if ``k`` would be negative (a value of
    2**RECIP_BITS or more)."""
    value = Fraction(value)
    if value <= 0:
        raise DeviceError(f"a reciprocal constant must be positive, got {value}")
    e = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** e > value:
        e -= 1                                   # 2**e <= value < 2**(e+1)
    k = RECIP_BITS - 1 - e
    if k < 0:
        raise DeviceError(f"constant {float(value):g} is too large for a "
                          f"{RECIP_BITS}-bit reciprocal code")
    return Decay(int(round(value * 2 ** k)), int(k))


# --------------------------------------------------------------------------- LUTs

class Table(NamedTuple):
    """A lookup table of ``f(|d|)`` for a membrane-format distance ``d``.

    ``index = min((|d| + half) >> shift, len(codes) - 1)``: the nearest entry
    (ties up). Entry ``k < len-1`` holds ``f(k * step)``; the last entry holds
    0 (``f`` beyond the table). ``codes`` are in the table's output format
    (``frac`` fractional bits); ``error`` is the worst absolute error found.
    """

    codes: np.ndarray
    shift: int
    half: int
    step: float
    frac: int
    error: float


def _build(f: Callable[[np.ndarray], np.ndarray], entries: int, m: int, mem_frac: int,
           out_frac: int, out_max: int) -> np.ndarray:
    k = np.arange(entries - 1, dtype=np.float64)
    vals = f(k * 2.0 ** -m)
    codes = np.clip(np.rint(vals * 2.0 ** out_frac), 0, out_max).astype(np.int64)
    return np.concatenate([codes, np.zeros(1, dtype=np.int64)])


def _lookup(codes: np.ndarray, d_codes: np.ndarray, shift: int) -> np.ndarray:
    half = (1 << shift) >> 1
    idx = np.minimum((d_codes + half) >> shift, len(codes) - 1)
    return codes[idx]


def make_table(f: Callable[[np.ndarray], np.ndarray], entries: int, out_bits: int,
               mem_frac: int, support: float, out_frac: int | None = None) -> Table:
    """The table of ``f`` (decreasing in ``|d| >= 0``, ``f(0)`` its maximum).

    ``entries > 0``: the step ``2**-m`` (``m <= mem_frac``, so the index is a
    right shift) minimising the worst absolute error over ``[0, 2*support]``
    (nearest-entry sampling error against the truncation to 0 beyond the
    table; ties go to the wider table). ``entries == 0`` (the device computes
    ``f``): one entry per membrane code up to where ``f`` quantises to 0.
    ``out_frac`` defaults to ``out_bits`` less one bit per integer bit ``f(0)``
    needs (unsigned codes).
    """
    f0 = float(f(np.zeros(1))[0])
    if out_frac is None:
        out_frac = out_bits - max(0, math.floor(math.log2(f0)) + 1) if f0 > 0 else out_bits
    out_max = (1 << out_bits) - 1
    grid = np.linspace(0.0, 2.0 * support, 200001)
    d_codes = np.floor(grid * 2.0 ** mem_frac).astype(np.int64)
    exact = f(d_codes / 2.0 ** mem_frac)

    def error(codes: np.ndarray, shift: int) -> float:
        return float(np.max(np.abs(_lookup(codes, d_codes, shift) / 2.0 ** out_frac - exact)))

    if entries == 0:
        # one entry per membrane code, up to the first one that quantises to 0
        n = min(EXACT_TABLE_MAX, int(math.ceil(support * 2 ** mem_frac)) + 2)
        codes = _build(f, n + 1, mem_frac, mem_frac, out_frac, out_max)[:-1]
        zero = np.nonzero(codes == 0)[0]
        codes = codes[:int(zero[0]) + 1] if zero.size else np.append(codes, 0)
        return Table(codes, 0, 0, 2.0 ** -mem_frac, out_frac, error(codes, 0))
    if entries < 2:
        raise DeviceError(f"a lookup table needs at least 2 entries, got {entries}")
    best = None
    for m in range(-16, mem_frac + 1):
        codes = _build(f, entries, m, mem_frac, out_frac, out_max)
        shift = mem_frac - m
        err = error(codes, shift)
        if best is None or err < best.error - 1e-15:
            best = Table(codes, shift, (1 << shift) >> 1, 2.0 ** -m, out_frac, err)
    return best


def surrogate(name: str) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """``(psi, support)``: the spec's surrogate and the |d| beyond which it is negligible."""
    if name == "rational":
        return (lambda d: 1.0 / (100.0 * np.abs(d) + 1.0) ** 2), 4.0
    if name == "triangle":
        return (lambda d: 0.3 * np.maximum(0.0, 1.0 - np.abs(d))), 1.0
    raise DeviceError(f"unknown surrogate '{name}'")


def psi_table(name: str, entries: int, bits: int, mem_frac: int, trace_fmt: Fmt) -> Table:
    """The psi LUT, its entries converted (nearest-even, at build) to the trace format.

    The LUT itself holds ``bits``-bit unsigned codes (``Table.frac`` before the
    conversion); the engine folds the fixed shift into the trace format into
    the table, which is what shifting each looked-up entry would give.
    """
    f, support = surrogate(name)
    t = make_table(f, entries, bits, mem_frac, support)
    ftr = int(trace_fmt.frac)
    codes = np.rint(t.codes * 2.0 ** (ftr - t.frac))       # exact in float64; ties to even
    codes = np.minimum(codes, float(trace_fmt.hi)).astype(np.int64)
    err = float(np.max(np.abs(codes / 2.0 ** ftr - t.codes / 2.0 ** t.frac))) + t.error
    return t._replace(codes=codes, frac=ftr, error=err)


def exp_table(entries: int, bits: int, mem_frac: int) -> Table:
    """``exp(-d)`` for ``d >= 0`` (softmax numerators, unsigned Q1.(bits-1))."""
    support = (bits + 1) * math.log(2.0)
    return make_table(lambda d: np.exp(-np.abs(d)), entries, bits, mem_frac, support,
                      out_frac=bits - 1)
