"""The task a worker runs: one point (or one float baseline) -> one result dict.

A task is a plain JSON-ready dict (picklable, sent to a process pool or a Dask
worker): the kind (``fixed`` or ``float``), the device and spec TOML as parsed
dicts, and the run options. ``run_task`` rebuilds device and spec with
``hw.parse_device`` / ``spec.parse_spec`` and runs them with the machinery of
``edgesnn simulate`` (``simulate.prepare`` / ``simulate.simulate``, engines from
``simulate.build_engines``), so a sweep point is exactly the ``simulate`` run
of its configuration with ``--engine fixed`` (or ``float``).

The result depends only on the task (the engines are deterministic): the same
bits on any worker, backend or machine. What does not (wall time, host, pid)
lives under the result's ``timing`` key only.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

#: format of a result file (bumped when its keys change meaning)
RESULT_VERSION = 1


def _one_numba_thread() -> None:
    """One numba thread per worker: the pool provides the parallelism."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - a numba without threading layers
        pass


def jsonable(x: Any) -> Any:
    """numpy scalars and arrays, tuples and mappings as plain JSON values."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def options(task: dict):
    """The ``SimulateOptions`` of a task (engines: the task's kind only)."""
    from edgesnn.simulate import SimulateOptions
    from edgesnn.train import TrainConfig

    cfg = TrainConfig(samples=task["samples"], eval_every=task["eval_every"],
                      eval_samples=task["eval_samples"], seed=task["seed"],
                      encoding=task["encoding"])
    return SimulateOptions(engines=(task["kind"],), data=task["data"], config=cfg,
                           data_dir=task.get("data_dir"))


def build(task: dict):
    """``(spec, device)`` of a task, parsed again from its TOML dicts."""
    from edgesnn.hw import parse_device
    from edgesnn.spec import parse_spec

    return (parse_spec(task["spec"], source=task["spec_source"]),
            parse_device(task["device"], source=task["device_source"]))


def run_task(task: dict) -> dict:
    """Run one task and return its result dict (see the module docstring).

    A user-level failure of the point itself (``EdgeSnnError``: a float engine
    that diverges, a learning-rate schedule out of range) is a result too:
    ``status = "error"`` with the one-line message, so a rerun does not retry it.
    """
    _one_numba_thread()
    from edgesnn import __version__
    from edgesnn.errors import EdgeSnnError
    from edgesnn.simulate import prepare, simulate

    t0 = time.perf_counter()
    base = {"kind": task["kind"], "id": task["id"], "result_version": RESULT_VERSION,
            "version": __version__}
    base.update({k: task[k] for k in ("point", "hw", "seed", "float_id") if k in task})
    base["config"] = {"seed": task["seed"],
                      "run": {k: task[k] for k in ("data", "encoding", "samples", "eval_every",
                                                   "eval_samples")},
                      "spec": task["spec"], "spec_source": task["spec_source"],
                      **({"device": task["device"], "device_source": task["device_source"]}
                         if task["kind"] == "fixed" else {})}
    try:
        spec, device = build(task)
        opts = options(task)
        trainer = prepare(spec, device, opts)
        compile_seconds = trainer.warm_up()
        report = simulate(spec, device, opts, trainer=trainer, compile_seconds=compile_seconds)
    except EdgeSnnError as exc:
        return {**base, "status": "error", "error": str(exc),
                "timing": _timing(t0, None)}
    r = _result(task, report)
    return {**base, "status": "ok", **r,
            "timing": _timing(t0, report.get("compile_seconds"), report.get("wall_seconds"))}


def _timing(t0: float, compile_seconds, learn_seconds=None) -> dict:
    return {"wall_seconds": round(time.perf_counter() - t0, 3),
            "compile_seconds": compile_seconds, "simulate_seconds": learn_seconds,
            "host": platform.node(), "pid": os.getpid(),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _result(task: dict, report: dict) -> dict:
    """The figures of one run kept in a result file (JSON-ready)."""
    name = task["kind"]
    e = report[name]
    curve = report["curve"]
    val = curve["accuracy"][name]
    out: dict[str, Any] = {
        "data": report["data"],
        "test_accuracy": e["test_accuracy"],
        "test_correct": e["test_correct"],
        "test_count": report["data"]["test"],
        "test_loss": e["test_loss"],
        "validation_accuracy": val[-1] if val else None,
        "validation_points": min(task["eval_samples"], report["data"]["validation"]),
        "curve": {"samples": curve["samples"], "accuracy": val},
        "ops_per_sample": e["ops_per_sample"],
        "ops_per_inference": e["ops_per_inference"],
        "hidden_spike_rate": e["hidden_spike_rate"],
    }
    if name == "fixed":
        learned = task["samples"]
        out.update({
            "fits": report["fits"],
            "saturations": dict(sorted(e["saturations"].items())),
            "saturations_per_sample": {k: v / learned
                                       for k, v in sorted(e["saturations"].items())},
            "memory": {"total_bytes": report["memory"]["total_bytes"],
                       "used_bytes": sum(b["used_bytes"] for b in report["memory"]["banks"]),
                       "banks": [{k: b[k] for k in ("name", "capacity_bytes", "used_bytes")}
                                 for b in report["memory"]["banks"]],
                       "tensors": report["memory"]["tensors"]},
            "energy_pj_per_sample": e["energy_pj_per_sample"],
            "energy_pj_per_inference": e["energy_pj_per_inference"],
            "cycles_per_sample": e["cycles_per_sample"],
            "cycles_per_inference": e["cycles_per_inference"],
            "latency_us_per_sample": e["latency_us_per_sample"],
            "latency_us_per_inference": e["latency_us_per_inference"],
            "sram_words_per_sample": e["sram_words_per_sample"],
        })
    return jsonable(out)


def warm_cache(task: dict) -> float:
    """Compile (or load) the kernels of a task's engines once, in this process, so that
    workers started afterwards load them from numba's on-disk cache instead of all
    compiling at once. Runs one sample and discards it; returns the seconds taken.
    The calling process keeps its numba threads (only workers are set to one: changing
    ``NUMBA_NUM_THREADS`` after numba's threads started is an error at the next compile)."""
    from dataclasses import replace

    from edgesnn.simulate import prepare

    spec, device = build(task)
    opts = replace(options(task), engines=("fixed", "float"))
    opts = replace(opts, config=replace(opts.config, samples=1, eval_every=1, eval_samples=1))
    t0 = time.perf_counter()
    trainer = prepare(spec, device, opts)
    trainer.warm_up()
    return time.perf_counter() - t0


def compile_key(task: dict) -> str:
    """What selects a compiled signature of the fixed kernels for a task: the storage type
    of its weight codes (``core.engine.weight_dtype``: int8 when the weight format fits,
    else int64). Tasks of one key share machine code; each key is compiled once."""
    from edgesnn.core.constants import format_row
    from edgesnn.core.engine import weight_dtype
    from edgesnn.hw import parse_device

    if task["kind"] != "fixed":
        return "float"
    device = parse_device(task["device"], source=task["device_source"])
    return "fixed-" + np.dtype(weight_dtype(format_row(device.formats["weight"]))).name


def warm_marker(key: str):
    """The file that says an earlier process warmed the disk cache for ``compile_key``
    ``key``, or None where there is no disk cache (``NUMBA_DISABLE_JIT``). It lies in the
    fixed kernels' cache folder, which is named by the fingerprint of their sources, and
    its name carries the float kernels' folder and numba's version: a change to any of
    them finds no marker, and the cache is warmed again."""
    import numba

    from edgesnn import floatcore
    from edgesnn.core import kernel

    cache = getattr(kernel.run_sample_kernel, "_cache", None)
    folder = getattr(cache, "_cache_path", None)
    if folder is None:
        return None
    from pathlib import Path

    return Path(folder) / f"warmed-{key}-{floatcore.FOLDER}-numba{numba.__version__}"


def warm_caches(tasks: list[dict]) -> float:
    """``warm_cache`` once per ``compile_key`` among the fixed tasks of ``tasks`` (every
    one also warms the float engine), skipping the keys an earlier process warmed
    (``warm_marker``: loading a warm cache costs about 0.8 s a key, all before the
    workers start); returns the seconds taken."""
    seen: dict[str, dict] = {}
    for t in tasks:
        if t["kind"] == "fixed":
            seen.setdefault(compile_key(t), t)
    if not seen and tasks:
        seen["float"] = tasks[0]
    seconds = 0.0
    for key, t in seen.items():
        marker = warm_marker(key)
        if marker is not None and marker.exists():
            continue
        seconds += warm_cache(t)
        if marker is not None:
            try:
                marker.touch()
            except OSError:
                pass                  # a read-only cache: warm again next time
    return seconds
