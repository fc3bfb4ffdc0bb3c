"""tools/bench.py: the FSDD row, on WAV files the tests write in the FSDD layout."""

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
