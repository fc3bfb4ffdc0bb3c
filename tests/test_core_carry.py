"""Per-sample updates with residual carry (spec ``learning.residual = "carry"``).

At the end of a learned sample the fixed engine applies ``w -= round(dW * 2**-lr)``
(the rounded value ``delta``); ``clear`` then zeroes the accumulator ``dW``,
``carry`` leaves ``dW - delta * 2**shift`` in it for the next sample. These tests
check that definition against the accumulated values themselves (read from an
engine whose learning-rate shift is so large that nothing is applied), the
saturation rule, the counters, checkpoints and the float engine. The kernel is
compared with the naive reference in test_core_reference.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.core import FixedEngine
from edgesnn.errors import CheckpointError
from edgesnn.fixed import NEAREST_EVEN, shift_round
from edgesnn.plan import make_plan
from edgesnn.reference import FloatEngine, init_params

from test_core_reference import DEVICE, _samples, make_spec
from conftest import ENERGY

import tomllib

from edgesnn.hw import parse_device

#: the update accumulators in a bank of their own, so that their words are counted apart
ACC_BANK = """[[banks]]
name = "acc"
size_bytes = 65536
word_bits = 64
read_pj = 1.0
write_pj = 1.0
holds = ["update"]
"""


def make_device(wround):
    text = ENERGY + DEVICE.format(decay="shift", wround=wround, mround="nearest-even",
                                  covf="saturate", tround="nearest-even", uround="nearest-even",
                                  acc=32)
    return parse_device(tomllib.loads(text.replace("[formats]", ACC_BANK + "[formats]")))

#: learning-rate shift at which no accumulated update reaches half a weight or bias LSB
HUGE = 30
PREFIXES = ("L0", "out")


def _engine(residual, wround="nearest-even", lr=2.0 ** -3, init_scale=2.0, seed=4):
    spec = make_spec(layers=[("recurrent", 5, "soft")], update="per-sample", residual=residual,
                     lr=lr, init_scale=init_scale)
    return spec, FixedEngine(make_plan(spec, make_device(wround=wround)),
                             init_params(spec, seed), seed)


def _accumulated(spec, x, label, state=None, wround="nearest-even"):
    """The per-sample accumulators ``dW`` of one learned sample (nothing applied)."""
    _, eng = _engine("carry", wround=wround)
    if state is not None:
        eng.load_state(state)
    eng.set_lr_shift(HUGE)
    before = _state(eng)
    eng.run_sample(x, label, True)
    after = _state(eng)
    for k in before:
        if not k.endswith((".dW", ".dW_rec", ".db")) and k != "rng":
            assert np.array_equal(before[k], after[k]), k
    return {k: after[k] - before[k] for k in after if k.endswith((".dW", ".dW_rec", ".db"))}


def _state(eng):
    """``eng.state()`` in int64 (8-bit weights are stored as int8)."""
    return {k: v.astype(np.int64) for k, v in eng.state().items()}


def _params(prefix):
    return [(f"{prefix}.W", f"{prefix}.dW", "weight"),
            (f"{prefix}.W_rec", f"{prefix}.dW_rec", "weight"),
            (f"{prefix}.b", f"{prefix}.db", "bias")]


def test_carry_applies_the_rounded_update_and_keeps_the_remainder():
    spec, carry = _engine("carry")
    _, clear = _engine("clear")
    (x, label, _), (x2, label2, _) = _samples(spec, 2, seed=9)
    v = _accumulated(spec, x, label)
    s0 = _state(carry)
    carry.run_sample(x, label, True)
    clear.run_sample(x, label, True)
    s1, c1 = _state(carry), _state(clear)
    fmt = carry.net.fmt
    moved = kept = 0
    for p in PREFIXES:
        for wk, dk, fk in _params(p):
            if wk not in s0:
                continue
            sh = fmt.update.frac + carry.net.lr - getattr(fmt, fk).frac
            delta = np.array([int(shift_round(int(a), sh, NEAREST_EVEN, 0))
                              for a in v[dk].ravel()]).reshape(v[dk].shape)
            # no weight saturates here: applied + kept = accumulated, exactly
            assert np.array_equal((s0[wk] - s1[wk]) * 2 ** sh + s1[dk], v[dk]), wk
            assert np.array_equal(s0[wk] - s1[wk], delta), wk
            assert np.abs(s1[dk]).max() <= 2 ** (sh - 1)                   # nearest: half an LSB
            assert np.array_equal(s1[wk], c1[wk]), wk      # clear applies the same delta ...
            moved += int(np.count_nonzero(delta))
            kept += int(np.count_nonzero(s1[dk]))
    assert "L0.dW" not in c1                               # ... and keeps nothing
    assert moved > 0 and kept > 0                          # not vacuous
    # the next sample accumulates on top of the remainder
    v2 = _accumulated(spec, x2, label2, state=s1)
    carry.run_sample(x2, label2, True)
    s2 = _state(carry)
    for p in PREFIXES:
        for wk, dk, fk in _params(p):
            if wk in s0:
                sh = fmt.update.frac + carry.net.lr - getattr(fmt, fk).frac
                assert np.array_equal((s1[wk] - s2[wk]) * 2 ** sh + s2[dk], s1[dk] + v2[dk]), wk


def test_inference_leaves_the_carried_remainder_alone():
    spec, eng = _engine("carry")
    samples = _samples(spec, 2, seed=9)
    eng.run_sample(*samples[0][:2], True)
    before = eng.state()
    eng.run_sample(samples[1][0], samples[1][1], False)
    after = eng.state()
    assert any(np.any(before[k]) for k in before if k.endswith(".dW"))
    for k in before:
        assert np.array_equal(before[k], after[k]), k


def test_what_weight_saturation_cuts_off_is_not_carried():
    """Weights held at their limits: the accumulator keeps ``v - delta * 2**shift`` (the
    rounding remainder of the full ``delta``), not ``v - (applied) * 2**shift``."""
    spec, eng = _engine("carry", lr=0.5)
    x, label, _ = _samples(spec, 1, seed=9)[0]
    st = _state(eng)
    hi, lo = eng.net.fmt.weight.hi, eng.net.fmt.weight.lo
    for k in ("L0.W", "L0.W_rec", "out.W"):
        st[k][:] = np.where(np.arange(st[k].size).reshape(st[k].shape) % 2, hi, lo)
    eng.load_state(st)
    v = _accumulated(spec, x, label, state=st)
    eng.run_sample(x, label, True)
    s1 = _state(eng)
    sh = eng.net.fmt.update.frac + eng.net.lr - eng.net.fmt.weight.frac
    clipped = 0
    for k in ("L0.W", "L0.W_rec", "out.W"):
        d = k.replace(".W", ".dW")
        delta = np.array([int(shift_round(int(a), sh, NEAREST_EVEN, 0))
                          for a in v[d].ravel()]).reshape(v[d].shape)
        assert np.array_equal(s1[d], v[d] - delta * 2 ** sh), k
        assert np.array_equal(s1[k], np.clip(st[k] - delta, lo, hi)), k
        clipped += int(np.count_nonzero(st[k] - delta != s1[k]))
    assert clipped > 0                                     # saturation happened


def test_counters_match_clear_where_the_work_is_the_same():
    """Sample 1 from the same state: identical counters. Sample 2 (same weights, carry's
    accumulators hold remainders): the same accumulator words (the same rows
    read-modify-written, every word read and written back at the end either way);
    carry reads at least as many weight words (those of nonzero accumulators) and
    draws more rounding words at the end of the sample."""
    spec, carry = _engine("carry", wround="stochastic", lr=2.0 ** -6)
    _, clear = _engine("clear", wround="stochastic", lr=2.0 ** -6)
    samples = _samples(spec, 2, seed=9)
    counts = []
    for k, (x, label, _) in enumerate(samples):
        if k == 1:                     # the second sample starts from the same weights
            sa, sb = carry.state(), clear.state()
            assert all(np.array_equal(sa[p], sb[p]) for p in sb)
        a, b = carry.run_sample(x, label, True), clear.run_sample(x, label, True)
        counts.append((a.events, b.events, carry.last_counters, clear.last_counters))
    ea, eb, ca, cb = counts[0]
    assert np.array_equal(ea, eb)
    assert ca.sram_reads == cb.sram_reads and ca.sram_writes == cb.sram_writes
    ea, eb, ca, cb = counts[1]
    assert ca.sram_reads["acc"] == cb.sram_reads["acc"] > 0
    assert ca.sram_writes["acc"] == cb.sram_writes["acc"] == ca.sram_reads["acc"]
    assert ca.sram_reads["weights"] >= cb.sram_reads["weights"]
    assert ca["lfsr_draws"] > cb["lfsr_draws"]


def test_state_round_trip_with_carry_resumes_bit_identically():
    spec, a = _engine("carry", wround="stochastic")
    samples = _samples(spec, 4, seed=3)
    for s in samples[:2]:
        a.run_sample(*s)
    saved = a.state()
    assert {"L0.dW", "L0.dW_rec", "L0.db", "out.dW", "out.db"} <= set(saved)
    assert saved["L0.dW"].shape == (spec.inputs, 5) and np.any(saved["L0.dW"])
    _, b = _engine("carry", wround="stochastic", seed=7)
    b.load_state(saved)
    for s in samples[2:]:
        a.run_sample(*s)
        b.run_sample(*s)
    sa, sb = a.state(), b.state()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    with pytest.raises(CheckpointError, match="L0.dW"):
        b.load_state({k: v for k, v in saved.items() if k != "L0.dW"})


def test_clear_state_has_no_accumulators():
    _, eng = _engine("clear")
    assert not any(k.endswith((".dW", ".dW_rec", ".db")) for k in eng.state())


def test_float_engine_ignores_the_residual_option():
    """The float engine applies every update exactly: no remainder, same bits either way."""
    spec_clear, _ = _engine("clear")
    spec_carry, _ = _engine("carry")
    a = FloatEngine(spec_clear, init_params(spec_clear, 4))
    b = FloatEngine(spec_carry, init_params(spec_carry, 4))
    for x, label, learn in _samples(spec_clear, 3, seed=9):
        ra, rb = a.run_sample(x, label, learn), b.run_sample(x, label, learn)
        assert np.array_equal(ra.scores, rb.scores)
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
