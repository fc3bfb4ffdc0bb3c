"""Network specs: examples load, unbuilt kinds are refused with a reason."""

from __future__ import annotations

import pytest

from edgesnn.errors import SpecError
from edgesnn.spec import load_spec, parse_spec
from conftest import EXAMPLES, TINY_SPEC

import tomllib


def test_shd_example_is_the_stllr_shd_network():
    s = load_spec(EXAMPLES / "shd.toml")
    assert (s.inputs, s.time_steps, s.learning.window) == (700, 100, 90)
    assert [(x.kind, x.size) for x in s.layers] == [("recurrent", 450), ("readout", 20)]
    assert s.fan_in(1) == 450


def test_yinyang_example_loads():
    s = load_spec(EXAMPLES / "yinyang.toml")
    assert s.inputs == 4 and s.classes == 3


@pytest.mark.parametrize("rate,shift", [(2**-10, 10), (0.001, 10), (0.01, 7), (0.5, 1)])
def test_learning_rate_becomes_the_nearest_power_of_two(rate, shift):
    data = tomllib.loads(TINY_SPEC)
    data["learning"]["learning_rate"] = rate
    assert parse_spec(data).learning.learning_rate_shift == shift


@pytest.mark.parametrize("section,key,value,message", [
    ("layers0", "neuron", "llif", r"'llif' \(LLIF neurons\) is not supported yet; supported "
                                  "neurons: lif$"),
    ("layers0", "neuron", "slif", r"'slif' \(SLIF neurons\) is not supported yet"),
    ("layers0", "kind", "conv", r"'conv' \(convolutional layers\) is not supported yet; "
                                "supported kinds: dense, recurrent, readout$"),
    ("learning", "rule", "tess", r"'tess' \(the TESS rule\) is not supported yet; supported "
                                 "rules: stllr$"),
    ("learning", "rule", "delays", r"'delays' \(delay learning is set per layer, delays = "
                                   r'"axonal" or "synaptic", beside rule = "stllr"\) is not supported'),
])
def test_unbuilt_kinds_are_refused_with_a_reason(section, key, value, message):
    data = tomllib.loads(TINY_SPEC)
    table = data["layers"][0] if section == "layers0" else data[section]
    table[key] = value
    with pytest.raises(SpecError, match=message):
        parse_spec(data, source="x.toml")


def test_residual_defaults_to_clear_and_carry_needs_per_sample_updates():
    data = tomllib.loads(TINY_SPEC)
    assert parse_spec(data).learning.residual == "clear"
    assert not parse_spec(data).learning.carry
    data["learning"].update(update="per-sample", residual="carry")
    assert parse_spec(data).learning.carry
    data["learning"]["update"] = "per-step"
    with pytest.raises(SpecError, match=r"^x\.toml: key 'learning\.residual': \"carry\" needs "
                                        r"update = \"per-sample\""):
        parse_spec(data, source="x.toml")


@pytest.mark.parametrize("value", ["keep", 1, True])
def test_residual_refuses_other_values_in_one_line(value):
    data = tomllib.loads(TINY_SPEC)
    data["learning"].update(update="per-sample", residual=value)
    with pytest.raises(SpecError) as err:
        parse_spec(data, source="x.toml")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("x.toml: key 'learning.residual': must be one of clear, carry")


def test_hidden_learns_by_default_and_frozen_is_the_baseline():
    data = tomllib.loads(TINY_SPEC)
    assert parse_spec(data).learning.hidden == "learn"
    assert not parse_spec(data).learning.frozen
    data["learning"]["hidden"] = "frozen"
    assert parse_spec(data).learning.frozen
    data["learning"]["hidden"] = "fixed"
    with pytest.raises(SpecError) as err:
        parse_spec(data, source="x.toml")
    assert str(err.value) == ("x.toml: key 'learning.hidden': must be one of learn, frozen; "
                              "got 'fixed'")
