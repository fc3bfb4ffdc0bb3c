"""`edgesnn sweep` and `edgesnn report`: grids, points, backends, resume, summaries.

The sweeps here are tiny (Yin-Yang with 16 hidden neurons, tens of samples, two to
four points) so that the file runs in about a minute on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgesnn.cli import main
from edgesnn.sweep.grid import GridError, parse_grid, points_grid
from edgesnn.sweep.points import resolve
from conftest import ROOT, write

def _spec_data() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "edgesnn" / "data" / "yinyang.toml").read_text())


GRID2 = """
[device]
formats.weight.bits = [4, 8]
[spec]
layers.0.size = 16
"""

FAST = ["--samples", "40", "--eval-samples", "20", "--quiet"]


# --------------------------------------------------------------------------
# grids


def test_product_order_constants_and_swept_keys():
    g = parse_grid({"device": {"formats": {"weight": {"bits": [4, 8]},
                                           "trace": {"rounding": ["floor", "stochastic"]}}},
                    "spec": {"layers": {"0": {"size": 16}}}}, "g.toml")
    pts = g.points()
    assert len(pts) == 4
    assert pts[0] == (("spec.layers.0.size", 16), ("device.formats.weight.bits", 4),
                      ("device.formats.trace.rounding", "floor"))
    # the last key varies fastest
    assert [dict(p)["device.formats.trace.rounding"] for p in pts] == \
        ["floor", "stochastic", "floor", "stochastic"]
    assert g.swept_keys == ["device.formats.weight.bits", "device.formats.trace.rounding"]


def test_zip_moves_keys_together_and_points_are_one_axis():
    g = parse_grid({"hw": ["cortex-m7", "audio-edge"],
                    "zip": [{"device": {"formats": {"membrane": {"int_bits": [3, 5],
                                                                 "frac_bits": [12, 10]}}}}],
                    "points": [{"spec": {"learning": {"update": "per-step"}}},
                               {"spec": {"learning": {"update": "per-sample"}},
                                "device": {"formats": {"trace": {"bits": 8}}}}]}, "g.toml")
    pts = [dict(p) for p in g.points()]
    assert len(pts) == 2 * 2 * 2
    assert {(p["device.formats.membrane.int_bits"], p["device.formats.membrane.frac_bits"])
            for p in pts} == {(3, 12), (5, 10)}
    assert sum("device.formats.trace.bits" in p for p in pts) == 4
    assert {p["hw"] for p in pts} == {"cortex-m7", "audio-edge"}


@pytest.mark.parametrize("data,message", [
    ({"devices": {"x": [1]}}, "key 'devices': unknown top-level key"),
    ({"device": {"formats": {"weight": {"bits": []}}}},
     "key 'device.formats.weight.bits': an empty list of values"),
    ({"zip": [{"device": {"a": [1, 2], "b": [1]}}]},
     "key 'zip[0].device.b': has 1 values, the group's first key has 2"),
    ({"zip": [{"device": {"a": [1, 2]}}]}, "a [[zip]] group needs two keys or more"),
    ({"device": {"a": [1, 2]}, "zip": [{"device": {"a": [1, 2], "b": [3, 4]}}]},
     "key 'device.a': set twice"),
    ({"points": [{"device": {"a": [1, 2]}}]}, "key 'points[0].device.a': one value per point"),
    ({"device": {"a": [1, 1]}}, "appears twice"),
    ({"spec": 3}, "key 'spec': must be a table of keys"),
])
def test_grid_errors_name_the_key(data, message):
    with pytest.raises(GridError, match="^g.toml: ") as exc:
        parse_grid(data, "g.toml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------
# points


def test_point_sets_bits_banks_and_spec_keys():
    point = (("device.formats.weight.bits", 4), ("device.formats.weight.int_bits", 2),
             ("device.formats.signal.bits", 12), ("device.banks.dtcm.size_bytes", 65536),
             ("spec.layers.0.size", 16), ("spec.learning.update", "per-step"))
    r = resolve(point, "cortex-m7", _spec_data(), "yinyang.toml", "g.toml")
    w = r.device.formats["weight"]
    # bits applied after int_bits: 1 sign + 2 integer + 1 fractional bit
    assert (w.signed, w.int_bits, w.frac_bits, w.bits) == (True, 2, 1, 4)
    s = r.device.formats["signal"]                  # cortex-m7 declares Q3.12: int bits kept
    assert (s.bits, s.int_bits, s.frac_bits) == (12, 3, 8)
    assert r.device.bank("dtcm").size_bytes == 65536
    assert r.spec.layers[0].size == 16 and r.spec.learning.update == "per-step"
    base = resolve((), "cortex-m7", _spec_data(), "yinyang.toml", "g.toml")
    assert base.device.formats["weight"].bits == 8 and base.spec.layers[0].size == 64


def test_default_format_is_copied_before_it_is_narrowed(tiny_device_file):
    # the tiny device has no 'signal' format: it defaults to 'current' (Q7.24)
    r = resolve((("device.formats.signal.bits", 16),), str(tiny_device_file), _spec_data(),
                "yinyang.toml", "g.toml")
    s, c = r.device.formats["signal"], r.device.formats["current"]
    assert (s.int_bits, s.frac_bits) == (7, 8) and (c.int_bits, c.frac_bits) == (7, 24)


@pytest.mark.parametrize("point,message", [
    ((("device.formats.weight.bits", 1),), "1 bits leave no room"),
    ((("device.banks.nosuch.size_bytes", 1),), "'banks.nosuch' is not an entry of this list"),
    ((("device.formats.weight.rounding", "nearest"),), "must be one of floor, nearest-even"),
    ((("spec.layers.0.sise", 3),), "layers[0].sise"),
    ((("hw", "nosuch"),), "unknown device 'nosuch'"),
])
def test_point_errors_are_one_line(point, message):
    with pytest.raises(GridError) as exc:
        resolve(point, "cortex-m7", _spec_data(), "yinyang.toml", "g.toml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_float_baseline_shared_by_device_points_not_by_spec_points():
    from edgesnn.sweep.jobs import RunOptions, make_work

    pts = [(("device.formats.weight.bits", b), ("spec.layers.0.size", n))
           for b in (4, 8) for n in (16, 24)]
    work = make_work(points_grid(pts), "cortex-m7", _spec_data(), "yinyang.toml",
                     RunOptions(samples=10, seeds=(0, 1)))
    assert len(work.fixed) == 8
    assert len(work.floats) == 4                # 2 spec variants x 2 seeds
    assert len({t["id"] for t in work.fixed}) == 8
    by_float = {}
    for t in work.fixed:
        by_float.setdefault(t["float_id"], set()).add(dict(map(tuple, t["point"]))
                                                      ["spec.layers.0.size"])
    assert all(len(v) == 1 for v in by_float.values())


def test_devices_share_one_float_baseline():
    from edgesnn.sweep.jobs import RunOptions, make_work

    g = parse_grid({"hw": ["cortex-m7", "audio-edge"],
                    "device": {"formats": {"weight": {"bits": [6, 8]}}}}, "g.toml")
    work = make_work(g, "cortex-m7", _spec_data(), "yinyang.toml", RunOptions(samples=10))
    assert len(work.fixed) == 4 and len(work.floats) == 1
    assert [t["hw"] for t in work.fixed] == ["cortex-m7"] * 2 + ["audio-edge"] * 2
    # audio-edge's weight is Q0.7: 6 bits keep its 0 integer bits
    w = work.fixed[2]["device"]["formats"]["weight"]
    assert (w["int_bits"], w["frac_bits"]) == (0, 5)


# --------------------------------------------------------------------------
# summaries (pure functions)


def test_spearman_culprit_and_pareto():
    from edgesnn.sweep.summary import culprit, pareto, spearman

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1, 1], [1, 2, 3, 4]) is None
    rows = [{"gap_points": g, "saturations_per_sample": {"out.u": u, "L0.W": w},
             "test_accuracy": a, "energy_pj_per_sample": e}
            for g, u, w, a, e in [(0.0, 1.0, 5.0, 0.9, 10.0), (1.0, 2.0, 1.0, 0.8, 5.0),
                                  (5.0, 9.0, 3.0, 0.7, 6.0), (9.0, 20.0, 2.0, 0.6, 1.0)]]
    c = culprit(rows)
    assert c["tensor"] == "out.u" and c["spearman"] == pytest.approx(1.0)
    assert [x["tensor"] for x in c["ranking"]] == ["out.u", "L0.W"]
    # (0.7, 6.0) is beaten by (0.8, 5.0): off the front
    assert pareto(rows, "energy_pj_per_sample") == [3, 1, 0]


# --------------------------------------------------------------------------
# whole sweeps


def _results(out: Path) -> dict[str, dict]:
    from edgesnn.sweep.store import without_timing

    return {f"{p.parent.name}/{p.name}": without_timing(json.loads(p.read_text()))
            for sub in ("points", "float") for p in sorted((out / sub).glob("*.json"))}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2-point sweep run with --workers 1: (folder, grid file, CLI output)."""
    from click.testing import CliRunner

    tmp = tmp_path_factory.mktemp("sweep")
    grid = write(tmp, "grid.toml", GRID2)
    out = tmp / "w1"
    res = CliRunner().invoke(main, ["sweep", "--grid", str(grid), *FAST, "--workers", "1",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, grid, res.output


def test_sweep_writes_results_summary_and_figures(swept):
    out, grid, output = swept
    r = _results(out)
    points = [v for k, v in r.items() if k.startswith("points/")]
    floats = [v for k, v in r.items() if k.startswith("float/")]
    assert len(points) == 2 and len(floats) == 1
    for p in points:
        assert p["status"] == "ok" and p["float_id"] == floats[0]["id"]
        assert p["gap_points"] == pytest.approx(
            100 * (floats[0]["test_correct"] - p["test_correct"]) / p["test_count"])
        assert p["memory"]["banks"] and p["energy_pj_per_sample"]["total"] > 0
        assert p["cycles_per_inference"]["cycles"] > 0 and "L0.W" in p["saturations"]
        assert p["config"]["run"]["samples"] == 40 and p["config"]["seed"] == 0
    bits = sorted(dict(map(tuple, p["point"]))["device.formats.weight.bits"] for p in points)
    assert bits == [4, 8]
    w4 = next(p for p in points if dict(map(tuple, p["point"]))["device.formats.weight.bits"] == 4)
    assert next(t for t in w4["memory"]["tensors"] if t["name"] == "L0.W")["format"].startswith(
        "Q1.2")
    assert w4["config"]["device"]["formats"]["weight"]["frac_bits"] == 2
    assert w4["config"]["spec"]["layers"][0]["size"] == 16
    md = (out / "summary.md").read_text()
    assert "# Sweep: yinyang on cortex-m7" in md and "weight.bits=4" in md
    s = json.loads((out / "summary.json").read_text())
    assert len(s["rows"]) == 2 and s["swept_keys"] == ["device.formats.weight.bits"]
    for png in ("accuracy_vs_bits.png", "pareto_energy.png", "saturations.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_do_not_depend_on_workers_or_backend(swept, tmp_path, runner):
    from dask.distributed import LocalCluster

    out1, grid, _ = swept
    ref = _results(out1)
    assert len(ref) == 3
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                      dashboard_address=":0") as cluster:
        for name, args in (("w2", ["--workers", "2"]),
                           ("dask", ["--cluster", "local", "--workers", "2"]),
                           ("scheduler", ["--scheduler", cluster.scheduler_address])):
            out = tmp_path / name
            res = runner.invoke(main, ["sweep", "--grid", str(grid), *FAST, *args,
                                       "--out", str(out)])
            assert res.exit_code == 0, res.output
            assert _results(out) == ref, name
        from dask.distributed import Client

        with Client(cluster) as client:       # the sweep tuned the running cluster's worker
            running = client.run(lambda dask_worker: {
                k: pc.is_running() for k, pc in dask_worker.periodic_callbacks.items()})
        (callbacks,) = running.values()
        assert not callbacks["profile"] and not callbacks["tick"] and callbacks["heartbeat"]


class _Callback:
    def __init__(self):
        self.running = True

    def is_running(self):
        return self.running

    def stop(self):
        self.running = False


def test_tune_worker_stops_the_profiler_and_resets_malloc_where_the_nanny_set_it(monkeypatch):
    from types import SimpleNamespace

    from edgesnn.sweep.execute import tune_worker

    names = ("profile", "profile-cycle", "tick", "heartbeat")
    worker = SimpleNamespace(periodic_callbacks={n: _Callback() for n in names})
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert tune_worker(worker) == ["profile", "profile-cycle", "tick"]
    assert worker.periodic_callbacks["heartbeat"].running
    assert tune_worker(worker) == []                       # already tuned: nothing to do
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    changed = tune_worker(SimpleNamespace(periodic_callbacks={}))
    assert changed == (["malloc"] if sys.platform.startswith("linux") else [])


def test_warm_caches_skips_a_key_warmed_before(monkeypatch, tmp_path):
    from edgesnn.sweep import task

    warmed = []
    monkeypatch.setattr(task, "warm_cache", lambda t: warmed.append(t["id"]) or 1.5)
    monkeypatch.setattr(task, "warm_marker", lambda key: tmp_path / f"warmed-{key}")
    monkeypatch.setattr(task, "compile_key", lambda t: t["key"])
    tasks = [{"kind": "fixed", "id": i, "key": k} for i, k in enumerate("aab")]
    assert task.warm_caches(tasks) == 3.0 and warmed == [0, 2]
    assert task.warm_caches(tasks) == 0.0 and warmed == [0, 2]
    (tmp_path / "warmed-b").unlink()                       # e.g. another float kernel folder
    assert task.warm_caches(tasks) == 1.5 and warmed == [0, 2, 2]


def test_the_warm_marker_lies_in_the_kernel_cache_and_names_the_float_kernels():
    import numba

    from edgesnn import floatcore
    from edgesnn.core import jitcache
    from edgesnn.sweep.task import warm_marker

    marker = warm_marker("fixed-int8")
    if marker is None:
        pytest.skip("no disk cache (NUMBA_DISABLE_JIT)")
    assert marker.parent.name == jitcache.FOLDER
    assert floatcore.FOLDER in marker.name and numba.__version__ in marker.name
    assert warm_marker("fixed-int64") != marker


def test_changed_grid_or_options_refused_in_one_line(swept, tmp_path, runner):
    out, grid, _ = swept
    before = _results(out)
    changed = write(tmp_path, "grid.toml", GRID2.replace("[4, 8]", "[4, 6]"))
    res = runner.invoke(main, ["sweep", "--grid", str(changed), *FAST, "--out", str(out)])
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "grid.device.formats.weight.bits.1 was 8, now 6" in line
    res = runner.invoke(main, ["sweep", "--grid", str(grid), "--samples", "41",
                               "--eval-samples", "20", "--quiet", "--out", str(out)])
    assert res.exit_code == 2 and "run.samples was 40, now 41" in res.output
    assert _results(out) == before
    renamed = write(tmp_path, "renamed.toml", GRID2)          # same grid, other file name
    res = runner.invoke(main, ["sweep", "--grid", str(renamed), *FAST, "--out", str(out)])
    assert res.exit_code == 0 and "3 done before, 0 to run" in res.output
    assert _results(out) == before


def test_run_points_finds_the_cli_results_and_computes_nothing(swept):
    from edgesnn.sweep import run_points
    from edgesnn.sweep.execute import PoolBackend
    from edgesnn.sweep.jobs import RunOptions
    from edgesnn.cli import _default_spec

    out, _, _ = swept
    stamps = _stamps(out)
    backend = PoolBackend(1)
    pts = [[("spec.layers.0.size", 16), ("device.formats.weight.bits", b)] for b in (8, 4)]
    got = run_points(pts, _spec_data(), str(_default_spec()), "cortex-m7",
                     RunOptions(samples=40, eval_every=40, eval_samples=20), out, backend)
    assert backend._ex is None                     # no pool was started: nothing to run
    assert [dict(map(tuple, r["point"]))["device.formats.weight.bits"] for r in got] == [8, 4]
    stored = _results(out)
    from edgesnn.sweep.store import without_timing

    assert [without_timing(r) for r in got] == [stored[f"points/{r['id']}.json"] for r in got]
    assert _stamps(out) == stamps


def test_report_rebuilds_summary(swept, runner):
    out, _, _ = swept
    md, js = (out / "summary.md").read_text(), (out / "summary.json").read_text()
    for name in ("summary.md", "summary.json", "accuracy_vs_bits.png"):
        (out / name).unlink()
    res = runner.invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "summary.md").read_text() == md
    assert (out / "summary.json").read_text() == js
    assert (out / "accuracy_vs_bits.png").exists()
    res = runner.invoke(main, ["report", str(out / "points")])
    assert res.exit_code == 2 and "not a sweep folder" in res.output


def test_bad_grid_value_fails_before_any_output(tmp_path, runner):
    grid = write(tmp_path, "g.toml", "[device]\nformats.weight.rounding = ['floor', 'nearest']\n")
    out = tmp_path / "o"
    res = runner.invoke(main, ["sweep", "--grid", str(grid), *FAST, "--out", str(out)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "weight.rounding=nearest" in res.output and "must be one of" in res.output
    assert not out.exists()


# --------------------------------------------------------------------------
# interruption: SIGKILL of the sweep, a lost worker


GRID4 = """
[device]
formats.weight.bits = [4, 5, 6, 8]
[spec]
layers.0.size = 16
"""


def _start(grid: Path, out: Path, workers: int, samples: int, *more: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgesnn.cli", "sweep", "--grid", str(grid), "--samples",
           str(samples), "--eval-samples", "20", "--workers", str(workers), "--out", str(out),
           *more]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT)


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.02)


def _stamps(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for sub in ("points", "float") for p in (out / sub).glob("*.json")}


def _rerun(grid: Path, out: Path, samples: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "edgesnn.cli", "sweep", "--grid", str(grid), "--samples",
           str(samples), "--eval-samples", "20", "--workers", "1", "--quiet", "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_sigkill_then_rerun_computes_only_missing_points(tmp_path):
    grid = write(tmp_path, "g.toml", GRID4)
    out = tmp_path / "o"
    proc = _start(grid, out, 1, 400)
    try:
        _wait_for(lambda: any((out / "points").glob("*.json")), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)      # the pool workers it left behind
        except ProcessLookupError:
            pass
        proc.communicate()
    before = _stamps(out)
    n_before = len([k for k in before if k.startswith("points/")])
    assert 1 <= n_before < 4, before
    for k in before:                                 # complete files only
        json.loads((out / k).read_text())
    res = _rerun(grid, out, 400)
    assert res.returncode == 0, res.stderr
    after = _stamps(out)
    assert len([k for k in after if k.startswith("points/")]) == 4
    assert all(after[k] == v for k, v in before.items())     # finished points not redone
    assert f"{len(before)} done before, {5 - len(before)} to run" in res.stderr


def test_sigint_stops_cleanly_and_says_how_to_resume(tmp_path):
    grid = write(tmp_path, "g.toml", GRID4)
    out = tmp_path / "o"
    proc = _start(grid, out, 1, 400)
    try:
        _wait_for(lambda: any((out / "points").glob("*.json")), proc)
        workers = _pool_workers(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("edgesnn: error: stopped by SIGINT: ")
    assert f"resume with: edgesnn sweep --grid {grid}" in last
    assert workers and not any(Path(f"/proc/{p}").exists() for p in workers)
    assert not (out / "summary.md").exists()


def _pool_workers(pid: int) -> list[int]:
    """Pids of the spawned worker processes of process ``pid`` (Linux /proc): the process
    pool's, or those of the nannies of a Dask LocalCluster (they live in ``pid``)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (d / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(d.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("backend", ["pool", "dask"])
def test_killed_worker_point_is_rerun(tmp_path, backend):
    grid = write(tmp_path, "g.toml", GRID4)
    out = tmp_path / "o"
    proc = _start(grid, out, 2, 400, *(["--cluster", "local"] if backend == "dask" else []))
    try:
        # the float baseline is done: both workers are running points now
        _wait_for(lambda: len(_pool_workers(proc.pid)) == 2 and any((out / "float").glob("*.json")),
                  proc)
        assert not (out / "summary.md").exists()
        os.kill(_pool_workers(proc.pid)[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, err
    if backend == "pool":           # Dask reruns the task itself, on the restarted worker
        assert "a worker was lost; running its" in err
    assert len(list((out / "points").glob("*.json"))) == 4 and (out / "summary.md").exists()
    stamps = _stamps(out)
    res = _rerun(grid, out, 400)
    assert res.returncode == 0 and "5 done before, 0 to run" in res.stderr
    assert _stamps(out) == stamps


def test_figures_follow_the_grid():
    from edgesnn.sweep.figures import render

    rows = [{"point": [["device.formats.weight.bits", b], ["device.formats.weight.rounding", r]],
             "hw": "cortex-m7", "test_accuracy": a, "energy_pj_per_sample": e,
             "format_bits": {"weight": b, "trace": 16},
             "memory_bytes": m, "saturations_per_sample": {"out.u": u}}
            for b, r, a, e, m, u in [(4, "floor", 0.35, 900.0, 4000, 90.0),
                                     (4, "stochastic", 0.8, 700.0, 4000, 20.0),
                                     (8, "floor", 0.4, 910.0, 4200, 80.0),
                                     (8, "stochastic", 0.9, 720.0, 4200, 22.0)]]
    s = {"spec": "yinyang", "hw": "cortex-m7", "rows": rows,
         "float": [{"status": "ok", "test_accuracy": 0.95}],
         "swept_keys": ["device.formats.weight.bits", "device.formats.weight.rounding"],
         "pareto_energy": [1, 3], "pareto_memory": [1, 3]}
    figs = render(s)
    assert set(figs) == {"accuracy_vs_bits.png", "heatmap.png", "pareto_energy.png",
                         "pareto_memory.png", "saturations.png"}
    assert all(v[:8] == b"\x89PNG\r\n\x1a\n" for v in figs.values())
    for r in rows:                       # no width varies: no accuracy_vs_bits; one key: no heatmap
        r["format_bits"]["weight"] = 8
    s["swept_keys"] = ["device.formats.weight.rounding"]
    assert set(render(s)) == {"pareto_energy.png", "pareto_memory.png", "saturations.png"}


def test_rows_average_seeds_of_one_point():
    from edgesnn.sweep.summary import rows

    def result(seed, correct, fcorrect, sat):
        return {"point": [["device.formats.weight.bits", 4]], "hw": "cortex-m7", "seed": seed,
                "id": f"p{seed}", "status": "ok", "test_accuracy": correct / 1000,
                "validation_accuracy": 0.5, "float": {"test_accuracy": fcorrect / 1000},
                "gap_points": (fcorrect - correct) / 10, "validation_gap_points": 1.0,
                "memory": {"used_bytes": 100}, "energy_pj_per_sample": {"total": 10.0 + seed},
                "energy_pj_per_inference": {"total": 5.0}, "cycles_per_sample": {"cycles": 7},
                "cycles_per_inference": {"cycles": 3}, "saturations_per_sample": sat,
                "config": {"device": {"formats": {"weight": {"signed": True, "int_bits": 1,
                                                             "frac_bits": 2}}}}}

    table = rows({}, [result(0, 800, 900, {"out.u": 2.0}), result(1, 700, 950, {"L0.W": 1.0})])
    assert len(table) == 1
    r = table[0]
    assert r["seeds"] == [0, 1] and r["format_bits"] == {"weight": 4}
    assert r["test_accuracy"] == pytest.approx(0.75)
    assert r["gap_points"] == pytest.approx((10 + 25) / 2)
    assert r["energy_pj_per_sample"] == pytest.approx(10.5)
    assert r["saturations_per_sample"] == {"L0.W": 0.5, "out.u": 1.0}


def test_drained_is_called_once_when_all_is_handed_out_and_a_core_is_idle(monkeypatch, tmp_path):
    import concurrent.futures as cf
    import threading
    from types import SimpleNamespace

    from edgesnn.sweep import execute, task

    gate = threading.Event()
    opened, calls = [], []

    def fake_run(t):
        if t["id"] == "f4":                # the last task runs until drained() is called
            opened.append(gate.wait(5))
        return {"kind": "float", "id": t["id"]}

    monkeypatch.setattr(task, "run_task", fake_run)
    monkeypatch.setattr(execute, "cores", lambda: 2)
    with cf.ThreadPoolExecutor(2) as ex:
        backend = SimpleNamespace(name="pool", workers=2, executor=lambda: ex,
                                  broken=lambda exc: False, close=lambda kill=False: None)

        def drained():
            calls.append(1)
            gate.set()

        tasks = [{"kind": "float", "id": f"f{i}"} for i in range(5)]
        results = execute.run_tasks(tasks, tmp_path, backend, warm=False, poll=0.01,
                                    drained=drained)
    assert sorted(results) == [t["id"] for t in tasks]
    assert calls == [1] and opened == [True]    # once, while the last task still ran
