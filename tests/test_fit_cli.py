"""``edgesnn fit`` end to end on a tiny Yin-Yang network: the fitted device validates and
saves memory, a rerun computes nothing new, bad input is one line."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from edgesnn.cli import main
from edgesnn.hw import load_device
from conftest import ROOT

#: 16 hidden neurons, 60 samples a run: the gap is noise here, so the test lets 100
#: points go (every step holds) and checks the mechanics, not a learning result
FAST = ["--samples", "60", "--eval-samples", "30", "--set", "layers.0.size=16",
        "--formats", "weight,trace", "--workers", "2", "--quiet"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("fit") / "out"
    args = ["fit", "--hw", "cortex-m7", "--max-gap", "100", *FAST, "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return out, args, res.output


def _stamps(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}


def test_the_fitted_device_validates_and_saves_memory(fitted, runner):
    out, _, output = fitted
    r = json.loads((out / "fit.json").read_text())
    path = Path(r["fitted_file"])
    assert path == out / "cortex-m7-fit.toml" and f"fitted {path}" in output
    res = runner.invoke(main, ["hw", "validate", str(path)])
    assert res.exit_code == 0 and "ok (cortex-m7-fit" in res.output
    dev, base = load_device(path), load_device("cortex-m7")
    assert r["saves"]["memory_bytes"] > 0
    assert r["fitted"]["memory_bytes"] == r["start"]["memory_bytes"] - r["saves"]["memory_bytes"]
    # the kept steps are the difference between the two devices' formats
    narrowed = {(s["kind"], s["field"]) for s in r["steps"] if s["kept"]}
    assert narrowed and all(getattr(dev.formats[k], f) < getattr(base.formats[k], f)
                            for k, f in narrowed)
    assert dev.banks == base.banks and dev.energy == base.energy
    assert {k for k, _ in narrowed} <= {"weight", "trace"}     # --formats weight,trace
    assert all(dev.formats[k] == base.formats[k] for k in ("bias", "membrane", "update"))
    md = (out / "fit.md").read_text()
    assert "## The path taken" in md and "cortex-m7-fit.toml" in md
    # one run per trial (one seed), none failed
    runs = list((out / "runs" / "points").glob("*.json"))
    assert len(runs) == 1 + len(r["steps"])
    results = [json.loads(p.read_text()) for p in runs]
    assert all(x["status"] == "ok" for x in results)
    # the test split's gap of the fitted device is reported (from its run), not chosen on
    (test_gap,) = r["fitted"]["test_gaps"]
    fitted_run = [x for x in results
                  if x["memory"]["total_bytes"] == r["fitted"]["memory_bytes"]
                  and x["validation_gap_points"] == r["fitted"]["gaps"][0]]
    assert fitted_run and all(x["gap_points"] == test_gap for x in fitted_run)
    assert "On the test split, which the fit never chose on" in md
    assert f"(test split, not used to choose: {test_gap:.2f})" in output


def test_a_rerun_reuses_every_run(fitted, runner):
    out, args, _ = fitted
    before = _stamps(out)
    first = (out / "cortex-m7-fit.toml").read_text()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert _stamps(out) == before
    assert (out / "cortex-m7-fit.toml").read_text() == first


@pytest.mark.parametrize("args,message", [
    (["--hw", "fp32-reference", "--max-gap", "1"], "float device"),
    (["--max-gap", "-1"], "--max-gap"),
    (["--max-gap", "1", "--cluster", "local", "--scheduler", "tcp://x:1"], "exclude"),
    (["--max-gap", "1", "--formats", "weight,delay"], "--formats"),
])
def test_bad_input_is_one_line(runner, tmp_path, args, message):
    res = runner.invoke(main, ["fit", *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "o").exists()
