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


#: formats as a device file writes them, with their storage widths worked out by hand
FORMAT_CASES = [
    ("{ signed = true,  int_bits = 1, frac_bits = 6 }", 8, "Q1.6 (s8"),       # 1 + 1 + 6
    ("{ signed = false, int_bits = 1, frac_bits = 6 }", 7, "Q1.6 (u7"),       # 0 + 1 + 6
    ("{ signed = true,  int_bits = 0, frac_bits = 15 }", 16, "Q0.15 (s16"),   # 1 + 0 + 15
    ("{ signed = false, int_bits = 7, frac_bits = 9 }", 16, "Q7.9 (u16"),     # 0 + 7 + 9
    ("{ signed = true,  int_bits = 7, frac_bits = 24 }", 32, "Q7.24 (s32"),   # 1 + 7 + 24
    ("{ signed = false, int_bits = 0, frac_bits = 1 }", 1, "Q0.1 (u1"),       # one bit
    ("{ signed = true,  int_bits = 7, frac_bits = 0 }", 8, "Q7.0 (s8"),       # integers
]


@pytest.mark.parametrize("text,bits,shown", FORMAT_CASES)
def test_format_widths_from_device_text(text, bits, shown):
    """A format parsed from device TOML text has the storage width counted by hand."""
    dev = TINY_DEVICE.replace("weight   = { signed = true,  int_bits = 1, frac_bits = 6 }",
                              f"weight   = {text}")
    f = parse_device(tomllib.loads(dev)).formats["weight"]
    assert f.bits == bits and not f.is_float
    assert str(f).startswith(shown)


def test_tiny_device_widths_by_hand():
    """conftest.TINY_DEVICE: Q1.6 s8, Q3.12 s16, Q7.24 s32, Q7.9 u16, Q7.24 s32; bias and
    signal default to the membrane and current formats; delay is unsigned Q8.8 and the
    delay eligibility the trace format made signed (Q7.9 s17)."""
    d = parse_device(tomllib.loads(TINY_DEVICE))
    widths = {k: f.bits for k, f in d.formats.items()}
    assert widths == {"weight": 8, "membrane": 16, "current": 32, "trace": 16, "update": 32,
                      "bias": 16, "signal": 32, "delay": 16, "eligibility": 17}
    assert (d.formats["delay"].int_bits, d.formats["delay"].frac_bits) == (8, 8)
    e, t = d.formats["eligibility"], d.formats["trace"]
    assert e.signed and (e.int_bits, e.frac_bits) == (t.int_bits, t.frac_bits)
    assert {k for k, f in d.formats.items() if not f.signed} == {"trace", "delay"}


@pytest.mark.parametrize("text,bits", [("{ float = 32 }", 32), ("{ float = 16 }", 16)])
def test_float_format_width_is_the_float_width(text, bits):
    dev = TINY_DEVICE
    for kind in ("weight  ", "membrane", "current ", "trace   ", "update  "):
        start = dev.index(kind + " = {")
        dev = dev[:start] + f"{kind.strip()} = {text}" + dev[dev.index("}", start) + 1:]
    d = parse_device(tomllib.loads(dev))
    widths = {k: f.bits for k, f in d.formats.items()}
    # bias and signal take the membrane and current formats, the delay eligibility the
    # trace's; delay defaults to float32
    assert d.is_float and widths == {"weight": bits, "membrane": bits, "current": bits,
                                     "trace": bits, "update": bits, "bias": bits,
                                     "signal": bits, "delay": 32, "eligibility": bits}


def test_update_wider_than_the_accumulator_is_refused():
    """32-bit update format, 24-bit accumulator: a one-line error naming the key."""
    dev = TINY_DEVICE.replace("accumulator_bits = 32", "accumulator_bits = 24")
    with pytest.raises(DeviceError, match=r"formats\.update.*must be in 1\.\.24, got 32"):
        parse_device(tomllib.loads(dev))


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
    assert d.formats["delay"].bits == 16 and not d.formats["delay"].signed
    assert d.formats["eligibility"].signed and not d.formats["trace"].signed


def test_device_file_by_path(tiny_device_file):
    assert load_device(str(tiny_device_file)).name == "tiny"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(DeviceError, match="unknown device 'nope'; presets: .*cortex-m7"):
        load_device("nope")


def test_the_tess_table_defaults_to_a_generated_basis():
    from edgesnn.hw import TessBasis

    d = parse_device(tomllib.loads(TINY_DEVICE))
    assert d.tess == TessBasis("generated", 16, 1)
    d = parse_device(tomllib.loads(TINY_DEVICE + '\n[tess]\nbasis = "stored"\nphase_bits = 20\n'))
    assert d.tess == TessBasis("stored", 20, 1)
    assert all(load_device(name).tess == TessBasis() for name in preset_names())


def test_the_largest_delay_is_a_limit_of_the_device():
    d = parse_device(tomllib.loads(TINY_DEVICE))
    assert d.limits.max_delay is None                 # absent: no limit but memory
    d = parse_device(tomllib.loads(TINY_DEVICE + "\n[limits]\nmax_delay = 0\n"))
    assert d.limits.max_delay == 0                    # the device has no delays
    with pytest.raises(DeviceError, match=r"key 'limits.max_delay': must be an integer >= 0, "
                                          r"got -1"):
        parse_device(tomllib.loads(TINY_DEVICE + "\n[limits]\nmax_delay = -1\n"))
    presets = {n: load_device(n).limits.max_delay for n in preset_names()}
    assert presets == {"audio-edge": 62, "cortex-m7": None, "fp32-reference": None,
                       "loihi-core": 62, "spinnaker2-pe": 15, "xylo-audio": 0}


def test_hw_show_says_which_devices_have_no_delays(runner):
    from edgesnn.cli import main

    xylo = runner.invoke(main, ["hw", "show", "xylo-audio"]).stdout
    loihi = runner.invoke(main, ["hw", "show", "loihi-core"]).stdout
    assert "no delays" in xylo and "max delay" not in xylo
    assert "max delay 62 steps" in loihi and "no delays" not in loihi
