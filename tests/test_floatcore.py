"""The numba float twin (edgesnn/floatcore) against the numpy definition, sample by sample.

Every case runs a few samples through ``reference.FloatEngine`` and ``FastFloatEngine`` from
the same parameters: learning with a label (the learning rate changed on the way), a
labelled sample without learning, an unlabelled one. Predictions, spikes and event counts
must be identical; scores, loss and every learnable array agree to ``RTOL`` relative
(``ATOL`` absolute for values near zero): the engines differ only in the order of float
sums (numpy's BLAS sums every input of ``x @ W.T``, the twin the active ones in order).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesnn.cli import main
from edgesnn.floatcore import FastFloatEngine, unsupported
from edgesnn.hw import load_device
from edgesnn.params import init_params
from edgesnn.reference import FloatEngine
from edgesnn.rules import tess
from edgesnn.simulate import build_engines
from edgesnn.spec import parse_spec
from conftest import EXAMPLES, ROOT

RTOL = 1e-9
ATOL = 1e-12
T, WINDOW, INPUTS, CLASSES = 16, 7, 12, 4


def small_spec(layers, signal="bp", update="per-step", surrogate="rational", readout_decay=0.7,
               **learning):
    """``layers``: ``(kind, size, reset, D)`` per spiking layer (``D`` only under TESS)."""
    hidden = []
    for kind, size, reset, D in layers:
        layer = dict(kind=kind, size=size, beta=0.9, threshold=0.4, reset=reset)
        if D is not None:
            layer["tess_groups"] = D
        hidden.append(layer)
    data = {"network": {"name": "twin", "inputs": INPUTS, "time_steps": T},
            "layers": hidden + [{"kind": "readout", "size": CLASSES, "beta": 0.8,
                                 "trace_decay": readout_decay}],
            "learning": {"signal": signal, "window": WINDOW, "update": update,
                         "surrogate": surrogate, "lambda_pre": 0.8, "lambda_post": 0.5,
                         "learning_rate": 2.0 ** -4, "init_scale": 2.0, **learning}}
    return parse_spec(data)


R, D_ = "recurrent", "dense"
CASES = {
    "rec-bp-step-rational-soft": small_spec([(R, 10, "soft", None)]),
    "dense-rec-bp-sample-triangle-hard-alphas": small_spec(
        [(D_, 9, "hard", None), (R, 7, "soft", None)], update="per-sample",
        surrogate="triangle", alpha_post=-0.5, alpha_pre=0.75),
    "three-layers-bp-step-lambdas": small_spec(
        [(D_, 8, "soft", None), (D_, 7, "hard", None), (R, 6, "soft", None)],
        lambda_pre=1.0, lambda_post=0.25, readout_decay=0.0),
    "dfa-stored-step": small_spec([(D_, 9, "soft", None), (D_, 7, "soft", None)],
                                  signal="dfa", feedback="stored"),
    "dfa-regenerated-sample-lambda-pre-0": small_spec(
        [(R, 10, "hard", None)], signal="dfa", update="per-sample", lambda_pre=0.0,
        surrogate="triangle"),
    "tess-overlapping-step-temperature": small_spec(
        [(R, 10, "soft", 4)], signal="tess", tess_temperature=0.25),
    "tess-disjoint-two-layers-sample": small_spec(
        [(D_, 8, "soft", 4), (R, 6, "hard", 3)], signal="tess", update="per-sample",
        surrogate="triangle", tess_temperature=2.0, alpha_post=0.0),
    # lambda_pre = 1 with per-step updates: deferred column updates (floatcore.lazy)
    "lazy-rec-bp-step-lambda-pre-1": small_spec([(R, 10, "soft", None)], lambda_pre=1.0,
                                                alpha_post=-0.5),
    "lazy-dfa-two-layers-step-lambda-pre-1": small_spec(
        [(R, 9, "hard", None), (R, 7, "soft", None)], signal="dfa", lambda_pre=1.0,
        surrogate="triangle"),
    "lazy-tess-two-layers-step-lambda-pre-1": small_spec(
        [(D_, 8, "soft", 3), (R, 6, "soft", 6)], signal="tess", lambda_pre=1.0,
        tess_temperature=0.5),
    "frozen-rec-step": small_spec([(R, 10, "soft", None)], hidden="frozen"),
    "frozen-two-layers-sample": small_spec([(D_, 9, "soft", None), (R, 7, "soft", None)],
                                           update="per-sample", hidden="frozen"),
}


def _signs(spec):
    """Under TESS a generated basis (6-bit phases: some signs differ from the authors')."""
    if spec.learning.signal != "tess":
        return None
    return [tess.generated_signs(spec.classes, layer.tess_groups, 6) for layer in spec.hidden]


def _samples(n=6, seed=0, rate=0.3):
    rng = np.random.default_rng(seed)
    return [((rng.random((T, INPUTS)) < rate).astype(np.uint8), int(rng.integers(CLASSES)))
            for _ in range(n)]


def _close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def _same_result(rb, ra, k):
    assert rb.prediction == ra.prediction, k
    assert np.array_equal(rb.spikes, ra.spikes), k
    assert rb.events.dtype == ra.events.dtype == np.int64
    assert np.array_equal(rb.events, ra.events), (k, rb.events, ra.events)
    _close(rb.scores, ra.scores, f"scores, sample {k}")
    if np.isnan(ra.loss):
        assert np.isnan(rb.loss), k
    else:
        _close(rb.loss, ra.loss, f"loss, sample {k}")


def _same_params(b, a, k):
    pa, pb = a.params.arrays(), b.params.arrays()
    assert pa.keys() == pb.keys()
    for name in pa:
        _close(pb[name], pa[name], f"{name} after sample {k}")


def _drive(a, b, samples):
    """Both engines through ``samples``: learn (rate halved after the second), then a
    labelled sample without learning and an unlabelled one."""
    for k, (x, y) in enumerate(samples):
        if k == 2:
            for e in (a, b):
                e.set_lr_shift(e.lr_shift + 1)
        label = None if k == len(samples) - 1 else y
        learn = k < len(samples) - 2
        ra, rb = a.run_sample(x, label, learn), b.run_sample(x, label, learn)
        _same_result(rb, ra, k)
        _same_params(b, a, k)
        yield ra


@pytest.mark.parametrize("name", list(CASES))
def test_twin_matches_the_numpy_engine_sample_by_sample(name):
    spec = CASES[name]
    params = init_params(spec, 3)
    signs = _signs(spec)
    a = FloatEngine(spec, params.copy(), signs)
    b = FastFloatEngine(spec, params.copy(), signs)
    # which matrices defer their updates: lambda_pre = 1, per-step, learning hidden layers,
    # and (BP) not read densely by the signal of the layer below
    lazy = b.net.lazy
    ln = spec.learning
    if ln.lambda_pre == 1.0 and not ln.per_sample and not ln.frozen:
        for l, layer in enumerate(spec.hidden):
            assert lazy[l, 0] == (ln.signal != "bp" or l == 0)
            assert lazy[l, 1] == layer.recurrent
    else:
        assert not lazy.any()
    results = list(_drive(a, b, _samples()))
    # the comparison has teeth: every layer spiked, and what learns moved
    assert all(s > 0 for s in sum(r.spikes for r in results))
    before, after = params.arrays(), b.params.arrays()
    for key in after:
        frozen = spec.learning.frozen and key.startswith("L")
        moved = not np.array_equal(after[key], before[key])
        assert moved != frozen or key.endswith(".B"), key


def test_what_is_written_through_params_is_what_the_kernel_reads():
    """The twin keeps its matrices input-major; ``params`` holds their output-major views
    (as the numpy engine's), so a write through ``params`` reaches the kernel, and an
    array replaced in ``params`` is taken in."""
    spec = CASES["lazy-rec-bp-step-lambda-pre-1"]
    params = init_params(spec, 1)
    a, b = FloatEngine(spec, params.copy()), FastFloatEngine(spec, params.copy())
    (x, y), (x2, y2), (x3, y3) = _samples(3)
    for e in (a, b):
        e.params.W_rec[0][3, :] = 0.25
        e.params.W[0][:, 5] *= -1.0
    _same_result(b.run_sample(x, y), a.run_sample(x, y), 0)
    _same_params(b, a, 0)
    for e in (a, b):
        e.params.W[0] = np.asfortranarray(e.params.W[0] * 0.5)
    _same_result(b.run_sample(x2, y2), a.run_sample(x2, y2), 1)
    _same_params(b, a, 1)
    b.params.W[0][2, 1] = np.inf              # what a diverging run looks like
    assert b.nonfinite() == "L0.W"
    b.run_sample(x3, y3)
    assert not np.isfinite(b.params.W[0]).all()


def test_trace_is_the_numpy_engines_and_learns_the_same():
    spec = CASES["dense-rec-bp-sample-triangle-hard-alphas"]
    params = init_params(spec, 2)
    a, b = FloatEngine(spec, params.copy()), FastFloatEngine(spec, params.copy())
    (x, y), (x2, y2) = _samples(2)
    ta, tb = a.trace(x, y), b.trace(x, y)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert np.array_equal(ta[k], tb[k]), k
    _same_params(b, a, 0)
    _same_result(b.run_sample(x2, y2), a.run_sample(x2, y2), 1)   # the kernel after trace


def test_state_moves_between_the_two_float_engines():
    spec = CASES["tess-overlapping-step-temperature"]
    signs = _signs(spec)
    params = init_params(spec, 5)
    fast = FastFloatEngine(spec, params.copy(), signs)
    slow = FloatEngine(spec, init_params(spec, 6), signs)
    samples = _samples(5, seed=3)
    for x, y in samples[:3]:
        fast.run_sample(x, y)
    saved = fast.state()
    slow.load_state(saved)
    back = FastFloatEngine(spec, init_params(spec, 7), signs)
    back.load_state(slow.state())
    for name, arr in back.state().items():
        assert np.array_equal(arr, saved[name]), name
    for k, (x, y) in enumerate(samples[3:]):
        _same_result(back.run_sample(x, y), slow.run_sample(x, y), k)
        _same_params(back, slow, k)


def test_build_engines_picks_the_twin_unless_told_numpy():
    spec = CASES["rec-bp-step-rational-soft"]
    dev = load_device("cortex-m7")
    assert unsupported(spec) is None
    assert type(build_engines(spec, dev, ("float",), 0)["float"]) is FastFloatEngine
    eng = build_engines(spec, dev, ("float",), 0, float_with="numpy")["float"]
    assert type(eng) is FloatEngine


def _digest(eng, samples) -> str:
    h = hashlib.sha256()
    for x, y in samples:
        r = eng.run_sample(x, y)
        h.update(r.scores.tobytes())
        h.update(np.float64(r.loss).tobytes())
        h.update(r.events.tobytes())
    for name, a in sorted(eng.state().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


JIT_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
from test_floatcore import CASES, _digest, _samples, _signs
from edgesnn.floatcore import FastFloatEngine
from edgesnn.params import init_params
spec = CASES[{case!r}]
print(_digest(FastFloatEngine(spec, init_params(spec, 3), _signs(spec)), _samples(3)))
"""


@pytest.mark.parametrize("case", ["dense-rec-bp-sample-triangle-hard-alphas",
                                  "tess-overlapping-step-temperature",
                                  "lazy-rec-bp-step-lambda-pre-1"])
def test_jit_and_pure_python_give_the_same_bits(case):
    spec = CASES[case]
    want = _digest(FastFloatEngine(spec, init_params(spec, 3), _signs(spec)), _samples(3))
    tests = str(Path(__file__).parent)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", JIT_SCRIPT.format(paths=[tests, str(ROOT)],
                                                                  case=case)],
                         env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == want


# --------------------------------------------------------------------------- command line

SIM = ["simulate", str(EXAMPLES / "yinyang.toml"), "--engine", "float", "--eval-every", "20",
       "--eval-samples", "10", "--quiet", "--set", "layers.0.size=16",
       "--set", "network.time_steps=12", "--set", "learning.window=6"]


def _sim(runner, out, *args):
    res = runner.invoke(main, [*SIM, "--out", str(out), *args])
    assert res.exit_code == 0, res.output
    return json.loads((out / "report.json").read_text())


def test_a_checkpoint_of_one_float_engine_resumes_in_the_other(runner, tmp_path):
    """40 samples with the twin, checkpointed, then 20 more with the numpy engine: the same
    test accuracy and (to RTOL) the same weights as 60 samples with either engine."""
    first = _sim(runner, tmp_path / "a", "--samples", "40", "--checkpoint-every", "20")
    assert first["config"]["float_engine"] == "FastFloatEngine"
    resumed = _sim(runner, tmp_path / "a", "--samples", "60", "--checkpoint-every", "20",
                   "--resume", str(tmp_path / "a" / "checkpoint.npz"),
                   "--float-engine", "numpy")
    assert resumed["config"]["float_engine"] == "FloatEngine"
    whole = {}
    for which in ("numba", "numpy"):
        whole[which] = _sim(runner, tmp_path / which, "--samples", "60", "--checkpoint-every",
                            "20", "--float-engine", which)
    for r in (resumed, whole["numba"]):
        assert r["float"]["test_correct"] == whole["numpy"]["float"]["test_correct"]
        assert r["curve"]["accuracy"] == whole["numpy"]["curve"]["accuracy"]
        assert r["float"]["ops_per_sample"] == whole["numpy"]["float"]["ops_per_sample"]
    with np.load(tmp_path / "a" / "checkpoint.npz") as za, \
            np.load(tmp_path / "numpy" / "checkpoint.npz") as zb:
        keys = [k for k in zb.files if k.startswith("engine/float/")]
        assert keys and sorted(keys) == sorted(k for k in za.files if k.startswith("engine/"))
        for k in keys:
            _close(za[k], zb[k], k)


def test_help_names_the_float_engine_option(runner):
    res = runner.invoke(main, ["simulate", "--help"])
    assert res.exit_code == 0 and "--float-engine [numba|numpy]" in res.output


def test_bench_rows_time_the_numpy_engine_and_the_twin():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", ROOT / "tools" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert type(bench.make_engine("fastfloat", bench.shd_spec(10))) is FastFloatEngine
    res = bench.bench_rule("stllr", ["float", "fastfloat"], 4, 1, passes=1, rss=False, n_fast=2)
    for key in ("float_samples_per_s", "fastfloat_samples_per_s",
                "fastfloat_samples_per_cpu_s", "fastfloat_first_pass_samples_per_s",
                "fastfloat_over_float"):
        assert res[key] > 0, key
    assert res["fastfloat_samples"] == 2 and "fixed_over_fastfloat" not in res
