"""The largest magnitude of every intermediate of the fixed engine's int64 datapath.

One table, built once per engine in Python (``datapath``): for each operation the
kernels perform, the largest ``|value|`` it can form from codes in their formats, and
the limit it must stay within. The build-time check (``first_excess``), the
learning-rate check and the kernels' fast-path gates (``gates``: constants the kernels
receive in ``Net``) all read this table, so they cannot drift apart.

Limits: a single product at most ``2**62`` (a MAC adds it to an accumulator of at most
63 bits and saturates there), every other sum, including the bits a rounding adds
before its shift, at most ``2**63 - 1``, a rounding shift at most 62 bits.
Formats are the engine's ``arith.Formats``; the per-format quantities below (largest
code, fractional bits, rounding mode) are tuples of the same shape and field names.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgesnn.fixed import FLOOR, SATURATE, STOCHASTIC

from .arith import I32_MAX as INT32_MAX
from .arith import Formats
from .constants import ALPHA_FRAC

PRODUCT_MAX = 1 << 62
SUM_MAX = (1 << 63) - 1
SHIFT_MAX = 62
ONE_ALPHA = 1 << ALPHA_FRAC


class Operands(NamedTuple):
    """What the largest magnitudes depend on (the engine's constants)."""

    fmt: Formats              # the engine's formats
    nu: np.ndarray            # (L+1, 5) membrane constants (Layout.nu)
    tq: np.ndarray            # (L+1, 2) presynaptic trace decays (code, k)
    th: np.ndarray            # (L+1, 2) postsynaptic trace decays; rows of spiking layers
    alpha_post: int           # Q.16 codes
    alpha_pre: int
    lr: int                   # learning-rate shift
    classes: int
    exp_bits: int             # softmax numerators: unsigned exp_bits-bit codes
    fb_mag: int               # DFA regenerated feedback magnitude (0 without DFA)
    acc_hi: int               # MAC accumulator's largest value
    per_sample: bool
    carry: bool
    tess_groups: int = 0      # TESS: the largest D (0 without TESS)
    tess_size: int = 0        # the largest pooling group
    tess_codes: tuple = (0, 0, 0)    # largest codes of 1/size, 1/(D*temp), 1/(D*temp*size)
    tess_shifts: tuple = (0, 0, 0)   # and their k (constants.reciprocal_constant)


class Entry(NamedTuple):
    """The largest ``|value|`` of one operation and its limit (None: an operand only the
    gates read)."""

    value: int
    limit: int | None


class Gates(NamedTuple):
    """The kernels' static fast-path gates (``Net`` fields of the same names)."""

    syn_rows: int             # rows accumulate_rows may sum before a partial sum can clamp
    syn_rows32: int           # rows whose sum fits its int32 lanes
    factor_det: int           # 1: factors may run the branch-free 32x32->64 loop
    sig_exact: int            # 1: no readout-error dot product reaches the accumulator's range


def magnitudes(fmt: Formats) -> Formats:
    """Largest ``|code|`` of each format (a ``Formats`` of ints)."""
    return Formats(*(max(-f.lo, f.hi) for f in fmt))


def _rounding(v: int, k: int, mode: int) -> int:
    """Largest magnitude formed while rounding ``|x| <= v`` by ``k`` bits (``arith.rnd``)."""
    if k <= 0:
        return v << -k
    if mode == FLOOR:
        return v
    if mode == STOCHASTIC:                # bits below the top 32 floored first, + a word's bits
        return (v >> max(k - 32, 0)) + (1 << min(k, 32))
    return v + (1 << (k - 1))


def _rounded(v: int, k: int) -> int:
    """Largest ``|round(x / 2**k)|`` for ``|x| <= v`` (any mode)."""
    return v << -k if k <= 0 else (v >> k) + 1


def _into(v: int, k: int, mode: int, dst: int) -> int:
    """``dst -= round(x / 2**k)`` or ``dst += ...`` for ``|x| <= v``, ``|dst| <= dst``."""
    return max(_rounding(v, k, mode), dst + _rounded(v, k))


def datapath(op: Operands) -> dict[str, Entry]:
    """Operation -> Entry, every intermediate of the kernels (docs/fixed_point.md).

    ``a`` is scaled by ``alpha_post`` after its rounding and before its clamp (the
    device rounds once per step of the product), so that product is bounded by the
    unclamped ``round(g*h / 2**f_T)``, not by the signal format.
    """
    fmt = op.fmt
    m = magnitudes(fmt)
    f = Formats(*(r.frac for r in fmt))
    mode = Formats(*(r.rounding for r in fmt))
    e_max = 1 << f.signal                                # |softmax - onehot| <= 1
    # the accumulator's positive side: a rounding adds a non-negative amount, and a product
    # (at most 2**62) added to its lo, -(hi + 1) >= -2**62, stays >= -2**63
    acc = op.acc_hi
    a_max = _rounded(m.signal * m.trace, f.trace)        # a before alpha and its clamp
    a_alpha = a_max * abs(op.alpha_post) if op.alpha_post != ONE_ALPHA else 0   # alpha 1: no
    gp_alpha = m.signal * abs(op.alpha_pre) if op.alpha_pre != ONE_ALPHA else 0  # multiply
    dw = m.signal * m.trace + (m.signal << f.trace)      # c*q + a<<f_T before the accumulator
    dw_acc = min(acc, dw)
    wal = m.weight << (f.current - f.weight)
    t: dict[str, Entry] = {
        # operands of the gates
        "signal code": Entry(m.signal, None),
        "trace code": Entry(m.trace, None),
        "weight aligned to the current": Entry(wal, None),
        "readout error dot product": Entry(op.classes * e_max * m.weight, None),
        # single products
        "readout error x weight": Entry(e_max * m.weight, PRODUCT_MAX),
        "readout error x DFA feedback": Entry(e_max * max(op.fb_mag, 1), PRODUCT_MAX),
        "g*psi x weight": Entry(m.signal * m.weight, PRODUCT_MAX),
        "signal x trace": Entry(m.signal * m.trace, PRODUCT_MAX),
        "factor a x alpha_post": Entry(a_alpha, PRODUCT_MAX),
        "gp x alpha_pre": Entry(gp_alpha, PRODUCT_MAX),
        "factor a aligned to the trace": Entry(m.signal << f.trace, PRODUCT_MAX),
        # sums
        "synaptic accumulate": Entry(wal + m.current, SUM_MAX),
        "learning-signal accumulate": Entry(acc + max(e_max * m.weight, m.signal * m.weight,
                                                      e_max * op.fb_mag), SUM_MAX),
        "learning-signal rounding": Entry(_rounding(acc, f.weight, mode.signal), SUM_MAX),
        "softmax division": Entry((1 << op.exp_bits) * (2 << f.signal)
                                  + op.classes * (1 << op.exp_bits), SUM_MAX),
        "factor rounding": Entry(max(_rounding(m.signal * m.trace, f.trace, mode.signal),
                                     _rounding(a_alpha, ALPHA_FRAC, mode.signal),
                                     _rounding(gp_alpha, ALPHA_FRAC, mode.signal)), SUM_MAX),
        "update dw": Entry(dw, SUM_MAX),
    }
    for l, row in enumerate(op.nu):
        code, s1, s2, s3, rsh = (int(v) for v in row)
        v = ((m.membrane * code) << s1) + (m.current << s2) + (m.bias << s3)
        t[f"layer {l} membrane update"] = Entry(_rounding(v, rsh, mode.membrane), SUM_MAX)
    for l in range(len(op.tq)):
        qc, qk = (int(v) for v in op.tq[l])
        t[f"layer {l} presynaptic trace update"] = Entry(
            _rounding(m.trace * qc + (1 << (f.trace + qk)), qk, mode.trace), SUM_MAX)
        hc, hk = (int(v) for v in op.th[l])
        t[f"layer {l} postsynaptic trace update"] = Entry(
            _rounding(m.trace * hc + (m.trace << hk), hk, mode.trace), SUM_MAX)
    if op.tess_groups:
        rc, zc, wc = op.tess_codes
        # a latent is cnt/size <= 1, rounded from a 24-bit reciprocal: <= 2**F_S (1 + 2**-23)
        # + 1; a local error |softmax - onehot| <= 1
        lat_max = min(m.signal, (1 << f.signal) + (1 << max(0, f.signal - 23)) + 1)
        zacc = min(acc, op.tess_groups * lat_max)         # logits: <= D latents
        uacc = min(acc, op.classes * min(e_max, m.signal))    # shares: <= C errors
        rk, zk, wk = op.tess_shifts
        lat = op.tess_size * rc
        zp = zacc * zc
        up = uacc * wc
        t.update({
            "TESS latent product": Entry(lat, PRODUCT_MAX),
            "TESS logit accumulate": Entry(zacc + lat_max, SUM_MAX),
            "TESS logit product": Entry(zp, PRODUCT_MAX),
            "TESS share product": Entry(up, PRODUCT_MAX),
            "TESS roundings": Entry(max(_rounding(lat, rk - f.signal, mode.signal),
                                        _rounding(zp, f.signal + zk - f.membrane,
                                                  mode.membrane),
                                        _rounding(up, wk, mode.signal)), SUM_MAX),
            "TESS unpooling sum": Entry(2 * m.signal, SUM_MAX),
        })
    if op.per_sample:
        t["update accumulate"] = Entry(_into(dw_acc, f.signal + f.trace - f.update,
                                             mode.update, m.update), SUM_MAX)
        t["bias update accumulate"] = Entry(_into(m.signal, f.signal - f.update, mode.update,
                                                  m.update), SUM_MAX)
        t["accumulated weight update"] = Entry(_into(m.update, f.update + op.lr - f.weight,
                                                     mode.weight, m.weight), SUM_MAX)
        t["accumulated bias update"] = Entry(_into(m.update, f.update + op.lr - f.bias,
                                                   mode.bias, m.bias), SUM_MAX)
        if op.carry:                      # acc - (delta << shift)
            sh = max(0, f.update + op.lr - min(f.weight, f.bias))
            t["carried remainder"] = Entry(m.update + ((_rounded(m.update, sh)) << sh), SUM_MAX)
    else:
        t["weight update"] = Entry(_into(dw_acc, f.signal + f.trace + op.lr - f.weight,
                                         mode.weight, m.weight), SUM_MAX)
        t["bias update"] = Entry(_into(m.signal, f.signal + op.lr - f.bias, mode.bias, m.bias),
                                 SUM_MAX)
    return t


def shifts(op: Operands) -> dict[str, int]:
    """Rounding shift -> bits, of the updates and the TESS signal (the others are bounded by
    construction)."""
    f = Formats(*(r.frac for r in op.fmt))
    out = {}
    if op.tess_groups:
        rk, zk, wk = op.tess_shifts
        out = {"TESS latent rounding": rk - f.signal,
               "TESS logit rounding": f.signal + zk - f.membrane, "TESS share rounding": wk}
    if op.per_sample:
        return out | {"update accumulate": f.signal + f.trace - f.update,
                      "bias accumulate": f.signal - f.update,
                      "accumulated update": f.update + op.lr - min(f.weight, f.bias)}
    return out | {"weight update": f.signal + f.trace + op.lr - f.weight,
                  "bias update": f.signal + op.lr - f.bias}


def first_excess(op: Operands) -> str | None:
    """The first operation that could leave the datapath, as a phrase, or None."""
    for what, e in datapath(op).items():
        if e.limit is not None and e.value > e.limit:
            return f"{what} may reach 2^{e.value.bit_length()}"
    for what, sh in shifts(op).items():
        if sh > SHIFT_MAX:
            return f"the {what} shifts by {sh} bits (at most {SHIFT_MAX})"
    return None


def gates(op: Operands) -> Gates:
    """The static fast-path gates, from the table."""
    t = datapath(op)
    fi, fs = op.fmt.current, op.fmt.signal
    wal = t["weight aligned to the current"].value
    room = min(fi.hi, -fi.lo)                           # 0 for an unsigned current
    det = (fs.rounding != STOCHASTIC and fs.overflow == SATURATE and op.fmt.trace.frac > 0
           and t["signal code"].value <= INT32_MAX and t["trace code"].value <= INT32_MAX)
    return Gates(syn_rows=room // wal, syn_rows32=INT32_MAX // wal, factor_det=int(det),
                 sig_exact=int(t["readout error dot product"].value <= op.acc_hi))
