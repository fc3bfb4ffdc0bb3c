"""Issue 13's defects that are not bad input: progress, reports, messages, traces.

Each test here failed before its fix (the defect it names in its docstring).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgesnn.cli import main
from edgesnn.progress import Progress, duration
from edgesnn.report import plural, power_of_two
from edgesnn.simulate import gap_sentence
from test_campaign import RUN, _spec


class Clock:
    """A fake ``time.perf_counter``."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr("edgesnn.progress.time.perf_counter", c)
    return c


def test_progress_prints_lines_to_a_log_every_tenth_and_every_30_seconds(clock):
    """Defect 8: with stderr redirected nothing was printed for the whole run."""
    log = io.StringIO()
    bar = Progress(1000, "learning x", stream=log, tty=False)
    clock.t += 60.0                       # a minute of compiling before start()
    bar.start()
    for _ in range(50):                   # 50 samples in 40 s: no tenth yet, but 30 s passed
        clock.t += 0.8
        bar(1)
    lines = log.getvalue().splitlines()
    # sample 38 is the first at >= 30 s (30.4 s): 38 / 30.4 = 1.25 samples/s, 962 / 1.25 = 770 s
    assert lines[-1] == "learning x: 38/1,000 samples (4%), 1.2 samples/s, about 12 min 50 s left"
    for _ in range(100 - 50):
        clock.t += 0.01
        bar(1)
    assert log.getvalue().splitlines()[-1].startswith("learning x: 100/1,000 samples (10%)")
    bar.close()
    assert log.getvalue().count("100/1,000") == 1, "close() repeated the last line"


def test_progress_rate_counts_from_start_not_from_the_compilation(clock):
    """Defect 8: the early ETA was about 20x too long (it averaged in the compilation)."""
    bar = Progress(100, "x", stream=io.StringIO(), tty=False)
    clock.t += 90.0                       # warm-up
    bar.start()
    clock.t += 2.0
    bar(10)
    assert bar.rate() == pytest.approx(5.0)
    assert bar.status() == "10/100 samples (10%), 5.0 samples/s, about 18 s left"


def test_progress_in_a_terminal_redraws_one_line(clock):
    out = io.StringIO()
    bar = Progress(4, "x", stream=out, tty=True)
    bar.start()
    for _ in range(4):
        clock.t += 1.0
        bar(1)
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.rstrip().endswith("4/4 samples (100%), 1.0 samples/s")
    assert "[########################]" in text


def test_durations_read_as_people_write_them():
    assert [duration(s) for s in (0.4, 59.6, 61, 3599, 3600, 7500)] == [
        "0 s", "1 min 00 s", "1 min 01 s", "59 min 59 s", "1 h 00 min", "2 h 05 min"]


def test_plurals_and_powers_of_two():
    """Defect 9 ('1 channels', '1 banks') and 10 (0.00390625 for 2^-8)."""
    assert [plural(1, "bank"), plural(2, "bank"), plural(1, "channel"), plural(1000, "bank")] == [
        "1 bank", "2 banks", "1 channel", "1,000 banks"]
    assert [power_of_two(x) for x in (2 ** -8, 0.5, 1.0, 2 ** -20, 0.3)] == [
        "2^-8", "2^-1", "2^0", "2^-20", "0.3"]


def test_hw_validate_counts_one_bank_in_the_singular(tiny_device_file):
    res = CliRunner().invoke(main, ["hw", "validate", str(tiny_device_file)])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"{tiny_device_file}: ok (tiny, 1 bank, 4,096 bytes)"


@pytest.mark.parametrize("gap,words", [
    (-0.4, "Fixed point is **0.40 points better** than float"),
    (1.2, "Fixed point costs **1.20 points** of test accuracy"),
    (0.001, "Fixed point matches float"),
    (-0.004, "Fixed point matches float")])
def test_the_gap_is_said_the_right_way_round(gap, words):
    """Defect 10: 'costs -0.40 points' for a fixed engine that did better."""
    assert gap_sentence(gap).startswith(words)


@pytest.fixture(scope="module")
def both_report(tmp_path_factory):
    t = tmp_path_factory.mktemp("both")
    res = CliRunner().invoke(main, ["simulate", _spec(t), *RUN, "--out", str(t / "out"),
                                    "--trace-sample", "3", "--set",
                                    "learning.lr_halving_every=10"])
    assert res.exit_code == 0, res.output
    return t / "out", json.loads((t / "out" / "report.json").read_text())


