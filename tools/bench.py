#!/usr/bin/env python3
"""Benchmark: the SHD-sized network learning online at batch 1.

Measures, in one run and on the same random input samples:

* samples/s of the fixed engine and of the float engine (device mode) in both its
  forms: the numpy definition (``float_*`` keys) and the numba float64 twin
  (``fastfloat_*`` keys, ``edgesnn.floatcore``, what ``simulate`` runs by default), by the
  wall clock and per second of process CPU time (on a shared or throttled
  machine the wall clock also counts time the process did not run): each
  engine learns the same samples (drawn before the clock starts) three times
  from the same start state, and the fastest pass is reported, as ``timeit``
  does; the first pass is reported too,
* synaptic operations per second of the fixed engine,
* peak resident memory of a fresh process learning at T=100 and at T=1000
  (the fixed engine's state must not grow with T),
* the same for TESS (``--rules``, default both): examples/shd_tess.toml, the SHD
  network learning with TESS (45 groups of 10, the device's generated basis) instead
  of S-TLLR with BP: fixed and float samples/s, synaptic operations/s and peak memory,
  as ``tess_*`` keys,
* the same with learned delays (issue 16; ``axonal_*`` and ``synaptic_*`` keys, fixed
  engine and numpy float engine, which the twin declines): the SHD network with axonal
  delays (``max_delay`` 25, uniform initial delays), and with synaptic delays on 20 % of
  the synapses (``GROWN_DTCM_BYTES``: no preset holds them),
* (``--fsdd [DIR]``) spoken digits: samples/s of the audio front end
  (``AudioEncoder.spikes`` on waveforms already read from the WAV files, no
  disk cache) and of the fixed engine learning examples/fsdd.toml (16 mel
  bands, 128 recurrent LIF, 10 classes, T=100, per-sample updates) on the
  audio-edge preset, on the same recordings, and of the float twin on them.

Network: examples/shd.toml (700 inputs, 450 recurrent LIF, 20 classes,
T=100, window 90, per-step updates) on the cortex-m7 preset; inputs are
Bernoulli spikes at 2% per channel per step, labels uniform. The first
sample of each engine is run once before timing (numba compiles it).

    python tools/bench.py            # table
    python tools/bench.py --json     # one JSON object
    python tools/bench.py --quick    # fewer samples, a minute or two
    python tools/bench.py --rules stllr   # the S-TLLR row only
    python tools/bench.py --rules stllr,axonal   # and learned axonal delays
    python tools/bench.py --fsdd PATH/TO/free-spoken-digit-dataset/recordings
                                     # adds the FSDD row
    python tools/bench.py --fsdd     # the same from $EDGESNN_FSDD, else
                                     # ../shared/data/fsdd/recordings (beside the project)

The FSDD recordings are the ``recordings`` folder of
github.com/Jakobovski/free-spoken-digit-dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgesnn.hw import load_device  # noqa: E402
from edgesnn.params import init_params  # noqa: E402
from edgesnn.plan import make_plan  # noqa: E402
from edgesnn.reference import FloatEngine  # noqa: E402
from edgesnn.spec import load_spec  # noqa: E402

SPEC = ROOT / "examples" / "shd.toml"
TESS_SPEC = ROOT / "examples" / "shd_tess.toml"
#: the rows: name -> (spec, prefix of its JSON keys, overrides of the spec)
RULES = {"stllr": (SPEC, "", ()), "tess": (TESS_SPEC, "tess_", ()),
         "axonal": (SPEC, "axonal_", ("layers.0.delays=axonal", "layers.0.max_delay=25",
                                      "layers.0.delay_init=uniform")),
         "synaptic": (SPEC, "synaptic_", ("layers.0.delays=synaptic", "layers.0.max_delay=25",
                                          "layers.0.connectivity=0.2",
                                          "layers.0.delay_init=uniform"))}
TITLES = {"stllr": "S-TLLR, BP", "tess": "TESS", "axonal": "S-TLLR, BP, axonal delays",
          "synaptic": "S-TLLR, BP, synaptic delays"}
DEVICE = "cortex-m7"
#: the synaptic row's SHD network does not fit any preset (on cortex-m7 its per-synapse
#: delay codes, eligibilities and traces need 440 KB of the 128 KiB DTCM that holds them):
#: it runs on cortex-m7 with that bank grown to this size, to measure speed, not fit
GROWN_DTCM_BYTES = 4 << 20
INPUT_RATE = 0.02
FSDD_SPEC = ROOT / "examples" / "fsdd.toml"
FSDD_DEVICE = "audio-edge"
#: ``--fsdd`` without a folder: ``$EDGESNN_FSDD``, else the shared data folder beside the project
FSDD_DEFAULT = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"


def default_fsdd_dir() -> str:
    """The FSDD recordings folder ``--fsdd`` uses when given none."""
    return os.environ.get("EDGESNN_FSDD", "").strip() or str(FSDD_DEFAULT)


def shd_spec(T: int = 100, path: Path = SPEC, overrides=()):
    spec = load_spec(path, list(overrides))
    return replace(spec, time_steps=T, learning=replace(spec.learning,
                                                        window=min(spec.learning.window, T)))


def samples(spec, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield ((rng.random((spec.time_steps, spec.inputs)) < INPUT_RATE).astype(np.uint8),
               int(rng.integers(spec.classes)))


def rule_spec(rule: str, T: int = 100):
    """The SHD-sized spec of a row (``RULES``) at ``T`` steps."""
    path, _, overrides = RULES[rule]
    return shd_spec(T, path, overrides)


def rule_device(rule: str):
    """The device a row runs on: cortex-m7; for synaptic delays with its DTCM grown."""
    device = load_device(DEVICE)
    if rule != "synaptic":
        return device
    banks = tuple(replace(b, size_bytes=GROWN_DTCM_BYTES) if b.name == "dtcm" else b
                  for b in device.banks)
    return replace(device, banks=banks)


def make_engine(name: str, spec, seed: int = 0, device=None):
    """An engine as ``edgesnn simulate`` builds it (under TESS with the plan's basis):
    ``fixed``, ``float`` (the numpy definition) or ``fastfloat`` (the numba float twin),
    on ``device`` (default the cortex-m7 preset)."""
    params = init_params(spec, seed)
    plan = make_plan(spec, device or load_device(DEVICE))
    if name == "float":
        return FloatEngine(spec, params, plan.tess_signs)
    if name == "fastfloat":
        from edgesnn.floatcore import FastFloatEngine

        return FastFloatEngine(spec, params, plan.tess_signs)
    from edgesnn.core import FixedEngine

    return FixedEngine(plan, params, seed)


def time_engine(name: str, spec, n: int, passes: int = 3, device=None) -> dict:
    """Learn the same ``n`` samples ``passes`` times, each from the same start state.

    The fastest pass is reported (as ``timeit`` does: slower passes measure
    other load on the machine, not the engine); the first pass is kept too.
    """
    eng = make_engine(name, spec, device=device)
    warm = next(samples(spec, 1, seed=99))
    eng.run_sample(*warm)                     # compile / warm caches, not timed
    start = {k: v.copy() for k, v in eng.state().items()}
    stream = list(samples(spec, n))           # drawn before the clock starts
    runs = []
    for _ in range(passes):
        eng.load_state(start)
        synops = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for x, y in stream:
            r = eng.run_sample(x, y)
            synops += int(r.events[0])
        runs.append((time.perf_counter() - t0, time.process_time() - c0, synops))
    dt, cpu, synops = min(runs)
    return {"samples": n, "seconds": dt, "samples_per_s": n / dt, "synops_per_s": synops / dt,
            "samples_per_cpu_s": n / cpu, "first_pass_samples_per_s": n / runs[0][0],
            "passes": passes}


def peak_rss_mb(engine: str, T: int, n: int, rule: str = "stllr") -> float:
    """Peak RSS of a fresh process that learns ``n`` samples of row ``rule`` at ``T`` steps."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import resource;"
            f"from tools.bench import rule_spec, rule_device, samples, make_engine;"
            f"spec = rule_spec({rule!r}, {T});"
            f"eng = make_engine({engine!r}, spec, device=rule_device({rule!r}));"
            f"[eng.run_sample(x, y) for x, y in samples(spec, {n})];"
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def bench_rule(rule: str, engines, n_fixed: int, n_float: int, passes: int = 3,
               rss: bool = True, n_fast: int | None = None) -> dict:
    """One row: the rule's SHD spec learned by the fixed engine, the numpy float engine and
    the numba float twin (``engines``: ``fixed``, ``float``, ``fastfloat``; ``n_fast`` twin
    samples, default ``n_fixed // 4``); keys prefixed by ``RULES[rule][1]`` (none for
    S-TLLR, ``tess_`` for TESS, ``axonal_``/``synaptic_`` for delays). The twin declines
    delays, so the delay rows time the fixed engine and the numpy float engine only."""
    pre = RULES[rule][1]
    spec = rule_spec(rule)
    device = rule_device(rule)
    if spec.delayed:
        engines = [e for e in engines if e != "fastfloat"]
    res: dict = {}
    if "fixed" in engines:
        f = time_engine("fixed", spec, n_fixed, passes, device)
        res.update({f"{pre}fixed_samples_per_s": f["samples_per_s"],
                    f"{pre}synops_per_s": f["synops_per_s"],
                    f"{pre}fixed_samples_per_cpu_s": f["samples_per_cpu_s"],
                    f"{pre}fixed_samples": n_fixed,
                    f"{pre}fixed_first_pass_samples_per_s": f["first_pass_samples_per_s"],
                    "passes": f["passes"]})
        if rss:
            res[f"{pre}peak_rss_mb_t100"] = peak_rss_mb("fixed", 100, 3, rule)
            res[f"{pre}peak_rss_mb_t1000"] = peak_rss_mb("fixed", 1000, 3, rule)
    for name, n in (("float", n_float), ("fastfloat", n_fast or max(3, n_fixed // 4))):
        if name not in engines:
            continue
        g = time_engine(name, spec, n, passes, device)
        res.update({f"{pre}{name}_samples_per_s": g["samples_per_s"],
                    f"{pre}{name}_samples_per_cpu_s": g["samples_per_cpu_s"],
                    f"{pre}{name}_samples": n,
                    f"{pre}{name}_first_pass_samples_per_s": g["first_pass_samples_per_s"]})
        res.setdefault(f"{pre}synops_per_s", g["synops_per_s"])
    fix, flo, fast = (res.get(f"{pre}{k}_samples_per_s") for k in ("fixed", "float", "fastfloat"))
    if fix and flo:
        res[f"{pre}speedup"] = fix / flo
    if fast and flo:
        res[f"{pre}fastfloat_over_float"] = fast / flo
    if fix and fast:
        res[f"{pre}fixed_over_fastfloat"] = fix / fast
    return res


def bench_fsdd(data_dir: str, n: int) -> dict:
    """Encoding and fixed-engine learning samples/s on ``n`` FSDD recordings.

    The recordings are spread over the sorted file list (every digit and
    speaker); reading the WAV files is not timed, encoding and learning are.
    """
    from edgesnn.audio import AudioEncoder
    from edgesnn.core import FixedEngine
    from edgesnn.datasets.fsdd import NAME, find_files, read_wav

    spec = load_spec(FSDD_SPEC)
    enc = AudioEncoder(steps=spec.time_steps, bands=spec.inputs)
    files = find_files(data_dir)
    files = files[::max(1, len(files) // n)][:n]
    waves = [read_wav(p, enc.sample_rate) for p in files]
    labels = [int(NAME.match(p.name).group(1)) for p in files]
    enc.spikes(waves[0])                      # warm caches, not timed
    t0 = time.perf_counter()
    spikes = [enc.spikes(w) for w in waves]
    t_enc = time.perf_counter() - t0
    eng = FixedEngine(make_plan(spec, load_device(FSDD_DEVICE)), init_params(spec, 0), 0)
    eng.run_sample(spikes[0], labels[0])      # compile, not timed
    t0 = time.perf_counter()
    for x, y in zip(spikes, labels):
        eng.run_sample(x, y)
    t_fix = time.perf_counter() - t0
    from edgesnn.floatcore import FastFloatEngine

    fast = FastFloatEngine(spec, init_params(spec, 0))
    fast.run_sample(spikes[0], labels[0])     # compile, not timed
    t0 = time.perf_counter()
    for x, y in zip(spikes, labels):
        fast.run_sample(x, y)
    t_fast = time.perf_counter() - t0
    return {"fsdd_samples": len(files), "fsdd_encode_samples_per_s": len(files) / t_enc,
            "fsdd_fixed_samples_per_s": len(files) / t_fix,
            "fsdd_fastfloat_samples_per_s": len(files) / t_fast}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer samples (a minute or two)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--samples", type=int, default=None, help="fixed-engine samples to time")
    ap.add_argument("--engines", default="fixed,float,fastfloat",
                    help="comma-separated: fixed, float (numpy), fastfloat (numba twin)")
    ap.add_argument("--rules", default="stllr,tess,axonal,synaptic",
                    help="comma-separated rows: stllr (examples/shd.toml), tess "
                         "(examples/shd_tess.toml), axonal (shd.toml with axonal delays, "
                         "max_delay 25), synaptic (synaptic delays, max_delay 25, 20%% of "
                         "the synapses kept; cortex-m7 with a grown DTCM)")
    ap.add_argument("--fsdd", metavar="DIR", nargs="?", default=None, const=default_fsdd_dir(),
                    help="FSDD recordings folder: add encoding and fixed-engine learning "
                         "samples/s (without DIR: $EDGESNN_FSDD, else "
                         "../shared/data/fsdd/recordings beside the project)")
    args = ap.parse_args(argv)
    n_fixed = args.samples or (40 if args.quick else 400)
    n_float = max(3, n_fixed // (20 if args.quick else 10))
    engines = args.engines.split(",")
    rules = args.rules.split(",")
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        ap.error(f"unknown rule {unknown[0]!r}; rules: {', '.join(RULES)}")
    res: dict = {"network": "examples/shd.toml 700-450rec-20, T=100, window 90, per-step",
                 "device": DEVICE, "input_rate": INPUT_RATE}
    if "stllr" in rules:
        res.update(bench_rule("stllr", engines, n_fixed, n_float))
    if "tess" in rules:
        res["tess_network"] = ("examples/shd_tess.toml 700-450rec-20, TESS 45 groups, T=100, "
                               "window 90, per-step")
        res.update(bench_rule("tess", engines, n_fixed, n_float))
    if "axonal" in rules:
        res["axonal_network"] = ("examples/shd.toml with axonal delays, max_delay 25, "
                                 "sigma 1, uniform initial delays, learned")
        res.update(bench_rule("axonal", engines, n_fixed, max(3, n_float // 4)))
    if "synaptic" in rules:
        res["synaptic_network"] = ("examples/shd.toml with synaptic delays, max_delay 25, "
                                   "sigma 1, uniform initial delays, learned, connectivity "
                                   f"0.2; DTCM grown to {GROWN_DTCM_BYTES >> 20} MiB")
        res.update(bench_rule("synaptic", engines, max(3, n_fixed // 8), 3))
    if args.fsdd:
        res.update(bench_fsdd(args.fsdd, 60 if args.quick else 600))
        res["fsdd_network"] = "examples/fsdd.toml 16-128rec-10, T=100, window 50, per-sample"
        res["fsdd_device"] = FSDD_DEVICE
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"edgesnn bench: device {DEVICE}, input rate {INPUT_RATE}")
    for rule in rules:
        pre = RULES[rule][1]
        print(f"{TITLES[rule]}: {res[pre + 'network']}")
        rows = [("fixed engine samples/s", res.get(f"{pre}fixed_samples_per_s")),
                ("  per CPU second", res.get(f"{pre}fixed_samples_per_cpu_s")),
                ("  first pass", res.get(f"{pre}fixed_first_pass_samples_per_s")),
                ("float, numpy samples/s", res.get(f"{pre}float_samples_per_s")),
                ("  per CPU second", res.get(f"{pre}float_samples_per_cpu_s")),
                ("  first pass", res.get(f"{pre}float_first_pass_samples_per_s")),
                ("float, numba twin samples/s", res.get(f"{pre}fastfloat_samples_per_s")),
                ("  per CPU second", res.get(f"{pre}fastfloat_samples_per_cpu_s")),
                ("  first pass", res.get(f"{pre}fastfloat_first_pass_samples_per_s")),
                ("fixed / float (numpy)", res.get(f"{pre}speedup")),
                ("twin / numpy float", res.get(f"{pre}fastfloat_over_float")),
                ("fixed / twin", res.get(f"{pre}fixed_over_fastfloat")),
                ("synaptic ops/s (fixed)", res.get(f"{pre}synops_per_s")),
                ("peak RSS, T=100 (MB)", res.get(f"{pre}peak_rss_mb_t100")),
                ("peak RSS, T=1000 (MB)", res.get(f"{pre}peak_rss_mb_t1000"))]
        for label, value in rows:
            print(f"  {label:28s} {'n/a' if value is None else f'{value:,.1f}':>14s}")
    if args.fsdd:
        print(f"FSDD: {res['fsdd_network']}, device {FSDD_DEVICE}, {res['fsdd_samples']} recordings")
        for label, value in [("encoding samples/s", res["fsdd_encode_samples_per_s"]),
                             ("fixed engine samples/s", res["fsdd_fixed_samples_per_s"]),
                             ("float, numba twin samples/s",
                              res["fsdd_fastfloat_samples_per_s"])]:
            print(f"  {label:28s} {value:>14,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
