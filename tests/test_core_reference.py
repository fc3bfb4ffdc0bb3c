"""The fixed engine's kernel against a naive pure-Python reference, bit for bit.

``naive_run`` re-implements docs/fixed_point.md with Python ints and dense
loops (no skipped rows, no word tables, no LFSR leap tables): only
``fixed.shift_round`` / ``fixed.overflow`` round and saturate, and
``rng.xorshift32`` lanes give the rounding words. The kernel must produce the same weights, biases,
rounding words, scores and spike counts on small networks, for every update mode,
signal, feedback, reset, overflow and rounding mode.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgesnn.core import FixedEngine
from edgesnn.core import rng as R
from edgesnn.core.constants import ALPHA_FRAC
from edgesnn.fixed import STOCHASTIC, lfsr_bits, overflow, shift_round
from edgesnn.hw import parse_device
from edgesnn.plan import make_plan
from edgesnn.reference import init_params
from edgesnn.spec import parse_spec
from conftest import ENERGY

import tomllib


DEVICE = """
[device]
name = "ref"
clock_mhz = 100.0
decay = "{decay}"
accumulator_bits = {acc}
[[banks]]
name = "weights"
size_bytes = 65536
word_bits = 32
read_pj = 1.0
write_pj = 1.0
holds = ["weight", "feedback"]
[[banks]]
name = "state"
size_bytes = 65536
word_bits = 64
read_pj = 1.0
write_pj = 1.0
[formats]
weight   = {{ signed = true, int_bits = 1, frac_bits = 6, rounding = "{wround}" }}
bias     = {{ signed = true, int_bits = 3, frac_bits = 12, rounding = "{wround}" }}
membrane = {{ signed = true, int_bits = 2, frac_bits = 9, rounding = "{mround}" }}
current  = {{ signed = true, int_bits = 3, frac_bits = 12, overflow = "{covf}" }}
trace    = {{ signed = false, int_bits = 5, frac_bits = 6, rounding = "{tround}" }}
signal   = {{ signed = true, int_bits = 2, frac_bits = 9, rounding = "nearest-away" }}
update   = {{ signed = true, int_bits = 3, frac_bits = 12, rounding = "{uround}" }}
[luts]
psi_entries = 32
psi_bits = 8
exp_entries = 32
exp_bits = 12
"""


def make_device(decay="shift", wround="stochastic", mround="nearest-even", covf="saturate",
                tround="nearest-even", uround="nearest-even", acc=32, formats=None):
    """The test device; ``formats`` replaces whole format lines (kind -> the fields inside
    the braces, e.g. ``'signed = true, int_bits = 2, frac_bits = 9, overflow = "wrap"'``)."""
    text = ENERGY + DEVICE.format(decay=decay, wround=wround, mround=mround, covf=covf, tround=tround,
                         uround=uround, acc=acc)
    for kind, fields in (formats or {}).items():
        text, n = re.subn(rf"(?m)^{kind} += .*$", f"{kind} = {{ {fields} }}", text)
        assert n == 1, kind
    return parse_device(tomllib.loads(text))


def make_spec(layers, signal="bp", feedback="regenerated", update="per-step", surrogate="triangle",
              T=12, window=5, inputs=5, classes=3, alpha_post=1.0, alpha_pre=1.0, lr=2.0 ** -4,
              init_scale=2.0, residual="clear", hidden="learn"):
    data = {"network": {"name": "ref", "inputs": inputs, "time_steps": T},
            "layers": [dict(kind=k, size=n, beta=0.9, threshold=0.4, reset=r)
                       for k, n, r in layers]
            + [{"kind": "readout", "size": classes, "beta": 0.8, "trace_decay": 0.7}],
            "learning": {"signal": signal, "feedback": feedback, "window": window,
                         "update": update, "surrogate": surrogate, "lambda_pre": 0.8,
                         "lambda_post": 0.5, "alpha_post": alpha_post, "alpha_pre": alpha_pre,
                         "learning_rate": lr, "init_scale": init_scale, "residual": residual,
                         "hidden": hidden}}
    return parse_spec(data)


# --------------------------------------------------------------------------- the naive reference

class Naive:
    """docs/fixed_point.md in plain Python ints (one instance per engine, sharing its constants)."""

    def __init__(self, eng: FixedEngine):
        self.net = eng.net
        self.lo = eng.layout
        net, lo = eng.net, eng.layout
        st = eng.state()
        self.L, self.C = int(net.L), int(net.C)
        self.n = [int(v) for v in lo.n]
        self.n_in = [int(v) for v in lo.n_in]
        self.rec = [bool(v) for v in lo.rec]
        pre = [f"L{l}" for l in range(self.L)] + ["out"]
        self.W = [st[f"{p}.W"].astype(object).tolist() for p in pre]
        self.Wr = [st[f"{p}.W_rec"].astype(object).tolist() if f"{p}.W_rec" in st else None
                   for p in pre]
        self.b = [st[f"{p}.b"].astype(object).tolist() for p in pre]
        self.B = [st[f"L{l}.B"].astype(object).tolist() if f"L{l}.B" in st else None
                  for l in range(self.L)]
        # the rounding words: what the kernel has buffered, then rounds of the lanes
        self.words = R.reference_words(st["rng"], int(st["rng"][R.FILL] - st["rng"][R.POS]))
        self.lanes = [int(v) for v in st["rng"][:R.LANES]]
        self.fmt = net.fmt
        # residual carry: the accumulators persist across samples (cleared per sample otherwise)
        self.carry = bool(eng.spec.learning.carry)
        self.dW = self.dWr = self.db = None

    # -- arithmetic ------------------------------------------------------
    def rnd(self, v, sh, mode):
        v = int(v)
        if sh <= 0:
            return v << -sh
        if mode != STOCHASTIC:
            return int(shift_round(v, sh, mode, 0))
        x, s = v, sh
        if sh > 32:
            x, s = v >> (sh - 32), 32
        return int(shift_round(x, s, STOCHASTIC, self.word() >> (32 - s)))

    def word(self):
        """The next rounding word (one per stochastic rounding, exact value or not)."""
        if not self.words:
            for r in range(R.LANES):
                self.lanes[r] = R.xorshift32(self.lanes[r])
            self.words = list(self.lanes)
        return self.words.pop(0)

    def into(self, v, k):
        f = getattr(self.fmt, k)
        if f.lo <= v <= f.hi:
            return int(v)
        return int(overflow(v, f.lo, f.hi, f.bits, bool(f.signed), f.overflow)[0])

    def to(self, v, sh, k):
        return self.into(self.rnd(v, sh, getattr(self.fmt, k).rounding), k)

    def acc(self, v):
        return min(max(int(v), int(self.net.acc_lo)), int(self.net.acc_hi))

    # -- one sample ------------------------------------------------------
    def run(self, x, label, learn):
        net, lo, L, C, fmt = self.net, self.lo, self.L, self.C, self.fmt
        T, window = int(net.T), int(net.window)
        sizes = self.n
        u = [[0] * n for n in sizes]
        s = [[0] * n for n in sizes]
        psi = [[0] * n for n in sizes]
        h = [[0] * n for n in sizes]
        qr = [[0] * n for n in sizes]
        q = [[0] * n for n in self.n_in]
        if self.dW is None or not self.carry:
            self.dW = [[[0] * sizes[l] for _ in range(self.n_in[l])] for l in range(L + 1)]
            self.dWr = [[[0] * sizes[l] for _ in range(sizes[l])] for l in range(L + 1)]
            self.db = [[0] * n for n in sizes]
        dW, dWr, db = self.dW, self.dWr, self.db
        scores = [0] * C
        spikes = [0] * L
        ftr = fmt.trace.frac
        first = int(net.learn_from)      # frozen hidden layers: no psi, traces or learning
        for t in range(T):
            s_prev = [list(r) for r in s]
            xin = []
            for l in range(L + 1):
                xl = [int(v != 0) for v in x[t]] if l == 0 else list(s[l - 1])
                xin.append(xl)
                n = sizes[l]
                cur = [0] * n
                sh = fmt.current.frac - fmt.weight.frac
                for j, xj in enumerate(xl):
                    if xj:
                        for m in range(n):
                            cur[m] = self.into(cur[m] + (self.W[l][j][m] << sh), "current")
                if self.rec[l]:
                    for k in range(n):
                        if s_prev[l][k]:
                            for m in range(n):
                                cur[m] = self.into(cur[m] + (self.Wr[l][k][m] << sh), "current")
                dcode, s1, s2, s3, rsh = (int(v) for v in lo.nu[l])
                for m in range(n):
                    vw = ((u[l][m] * dcode) << s1) + (cur[m] << s2) + (self.b[l][m] << s3)
                    v = self.to(vw, rsh, "membrane")
                    if l < L:
                        th = int(lo.theta[l])
                        d = v - th
                        idx = min((abs(d) + int(net.psi_half)) >> int(net.psi_sh),
                                  len(net.psi_lut) - 1)
                        psi[l][m] = int(net.psi_lut[idx]) if l >= first else 0
                        s[l][m] = int(d > 0)
                        spikes[l] += s[l][m]
                        u[l][m] = (0 if lo.hard[l] else v - th) if d > 0 else v
                    else:
                        u[l][m] = v
                if l < first:
                    continue
                qc, qk = int(lo.tq[l, 0]), int(lo.tq[l, 1])
                one = 1 << (ftr + qk)
                for j in range(self.n_in[l]):
                    q[l][j] = self.to(q[l][j] * qc + xl[j] * one, qk, "trace")
                if self.rec[l]:
                    for k in range(n):
                        qr[l][k] = self.to(qr[l][k] * qc + s_prev[l][k] * one, qk, "trace")
            if t >= T - window:
                for c in range(C):
                    scores[c] += u[L][c]
                if learn:
                    self.learn(label, u, psi, h, q, qr, xin, s_prev, dW, dWr, db)
            for l in range(first, L):
                hc, hk = int(lo.th[l, 0]), int(lo.th[l, 1])
                for m in range(sizes[l]):
                    h[l][m] = self.to(h[l][m] * hc + (psi[l][m] << hk), hk, "trace")
        if learn and net.per_sample:
            for l in range(first, L + 1):
                mats = [(self.W[l], dW[l])] + ([(self.Wr[l], dWr[l])] if self.rec[l] else [])
                for Wm, acc in mats:
                    for j in range(len(Wm)):
                        for m in range(sizes[l]):
                            acc[j][m] = self.apply(Wm[j], m, acc[j][m], fmt.update.frac, "weight")
                for m in range(sizes[l]):
                    db[l][m] = self.apply(self.b[l], m, db[l][m], fmt.update.frac, "bias")
        return scores, spikes

    def apply(self, arr, m, v, frac, k):
        """arr[m] -= round(v * 2**-lr) in format k (nothing for v == 0); returns what the
        accumulator keeps: 0, or with carry the remainder v - delta * 2**shift in the update
        format (the part the weight's saturation cuts off is not carried)."""
        if v == 0:
            return 0
        sh = frac + int(self.net.lr) - getattr(self.fmt, k).frac
        delta = self.rnd(v, sh, getattr(self.fmt, k).rounding)
        if delta:
            arr[m] = self.into(arr[m] - delta, k)
        if not self.carry or sh <= 0:
            return 0
        return self.into(v - delta * 2 ** sh, "update")

    def learn(self, label, u, psi, h, q, qr, xin, s_prev, dW, dWr, db):
        net, L, C, fmt = self.net, self.L, self.C, self.fmt
        sizes = self.n
        fs, ftr, fw = fmt.signal.frac, fmt.trace.frac, fmt.weight.frac
        # readout error through the exp LUT
        ul = u[L]
        umax = max(ul)
        p = [int(net.exp_lut[min((umax - v + int(net.exp_half)) >> int(net.exp_sh),
                                 len(net.exp_lut) - 1)]) for v in ul]
        total = sum(p)
        e = [self.into((pc * (2 << fs) + total) // (2 * total) - ((1 << fs) if c == label else 0),
                       "signal") for c, pc in enumerate(p)]
        # signals top-down, then factors
        g = [None] * (L + 1)
        a = [None] * (L + 1)
        cfac = [None] * (L + 1)
        gp = [None] * (L + 1)
        first = int(net.learn_from)
        for l in range(L - 1, first - 1, -1):
            n = sizes[l]
            accs = [0] * n
            if net.dfa:
                if net.regen:
                    bits = []
                    state = self.fb_seed[l]
                    while len(bits) < C * n:
                        v, state = lfsr_bits(state, 32)
                        bits += [(int(v) >> (31 - i)) & 1 for i in range(32)]
                    Bm = [[int(net.fb_mag) * (1 if bits[c * n + m] else -1) for m in range(n)]
                          for c in range(C)]
                else:
                    Bm = self.B[l]
                for c in range(C):
                    if e[c]:
                        for m in range(n):
                            accs[m] = self.acc(accs[m] + e[c] * Bm[c][m])
            elif l == L - 1:
                for m in range(n):
                    for c in range(C):
                        accs[m] = self.acc(accs[m] + e[c] * self.W[L][m][c])
            else:
                up = l + 1
                for j in range(n):
                    for k in range(sizes[up]):
                        if gp[up][k]:
                            accs[j] = self.acc(accs[j] + gp[up][k] * self.W[up][j][k])
            g[l] = [self.to(v, fw, "signal") for v in accs]
            a[l], cfac[l], gp[l] = [0] * n, [0] * n, [0] * n
            for m in range(n):
                if g[l][m] == 0:
                    continue
                if h[l][m]:
                    av = self.rnd(g[l][m] * h[l][m], ftr, fmt.signal.rounding)
                    if net.alpha_post != 1 << ALPHA_FRAC:
                        av = self.rnd(av * int(net.alpha_post), ALPHA_FRAC, fmt.signal.rounding)
                    a[l][m] = self.into(av, "signal")
                if psi[l][m]:
                    gp[l][m] = self.to(g[l][m] * psi[l][m], ftr, "signal")
                    cfac[l][m] = gp[l][m]
                    if net.alpha_pre != 1 << ALPHA_FRAC:
                        cfac[l][m] = self.to(gp[l][m] * int(net.alpha_pre), ALPHA_FRAC, "signal")
        a[L], cfac[L], gp[L] = [0] * C, list(e), list(e)
        # updates, layer by layer (the readout last): W rows, W_rec rows, biases
        frac = fs + ftr
        for l in range(first, L + 1):
            mats = [(self.W[l], dW[l], q[l], xin[l])]
            if self.rec[l]:
                mats.append((self.Wr[l], dWr[l], qr[l], s_prev[l]))
            for Wm, acc, qq, xx in mats:
                for j in range(len(Wm)):
                    for m in range(sizes[l]):
                        # every visited synapse is rounded (a word each), dw = 0 included
                        if not ((xx[j] and (a[l][m] or cfac[l][m])) or (qq[j] and cfac[l][m])):
                            continue
                        dw = self.acc(cfac[l][m] * qq[j] + ((a[l][m] << ftr) if xx[j] else 0))
                        if net.per_sample:
                            up = self.rnd(dw, frac - fmt.update.frac, fmt.update.rounding)
                            acc[j][m] = self.into(acc[j][m] + up, "update")
                        else:
                            delta = self.rnd(dw, frac + int(net.lr) - fmt.weight.frac,
                                             fmt.weight.rounding)
                            if delta:
                                Wm[j][m] = self.into(Wm[j][m] - delta, "weight")
            for m in range(sizes[l]):
                if gp[l][m] == 0:
                    continue
                if net.per_sample:
                    db[l][m] = self.into(db[l][m] + self.rnd(gp[l][m], fs - fmt.update.frac,
                                                             fmt.update.rounding), "update")
                else:
                    self.apply(self.b[l], m, gp[l][m], fs, "bias")


def _compare(eng: FixedEngine, naive: Naive, samples) -> dict[str, int]:
    """Run both on ``samples``, compare; return the kernel's overflow events per tensor."""
    sats: dict[str, int] = {}
    for x, label, learn in samples:
        r = eng.run_sample(x, label, learn)
        for k, v in eng.last_counters.saturations.items():
            sats[k] = sats.get(k, 0) + v
        scores, spikes = naive.run(x, label, learn)
        scale = 2.0 ** naive.fmt.membrane.frac
        assert np.array_equal(r.scores * scale, np.array(scores, dtype=float))
        assert list(r.spikes) == spikes
    st = eng.state()
    L = naive.L
    for l in range(L + 1):
        p = f"L{l}" if l < L else "out"
        assert st[f"{p}.W"].tolist() == naive.W[l], p
        assert st[f"{p}.b"].tolist() == naive.b[l], p
        if naive.Wr[l] is not None:
            assert st[f"{p}.W_rec"].tolist() == naive.Wr[l], p
        if naive.carry:                      # the carried remainders
            assert st[f"{p}.dW"].tolist() == naive.dW[l], p
            assert st[f"{p}.db"].tolist() == naive.db[l], p
            if naive.Wr[l] is not None:
                assert st[f"{p}.dW_rec"].tolist() == naive.dWr[l], p
    assert R.reference_words(st["rng"], 100) == [naive.word() for _ in range(100)]
    return sats


def _samples(spec, n, seed, rate=0.35):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        x = (rng.random((spec.time_steps, spec.inputs)) < rate).astype(np.uint8)
        out.append((x, k % spec.classes, k != n - 1))     # the last one only infers
    return out


def _q(int_bits, frac_bits, rounding="nearest-even", overflow="saturate", signed=True):
    """The fields of a format line (``make_device(formats=...)``)."""
    return (f"signed = {str(signed).lower()}, int_bits = {int_bits}, frac_bits = {frac_bits}, "
            f'rounding = "{rounding}", overflow = "{overflow}"')


CASES = {
    "recurrent bp per-step stochastic": (
        dict(layers=[("recurrent", 6, "soft")]), dict()),
    "two layers bp per-sample, hard reset, rational": (
        dict(layers=[("dense", 6, "hard"), ("recurrent", 4, "soft")], update="per-sample",
             surrogate="rational"), dict(uround="stochastic")),
    "dfa regenerated, alphas, multiply decay": (
        dict(layers=[("recurrent", 4, "soft")], signal="dfa", alpha_post=-0.75, alpha_pre=1.5),
        dict(decay="multiply")),
    "bp through a 16-bit saturating accumulator": (
        dict(layers=[("dense", 5, "soft"), ("recurrent", 4, "soft")], classes=4, init_scale=4.0),
        dict(acc=16)),
    "dfa stored per-sample, wrapping currents, floor membrane, stochastic traces": (
        dict(layers=[("dense", 4, "soft")], signal="dfa", feedback="stored",
             update="per-sample"),
        dict(covf="wrap", mround="floor", tround="stochastic")),
    "two layers bp per-sample with residual carry, stochastic accumulators": (
        dict(layers=[("dense", 6, "hard"), ("recurrent", 4, "soft")], update="per-sample",
             residual="carry", lr=2.0 ** -6), dict(uround="stochastic")),
    "dfa regenerated per-sample carry, nearest weights saturating": (
        dict(layers=[("recurrent", 5, "soft")], signal="dfa", update="per-sample",
             residual="carry", lr=0.5, init_scale=6.0), dict(wround="nearest-even")),
    "bp per-sample carry, remainders beyond the update format's range": (
        dict(layers=[("recurrent", 4, "soft")], update="per-sample", residual="carry",
             lr=2.0 ** -10), dict()),
    # the stochastic and wrapping paths (issue 13, item 16): factor_loop with a stochastic
    # signal (every g, a, alpha, gp, c rounding takes a word), a stochastic membrane
    "stochastic signal with alphas (factor_loop), stochastic membrane and traces": (
        dict(layers=[("dense", 5, "soft"), ("recurrent", 4, "soft")], alpha_post=0.75,
             alpha_pre=-1.25),
        dict(mround="stochastic", tround="stochastic", formats={"signal": _q(2, 9, "stochastic")})),
    "wrapping weight and trace formats per step": (
        dict(layers=[("recurrent", 5, "soft")], lr=0.5),
        dict(formats={"weight": _q(0, 6, "stochastic", "wrap"),
                      "trace": _q(1, 6, "nearest-even", "wrap", signed=False)})),
    "wrapping update and signal formats per sample (factor_loop)": (
        dict(layers=[("dense", 5, "soft")], update="per-sample", alpha_post=12.0,
             alpha_pre=-12.0, init_scale=1.0),
        dict(uround="stochastic", formats={"update": _q(0, 8, "stochastic", "wrap"),
                                           "signal": _q(0, 9, "nearest-away", "wrap")})),
    # the frozen-hidden baseline: only the readout learns; stochastic traces and membranes
    # check that a frozen layer draws no rounding words for traces it does not keep
    "frozen hidden, two layers per-step, stochastic traces and membranes": (
        dict(layers=[("dense", 5, "soft"), ("recurrent", 4, "soft")], hidden="frozen"),
        dict(mround="stochastic", tround="stochastic")),
    "frozen hidden per-sample carry, dfa": (
        dict(layers=[("recurrent", 5, "soft")], hidden="frozen", update="per-sample",
             residual="carry", signal="dfa", lr=2.0 ** -6), dict(uround="stochastic")),
}
#: input spike rates of the cases that need dense input (traces that wrap)
RATES = {"wrapping weight and trace formats per step": 0.8}
#: tensors whose overflow a case exists to exercise (suffixes of the saturation counters)
MUST_OVERFLOW = {
    "wrapping weight and trace formats per step": (".W", ".q"),
    "wrapping update and signal formats per sample (factor_loop)": (".dW", ".a", ".c"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_equals_naive_reference(name):
    spec_kw, dev_kw = CASES[name]
    spec = make_spec(**spec_kw)
    eng = FixedEngine(make_plan(spec, make_device(**dev_kw)), init_params(spec, 4), seed=4)
    naive = Naive(eng)
    naive.fb_seed = [int(v) for v in eng.st.fb_seed]
    sats = _compare(eng, naive, _samples(spec, 4, seed=9, rate=RATES.get(name, 0.35)))
    if dev_kw.get("acc") == 16:              # the clamped accumulator path is exercised
        assert not eng.net.sig_exact
    # the carry cases exercise what their names say
    if naive.carry:
        assert any(any(row) for acc in naive.dW for row in acc), "no remainder carried"
    if "saturating" in name:
        assert sum(v for k, v in sats.items() if k.endswith((".W", ".W_rec"))) > 0
    if "beyond" in name:
        assert sum(v for k, v in sats.items() if ".d" in k) > 0
    for suffix in MUST_OVERFLOW.get(name, ()):
        assert sum(v for k, v in sats.items() if k.endswith(suffix)) > 0, suffix


def test_reference_cases_exercise_learning_and_stochastic_rounding():
    """Guard against a vacuous comparison: weights move and rounding words are drawn."""
    spec = make_spec(layers=[("recurrent", 6, "soft")])
    eng = FixedEngine(make_plan(spec, make_device()), init_params(spec, 4), seed=4)
    before = eng.state()
    for x, label, learn in _samples(spec, 3, seed=9):
        eng.run_sample(x, label, learn)
    after = eng.state()
    assert not np.array_equal(before["L0.W"], after["L0.W"])
    assert not np.array_equal(before["out.W"], after["out.W"])
    assert R.reference_words(before["rng"], 5) != R.reference_words(after["rng"], 5)
