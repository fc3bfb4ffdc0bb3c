"""``edgesnn.fit``'s search on a stand-in evaluator whose gap is a known function of the
formats: what it keeps, what it refuses, widening, batches, and the devices it writes."""

from __future__ import annotations

import tomllib

import pytest

from edgesnn.fit import search as F
from edgesnn.hw import _preset_path, parse_device
from edgesnn.spec import load_spec
from edgesnn.tomlwrite import dumps
from conftest import EXAMPLES

SPEC = load_spec(EXAMPLES / "yinyang.toml")


def cortex():
    return tomllib.loads(_preset_path("cortex-m7").read_text())


def bits(f):
    return int(f["signed"]) + f["int_bits"] + f["frac_bits"]


def stand_in(data, calls=None):
    """Gap (points) a function of the formats: weights below 6 bits lose 3 points a bit,
    trace below 8 fractional bits 2 a bit, any membrane integer bit below 4 loses 5."""
    f = data["formats"]
    gap = (3.0 * max(0, 6 - bits(f["weight"])) + 2.0 * max(0, 8 - f["trace"]["frac_bits"])
           + 5.0 * max(0, 4 - f["membrane"]["int_bits"]))
    if calls is not None:
        calls.append(data)
    return F.Trial(gaps=(gap, gap / 2), memory_bytes=int(F.cost(SPEC, data, "memory")),
                   energy_pj=1.0)


def evaluator(calls=None):
    return lambda devices: [stand_in(d, calls) for d in devices]


def fit(*args, **kwargs):
    """``search.fit`` without the engine's build check (50 ms a step; tested on its own)."""
    return F.fit(*args, check=None, **kwargs)


def test_explicit_formats_write_out_the_fallbacks():
    data = cortex()
    del data["formats"]["signal"]
    out = F.explicit_formats(data)
    assert out["formats"]["signal"] == out["formats"]["current"]
    assert parse_device(out).formats == parse_device(data).formats
    assert "signal" not in data["formats"]              # the input is not changed


def test_a_step_is_the_smallest_narrowing_that_saves_memory():
    """A bit often saves nothing (a word holds as many 8-bit as 7-bit weights when it is
    32 bits wide): each step goes to the first width that saves, and says how much."""
    data = F.explicit_formats(cortex())
    base = F.cost(SPEC, data, "memory")
    steps = F.candidate_steps(SPEC, data, "memory")
    assert {(s.kind, s.field) for s in steps} >= {("weight", "frac_bits"), ("weight", "int_bits")}
    for s in steps:
        assert s.new < s.old
        for between in range(s.new + 1, s.old):
            assert F.cost(SPEC, F.with_field(data, s.kind, s.field, between), "memory") == base
        assert s.saving == base - F.cost(SPEC, F.with_field(data, s.kind, s.field, s.new),
                                         "memory") > 0
    assert [s.saving for s in steps] == sorted((s.saving for s in steps), reverse=True)


@pytest.mark.parametrize("max_gap", [1.0, 4.0])
def test_fit_keeps_steps_while_the_gap_holds(max_gap):
    res = fit(SPEC, cortex(), max_gap, evaluator())
    assert res.widened == 0 and res.kept
    assert stand_in(res.device).holds(max_gap)
    assert all(t.holds(max_gap) for _, t in res.kept)
    assert all(not t.holds(max_gap) for _, t, k in res.tried if not k)    # batch 1
    # no single remaining step both saves memory and holds
    for s in F.candidate_steps(SPEC, res.device, "memory"):
        assert not stand_in(F.with_field(res.device, s.kind, s.field, s.new)).holds(max_gap)
    assert F.cost(SPEC, res.device, "memory") < F.cost(SPEC, res.start, "memory")
    # the stand-in's limits: at a 1-point gap, weights of 6 bits, trace fractions of 8 or
    # more, 4 membrane integer bits or more; a 4-point gap spends it on weights or traces
    f = res.device["formats"]
    if max_gap < 2:
        assert bits(f["weight"]) == 6
        assert f["trace"]["frac_bits"] >= 8 and f["membrane"]["int_bits"] >= 4
    else:
        assert bits(f["weight"]) in (5, 6) and stand_in(res.device).gaps[0] >= 2
    text = dumps(res.device, header="fitted")
    assert parse_device(tomllib.loads(text)) == parse_device(res.device)


def test_batches_give_the_same_path_and_fewer_calls():
    one, three = [], []
    a = fit(SPEC, cortex(), 1.0, evaluator(one), batch=1)
    b = fit(SPEC, cortex(), 1.0, evaluator(three), batch=3)
    assert a.device == b.device
    assert [s for s, _ in a.kept] == [s for s, _ in b.kept]
    assert len(three) >= len(one)              # a batch may run steps it then does not need


