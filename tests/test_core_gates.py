"""The kernels' fast paths at the edges of their gates, against big-integer references.

Each fast path (int32 lanes, branch-free loops, clamps left out) runs only where a gate
proves it gives the general path's bits. Here the data sit exactly at each gate and one
step past it, so both sides run, and the result is compared with Python integers (no
overflow, no fast path): the synaptic accumulates (rows summed in int32 without clamps),
the factors (32x32->64 branch-free loop), the update rows (int32 lanes, int64 lanes
without clamps, 32-bit operands, the accumulator's range, the rounding shift), and the
factor times alpha at the largest alpha the datapath check accepts (issue 13, items 13, 16).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.core import FixedEngine
from edgesnn.core import constants as CO
from edgesnn.core import forward as FW
from edgesnn.core import layout as LY
from edgesnn.core import signal as SI
from edgesnn.core import update as UP
from edgesnn.core import rng as R
from edgesnn.errors import DeviceError
from edgesnn.fixed import overflow
from edgesnn.plan import make_plan
from edgesnn.reference import init_params

from test_core_reference import _q, make_device, make_spec


def _engine(spec_kw, formats, acc=32):
    spec = make_spec(**{"layers": [("dense", 6, "soft")], **spec_kw})
    return FixedEngine(make_plan(spec, make_device(acc=acc, formats=formats)),
                       init_params(spec, 1), 1)


def _away(x: int, k: int) -> int:
    """Nearest, ties away from zero, of ``x / 2**k`` in Python integers."""
    if k <= 0:
        return x << -k
    return (x + (1 << (k - 1)) - (1 if x < 0 else 0)) >> k


def _sat(v: int, f) -> tuple[int, int]:
    return (min(max(v, int(f.lo)), int(f.hi)), int(not f.lo <= v <= f.hi))


# --------------------------------------------------------------------------- synaptic events

def _accumulate(eng, rows, value):
    """Add ``rows`` input events whose weights are all ``value`` (layer 0, from zero);
    returns ``(currents, overflows)`` of the kernel and of one event at a time."""
    net, st, buf = eng.net, eng.st, eng.buf
    lay = net.lay[0]
    n, woff = int(lay[LY.LC_N]), int(lay[LY.LC_WOFF])
    st.W[woff:woff + int(lay[LY.LC_NIN]) * n] = value
    buf.nrn[LY.R_I, :] = 0
    buf.sats[:] = 0
    buf.scr[LY.R_ACT, :rows] = np.arange(rows)
    FW.accumulate_rows(net, st, buf, 0, woff, rows, int(lay[LY.LC_TID + LY.K_W]), 0)
    fi = net.fmt.current
    sh = int(fi.frac - net.fmt.weight.frac)
    cur, sats = 0, 0
    for _ in range(rows):
        cur, f = overflow(cur + (int(value) << sh), int(fi.lo), int(fi.hi), int(fi.bits),
                          bool(fi.signed), int(fi.overflow))
        cur, sats = int(cur), sats + int(f) * n
    got = buf.nrn[LY.R_I, :n].tolist()
    return (got, int(buf.sats[int(lay[LY.LC_TID + LY.K_I])])), ([cur] * n, sats)


@pytest.mark.parametrize("rows", [3, 4])
def test_accumulated_rows_at_the_int32_gate(rows):
    """Q1.6 weights into a Q3.12 current: 3 rows of -2.0 (-32768 with its sign) fit the current
    without a clamp (the int32 path), 4 do not (the clamped path)."""
    eng = _engine(dict(inputs=5), {})
    got, want = _accumulate(eng, rows, -128)
    assert got == want
    assert not eng.buf.acc32.any()


def test_accumulated_rows_whose_bound_leaves_int64_take_the_clamped_path():
    """Q31.0 weights aligned to a Q0.31 current are 2^62 a row: two rows' bound (2^63) wraps
    int64, and a gate computed in the kernel as ``rows * 2^62`` let them into the int32
    lanes."""
    eng = _engine(dict(inputs=5), {"weight": _q(31, 0), "current": _q(0, 31)})
    for rows in (1, 2, 5):
        got, want = _accumulate(eng, rows, 2 ** 31 - 1)
        assert got == want, rows


# --------------------------------------------------------------------------- learning signal

@pytest.mark.parametrize("acc", [18, 19])
def test_readout_error_dot_products_at_the_exactness_gate(acc):
    """3 classes of ``e = -1`` (-2^9) times Q1.6 weights of -2 (-128): the dot product
    reaches 3 * 2^16, which a 19-bit accumulator holds (sums without clamps) and an
    18-bit one does not (a clamp after each class: it saturates at 2^17 - 1); both give
    the big-integer signal."""
    eng = _engine(dict(layers=[("dense", 4, "soft")]), {"signal": _q(4, 9, "nearest-away")},
                  acc=acc)
    net, st, buf = eng.net, eng.st, eng.buf
    assert net.sig_exact == (acc == 19)
    L, C = int(net.L), int(net.C)
    lay, top = net.lay[L], net.lay[L - 1]
    n, off = int(top[LY.LC_N]), int(top[LY.LC_NOFF])
    eoff, woff = int(lay[LY.LC_NOFF]), int(lay[LY.LC_WOFF])
    st.W[woff:woff + n * C] = -128
    e = [-512] * C
    buf.nrn[LY.R_G, eoff:eoff + C] = e
    buf.sats[:] = 0
    SI.signal_from_error(net, st, buf, L - 1)
    fs, fw = net.fmt.signal, int(net.fmt.weight.frac)
    want = []
    for m in range(n):
        a = 0
        for c in range(C):
            a = min(max(a + e[c] * -128, int(net.acc_lo)), int(net.acc_hi))
        want.append(_sat(_away(a, fw), fs)[0])
    assert buf.nrn[LY.R_G, off:off + n].tolist() == want
    assert want == [3 * 2 ** 16 >> 6 if acc == 19 else 2 ** 17 >> 6] * n    # 18 bits: clamped


# --------------------------------------------------------------------------- factors

def _factors(eng, g, h, psi):
    """Run ``factors`` of layer 0 on the given ``g``, ``h``, ``psi`` codes; return the kernel's
    and the big-integer ``(a, c, gp, overflows of a, c, gp)``."""
    net, st, buf = eng.net, eng.st, eng.buf
    lay = net.lay[0]
    n, off = int(lay[LY.LC_N]), int(lay[LY.LC_NOFF])
    buf.nrn[LY.R_G, off:off + n] = g
    buf.nrn[LY.R_H, off:off + n] = h
    buf.nrn[LY.R_PSI, off:off + n] = psi
    buf.sats[:] = 0
    UP.factors(net, st, buf, 0)
    tid = lay[LY.LC_TID:]
    got = (buf.nrn[LY.R_A, off:off + n].tolist(), buf.nrn[LY.R_C, off:off + n].tolist(),
           buf.nrn[LY.R_GP, off:off + n].tolist(),
           [int(buf.sats[tid[k]]) for k in (LY.K_A, LY.K_C, LY.K_G)])
    fs, ftr = net.fmt.signal, int(net.fmt.trace.frac)
    apost, apre = int(net.alpha_post), int(net.alpha_pre)
    a, c, gp, sats = [], [], [], [0, 0, 0]
    for gm, hm, pm in zip(map(int, g), map(int, h), map(int, psi)):
        am = cm = gpm = 0
        if gm and hm:
            v = _away(gm * hm, ftr)
            if apost != UP.ONE_ALPHA:
                v = _away(v * apost, CO.ALPHA_FRAC)
            am, f = _sat(v, fs)
            sats[0] += f
        if gm and pm:
            gpm, f = _sat(_away(gm * pm, ftr), fs)
            sats[2] += f
            cm = gpm
            if apre != UP.ONE_ALPHA:
                cm, f = _sat(_away(gpm * apre, CO.ALPHA_FRAC), fs)
                sats[1] += f
        a.append(am)
        c.append(cm)
        gp.append(gpm)
    return got, (a, c, gp, sats)


def _extremes(f, n, reverse):
    """``n`` codes of format row ``f``: its edges, their neighbours, 0 and +-1, in turn."""
    lo, hi = int(f.lo), int(f.hi)
    pool = [v for v in (lo, lo + 1, hi, hi - 1, 0, 1, -1) if lo <= v <= hi]
    codes = [pool[k % len(pool)] for k in range(n)]
    return np.array(codes[::-1] if reverse else codes, dtype=np.int64)


SIGNAL31 = _q(21, 9, "nearest-away")                    # signed, 31 bits: |g| <= 2^30
SIGNAL32 = _q(22, 9, "nearest-away")                    # signed, 32 bits: |g| <= 2^31
TRACE31 = _q(23, 8, signed=False)                       # unsigned, 31 bits: h <= 2^31 - 1
TRACE32 = _q(23, 8)                                     # signed, 32 bits: |h| <= 2^31


@pytest.mark.parametrize("signal,trace", [(SIGNAL31, TRACE31), (SIGNAL31, TRACE32),
                                          (SIGNAL32, TRACE31)],
                         ids=["both 31 bits (branch-free)", "32-bit trace", "32-bit signal"])
def test_factors_at_the_32_bit_gate(signal, trace):
    """The branch-free loop takes ``g``, ``h``, ``psi`` as int32: formats whose codes reach
    2^31 in magnitude go to the general loop; both give the big-integer factors."""
    eng = _engine(dict(layers=[("dense", 14, "soft")]), {"signal": signal, "trace": trace})
    fs, ft = eng.net.fmt.signal, eng.net.fmt.trace
    for rev in (False, True):
        g = _extremes(fs, 14, rev)
        h = _extremes(ft, 14, not rev)
        psi = np.abs(_extremes(ft, 14, rev)).clip(0, int(ft.hi))
        got, want = _factors(eng, g, h, psi)
        assert got == want


@pytest.mark.parametrize("code", [512, 513])
def test_the_factor_times_alpha_at_the_largest_alpha_accepted(code):
    """|a| before its clamp reaches ``2^30 (2^31 - 1) / 2^8 + 1`` (about 2^53): alpha_post
    code 512 (2^-7) keeps ``a * alpha`` within 2^62 and gives the big-integer factors;
    code 513 is refused, naming the product."""
    spec_kw = dict(alpha_post=code / 2 ** CO.ALPHA_FRAC, layers=[("dense", 14, "soft")])
    fmts = {"signal": SIGNAL31, "trace": TRACE31}
    if code == 513:
        with pytest.raises(DeviceError, match="factor a x alpha_post"):
            _engine(spec_kw, fmts)
        return
    eng = _engine(spec_kw, fmts)
    assert eng.net.alpha_post == code
    fs, ft = eng.net.fmt.signal, eng.net.fmt.trace
    g, h = _extremes(fs, 14, False), _extremes(ft, 14, True)
    got, want = _factors(eng, g, h, h)
    assert got == want


# --------------------------------------------------------------------------- update rows

#: stochastic Q1.6 weights (int8, as the reference cases: the same compiled kernels), Q31.0
#: signal (factors up to 2^31), unsigned Q5.10 trace: the weight update shifts by
#: 0 + 10 + lr - 6 bits, 26 by default (a dw of 2^31 moves a weight by 32 codes)
UPDATE_FORMATS = {"weight": _q(1, 6, "stochastic"), "signal": _q(31, 0, "nearest-away"),
                  "trace": _q(5, 10, signed=False)}
LR = 22
N, ROWS, FTR = 6, 5, 10


def _factors_with_bound(bound, cmax=None):
    """``c``, ``a`` (N,), ``q``, ``x`` (ROWS,) with ``max|c| * max|q| + (max|a| << FTR) ==
    bound`` (or ``max|c| == cmax``), the maxima on one synapse (neuron 0, row 0, x = 1) so
    that its ``dw`` is the bound itself."""
    qmax = 3
    if cmax is None:
        r = next(r for r in (1, 2, 3) if (bound - (r << FTR)) % qmax == 0)
        cmax = (bound - (r << FTR)) // qmax
    else:
        r = 2
    c = np.array([cmax, 0, -5, 7, 0, -1], dtype=np.int64)
    a = np.array([r if cmax > 0 else -r, 1, 0, -1, 0, 0], dtype=np.int64)
    q = np.array([qmax, 0, 2, 1, 3], dtype=np.int64)
    x = np.array([1, 1, 0, 0, 1], dtype=np.int64)
    return c, a, q, x


def _update(eng, c, a, q, x):
    """One ``update_rows`` of layer 0's weights: the kernel's and the big-integer ``(weights,
    next rounding words)``, and the weights before."""
    net, st, buf = eng.net, eng.st, eng.buf
    lay = net.lay[0]
    off, ioff, woff = (int(lay[k]) for k in (LY.LC_NOFF, LY.LC_IOFF, LY.LC_WOFF))
    buf.nrn[LY.R_C, off:off + N] = c
    buf.nrn[LY.R_A, off:off + N] = a
    lst0 = [m for m in range(N) if a[m] or c[m]]
    lst1 = [m for m in range(N) if c[m]]
    buf.act[0, off:off + len(lst0)] = lst0
    buf.act[1, off:off + len(lst1)] = lst1
    buf.cnt[0] = (len(lst0), len(lst1), int(np.count_nonzero(a)))
    buf.inp[LY.R_Q, ioff:ioff + ROWS] = q
    buf.inp[LY.R_XB, ioff:ioff + ROWS] = x
    W0 = [int(v) for v in st.W[woff:woff + ROWS * N]]
    words = R.reference_words(st.rng, 200)
    UP.update_rows(net, st, buf, 0, lay[LY.LC_WOFF], lay[LY.LC_DWOFF], ROWS, buf.inp[LY.R_Q],
                  buf.inp[LY.R_XB], lay[LY.LC_IOFF], lay[LY.LC_TID + LY.K_W],
                  lay[LY.LC_TID + LY.K_DW])
    got = (st.W[woff:woff + ROWS * N].tolist(), R.reference_words(st.rng, 3))
    fw = net.fmt.weight
    sh = int(net.fmt.signal.frac + FTR + net.lr - fw.frac)
    W, k = list(W0), 0
    for j in range(ROWS):
        lst = lst0 if x[j] else (lst1 if q[j] else [])
        for m in lst:
            dw = min(max(int(c[m]) * int(q[j]) + (int(a[m]) << FTR if x[j] else 0),
                         int(net.acc_lo)), int(net.acc_hi))
            v, s = (dw >> (sh - 32), 32) if sh > 32 else (dw, sh)
            delta = (v + (words[k] >> (32 - s))) >> s
            k += 1
            W[j * N + m] = _sat(W[j * N + m] - delta, fw)[0]
    return got, (W, words[k:k + 3]), W0


LANE = 2 ** 31
UPDATE_EDGES = {
    # bound + 2**sh against 2**31: visit_rows32's int32 lanes, then visit_rows' int64 ones
    "int32 lanes at their limit": dict(bound=LANE - 1 - 2 ** 26),
    "int64 lanes one past it": dict(bound=LANE - 2 ** 26),
    # 32-bit operands of the unclamped int64 loop: |c| = 2^31 - 1, then 2^31 (general loop)
    "32-bit factors at their limit": dict(cmax=LANE - 1),
    "a 2^31 factor": dict(cmax=-LANE),
    # the accumulator's range (32 bits): the bound at its limit, then past it (dw clamps)
    "bound at the accumulator's limit": dict(bound=LANE - 1, acc=32),
    "bound past the accumulator's limit": dict(bound=LANE, acc=32),
    # the rounding shift: int32 lanes up to 30 bits, one word's bits up to 32
    "shift 30": dict(bound=2 ** 30 - 1000, lr=26), "shift 31": dict(cmax=LANE - 1, lr=27),
    "shift 32": dict(cmax=LANE - 1, lr=28), "shift 33": dict(cmax=LANE - 1, lr=29),
}


@pytest.mark.parametrize("name", list(UPDATE_EDGES))
def test_update_rows_at_each_gate(name):
    kw = dict(UPDATE_EDGES[name])
    lr = kw.pop("lr", LR)
    eng = _engine(dict(inputs=ROWS, lr=2.0 ** -lr), UPDATE_FORMATS, acc=kw.pop("acc", 64))
    c, a, q, x = _factors_with_bound(kw.get("bound"), kw.get("cmax"))
    if "bound" in kw:
        assert np.abs(c).max() * np.abs(q).max() + (np.abs(a).max() << FTR) == kw["bound"]
    got, want, before = _update(eng, c, a, q, x)
    assert got == want
    assert got[0] != before                      # the updates are not all rounded away
