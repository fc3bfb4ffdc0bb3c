"""`edgesnn simulate` and `edgesnn golden` from the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgesnn.cli import main
from conftest import EXAMPLES, golden_dir

FAST = ["--engine", "float", "--samples", "40", "--eval-every", "20", "--eval-samples", "10", "--quiet",
        "--set", "layers.0.size=16", "--set", "network.time_steps=12",
        "--set", "learning.window=6"]
FAST_SPEC = ["layers.0.size=16", "network.time_steps=12", "learning.window=6"]


def _test_accuracy_from_checkpoint(ckpt, name: str) -> float:
    """A second evaluation of the trained engine: its state from the run's checkpoint, the
    1000 Yin-Yang test points encoded here, the prediction the argmax of the scores."""
    from edgesnn.core import FixedEngine
    from edgesnn.datasets import load_dataset
    from edgesnn.hw import load_device
    from edgesnn.plan import make_plan
    from edgesnn.reference import FloatEngine, init_params
    from edgesnn.spec import load_spec

    spec = load_spec(EXAMPLES / "yinyang.toml", FAST_SPEC)
    params = init_params(spec, 0)
    eng = (FloatEngine(spec, params) if name == "float"
           else FixedEngine(make_plan(spec, load_device("cortex-m7")), params, 0))
    prefix = f"engine/{name}/"
    with np.load(ckpt) as z:
        eng.load_state({k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)})
    _, _, test = load_dataset("yinyang")
    assert len(test) == 1000
    correct = 0
    for i in range(len(test)):
        r = eng.run_sample(test.spikes(i, spec.time_steps, "regular"), None, learn=False)
        correct += int(np.argmax(r.scores) == test.labels[i])
    return correct / len(test)


def test_simulate_writes_the_three_outputs(runner, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(main, ["simulate", *FAST, "--out", str(out), "--checkpoint-every", "40"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    assert r["float"]["test_accuracy"] == _test_accuracy_from_checkpoint(
        out / "checkpoint.npz", "float")
    assert r["data"]["test"] == 1000
    assert r["curve"]["samples"] == [0, 20, 40]
    assert r["float"]["ops_per_sample"]["synops"] > 0
    assert r["memory"]["banks"] and r["data"]["name"] == "yinyang"
    assert "float test accuracy" in res.stdout
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "# Simulation" in (out / "report.md").read_text()


def test_simulate_resume_from_cli(runner, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(main, ["simulate", *FAST, "--out", str(out), "--checkpoint-every", "20"])
    assert res.exit_code == 0 and (out / "checkpoint.npz").exists()
    res2 = runner.invoke(main, ["simulate", *FAST[:-6], "--samples", "60", "--eval-every", "20",
                                "--eval-samples", "10", "--set", "layers.0.size=16",
                                "--set", "network.time_steps=12", "--set", "learning.window=6",
                                "--out", str(out), "--resume", str(out / "checkpoint.npz")])
    assert res2.exit_code == 0, res2.output
    r = json.loads((out / "report.json").read_text())
    assert r["config"]["resumed_at"] == 40 and r["curve"]["samples"] == [0, 20, 40, 60]


@pytest.mark.parametrize("args,message", [
    (["--set", "network.inputs=5"], "gives 4 inputs, spec 'yinyang' expects network.inputs = 5"),
    (["--set", "layers.1.size=2"], "has 3 classes (labels 0..2 in its train split), the spec's "
                                   "readout has 2"),
    (["--set", "learning.window=99"], "key 'learning.window': must be <= network.time_steps"),
    (["--set", "nonsense"], "must look like section.key=value"),
    (["--resume", "missing.npz"], "no such checkpoint"),
    (["--hw", "xylo"], "unknown device 'xylo'"),
])
def test_simulate_bad_input_is_one_line_and_writes_nothing(runner, tmp_path, args, message):
    out = tmp_path / "run"
    res = runner.invoke(main, ["simulate", *FAST, "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


@pytest.fixture
def golden_copy(tmp_path):
    golden = golden_dir()
    dst = tmp_path / "cases"
    dst.mkdir()
    for stem in ("linear_c1_apostm1", "readout_c1_shd"):
        for ext in (".json", ".npz"):
            shutil.copy(golden / f"{stem}{ext}", dst / f"{stem}{ext}")
    return dst


def test_golden_passes_on_supported_cases(runner, golden_copy):
    res = runner.invoke(main, ["golden", str(golden_copy)])
    assert res.exit_code == 0, res.output
    assert "2/2 cases passed" in res.stdout


def test_golden_fails_on_a_wrong_value(runner, golden_copy):
    import numpy as np

    path = golden_copy / "readout_c1_shd.npz"
    arrays = dict(np.load(path))
    arrays["dW"] = arrays["dW"] + 1e-6
    np.savez(path, **arrays)
    res = runner.invoke(main, ["golden", str(golden_copy)])
    assert res.exit_code == 1
    assert "FAIL" in res.stdout and "readout_c1_shd" in res.stdout


def test_golden_reports_an_unknown_kind(runner, golden_copy):
    path = golden_copy / "linear_c1_apostm1.json"
    cfg = json.loads(path.read_text())
    cfg["kind"] = "lstm"
    path.write_text(json.dumps(cfg))
    res = runner.invoke(main, ["golden", str(golden_copy)])
    assert res.exit_code == 1 and "UNSUPPORTED" in res.stdout and "lstm" in res.stdout


def test_golden_missing_folder(runner, tmp_path):
    res = runner.invoke(main, ["golden", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and res.stderr.startswith("edgesnn: error:")


def test_simulate_shd_end_to_end_on_miniature_files(runner, tmp_path):
    """examples/shd.toml (hidden layer shrunk for speed) on SHD files written in the original
    HDF5 layout: the loader, the binning and the engines run end to end."""
    from event_files import shd_dir

    data = tmp_path / "shd"
    data.mkdir()
    shd_dir(data)
    out = tmp_path / "run"
    res = runner.invoke(main, ["simulate", str(EXAMPLES / "shd.toml"), "--engine", "float",
                               "--data", "shd", "--data-dir", str(data), "--samples", "12",
                               "--eval-every", "6", "--eval-samples", "1", "--quiet",
                               "--set", "layers.0.size=16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    assert r["data"] == {"name": "shd", "encoding": "events", "train": 9, "validation": 1,
                         "test": 3}
    assert r["float"]["ops_per_sample"]["synops"] > 0


def test_event_data_without_files_is_one_line(runner, tmp_path):
    res = runner.invoke(main, ["simulate", str(EXAMPLES / "shd.toml"), "--engine", "float",
                               "--data", "shd", "--data-dir", str(tmp_path), "--quiet",
                               "--out", str(tmp_path / "run")])
    assert res.exit_code == 2
    assert "shd_train.h5 not found" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(main, ["simulate", "--data", "fsdd", "--quiet",
                               "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "give --data-dir" in res.stderr


def test_simulate_both_engines_report_costs_and_trace(runner, tmp_path):
    """Default engines: fixed and float on the same stream, each costed; a traced sample."""
    out = tmp_path / "run"
    args = [a for a in FAST if a not in ("--engine", "float")]
    res = runner.invoke(main, ["simulate", *args, "--out", str(out), "--trace-sample", "3",
                               "--checkpoint-every", "40"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    for name in ("fixed", "float"):
        e = r[name]
        assert e["test_accuracy"] == _test_accuracy_from_checkpoint(out / "checkpoint.npz", name)
        assert e["cycles_per_sample"]["cycles"] > 0 and e["latency_us_per_sample"] > 0
        assert e["energy_pj_per_sample"]["total"] > e["energy_pj_per_inference"]["total"] > 0
        assert e["ops_per_inference"]["eligibility_macs"] == 0
    # Multiplies per learned sample, by hand (16 dense LIF, 3 classes, 4 inputs, T = 12,
    # window 6, BP, alphas 1). The float engine multiplies every decay that is not a power of
    # two: leaks of 16 + 3 membranes (beta 0.9) and the traces q of 4 inputs and 16 readout
    # inputs (0.9) each step (h decays by 0.5: a shift); per window step e W_out 3 x 16, and
    # c*q 16 x 4, g*h and g*psi 2 x 16, e*q_out 3 x 16. The fixed engine on cortex-m7 decays by
    # shifts and skips zero factors (its learning counts: test_counts_vs_analytic.py).
    fl, fx = r["float"]["ops_per_sample"], r["fixed"]["ops_per_sample"]
    assert (fl["membrane_multiplies"], fl["trace_multiplies"]) == (12 * 19, 12 * 20)
    assert fl["signal_multiplies"] == 6 * 48
    assert fl["update_multiplies"] == 6 * (64 + 32 + 48)
    assert fl["multiplies"] == 228 + 240 + 288 + 864
    assert r["float"]["ops_per_inference"]["multiplies"] == 228 + 240
    assert (fx["membrane_multiplies"], fx["trace_multiplies"]) == (0, 0)
    assert 0 < fx["signal_multiplies"] <= 6 * 48 and 0 < fx["update_multiplies"] <= 864
    assert r["fixed"]["ops_per_inference"]["multiplies"] == 0
    assert r["gap_points"] == pytest.approx(100 * (r["float"]["test_accuracy"]
                                                   - r["fixed"]["test_accuracy"]))
    assert sum(r["fixed"]["sram_words_per_sample"].values()) > 0
    assert r["fixed"]["costed_as"] == "device formats"
    md = (out / "report.md").read_text()
    assert "gap" in res.stdout and "Fixed point costs" in md
    assert "| multiplies |" in md
    assert (out / "energy.png").read_bytes()[:4] == b"\x89PNG"
    import numpy as np

    with np.load(out / "trace.npz") as z:
        keys = set(z.files)
    fixed_keys = {k.split("/", 1)[1] for k in keys if k.startswith("fixed/")}
    float_keys = {k.split("/", 1)[1] for k in keys if k.startswith("float/")}
    assert fixed_keys and fixed_keys == float_keys and "x" in keys


def test_tracing_does_not_change_the_run(runner, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = [x for x in FAST if x not in ("--engine", "float")]
    assert runner.invoke(main, ["simulate", *args, "--out", str(a)]).exit_code == 0
    assert runner.invoke(main, ["simulate", *args, "--out", str(b),
                                "--trace-sample", "5"]).exit_code == 0
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    assert ra["curve"] == rb["curve"]
    assert ra["fixed"]["ops_per_sample"] == rb["fixed"]["ops_per_sample"]


def test_trace_sample_outside_the_run(runner, tmp_path):
    res = runner.invoke(main, ["simulate", *FAST, "--out", str(tmp_path / "r"),
                               "--trace-sample", "40"])
    assert res.exit_code == 2 and "not among the samples" in res.stderr


def test_fsdd_example_learns_on_the_audio_edge_preset(runner, tmp_path, monkeypatch):
    """examples/fsdd.toml on audio-edge, both engines, from WAV files in the FSDD layout."""
    from test_audio import _fsdd_folder

    monkeypatch.setenv("EDGESNN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    res = runner.invoke(main, ["simulate", str(EXAMPLES / "fsdd.toml"), "--hw", "audio-edge",
                               "--data", "fsdd", "--data-dir", str(_fsdd_folder(tmp_path)),
                               "--samples", "6", "--eval-every", "3", "--eval-samples", "3",
                               "--set", "network.time_steps=30", "--set", "learning.window=10",
                               "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    assert r["device"]["name"] == "audio-edge"
    assert r["data"] == {"name": "fsdd", "encoding": "iaf", "train": 3, "validation": 3,
                         "test": 3}
    for name in ("fixed", "float"):
        e = r[name]
        assert e["energy_pj_per_sample"]["total"] > e["energy_pj_per_inference"]["total"] > 0
        assert len(e["hidden_spike_rate"]) == 1
    assert "gap_points" in r


def test_simulate_frozen_hidden_in_both_engines(runner, tmp_path):
    """The frozen-hidden baseline from the command line: both engines learn the readout
    only (the hidden weights in the checkpoint are the initial ones), the report names it,
    and its memory map holds no learning state for the hidden layer."""
    from edgesnn.reference import init_params
    from edgesnn.spec import load_spec

    out = tmp_path / "run"
    args = [a for a in FAST if a not in ("--engine", "float")]
    res = runner.invoke(main, ["simulate", *args, "--set", "learning.hidden=frozen",
                               "--out", str(out), "--checkpoint-every", "40"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "report.json").read_text())
    assert r["spec"]["hidden"] == "frozen"
    assert "readout only (hidden layers frozen)" in (out / "report.md").read_text()
    names = {t["name"] for t in r["memory"]["tensors"]}
    assert "out.dW" in names and not names & {"L0.q", "L0.h", "L0.psi", "L0.g", "L0.dW"}
    start = init_params(load_spec(EXAMPLES / "yinyang.toml", FAST_SPEC), 0)
    with np.load(out / "checkpoint.npz") as z:
        assert np.array_equal(z["engine/float/L0.W"], start.W[0])
        assert not np.array_equal(z["engine/float/out.W"], start.W_out)
        fixed_w, fixed_out = z["engine/fixed/L0.W"], z["engine/fixed/out.W"]
    from edgesnn.core import FixedEngine
    from edgesnn.hw import load_device
    from edgesnn.plan import make_plan

    spec = load_spec(EXAMPLES / "yinyang.toml", [*FAST_SPEC, "learning.hidden=frozen"])
    initial = FixedEngine(make_plan(spec, load_device("cortex-m7")), start, 0).state()
    assert np.array_equal(fixed_w, initial["L0.W"])
    assert not np.array_equal(fixed_out, initial["out.W"])
    for name in ("fixed", "float"):
        assert r[name]["ops_per_sample"]["signal_macs"] == 0
