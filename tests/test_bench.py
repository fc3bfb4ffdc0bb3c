"""tools/bench.py: the TESS row beside the S-TLLR one; the FSDD row, on WAV files the tests
write in the FSDD layout."""

from __future__ import annotations

import importlib.util

from conftest import ROOT
from test_audio import _fsdd_folder


def _bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "tools" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fsdd_row_times_encoding_and_fixed_learning(tmp_path):
    res = _bench().bench_fsdd(str(_fsdd_folder(tmp_path)), 4)
    assert res["fsdd_samples"] == 4
    assert res["fsdd_encode_samples_per_s"] > 0 and res["fsdd_fixed_samples_per_s"] > 0


def test_fsdd_folder_defaults_to_the_environment_then_the_shared_folder(monkeypatch):
    bench = _bench()
    monkeypatch.setenv("EDGESNN_FSDD", "/data/fsdd-clone/recordings")
    assert bench.default_fsdd_dir() == "/data/fsdd-clone/recordings"
    monkeypatch.delenv("EDGESNN_FSDD")
    assert bench.default_fsdd_dir() == str(ROOT.parent / "shared" / "data" / "fsdd" / "recordings")


def test_tess_row_times_both_engines_on_the_tess_spec():
    bench = _bench()
    assert bench.shd_spec(100, bench.TESS_SPEC).learning.signal == "tess"
    assert bench.shd_spec(100).learning.signal == "bp"
    res = bench.bench_rule("tess", ["fixed", "float"], 2, 1, passes=1, rss=False)
    for key in ("tess_fixed_samples_per_s", "tess_float_samples_per_s", "tess_synops_per_s",
                "tess_speedup"):
        assert res[key] > 0, key
    assert not any(k.startswith("fixed_") for k in res)          # the S-TLLR row's keys
    assert bench.peak_rss_mb("fixed", 100, 1, "tess") > 0


def test_delay_rows_run_their_specs_on_their_devices():
    """The axonal row: shd.toml with axonal delays (max_delay 25) on cortex-m7; the synaptic
    row: synaptic delays on 20 % of the synapses, on cortex-m7 with a grown DTCM (the
    preset refuses them); the numba twin declines delays, so neither row times it."""
    bench = _bench()
    ax, syn = bench.rule_spec("axonal"), bench.rule_spec("synaptic")
    assert ax.layers[0].delays == "axonal" and ax.layers[0].max_delay == 25
    assert syn.layers[0].delays == "synaptic" and syn.kept_inputs(0) == 140
    from edgesnn.plan import make_plan

    assert make_plan(syn, bench.rule_device("synaptic")).fits
    assert not make_plan(syn, bench.rule_device("stllr")).fits
    res = bench.bench_rule("axonal", ["fixed", "fastfloat"], 2, 1, passes=1, rss=False)
    assert res["axonal_fixed_samples_per_s"] > 0 and res["axonal_synops_per_s"] > 0
    assert not any(k.startswith("axonal_fastfloat") for k in res)
