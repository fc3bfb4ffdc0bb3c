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
    ("layers0", "neuron", "llif", "neuron 'llif' is not built yet"),
    ("layers0", "neuron", "slif", "neuron 'slif' is not built yet"),
    ("layers0", "kind", "conv", "layer kind 'conv' is not built yet"),
    ("learning", "rule", "tess", "rule 'tess' is not built yet"),
    ("learning", "rule", "delays", "rule 'delays' is not built yet"),
])
def test_unbuilt_kinds_are_refused_with_a_reason(section, key, value, message):
    data = tomllib.loads(TINY_SPEC)
    table = data["layers"][0] if section == "layers0" else data[section]
    table[key] = value
    with pytest.raises(SpecError, match=message):
        parse_spec(data, source="x.toml")