def test_simulate_report_says_whether_it_fits(both_report):
    """Defect 10: simulate reports had no fits field or line (profile's do)."""
    out, r = both_report
    assert r["fits"] is True
    used = sum(b["used_bytes"] for b in r["memory"]["banks"])
    assert f"Fits cortex-m7: yes ({used:,} of 1,015,808 bytes of SRAM)." in (
        out / "report.md").read_text()


def test_simulate_report_gives_the_rate_as_a_power_of_two(both_report):
    out, r = both_report
    md = (out / "report.md").read_text()
    assert "learning rate 2^-7, halved every 10 samples." in md and "0.0078125" not in md


def test_gap_points_is_exact_from_the_counts(both_report):
    """Defect 10: gap_points was 100 * (a - b) of two rounded accuracies (-0.40000000000000036).
    """
    _, r = both_report
    n = r["data"]["test"]
    assert r["gap_points"] == 100 * (r["float"]["test_correct"] - r["fixed"]["test_correct"]) / n
    assert r["float"]["test_accuracy"] == r["float"]["test_correct"] / n


def test_compile_time_is_reported_apart(both_report):
    """Defect 10: the simulation time included the numba compilation."""
    out, r = both_report
    assert isinstance(r["compile_seconds"], float) and r["compile_seconds"] >= 0
    assert f"(and {r['compile_seconds']:.1f} s compiling and loading the kernels before)" in (
        out / "report.md").read_text()


def test_trace_holds_the_weights_before_and_after_the_sample(both_report):
    """Defect 10: --trace-sample said 'every state variable' but left out the weights."""
    out, _ = both_report
    with np.load(out / "trace.npz") as z:
        step = {}
        for engine in ("fixed", "float"):
            before, after = z[f"{engine}/weights_before/out.W"], z[f"{engine}/weights_after/out.W"]
            assert before.shape == after.shape == (3, 8)
            assert z[f"{engine}/weights_before/L0.W"].shape == (8, 4)
            step[engine] = after - before
    # the readout's update of sample 3, seen in both engines: the same step within 2 weight LSBs
    assert np.abs(step["float"]).max() > 0.05
    assert np.abs(step["fixed"] - step["float"]).max() <= 2 * 2 ** -6


