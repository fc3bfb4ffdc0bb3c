"""Device models: presets load, the schema is enforced, numbers mean what they say."""

from __future__ import annotations

import pytest

from edgesnn.errors import DeviceError
from edgesnn.hw import load_device, parse_device, preset_names
from conftest import TINY_DEVICE

import tomllib

REQUIRED_PRESETS = {"cortex-m7", "xylo-audio", "loihi-core", "spinnaker2-pe", "fp32-reference"}


def test_the_five_presets_exist():
    assert REQUIRED_PRESETS <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_is_consistent(name):
    d = load_device(name)
    assert d.name == name
    assert d.clock_mhz > 0 and d.banks
    for kind in ("weight", "bias", "membrane", "current", "trace", "signal", "update", "delay"):
        assert kind in d.formats
    # a format's storage width is what the sign, integer and fraction bits add up to
    for f in d.formats.values():
        if not f.is_float:
            assert f.bits == int(f.signed) + f.int_bits + f.frac_bits <= 32
    assert d.formats["update"].bits <= d.accumulator_bits


def test_mcu_preset_is_about_one_mebibyte_with_8_bit_weights():
    d = load_device("cortex-m7")
    assert 0.9 * 2**20 <= d.sram_bytes <= 1.1 * 2**20
    assert d.formats["weight"].bits == 8


def test_reference_preset_is_float32_everywhere():
    d = load_device("fp32-reference")
    assert d.is_float
    assert {f.bits for f in d.formats.values()} == {32}


def test_energy_lookup_rounds_width_up():
    d = parse_device(tomllib.loads(TINY_DEVICE))
    e = d.energy
    assert e.op_pj("add", 8) == 0.03
    assert e.op_pj("add", 12) == 0.05        # 12-bit charged as int16
    assert e.op_pj("mul", 24) == 3.1         # 24-bit charged as int32
    assert e.op_pj("mul", d.formats["membrane"]) == 0.8


def test_optional_formats_default_to_their_stated_kinds():
    d = parse_device(tomllib.loads(TINY_DEVICE))
    assert d.formats["bias"] == d.formats["membrane"]
    assert d.formats["signal"] == d.formats["current"]
    assert d.formats["delay"].bits == 8 and not d.formats["delay"].signed


def test_device_file_by_path(tiny_device_file):
    assert load_device(str(tiny_device_file)).name == "tiny"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(DeviceError, match="unknown device 'nope'; presets: .*cortex-m7"):
        load_device("nope")
