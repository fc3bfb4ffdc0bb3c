"""Fixed-point arithmetic of the fixed engine (DESIGN.md, "Arithmetic contract").

Vocabulary used throughout:

* a **code** is the integer stored on the device (an ``int64`` here);
* a **value** is the real number it stands for: ``value = code / 2**frac_bits``.

Everything that runs inside the simulator's hot loops is a numba ``@njit``
scalar kernel on int64 codes (``shift_round``, ``clamp``, ``wrap``,
``overflow``, ``fx_mul``, ``requantize``, the LFSR).  The kernels cast their
integer inputs to int64 on entry, never let an intermediate overflow int64
(under the preconditions stated on each), and use only arithmetic ``>>``, so
they give the same bits compiled and under ``NUMBA_DISABLE_JIT=1``.  Kernels
trust their integer mode arguments; names are checked at the Python level by
``rounding_mode`` / ``overflow_mode``.

Conventions:

* Rounding modes (plain ints, so kernels can take them as arguments):
  ``FLOOR`` rounds towards minus infinity (arithmetic right shift),
  ``NEAREST_EVEN`` rounds half to even, ``NEAREST_AWAY`` rounds half away from
  zero, ``STOCHASTIC`` rounds ``x`` to ``floor(x + u)`` with ``u`` uniform in
  [0, 1) made of LFSR bits supplied by the caller.
* Overflow modes: ``SATURATE`` clamps to the range and reports it (counted by
  the engine), ``WRAP`` keeps the low ``total_bits`` bits (two's complement
  when signed) and reports that the value changed.
* The LFSR state is explicit: passed in, returned, never global.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from edgesnn.errors import DataError, DeviceError

__all__ = [
    "FLOOR", "NEAREST_EVEN", "NEAREST_AWAY", "STOCHASTIC", "SATURATE", "WRAP",
    "ROUNDING_MODES", "OVERFLOW_MODES", "MAX_TOTAL_BITS", "LFSR_TAPS",
    "QFormat", "rounding_mode", "overflow_mode",
    "lfsr_seed", "lfsr_next", "lfsr_bits", "lfsr_fill", "draw_rand",
    "shift_round", "clamp", "wrap", "overflow", "fx_mul", "requantize",
    "quantize", "dequantize",
]

FLOOR = 0
NEAREST_EVEN = 1
NEAREST_AWAY = 2
STOCHASTIC = 3
SATURATE = 0
WRAP = 1

ROUNDING_MODES = {"floor": FLOOR, "nearest-even": NEAREST_EVEN,
                  "nearest-away": NEAREST_AWAY, "stochastic": STOCHASTIC}
OVERFLOW_MODES = {"saturate": SATURATE, "wrap": WRAP}

MAX_TOTAL_BITS = 32


def _mode(x, table: dict, what: str) -> int:
    if isinstance(x, str) and x in table:
        return table[x]
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and int(x) in table.values():
        return int(x)
    raise DeviceError(f"unknown {what} mode {x!r}; allowed: {', '.join(table)}")


def rounding_mode(x: str | int) -> int:
    """Rounding mode name (or its int) -> int; DeviceError naming the allowed names."""
    return _mode(x, ROUNDING_MODES, "rounding")


def overflow_mode(x: str | int) -> int:
    """Overflow mode name (or its int) -> int; DeviceError naming the allowed names."""
    return _mode(x, OVERFLOW_MODES, "overflow")


# --------------------------------------------------------------------------- Q formats

@dataclass(frozen=True)
class QFormat:
    """A fixed-point format ``Q<int_bits>.<frac_bits>``, signed or unsigned.

    ``total_bits = int_bits + frac_bits + signed`` (fxpmath's ``n_word``) must be
    in 1..32.  Negative ``int_bits`` (more fractional bits than the word holds)
    are not supported: use ``from_total`` and keep ``frac_bits <= total_bits -
    signed``.  Codes are two's complement when signed.
    """

    signed: bool
    int_bits: int
    frac_bits: int

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise DeviceError (one line) if the format cannot be built."""
        if not isinstance(self.signed, (bool, np.bool_)):
            raise DeviceError(f"Q format: signed must be true or false, got {self.signed!r}")
        for name in ("int_bits", "frac_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise DeviceError(f"Q format: {name} must be an integer, got {v!r}")
            if v < 0:
                raise DeviceError(f"Q format: {name} must be >= 0, got {v} "
                                  "(negative integer bits are not supported)")
        if not 1 <= self.total_bits <= MAX_TOTAL_BITS:
            raise DeviceError(f"Q format {self.int_bits}.{self.frac_bits}: total bits "
                              f"{self.total_bits} outside 1..{MAX_TOTAL_BITS}")

    @classmethod
    def from_total(cls, signed: bool, total_bits: int, frac_bits: int) -> QFormat:
        """Build from fxpmath-style ``(signed, n_word, n_frac)``."""
        return cls(bool(signed), int(total_bits) - int(frac_bits) - int(bool(signed)), int(frac_bits))

    @property
    def total_bits(self) -> int:
        return int(self.int_bits) + int(self.frac_bits) + int(bool(self.signed))

    @property
    def min_int(self) -> int:
        """Smallest code."""
        return -(1 << (self.total_bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """Largest code."""
        return (1 << (self.total_bits - 1)) - 1 if self.signed else (1 << self.total_bits) - 1

    @property
    def scale(self) -> int:
        """Codes per unit of value, ``2**frac_bits``."""
        return 1 << self.frac_bits

    @property
    def resolution(self) -> float:
        """Value of one LSB, ``2**-frac_bits``."""
        return 1.0 / self.scale

    @property
    def min_value(self) -> float:
        return self.min_int / self.scale

    @property
    def max_value(self) -> float:
        return self.max_int / self.scale

    @property
    def overflow_args(self) -> tuple[int, int, int, bool]:
        """``(lo, hi, total_bits, signed)``, the kernel arguments of ``overflow``/``fx_mul``."""
        return self.min_int, self.max_int, self.total_bits, bool(self.signed)

    @property
    def fxp_dtype(self) -> str:
        """fxpmath's name of this format, e.g. ``'fxp-s8/6'``."""
        return f"fxp-{'s' if self.signed else 'u'}{self.total_bits}/{self.frac_bits}"

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac_bits} ({'s' if self.signed else 'u'}{self.total_bits})"


# --------------------------------------------------------------------------- LFSR

#: Galois (right-shifting) toggle mask of x^32 + x^22 + x^2 + x + 1, a primitive
#: polynomial: from any nonzero state the LFSR runs through all 2**32 - 1 nonzero
#: states.  One step: ``out = s & 1; s >>= 1; if out: s ^= LFSR_TAPS``.  The
#: output bits ``out`` then obey ``b[n+32] = b[n+31] ^ b[n+30] ^ b[n+10] ^ b[n]``
#: (the reciprocal polynomial, also primitive).
LFSR_TAPS = 0x80200003


def lfsr_seed(seed: int) -> int:
    """Map any Python int to a valid (nonzero, < 2**32) LFSR state.

    The seed is taken mod 2**64 and mixed by the splitmix64 finaliser, so that
    nearby seeds (0, 1, 2, ... e.g. per core) start at unrelated points of the
    sequence; the high 32 bits are the state, 0 is replaced by 1.
    """
    m = (1 << 64) - 1
    z = (int(seed) + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return (z >> 32) or 1


@njit(cache=True)
def lfsr_next(state):
    """One LFSR step: nonzero state in [1, 2**32) -> next state (0 stays 0: never pass 0)."""
    s = np.int64(state) & 0xFFFFFFFF
    if s & 1:
        return (s >> 1) ^ LFSR_TAPS
    return s >> 1


@njit(cache=True)
def lfsr_bits(state, k):
    """Draw ``k`` random bits (0 <= k <= 62): returns ``(value in [0, 2**k), new_state)``.

    Cost: exactly ``k`` LFSR steps (none for k == 0).  Each step contributes its
    output bit (the state's LSB before the step); the first bit drawn is the
    MSB of ``value``.
    """
    s = np.int64(state) & 0xFFFFFFFF
    v = np.int64(0)
    for _ in range(k):
        v = (v << 1) | (s & 1)
        if s & 1:
            s = (s >> 1) ^ LFSR_TAPS
        else:
            s = s >> 1
    return v, s


@njit(cache=True)
def lfsr_fill(state, k, n):
    """``n`` successive ``lfsr_bits(state, k)`` draws: ``(int64 array (n,), new_state)``; n*k steps."""
    out = np.empty(n, dtype=np.int64)
    s = np.int64(state)
    for i in range(n):
        v, s = lfsr_bits(s, k)
        out[i] = v
    return out, s


@njit(cache=True)
def draw_rand(mode, shift, state):
    """The ``rand`` argument ``shift_round`` needs: ``(rand, new_state)``.

    Draws ``shift`` bits (``shift`` LFSR steps) only when ``mode == STOCHASTIC``
    and ``shift > 0``; otherwise returns ``(0, state)`` without stepping.
    """
    if mode == STOCHASTIC and shift > 0:
        return lfsr_bits(state, shift)
    return np.int64(0), np.int64(state)


# --------------------------------------------------------------------------- scalar kernels

@njit(cache=True)
def shift_round(v, shift, mode, rand):
    """Code ``v`` divided by ``2**shift``, rounded by ``mode``; returns an int64 code.

    ``0 <= shift <= 62``: right shift with rounding.  ``shift == 0`` returns v.
    ``STOCHASTIC`` returns ``floor((v + rand) / 2**shift)``; only the low
    ``shift`` bits of ``rand`` are used (give ``shift`` uniform bits, e.g. from
    ``draw_rand``).  ``-62 <= shift < 0``: exact left shift ``v * 2**-shift``
    (mode and rand ignored); the caller guarantees it fits int64.
    """
    x = np.int64(v)
    s = np.int64(shift)
    if s == 0:
        return x
    if s < 0:
        return x << (-s)
    if mode == FLOOR:
        return x >> s
    mask = (np.int64(1) << s) - 1
    if mode == STOCHASTIC:
        r = np.int64(rand) & mask
        # floor((x + r) / 2**s) without forming x + r (no overflow near int64 max)
        q = x >> s
        if (x & mask) + r > mask:
            q += 1
        return q
    q = x >> s
    rem = x & mask
    half = np.int64(1) << (s - 1)
    if rem > half:
        return q + 1
    if rem < half:
        return q
    if mode == NEAREST_EVEN:
        return q + (q & 1)
    if mode == NEAREST_AWAY:
        if x > 0:
            return q + 1
        return q
    raise ValueError("shift_round: unknown rounding mode")


@njit(cache=True)
def clamp(v, lo, hi):
    """Saturate code ``v`` to ``[lo, hi]``: ``(value, flag)``, flag 1 iff it was clamped."""
    x = np.int64(v)
    if x < lo:
        return np.int64(lo), np.int64(1)
    if x > hi:
        return np.int64(hi), np.int64(1)
    return x, np.int64(0)


@njit(cache=True)
def wrap(v, total_bits, signed):
    """Keep the low ``total_bits`` (1..62) bits of ``v``, two's complement if ``signed``."""
    n = np.int64(total_bits)
    u = np.int64(v) & ((np.int64(1) << n) - 1)
    if signed and u >= (np.int64(1) << (n - 1)):
        u -= np.int64(1) << n
    return u


@njit(cache=True)
def overflow(v, lo, hi, total_bits, signed, mode):
    """Bring code ``v`` into the output format: ``(value, flag)``.

    ``SATURATE``: clamp to ``[lo, hi]`` (which may be narrower than the format),
    flag 1 iff clamped.  ``WRAP``: ``wrap(v, total_bits, signed)``, lo/hi
    ignored, flag 1 iff the value changed.
    """
    if mode == WRAP:
        w = wrap(v, total_bits, signed)
        if w != np.int64(v):
            return w, np.int64(1)
        return w, np.int64(0)
    return clamp(v, lo, hi)


@njit(cache=True)
def fx_mul(a, b, shift, mode, rand, lo, hi, total_bits, signed, ovf_mode):
    """Fixed-point product of codes ``a`` (Qx.fa) and ``b`` (Qy.fb) into the output format.

    ``shift = fa + fb - f_out``.  Exact int64 product, then
    ``shift_round(a*b, shift, mode, rand)`` (a left shift that leaves int64
    saturates or wraps as the format says), then ``overflow(...)``; returns
    ``(code, flag)``.  Precondition: ``|a*b| < 2**63`` (true for any two
    formats of <= 32 bits except unsigned 32 x unsigned 32).
    """
    p = np.int64(a) * np.int64(b)
    if shift < 0:
        return _shift_left(p, -shift, lo, hi, total_bits, signed, ovf_mode)
    r = shift_round(p, shift, mode, rand)
    return overflow(r, lo, hi, total_bits, signed, ovf_mode)


@njit(cache=True)
def _shift_left(v, s, lo, hi, total_bits, signed, ovf_mode):
    """``overflow(v * 2**s)`` for ``0 < s <= 62`` when ``v * 2**s`` may leave int64.

    Then the value is out of every format of <= 32 bits: saturation clamps it
    by its sign; wrapping keeps its low bits, which the wrapped int64 shift has.
    """
    r = np.int64(v) << np.int64(s)
    if (r >> np.int64(s)) == v:
        return overflow(r, lo, hi, total_bits, signed, ovf_mode)
    if ovf_mode == WRAP:
        return overflow(r, lo, hi, total_bits, signed, ovf_mode)[0], np.int64(1)
    return (np.int64(hi) if v > 0 else np.int64(lo)), np.int64(1)


@njit(cache=True)
def requantize(v, from_frac, to_frac, mode, rand, lo, hi, total_bits, signed, ovf_mode):
    """Change a code's fractional bits from ``from_frac`` to ``to_frac``: ``(code, flag)``.

    Rounds when dropping bits (``shift_round`` by ``from_frac - to_frac``, so
    STOCHASTIC takes that many rand bits), shifts left exactly when adding
    them, then applies ``overflow``.
    """
    s = np.int64(from_frac) - np.int64(to_frac)
    if s < 0:
        return _shift_left(v, -s, lo, hi, total_bits, signed, ovf_mode)
    r = shift_round(v, s, mode, rand)
    return overflow(r, lo, hi, total_bits, signed, ovf_mode)


# --------------------------------------------------------------------------- arrays

def quantize(x, fmt: QFormat, rounding: str | int = "nearest-even",
             overflow: str | int = "saturate", lfsr_state: int | None = None,
             rand_bits: int = 16):
    """Real values -> codes of ``fmt``: ``(codes int64 ndarray, n_overflow, new_lfsr_state)``.

    Exact (no double rounding): ``x * 2**frac_bits`` is exact in float64, then
    rounded, then saturated (``n_overflow`` = number clamped) or wrapped
    (``n_overflow`` = number whose code changed by wrapping).  ``STOCHASTIC``
    needs ``lfsr_state``: it draws ``rand_bits`` bits (``rand_bits`` LFSR
    steps) for every element, in C order, whether or not it ends up exact or
    saturated, and rounds ``x*scale`` up when ``floor(frac(x*scale) *
    2**rand_bits) + draw >= 2**rand_bits``.  Other modes return ``lfsr_state``
    unchanged.  NaN raises DataError; +-inf saturates (DataError under wrap);
    finite values of any size wrap exactly.
    """
    rmode = rounding_mode(rounding)
    omode = overflow_mode(overflow)
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise DataError("quantize: input contains NaN")
    wrapped_away = np.zeros(x.shape, dtype=bool)
    if omode == WRAP:
        if not np.isfinite(x).all():
            raise DataError(f"quantize: infinite value cannot wrap into {fmt}")
        # drop whole multiples of 2**total_bits codes first (exact; keeps the
        # sign, so every rounding mode commutes with it) so x * scale stays finite
        x_red = np.fmod(x, float(1 << (fmt.total_bits - fmt.frac_bits)))
        wrapped_away = x_red != x
        x = x_red
    with np.errstate(over="ignore", invalid="ignore"):
        t = x * float(fmt.scale)          # exact (or +-inf under saturate)
        f = np.floor(t)
        d = t - f                         # exact fractional part in [0, 1) (nan for inf)
    new_state = lfsr_state
    if rmode == FLOOR:
        q = f
    elif rmode == NEAREST_EVEN:
        q = np.rint(t)
    elif rmode == NEAREST_AWAY:
        q = f + ((d > 0.5) | ((d == 0.5) & (t > 0)))
    else:
        if lfsr_state is None:
            raise ValueError("quantize: stochastic rounding needs an lfsr_state")
        if not 1 <= rand_bits <= 52:
            raise ValueError(f"quantize: rand_bits must be in 1..52, got {rand_bits}")
        draws, new_state = lfsr_fill(int(lfsr_state), int(rand_bits), x.size)
        new_state = int(new_state)
        with np.errstate(invalid="ignore"):
            fb = np.floor(d * float(1 << rand_bits))
        q = f + ((fb + draws.reshape(x.shape)) >= float(1 << rand_bits))
    lo, hi = fmt.min_int, fmt.max_int
    out = wrapped_away | (q < lo) | (q > hi)
    if omode == SATURATE:
        codes = np.clip(q, lo, hi).astype(np.int64)
    else:
        n = fmt.total_bits
        codes = np.fmod(q, float(1 << n)).astype(np.int64) & ((1 << n) - 1)
        if fmt.signed:
            codes = np.where(codes >= (1 << (n - 1)), codes - (1 << n), codes)
    return codes, int(np.count_nonzero(out)), new_state


def dequantize(codes, fmt: QFormat) -> np.ndarray:
    """Codes of ``fmt`` -> real values (float64 ndarray, exact for |code| < 2**53)."""
    return np.asarray(codes, dtype=np.int64).astype(np.float64) / float(fmt.scale)