def test_paper_engine_report_does_not_say_batch_1(tmp_path):
    """Defect 10: --engine paper reports said 'online at batch 1'."""
    res = CliRunner().invoke(main, ["simulate", _spec(tmp_path), *RUN, "--engine", "paper",
                                    "--batch", "4", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert "batch 1" not in md and "Adam, mini-batches of 4" in md


def test_the_resume_command_replaces_an_earlier_resume(monkeypatch):
    import edgesnn.cli as cli

    monkeypatch.setattr(cli, "_ARGS", ["simulate", "s.toml", "--resume", "old.npz", "--out",
                                       "my run", "--resume=older.npz"])
    assert cli._resume_command("my run/checkpoint.npz") == (
        "edgesnn simulate s.toml --out 'my run' --resume 'my run/checkpoint.npz'")


def test_an_unexpected_exception_is_one_line_exit_3(monkeypatch, tmp_path):
    """A bug reaching the user is named as one, without a traceback (EDGESNN_DEBUG shows it)."""
    import edgesnn.profile

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(edgesnn.profile, "profile", boom)
    monkeypatch.delenv("EDGESNN_DEBUG", raising=False)
    res = CliRunner().invoke(main, ["profile", _spec(tmp_path)])
    assert res.exit_code == 3
    assert res.stderr.strip() == ("edgesnn: error: internal error (ZeroDivisionError: division by "
                                  "zero); this is a bug in edgesnn, please report it "
                                  "(EDGESNN_DEBUG=1 shows the traceback)")


def test_a_slow_warm_up_says_it_is_compiling_and_a_fast_one_says_nothing():
    """Defect 8: a first run printed nothing while numba compiled for a minute."""
    import time

    from edgesnn.progress import SlowNotice

    log = io.StringIO()
    bar = Progress(10, "learning x", stream=log, tty=False)
    with SlowNotice(bar, "compiling", after=0.05):
        time.sleep(0.3)
    with SlowNotice(bar, "not said", after=5.0):
        pass
    assert log.getvalue() == "learning x: compiling\n"


def test_the_warm_up_leaves_the_run_unchanged(tmp_path):
    """The compile warm-up runs a sample through every engine and restores its state: a run
    with it ends exactly as one without."""
    from edgesnn.hw import load_device
    from edgesnn.simulate import SimulateOptions, prepare
    from edgesnn.spec import load_spec
    from edgesnn.train import TrainConfig

    spec = load_spec(_spec(tmp_path), ["learning.signal=dfa"])
    device = load_device("audio-edge")      # stochastic rounding: the rounding words matter
    opts = SimulateOptions(engines=("fixed", "float"), config=TrainConfig(
        samples=30, eval_every=10, eval_samples=20))
    runs = []
    for warm in (False, True):
        t = prepare(spec, device, opts)
        if warm:
            t.warm_up()
        t.run()
        runs.append((t.history, {n: e.state() for n, e in t.engines.items()},
                     {n: c.events.copy() for n, c in t.totals.counters.items()}))
    (h0, s0, c0), (h1, s1, c1) = runs
    assert h0 == h1
    for n in s0:
        assert s0[n].keys() == s1[n].keys()
        for k in s0[n]:
            np.testing.assert_array_equal(s0[n][k], s1[n][k], err_msg=f"{n} {k}")
        np.testing.assert_array_equal(c0[n], c1[n])


def test_a_stop_during_the_final_test_evaluation_checkpoints_and_stops(tmp_path):
    """A signal after the last learned sample, during the test evaluation, still stops the
    run (it was ignored there until the report was written)."""
    from edgesnn.errors import Interrupted
    from edgesnn.hw import load_device
    from edgesnn.simulate import SimulateOptions, prepare, simulate
    from edgesnn.spec import load_spec

    from edgesnn.train import TrainConfig

    spec, device = load_spec(_spec(tmp_path)), load_device("cortex-m7")
    ck = tmp_path / "c.npz"
    opts = SimulateOptions(engines=("fixed", "float"), config=TrainConfig(
        samples=12, eval_every=6, eval_samples=5, checkpoint_every=100,
        checkpoint_path=str(ck)))
    trainer = prepare(spec, device, opts)
    trainer.run()
    trainer.stop.signal_name = "SIGTERM"
    with pytest.raises(Interrupted) as err:
        simulate(spec, device, opts, trainer=trainer)
    assert err.value.exit_code == 143 and err.value.sample == 12
    assert err.value.checkpoint == str(ck) and ck.exists()


@pytest.mark.uncompiled
def test_the_trace_holds_the_synaptic_current_in_both_engines():
    """Defect 10: --trace-sample left out the current. On wide formats the two engines'
    currents agree; at step 0 (no recurrent input yet) the current is exactly W x."""
    import tomllib

    from edgesnn.core import FixedEngine
    from edgesnn.hw import parse_device
    from edgesnn.plan import make_plan
    from edgesnn.reference import FloatEngine, init_params
    from test_core_engine import WIDE, _inputs, _small_shd

    spec = _small_shd()
    params = init_params(spec, 3)
    x = _inputs(1)[0]
    fl = FloatEngine(spec, params.copy()).trace(x, 1)
    fx = FixedEngine(make_plan(spec, parse_device(tomllib.loads(WIDE))), params.copy(), 3).trace(
        x, 1)
    np.testing.assert_allclose(fl["L0.i"][0], params.W[0] @ x[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(fx["L0.i"][0], params.W[0] @ x[0], rtol=0, atol=1e-4)
    assert np.any(fl["L0.i"][1:] != 0) and fl["out.i"].shape == fx["out.i"].shape
    for key in ("L0.i", "out.i"):
        assert np.max(np.abs(fl[key] - fx[key])) < 1e-3, key


def test_the_console_command_flushes_its_output_and_keeps_the_exit_code(tmp_path):
    """``edgesnn`` ends with ``os._exit`` (no interpreter teardown): a buffered pipe must
    still get all of the output, and a failure must keep its code and its one line."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "edgesnn.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    ok = subprocess.run([*cmd, "hw", "list"], capture_output=True, text=True, timeout=120,
                        env=env)
    assert ok.returncode == 0
    assert ok.stdout == CliRunner().invoke(main, ["hw", "list"]).stdout
    bad = subprocess.run([*cmd, "hw", "validate", str(tmp_path / "none.toml")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("edgesnn: error:")