def test_a_start_that_loses_is_widened_then_fitted():
    data = cortex()
    data["formats"]["weight"].update(int_bits=0, frac_bits=1)    # 2 bits: loses 12 points
    res = fit(SPEC, data, 1.0, evaluator())
    assert res.widened == 2                     # +1 integer, +1 fraction a round: 6 bits
    assert bits(res.start["formats"]["weight"]) == 6
    assert bits(res.preset["formats"]["weight"]) == 2
    assert not res.preset_trial.holds(1.0) and res.start_trial.holds(1.0)
    assert stand_in(res.device).holds(1.0)


def test_widening_keeps_the_update_product_in_the_accumulator():
    """Signal x trace is formed in the accumulator: widening stops where their product
    would no longer fit (past it the product saturates and learning stops)."""
    data = F.explicit_formats(cortex())
    acc = parse_device(data).accumulator_bits
    for rounds in range(1, 6):
        w = F.widened(data, rounds)["formats"]
        assert bits(w["signal"]) + bits(w["trace"]) <= max(acc, bits(data["formats"]["signal"])
                                                           + bits(data["formats"]["trace"]))
        assert bits(w["update"]) <= acc and all(bits(w[k]) <= 32 for k in F.KINDS)
        assert w["membrane"]["int_bits"] == data["formats"]["membrane"]["int_bits"] + min(
            rounds, 32 - bits(data["formats"]["membrane"]))


def test_a_start_that_cannot_hold_fails_with_the_figures():
    data = cortex()
    # trace fractions of 5 bits lose 6 points; signal (s16) and trace (u16) fill the 32-bit
    # accumulator already, so widening cannot give the trace more
    data["formats"]["trace"]["frac_bits"] = 5
    data["formats"]["trace"]["int_bits"] = 11
    with pytest.raises(F.FitError, match=r"loses \d+\.\d\d points .*--max-gap 1"):
        fit(SPEC, data, 1.0, evaluator())


def test_a_trial_that_cannot_run_does_not_hold():
    assert not F.Trial(gaps=(0.0,), error="DeviceError: too narrow").holds(5.0)
    assert not F.Trial().holds(5.0)


def test_float_devices_and_unknown_objectives_are_refused():
    with pytest.raises(F.FitError, match="float device"):
        fit(SPEC, tomllib.loads(_preset_path("fp32-reference").read_text()), 1.0,
              evaluator())
    with pytest.raises(F.FitError, match="objective"):
        fit(SPEC, cortex(), 1.0, evaluator(), objective="area")


def test_the_energy_objective_narrows_what_saves_energy():
    res = fit(SPEC, cortex(), 1.0, evaluator(), objective="energy")
    assert F.cost(SPEC, res.device, "energy") < F.cost(SPEC, res.start, "energy")


def test_only_the_named_formats_narrow():
    res = fit(SPEC, cortex(), 1.0, evaluator(), kinds=("weight",))
    assert {s.kind for s, _, _ in res.tried} == {"weight"}
    assert {k: v for k, v in res.device["formats"].items() if k != "weight"} == \
        {k: v for k, v in res.start["formats"].items() if k != "weight"}
    with pytest.raises(F.FitError, match="formats to fit"):
        fit(SPEC, cortex(), 1.0, evaluator(), kinds=("weights",))


def test_a_step_the_engine_would_refuse_is_not_offered():
    """The current format must keep the weight format's fractional bits (exact synaptic
    accumulates): with weights Q1.6, no step takes the current below 6 fractional bits."""
    data = F.explicit_formats(cortex())
    data["formats"]["current"]["frac_bits"] = 6
    assert F.refusal(SPEC, data) is None
    assert "fractional bits" in F.refusal(SPEC, F.with_field(data, "current", "frac_bits", 5))
    # fit checks each step before running it: the refused one is listed, never evaluated
    calls = []
    res = F.fit(SPEC, data, 100.0, evaluator(calls), kinds=("current",))
    refused = [(s, t) for s, t, _ in res.tried if t.error]
    assert refused and all(s.field == "frac_bits" and s.new < 6 for s, _ in refused)
    assert all(d["formats"]["current"]["frac_bits"] >= 6 for d in calls)
    assert res.device["formats"]["current"]["frac_bits"] == 6


def test_the_report_says_when_the_test_split_breaks_the_gap():
    from edgesnn.fit.report import _test_split_verdict

    held = " ".join(_test_split_verdict([0.5, 1.9], 2.0))
    assert "holds the gap too (worst seed: 1.90 points)" in held
    broken = " ".join(_test_split_verdict([2.67, 2.33], 2.0))
    assert "loses 2.67 points on seed 0: more than the gap" in broken
    assert _test_split_verdict([], 2.0) == []
