"""`edgesnn profile` and `edgesnn hw`: reports, budget refusals, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgesnn.cli import main
from edgesnn.hw import preset_names
from conftest import EXAMPLES, TINY_DEVICE, TINY_SPEC, write

SHD = str(EXAMPLES / "shd.toml")
#: Which presets hold the 700-450-20 SHD learner on one core (see the presets' sources).
SHD_FITS = {"cortex-m7": True, "fp32-reference": True, "loihi-core": False,
            "spinnaker2-pe": False, "xylo-audio": False, "audio-edge": False}
MULTIPLYING = {"fp32-reference", "loihi-core", "spinnaker2-pe", "audio-edge"}


@pytest.mark.parametrize("name", sorted(SHD_FITS))
def test_profile_shd_on_every_preset(runner, tmp_path, name):
    out = tmp_path / "r.json"
    res = runner.invoke(main, ["profile", SHD, "--hw", name, "--format", "json", "--out", str(out)])
    if SHD_FITS[name]:
        assert res.exit_code == 0, res.stderr
        r = json.loads(out.read_text())
        assert r["device"]["name"] == name
        assert r["fits"] is True
        banks = r["memory"]["banks"]
        assert {"name", "capacity_bytes", "used_bytes"} <= set(banks[0])
        assert sum(b["used_bytes"] for b in banks) == r["memory"]["total_bytes"]
        assert all(b["used_bytes"] <= b["capacity_bytes"] for b in banks)
        assert r["bptt"]["memory_bytes"] > r["memory"]["total_bytes"]
        assert r["ops"]["synops"] > 0 and r["ops"]["learning_macs"] > 0
        # shd.toml by hand, T = 100, window 90, BP, alphas 1: leaks of 450 + 20 membranes
        # (beta 0.9933) and decays of the readout's 450 q (0.99) each step, where the device
        # multiplies (float32 always); q, q_rec (lambda_pre 1) and h (0.5) are shifts. Per
        # window step c*q 450 x (700 + 450), g*h and g*psi 2 x 450, e*q_out 20 x 450, and
        # the signal e W_out 20 x 450.
        leaks, decays = 100 * 470, 100 * 450
        learning = 90 * (450 * 1150 + 900 + 9000) + 90 * 9000
        assert r["float32"]["multiplies"] == leaks + decays + learning == 48_368_000
        multiplying = name in MULTIPLYING
        assert r["ops"]["membrane_multiplies"] == multiplying * leaks
        assert r["ops"]["trace_multiplies"] == multiplying * decays
        assert r["ops"]["multiplies"] == multiplying * (leaks + decays) + learning
        assert r["energy_pj"]["total"] > 0
    else:
        assert res.exit_code == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgesnn: error: does not fit " + name)
        assert not out.exists()


def test_every_shipped_preset_is_in_the_table():
    assert set(preset_names()) == set(SHD_FITS)


def test_over_budget_report_on_request(runner, tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(main, ["profile", SHD, "--hw", "loihi-core", "--format", "json",
                               "--out", str(out), "--allow-over-budget"])
    assert res.exit_code == 0
    r = json.loads(out.read_text())
    assert r["fits"] is False and "does not fit" in r["problems"][0]


def test_markdown_report_names_banks_and_bptt(runner):
    res = runner.invoke(main, ["profile", str(EXAMPLES / "yinyang.toml"), "--hw", "cortex-m7"])
    assert res.exit_code == 0
    assert "## Memory map" in res.stdout and "| dtcm |" in res.stdout
    assert "BPTT" in res.stdout and "fits" in res.stdout
    assert "| multiplies |" in res.stdout and "| multiplies / sample |" in res.stdout


def test_rates_change_synops_linearly(runner):
    def synops(rate):
        res = runner.invoke(main, ["profile", SHD, "--format", "json", "--input-rate", str(rate),
                                   "--hidden-rate", "0"])
        return json.loads(res.stdout)["ops"]["synops"]
    # hidden rate 0: only the input layer: T * rate * 700 * 450
    assert synops(0.02) == pytest.approx(100 * 0.02 * 700 * 450)
    assert synops(0.04) == pytest.approx(2 * synops(0.02))


def test_hw_list_show_validate(runner, tiny_device_file):
    res = runner.invoke(main, ["hw", "list"])
    assert res.exit_code == 0 and all(n in res.stdout for n in SHD_FITS)
    res = runner.invoke(main, ["hw", "show", "cortex-m7"])
    assert res.exit_code == 0 and "axi-sram" in res.stdout and "Q1.6" in res.stdout
    res = runner.invoke(main, ["hw", "validate", str(tiny_device_file)])
    assert res.exit_code == 0 and "ok" in res.stdout


# --------------------------------------------------------------------------
# bad inputs: one line naming the file and the key, exit 2, nothing written

DEVICE_CASES = [
    ("syntax", lambda t: t.replace('name = "tiny"', 'name = "tiny'), "malformed TOML"),
    ("word_bits", lambda t: t.replace("word_bits = 64", "word_bits = 0"),
     "key 'banks[0].word_bits': must be an integer in [1, 1024], got 0"),
    ("negative size", lambda t: t.replace("size_bytes = 4096", "size_bytes = -4096"),
     "key 'banks[0].size_bytes': must be an integer >= 1, got -4096"),
    ("rounding", lambda t: t.replace("frac_bits = 6 }", 'frac_bits = 6, rounding = "up" }'),
     "key 'formats.weight.rounding': must be one of floor, nearest-even, nearest-away, "
     "stochastic; got 'up'"),
    ("too many bits", lambda t: t.replace("int_bits = 3, frac_bits = 12", "int_bits = 20, "
                                          "frac_bits = 20"),
     "key 'formats.membrane': total bits (signed + int_bits + frac_bits) must be in 1..32, got 41"),
    ("missing format", lambda t: t.replace("trace    = {", "#"), "key 'formats.trace': is required"),
    ("typo key", lambda t: t.replace("clock_mhz = 100.0", "clock_mhz = 100.0\nclok = 3"),
     "key 'device.clok': unknown key"),
    ("duplicate bank", lambda t: t + '\n[[banks]]\nname = "main"\nsize_bytes = 8\nword_bits = 8\n'
     'read_pj = 1.0\nwrite_pj = 1.0\n', "duplicate bank name 'main'"),
    ("holds", lambda t: t.replace("write_pj = 12.0", 'write_pj = 12.0\nholds = ["weights"]'),
     "key 'banks[0].holds': unknown tensor kind 'weights'"),
    ("decay", lambda t: t.replace('decay = "shift"', 'decay = "exp"'),
     "key 'device.decay': must be one of multiply, shift"),
    ("string clock", lambda t: t.replace("clock_mhz = 100.0", 'clock_mhz = "fast"'),
     "key 'device.clock_mhz': must be a finite number"),
    ("mixed float", lambda t: t.replace("weight   = { signed = true,  int_bits = 1, frac_bits = 6 }",
                                        "weight = { float = 32 }"),
     "mixes float and fixed-point formats"),
]

SPEC_CASES = [
    ("negative size", lambda t: t.replace("size = 4", "size = -4"),
     "key 'layers[0].size': must be an integer in [1, 1000000], got -4"),
    ("window > T", lambda t: t.replace("window = 4", "window = 40"),
     "key 'learning.window': must be <= network.time_steps (10), got 40"),
    ("readout first", lambda t: t.replace('kind = "recurrent"\nsize = 4\nbeta = 0.9\n'
                                          'threshold = 0.5', 'kind = "readout"\nsize = 4\n'
                                          'beta = 0.9'),
     "key 'layers[0].kind': a readout must be the last layer"),
    ("no readout", lambda t: t.replace('kind = "readout"', 'kind = "dense"\nthreshold = 1.0')
     .replace("trace_decay = 0.9", ""), "key 'layers[1].kind': the last layer must be kind"),
    ("beta", lambda t: t.replace("beta = 0.9\nthreshold", "beta = 1.5\nthreshold"),
     "key 'layers[0].beta': must be a number in [0.0, 1.0], got 1.5"),
    ("reset", lambda t: t.replace("threshold = 0.5", 'threshold = 0.5\nreset = "sometimes"'),
     "key 'layers[0].reset': must be one of soft, hard"),
    ("llif", lambda t: t.replace("threshold = 0.5", 'threshold = 0.5\nneuron = "llif"'),
     "key 'layers[0].neuron': 'llif' (LLIF neurons) is not supported yet; supported neurons: lif"),
    ("signal", lambda t: t.replace('signal = "bp"', 'signal = "hebb"'),
     "key 'learning.signal': must be one of bp, dfa"),
    ("missing inputs", lambda t: t.replace("inputs = 3", ""),
     "key 'network.inputs': is required but missing"),
]


@pytest.mark.parametrize("case,mutate,message", DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES])
def test_bad_device_gives_one_line(runner, tmp_path, case, mutate, message):
    dev = write(tmp_path, "dev.toml", mutate(TINY_DEVICE))
    spec = write(tmp_path, "spec.toml", TINY_SPEC)
    _assert_one_line_error(runner, tmp_path, spec, dev, f"{dev}: ", message)


@pytest.mark.parametrize("case,mutate,message", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_spec_gives_one_line(runner, tmp_path, case, mutate, message):
    dev = write(tmp_path, "dev.toml", TINY_DEVICE)
    spec = write(tmp_path, "spec.toml", mutate(TINY_SPEC))
    _assert_one_line_error(runner, tmp_path, spec, dev, f"{spec}: ", message)


def _assert_one_line_error(runner, tmp_path, spec, dev, prefix, message):
    out = tmp_path / "report.json"
    res = runner.invoke(main, ["profile", str(spec), "--hw", str(dev), "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("edgesnn: error: " + prefix), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.glob(".report.json*"))


def test_missing_files(runner, tmp_path):
    res = runner.invoke(main, ["profile", str(tmp_path / "none.toml")])
    assert res.exit_code == 2 and "none.toml: no such file" in res.stderr
    res = runner.invoke(main, ["profile", SHD, "--hw", str(tmp_path / "dev.toml")])
    assert res.exit_code == 2 and "dev.toml: no such file" in res.stderr
    res = runner.invoke(main, ["profile", SHD, "--input-rate", "2"])
    assert res.exit_code == 2 and "input-rate" in res.stderr


def test_console_script_runs(tmp_path):
    """The installed entry point, not just the click object: exit codes survive."""
    res = subprocess.run([sys.executable, "-m", "edgesnn.cli", "profile", SHD, "--hw", "nope"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith("edgesnn: error: unknown device 'nope'")
    assert "Traceback" not in res.stderr


def test_readme_examples_run(runner, tmp_path):
    """The profile examples the README shows, as written there."""
    import re
    import shlex

    readme = (EXAMPLES.parent / "README.md").read_text().replace("\\\n", " ")
    commands = re.findall(r"^edgesnn profile [^\n]*", readme, re.M)
    assert len(commands) >= 3
    for cmd in commands:
        args = shlex.split(cmd.split("#")[0])[1:]
        args = [str(EXAMPLES.parent / a) if a.startswith("examples/") else a for a in args]
        if "--out" in args:
            args[args.index("--out") + 1] = str(tmp_path / args[args.index("--out") + 1])
        res = runner.invoke(main, args)
        expect = 2 if "# exits 2" in cmd else 0        # the README says which are refused
        assert res.exit_code == expect, (cmd, res.output)


def test_profile_compares_every_rule_with_bptt_on_the_same_network():
    """The rules table: each row is the analytic count of that rule's spec variant, the
    ratios are BPTT's figures over the row's; frozen learns the readout only."""
    from edgesnn import analytic
    from edgesnn.hw import load_device
    from edgesnn.plan import bptt_tensors, total_packed_bytes
    from edgesnn.profile import profile, to_markdown
    from edgesnn.spec import load_spec

    spec = load_spec(EXAMPLES / "yinyang_tess.toml")
    dev = load_device("cortex-m7")
    r = profile(spec, dev, 0.1, 0.05)
    rows = {x["rule"]: x for x in r["rules"]}
    assert list(rows) == ["BPTT", "S-TLLR, BP", "S-TLLR, DFA", "TESS",
                          "frozen hidden (readout only)"]
    bptt = analytic.bptt_ops(spec, 0.1, 0.05, dev.decay)
    assert rows["BPTT"]["learning_macs"] == bptt.learning_macs
    assert rows["BPTT"]["memory_bytes"] == total_packed_bytes(bptt_tensors(spec, dev))
    tess = analytic.stllr_ops(spec, 0.1, 0.05, dev.decay)
    assert rows["TESS"]["learning_macs"] == tess.learning_macs == r["ops"]["learning_macs"]
    assert rows["TESS"]["bptt_macs_ratio"] == pytest.approx(
        bptt.learning_macs / tess.learning_macs)
    # 64 hidden, 16 groups of 4, 3 classes: pooling 64 + unpooling 64 + 2*3*16 + 3 exps
    assert rows["TESS"]["signal_macs"] - rows["S-TLLR, BP"]["signal_macs"] == \
        16 * (64 + 64 + 96 + 3 - 3 * 64)
    frozen = rows["frozen hidden (readout only)"]
    assert frozen["signal_macs"] == 0
    assert frozen["learning_macs"] == 16 * (3 * 64 + 3)        # e*q_out and db_out, 16 steps
    assert frozen["memory_bytes"] < rows["S-TLLR, BP"]["memory_bytes"]
    md = to_markdown(r)
    assert "## Learning rules on this network" in md and "205-661× fewer MACs" in md
    assert "205-661" not in to_markdown(profile(load_spec(EXAMPLES / "yinyang.toml"), dev))


# --------------------------------------------------------------------------
# delays (issue 16): the buffers and their share, on every preset


@pytest.mark.parametrize("device", ["cortex-m7", "loihi-core", "spinnaker2-pe", "audio-edge",
                                    "fp32-reference"])
@pytest.mark.parametrize("mode", ["axonal", "synaptic"])
def test_profile_shows_the_delay_tensors_and_their_share(runner, device, mode):
    import json

    from edgesnn.hw import load_device
    from edgesnn.plan import make_plan
    from edgesnn.spec import load_spec

    args = [str(EXAMPLES / "timing_delays.toml"), "--hw", device, "--format", "json",
            "--set", f"layers.0.delays={mode}", "--set", "layers.0.delay_init=zero"]
    res = runner.invoke(main, ["profile", *args])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    plan = make_plan(load_spec(EXAMPLES / "timing_delays.toml",
                               [f"layers.0.delays={mode}", "layers.0.delay_init=zero"]),
                     load_device(device))
    names = {t["name"] for t in r["delays"]["tensors"]}
    want = {"L0.d", "L0.hist", "L0.eps", "L0.dd"} | ({"L0.ring"} if mode == "synaptic" else set())
    assert want <= names
    assert r["delays"]["bytes"] == sum(p.bytes for p in plan.placements
                                       if p.tensor.name in names)
    assert r["delays"]["memory_percent"] == round(100 * r["delays"]["bytes"]
                                                  / r["memory"]["total_bytes"], 2)
    assert 0 < r["delays"]["buffer_energy_pj"] < r["delays"]["learning_energy_pj"]
    md = runner.invoke(main, ["profile", *args[:3]]).stdout
    assert "## Delays and sparse masks" in md and "spike histories, rings and slope" in md


@pytest.mark.parametrize("device,max_delay,words", [
    ("xylo-audio", 12, "the device has no delays"),
    ("spinnaker2-pe", 16, "its largest delay is 15 steps"),
    ("loihi-core", 63, "its largest delay is 62 steps"),
])
def test_profile_refuses_delays_a_device_cannot_give(runner, device, max_delay, words):
    res = runner.invoke(main, ["profile", str(EXAMPLES / "timing_delays.toml"), "--hw", device,
                               "--set", f"layers.0.max_delay={max_delay}"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgesnn: error: does not fit {device}: "
                                                   f"{words}"), res.stderr


def test_the_fsdd_delay_examples_profile_on_audio_edge(runner):
    """examples/fsdd_delays.toml fits audio-edge with axonal delays; with synaptic delays
    Lava's accumulator ring (26 steps x 48 neurons of 16-bit currents) overflows its 2 KiB
    register file, and the refusal names the bank and the ring."""
    fsdd = str(EXAMPLES / "fsdd_delays.toml")
    assert runner.invoke(main, ["profile", fsdd, "--hw", "audio-edge"]).exit_code == 0
    assert runner.invoke(main, ["profile", str(EXAMPLES / "fsdd_sparse.toml"), "--hw",
                                "audio-edge"]).exit_code == 0
    res = runner.invoke(main, ["profile", fsdd, "--hw", "audio-edge", "--set",
                               "layers.0.delays=synaptic"])
    assert res.exit_code == 2
    assert "bank 'state-regs' needs " in res.stderr and ", has 2,048; largest tensor L0.ring" in res.stderr
    assert "2,496 bytes" in res.stderr                     # 26 x 48 x 16 bits
