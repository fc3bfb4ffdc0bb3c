"""Memory planner: word-exact placement, budget refusals, the S-TLLR memory claim."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest

from edgesnn.errors import BudgetError
from edgesnn.hw import load_device, parse_device
from edgesnn.plan import (as_float32, bptt_tensors, learning_tensors, make_plan,
                          total_packed_bytes)
from edgesnn.spec import load_spec, parse_spec
from conftest import EXAMPLES, TINY_DEVICE, TINY_SPEC


@pytest.fixture
def tiny():
    return parse_spec(tomllib.loads(TINY_SPEC)), parse_device(tomllib.loads(TINY_DEVICE))


def test_tiny_plan_is_word_exact(tiny):
    spec, dev = tiny
    plan = make_plan(spec, dev).check()
    by = {p.tensor.name: p for p in plan.placements}
    # 3x4 int8 weights: 8 per 64-bit word -> 2 words, 16 bytes
    assert (by["L0.W"].words, by["L0.W"].bytes) == (2, 16)
    # 4x4 recurrent int8: 16 elements -> 2 words
    assert by["L0.W_rec"].words == 2
    # 4 membranes of 16 bits: 4 per word -> 1 word
    assert by["L0.u"].words == 1
    # 4 currents of 32 bits: 2 per word -> 2 words
    assert by["L0.i"].words == 2
    # recurrent layer double-buffers its 4 spikes: 8 bits -> 1 word
    assert by["L0.s"].words == 1 and by["L0.s"].tensor.shape == (2, 4)
    # per-step updates: no accumulator is stored
    assert not any(n.endswith(".dW") for n in by)
    # every tensor is placed once, in 64-bit words: W 2, W_rec 2, out.W 1 (8 bytes); b, u,
    # out.b, out.u, q, q_rec, h, psi, out.q (16-bit, up to 4 a word) 1 each; currents 2 + 1,
    # g 2, out.e 1 (32-bit); spikes L0.s and input 1 each; the psi table 16 x 8 bits 2,
    # the exp table 16 x 16 bits 4: 28 words, 224 bytes
    assert len(by) == len(plan.placements) == 20
    assert plan.banks[0].used_bytes == plan.total_bytes == 28 * 8


def test_per_sample_update_adds_accumulators_of_the_weight_shapes(tiny):
    spec, dev = tiny
    spec = replace(spec, learning=replace(spec.learning, update="per-sample"))
    names = {t.name: t for t in learning_tensors(spec, dev)}
    assert names["L0.dW"].shape == (3, 4) and names["L0.dW_rec"].shape == (4, 4)
    assert names["out.dW"].shape == (4, 2) and names["L0.dW"].bits == 32


def test_dfa_feedback_matrix_is_stored_only_when_asked(tiny):
    spec, dev = tiny
    stored = replace(spec, learning=replace(spec.learning, signal="dfa", feedback="stored"))
    regen = replace(spec, learning=replace(spec.learning, signal="dfa", feedback="regenerated"))
    s_names = {t.name: t for t in learning_tensors(stored, dev)}
    r_names = {t.name for t in learning_tensors(regen, dev)}
    assert s_names["L0.B"].shape == (2, 4)
    assert "L0.B" not in r_names and {"L0.B_seed", "fb_lfsr"} <= r_names   # regenerated
    assert "L0.B_seed" not in s_names and "fb_lfsr" not in s_names


def test_over_budget_names_bank_need_capacity_and_largest_tensor(tiny):
    spec, dev = tiny
    big = replace(spec, inputs=5000)
    plan = make_plan(big, dev)
    assert not plan.fits
    with pytest.raises(BudgetError) as err:
        plan.check()
    msg = str(err.value)
    assert "bank 'main' needs" in msg and "has 4,096" in msg
    assert "largest tensor L0.W" in msg and "\n" not in msg
    need = int(msg.split("needs ")[1].split(" bytes")[0].replace(",", ""))
    assert need > 4096


def test_shd_fits_the_mcu_with_8_bit_weights_and_not_a_single_128k_core():
    spec = load_spec(EXAMPLES / "shd.toml")
    assert make_plan(spec, load_device("cortex-m7")).fits
    small = make_plan(spec, load_device("loihi-core"))
    assert not small.fits and "does not fit loihi-core" in small.problems[0]


def test_fsdd_fits_the_audio_edge_preset_and_not_xylo_audio():
    """The FSDD learner (16-128-10, per-sample updates) on the ReckOn-sized preset."""
    spec = load_spec(EXAMPLES / "fsdd.toml")
    dev = load_device("audio-edge")
    assert dev.formats["weight"].bits == 8 and dev.formats["weight"].rounding == "stochastic"
    for kind in ("membrane", "current", "signal", "update"):
        assert dev.formats[kind].bits == 16
    plan = make_plan(spec, dev).check()
    banks = {p.tensor.name: p.bank for p in plan.placements}
    assert banks["L0.W_rec"].endswith("-sram") and banks["L0.dW_rec"] == "update-sram"
    assert banks["L0.u"] == "neuron-sram" and banks["L0.q"] == "neuron-sram"
    assert all(u.used_bytes <= u.bank.size_bytes for u in plan.banks)
    small = make_plan(spec, load_device("xylo-audio"))
    assert not small.fits and "8 output neurons" in small.problems[0]
    # the update SRAM holds per-sample accumulators for 128 neurons, not for ReckOn's 256
    wide = make_plan(replace(spec, layers=(replace(spec.layers[0], size=256), spec.layers[1])),
                     dev)
    assert not wide.fits and "update-sram" in wide.problems[0]


def test_structural_limits_are_reported_by_name():
    spec = load_spec(EXAMPLES / "shd.toml")
    plan = make_plan(spec, load_device("xylo-audio"))
    assert not plan.fits
    assert "input channels" in plan.problems[0] and "700" in plan.problems[0]


@pytest.mark.parametrize("device", ["cortex-m7", "fp32-reference"])
def test_stllr_learning_memory_is_independent_of_T_and_bptt_grows_linearly(device):
    base = load_spec(EXAMPLES / "shd.toml")
    dev = load_device(device)
    onchip, bptt = [], []
    for T in (10, 100, 1000):
        spec = replace(base, time_steps=T, learning=replace(base.learning, window=min(T, 9)))
        onchip.append(make_plan(spec, dev).total_bytes)
        bptt.append(total_packed_bytes(bptt_tensors(spec, dev)))
    assert onchip[0] == onchip[1] == onchip[2]
    step1, step2 = bptt[1] - bptt[0], bptt[2] - bptt[1]     # 90 and 900 more steps
    assert step1 > 0
    assert step2 == pytest.approx(10 * step1, rel=1e-4)
    # BPTT per step is the activations: x (700 bits), u (450 membranes), s (450 bits),
    # readout x (450 bits) and u (20 membranes)
    mbits = dev.formats["membrane"].bits
    per_step_bits = 700 + 450 * mbits + 450 + 450 + 20 * mbits
    assert step1 == pytest.approx(90 * per_step_bits / 8, rel=1e-3)


def test_float32_costing_stores_every_element_in_32_bits(tiny):
    spec, dev = tiny
    tensors = learning_tensors(spec, dev)
    f32 = as_float32(tensors)
    assert total_packed_bytes(f32) == sum(4 * t.elements for t in tensors)


@pytest.mark.parametrize("signal", ["bp", "dfa"])
def test_frozen_hidden_stores_no_learning_state_for_the_spiking_layers(signal):
    """The frozen baseline's memory map: inference state of every layer, learning state of
    the readout only (its trace q, error e, accumulators); no psi table, no DFA seed."""
    over = ["learning.update=per-sample", f"learning.signal={signal}"]
    dev = load_device("cortex-m7")
    learn = {t.name for t in learning_tensors(load_spec(EXAMPLES / "shd.toml", over), dev)}
    spec = load_spec(EXAMPLES / "shd.toml", [*over, "learning.hidden=frozen"])
    frozen = {t.name for t in learning_tensors(spec, dev)}
    hidden_learning = {n for n in learn if n.startswith("L") and n.split(".")[1] in
                       ("q", "q_rec", "h", "psi", "g", "dW", "dW_rec", "db", "B", "B_seed")}
    assert hidden_learning >= {"L0.q", "L0.q_rec", "L0.h", "L0.psi", "L0.g", "L0.dW",
                               "L0.dW_rec", "L0.db"}
    assert frozen == learn - hidden_learning - {"lut.psi", "fb_lfsr"}
    assert {"out.q", "out.e", "out.dW", "out.db", "L0.W", "L0.W_rec", "L0.u"} <= frozen
    assert make_plan(spec, dev).total_bytes < make_plan(
        load_spec(EXAMPLES / "shd.toml", over), dev).total_bytes


# --------------------------------------------------------------------------
# delays and sparse masks in the memory map (issue 16)

def _delay_spec(*sets: str):
    return load_spec(EXAMPLES / "timing_delays.toml", list(sets))


def _shapes(spec, device="cortex-m7") -> dict[str, tuple[tuple[int, ...], int]]:
    return {t.name: (t.shape, t.bits) for t in learning_tensors(spec, load_device(device))}


def test_axonal_delays_store_a_code_a_history_and_an_eligibility_per_input():
    spec = _delay_spec()                    # 8 inputs, 16 LIF, max_delay 12, sigma 1.5
    t = _shapes(spec)
    R = 5                                   # ceil(3 x 1.5)
    assert t["L0.d"] == ((8,), 16)          # cortex-m7's delay format: the default u Q8.8
    assert t["L0.hist"] == ((12 + 1 + R, 8), 1)
    assert t["L0.eps"][0] == (8,) and t["L0.q"][0] == (8,)
    assert t["L0.dd"][0] == (8,)            # per-sample updates
    assert "L0.ring" not in t and "L0.mask" not in t
    assert t["lut.slope"] == (((2 * R + 1) * 2 ** 8,), 16)  # per tap and fraction code
    per_step = _shapes(_delay_spec("learning.update=per-step"))
    assert "L0.dd" not in per_step and "L0.dW" not in per_step


def test_a_frozen_layer_keeps_only_the_history_that_delivers_its_spikes():
    t = _shapes(_delay_spec("learning.hidden=frozen"))
    assert t["L0.hist"][0] == (13, 8)       # max_delay + 1: nothing learns, no kernel
    assert "L0.eps" not in t and "lut.slope" not in t and "L0.d" in t


def test_synaptic_delays_use_lavas_accumulator_ring_and_per_synapse_state():
    t = _shapes(_delay_spec("layers.0.delays=synaptic", "layers.0.delay_init=zero"))
    fmt = load_device("cortex-m7").formats
    assert t["L0.d"][0] == (8, 16)
    assert t["L0.ring"] == ((13, 16), fmt["current"].bits)
    assert t["L0.hist"][0] == (18, 8)       # learning reads the spikes around each delay
    assert t["L0.q"][0] == t["L0.eps"][0] == t["L0.dd"][0] == (8, 16)


def test_a_sparse_layer_stores_its_kept_synapses_and_the_smaller_mask():
    # 8 inputs, 2 kept (0.25): 2 indices of 3 bits (6 bits) beat a bitmap row (8 bits)
    t = _shapes(_delay_spec("layers.0.connectivity=0.25"))
    assert t["L0.W"][0] == (2, 16) and t["L0.dW"][0] == (2, 16)
    assert t["L0.mask"] == ((2, 16), 3)
    # 6 kept (0.75): 6 x 3 = 18 bits against a bitmap of 8: the bitmap
    t = _shapes(_delay_spec("layers.0.connectivity=0.75"))
    assert t["L0.W"][0] == (6, 16) and t["L0.mask"] == ((8, 16), 1)
    assert "L0.mask" not in _shapes(_delay_spec())


def test_the_slope_table_has_an_entry_per_tap_and_fractional_code():
    from edgesnn.plan import slope_table_entries

    dev = load_device("cortex-m7")
    dev = replace(dev, formats={**dev.formats, "delay": replace(dev.formats["delay"],
                                                                 int_bits=4, frac_bits=3)})
    assert slope_table_entries(_delay_spec("layers.0.sigma=1"), dev) == (2 * 3 + 1) * 8


@pytest.mark.parametrize("device,sets,message", [
    ("xylo-audio", (), 'the device has no delays, layer 0 has delays = "axonal"'),
    ("spinnaker2-pe", ("layers.0.max_delay=16",),
     "its largest delay is 15 steps, layer 0 has max_delay = 16"),
    ("loihi-core", ("layers.0.max_delay=63",),
     "its largest delay is 62 steps, layer 0 has max_delay = 63"),
])
def test_delays_a_device_cannot_give_are_refused_in_one_line(device, sets, message):
    plan = make_plan(_delay_spec(*sets), load_device(device))
    assert not plan.fits
    assert plan.problems[0] == f"does not fit {device}: {message}"
    assert make_plan(_delay_spec("layers.0.max_delay=15"), load_device("spinnaker2-pe")).fits


def test_a_delay_format_too_narrow_for_max_delay_is_refused():
    dev = load_device("loihi-core")
    dev = replace(dev, formats={**dev.formats, "delay": replace(dev.formats["delay"],
                                                                 int_bits=3)})
    plan = make_plan(_delay_spec(), dev)
    assert plan.problems[0] == ("does not fit loihi-core: its delay format Q3.0 holds at most 7 "
                                "steps, layer 0 has max_delay = 12")


def test_delay_buffers_that_do_not_fit_name_the_bank_and_the_shortfall():
    dev = load_device("audio-edge")          # spike histories go to its 2 KiB state-regs
    plan = make_plan(_delay_spec("network.inputs=256", "layers.0.delay_init=zero",
                                 "layers.0.max_delay=62"), dev)
    assert not plan.fits
    assert any("state-regs" in p and "L0.hist" in p for p in plan.problems), plan.problems
