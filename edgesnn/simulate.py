"""``edgesnn simulate``: learn online on a data set and report what it cost.

Validates everything first (spec, device, data, engines, resume checkpoint),
then trains the engines on one shared sample stream (``train.Trainer``),
evaluates on the test split, and builds one JSON-ready dict: accuracy per
engine and over samples, counted operations per sample, spike rates, and
the memory map of the plan. Files are written atomically, and only at the
end: a failed run leaves no report behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgesnn import cost, counters
from edgesnn.counters import Counters
from edgesnn.datasets import load_dataset
from edgesnn.errors import DataError, SpecError
from edgesnn.hw import Device
from edgesnn.params import init_params
from edgesnn.plan import make_plan
from edgesnn.profile import _memory, _spec_summary, rule_words
from edgesnn.reference import FloatEngine
from edgesnn.rules import tess
from edgesnn.spec import NetworkSpec, refuse_delays
from edgesnn.train import (Stop, Trainer, TrainConfig, data_identity, device_identity,
                           evaluate_counts)

ENGINES = ("fixed", "float", "paper")
ENGINE_CHOICES = {"both": ("fixed", "float"), "fixed": ("fixed",), "float": ("float",),
                  "paper": ("paper",)}
#: what runs the "float" engine (device mode): the numba float64 twin (``floatcore``, the
#: default) or the numpy definition (``reference``); the same figures up to the order of
#: float sums, and checkpoints load into either
FLOAT_ENGINES = ("numba", "numpy")


@dataclass(frozen=True)
class SimulateOptions:
    engines: tuple[str, ...] = ("float",)
    data: str = "yinyang"
    config: TrainConfig = TrainConfig()
    resume: str | None = None
    batch: int = 16
    data_dir: str | None = None
    float_engine: str = "numba"


def float_engine(spec: NetworkSpec, params, tess_signs, which: str = "numba"):
    """The device-mode float engine: the numba twin (``which = "numba"``) when it runs the
    spec, else (or for ``"numpy"``) the numpy definition ``reference.FloatEngine``."""
    if which not in FLOAT_ENGINES:
        raise SpecError(f"float engine '{which}' is not one of {', '.join(FLOAT_ENGINES)}")
    if which == "numba":
        from edgesnn.floatcore import FastFloatEngine, unsupported

        if unsupported(spec) is None:
            return FastFloatEngine(spec, params, tess_signs)
    return FloatEngine(spec, params, tess_signs)


def build_engines(spec: NetworkSpec, device: Device, names: tuple[str, ...], seed: int,
                  batch: int = 16, float_with: str = "numba") -> dict[str, Any]:
    """Engines by name, all starting from the same seeded parameters; under TESS all with
    the plan's basis signs (``Plan.tess_signs``: a generated basis's in every engine, so
    that fixed and float differ only in arithmetic). ``float_with``: what runs "float"
    (``FLOAT_ENGINES``, :func:`float_engine`)."""
    plan = make_plan(spec, device)
    engines: dict[str, Any] = {}
    for name in names:
        if name == "float":
            engines[name] = float_engine(spec, init_params(spec, seed), plan.tess_signs,
                                         float_with)
        elif name == "fixed":
            from edgesnn.core import FixedEngine

            engines[name] = FixedEngine(plan, init_params(spec, seed), seed)
        elif name == "paper":
            from edgesnn.paper import PaperEngine

            engines[name] = PaperEngine(spec, init_params(spec, seed), batch, plan.tess_signs)
        else:
            raise SpecError(f"engine '{name}' is not built yet; engines: {', '.join(ENGINES)}")
    return engines


def prepare(spec: NetworkSpec, device: Device, opts: SimulateOptions) -> Trainer:
    """Check inputs and build a ready Trainer (resumed if asked); raises one-line errors.

    Everything that can be known before the first sample is checked here, in
    the order a user fixes it: options, the spec against the data, the spec on
    the device, the engines, the checkpoint, the learning-rate schedule.
    """
    cfg = opts.config
    if cfg.samples < 1 or cfg.eval_every < 1 or cfg.eval_samples < 1:
        raise DataError("--samples, --eval-every and --eval-samples must be >= 1")
    if not 0 <= cfg.seed < SEED_LIMIT:
        raise DataError(f"--seed {cfg.seed} is outside 0..{SEED_LIMIT - 1} (the seeds numpy's "
                        "generators and the device's LFSRs take)")
    train, validation, test = load_dataset(opts.data, opts.data_dir, spec.time_steps,
                                           spec.inputs, cfg.encoding)
    check_data_fits_spec(opts.data, spec, (train, validation, test))
    if "paper" in opts.engines:
        refuse_delays(spec, "the paper engine")
    make_plan(spec, device).check()
    identity = {"device": device_identity(device),
                "data": data_identity(opts.data, train, validation, test)}
    trainer = Trainer(spec, build_engines(spec, device, opts.engines, cfg.seed, opts.batch,
                                          opts.float_engine),
                      train, validation, cfg, identity)
    trainer.test = test
    if opts.resume:
        trainer.load(opts.resume)
    trainer.check_schedule()
    return trainer


#: seeds are taken by numpy's SeedSequence (any int >= 0) and mixed into 64-bit LFSR seeds
#: as ``seed * 1000 + stream``; 2**32 keeps every derived seed far inside both
SEED_LIMIT = 2 ** 32


def check_data_fits_spec(name: str, spec: NetworkSpec, splits) -> None:
    """DataError unless every split gives ``network.inputs`` channels and labels the
    readout has (checked before placing the spec on a device: a wrong size is a
    spec problem, not a budget one)."""
    train = splits[0]
    if train.n_inputs != spec.inputs:
        raise DataError(f"data set '{name}' gives {train.n_inputs} inputs, spec "
                        f"'{spec.name}' expects network.inputs = {spec.inputs}")
    for split, what in zip(splits, ("train", "validation", "test")):
        labels = np.asarray(split.labels)
        if len(labels) == 0:
            raise DataError(f"data set '{name}': the {what} split is empty")
        if int(labels.min()) < 0 or int(labels.max()) >= spec.classes:
            raise DataError(f"data set '{name}' has {int(labels.max()) + 1} classes (labels "
                            f"{int(labels.min())}..{int(labels.max())} in its {what} split), "
                            f"the spec's readout has {spec.classes} (layers[-1].size)")


def simulate(spec: NetworkSpec, device: Device, opts: SimulateOptions,
             progress: Callable[[int], None] | None = None,
             trainer: Trainer | None = None, compile_seconds: float | None = None
             ) -> dict[str, Any]:
    """Run (or finish) training and return the report dict.

    ``compile_seconds`` is the warm-up time spent before (reported apart from the
    simulation time); without it the first sample's compilation is inside
    ``wall_seconds``.
    """
    trainer = trainer or prepare(spec, device, opts)
    cfg = opts.config
    start_k = trainer.k
    t0 = time.perf_counter()
    trainer.run(progress)
    seconds = time.perf_counter() - t0
    test = trainer.test
    plan = make_plan(spec, device)
    memory = _memory(plan)
    report: dict[str, Any] = {
        "command": "simulate",
        "spec": _spec_summary(spec),
        "device": {"name": device.name, "title": device.title, "clock_mhz": device.clock_mhz},
        "fits": plan.fits,
        "data": {"name": opts.data, "encoding": cfg.encoding, "train": len(trainer.train_split),
                 "validation": len(trainer.validation), "test": len(test)},
        "config": {"samples": cfg.samples, "seed": cfg.seed, "eval_every": cfg.eval_every,
                   "eval_samples": cfg.eval_samples, "batch": opts.batch,
                   "float_engine": (type(trainer.engines["float"]).__name__
                                    if "float" in trainer.engines else None),
                   "resumed_at": start_k if opts.resume else None},
        "curve": {"samples": trainer.history.samples, "accuracy": trainer.history.accuracy,
                  "train_accuracy": trainer.history.train_accuracy,
                  "loss": trainer.history.loss},
        "memory": memory,
        **({"tess_basis": b} if (b := tess.basis_summary(spec, device)) else {}),
        "wall_seconds": round(seconds, 3),
        "compile_seconds": None if compile_seconds is None else round(compile_seconds, 3),
    }
    learned = max(trainer.totals.learned, 1)
    correct = {}
    for name, eng in trainer.engines.items():
        infer = Counters()
        try:
            right, n, loss = evaluate_counts(eng, test, spec, cfg.encoding, counts=infer,
                                             stop=trainer.stop)
        except Stop:
            raise trainer.interrupted() from None
        correct[name] = (right, n)
        learn = trainer.totals.counters.get(name, Counters())
        sp = trainer.totals.spikes.get(name, np.zeros(len(spec.hidden)))
        report[name] = engine_report(name, plan, learn, learned, infer, len(test), sp)
        report[name].update(test_accuracy=right / max(n, 1), test_correct=right, test_loss=loss)
    if "fixed" in correct and "float" in correct:
        # from the counts, not from the two accuracies: 100 * (a - b) of two floats gives
        # -0.40000000000000036 where the exact figure is -0.4
        n = correct["fixed"][1]
        report["gap_points"] = 100 * (correct["float"][0] - correct["fixed"][0]) / max(n, 1)
    return report


def _per(c: Counters, n: int) -> dict[str, float]:
    d = {k: float(v) / max(n, 1) for k, v in zip(counters.NAMES, c.events)}
    d["learning_macs"] = d["eligibility_macs"] + d["signal_macs"]
    d["update_multiplies"] = counters.update_multiplies(d)
    return d


def engine_report(name: str, plan, learn: Counters, learned: int, infer: Counters,
                  inferred: int, spikes: np.ndarray) -> dict[str, Any]:
    """Operations, cycles, latency and energy per learned sample and per inference.

    The fixed engine is costed in its formats with its counted SRAM words; the
    float engines on the same counters with float32 operations and 32-bit
    accesses on the same device (the float reference energy).
    """
    spec, device = plan.spec, plan.device
    as_float = name != "fixed"
    T = spec.time_steps
    learn_cycles = cost.cycles(learn, device, T, learned)
    infer_cycles = cost.cycles(infer, device, T, inferred)
    out = {
        "costed_as": "float32 on the device's banks" if as_float else "device formats",
        "ops_per_sample": _per(learn, learned),
        "ops_per_inference": _per(infer, inferred),
        "cycles_per_sample": learn_cycles.as_dict(),
        "cycles_per_inference": infer_cycles.as_dict(),
        "latency_us_per_sample": learn_cycles.latency_us,
        "latency_us_per_inference": infer_cycles.latency_us,
        "energy_pj_per_sample": cost.energy_pj(learn, plan, as_float, learned),
        "energy_pj_per_inference": cost.energy_pj(infer, plan, as_float, inferred),
        "sram_words_per_sample": {b: (learn.sram_reads.get(b, 0) + learn.sram_writes.get(b, 0))
                                  / max(learned, 1) for b in learn.sram_reads},
        "saturations": dict(learn.saturations),
        "hidden_spike_rate": [float(s) / max(learned, 1) / T / layer.size
                              for s, layer in zip(spikes, spec.hidden)],
    }
    return out


def gap_sentence(gap: float) -> str:
    """The accuracy gap in words (printed to 2 decimals; report.json keeps full precision)."""
    shown = f"{abs(gap):.2f}"
    if shown == "0.00":
        return ("Fixed point matches float on the test set (the same accuracy to 0.01 points, "
                "same samples).")
    if gap > 0:
        return (f"Fixed point costs **{shown} points** of test accuracy against float on the "
                "same samples.")
    return (f"Fixed point is **{shown} points better** than float on the test set (same "
            "samples; rounding noise can help a small network).")


def to_markdown(r: dict[str, Any]) -> str:
    """The simulate report for people: accuracy, latency, energy, operations, memory."""
    from edgesnn.report import energy, md_table, power_of_two

    s = r["spec"]
    engines = [n for n in ENGINES if n in r]
    layers = " → ".join([str(s["inputs"])] + [f"{x['size']} {x['kind']}" for x in s["layers"]])
    d = r["device"]
    c = r["config"]
    if engines == ["paper"]:
        how = (f"{c['samples']} samples learned by the paper engine (weight standardisation, "
               f"Adam, mini-batches of {c.get('batch', '?')})")
    else:
        how = f"{c['samples']} samples learned online at batch 1"
    rate = power_of_two(s["learning_rate"])
    if s.get("lr_halving_every"):
        rate += f", halved every {s['lr_halving_every']:,} samples"
    secs = f"{r['wall_seconds']:.1f} s of simulation"
    if r.get("compile_seconds") is not None:
        secs += f" (and {r['compile_seconds']:.1f} s compiling and loading the kernels before)"
    used = sum(b["used_bytes"] for b in r["memory"]["banks"])
    cap = sum(b["capacity_bytes"] for b in r["memory"]["banks"])
    lines = [
        f"# Simulation: {s['name']} on {d['name']}",
        "",
        f"{d['title']}, {d['clock_mhz']:g} MHz. Network {layers}; T = {s['time_steps']}, "
        f"window {s['window']}, {rule_words(s)}, updates "
        f"{s['update']}, learning rate {rate}. Data: {r['data']['name']} "
        f"({r['data']['train']} train / {r['data']['validation']} validation / "
        f"{r['data']['test']} test), {r['data']['encoding']} encoding. "
        f"{how}, seed {c['seed']}; {secs}.",
        "",
        f"Fits {d['name']}: {'yes' if r.get('fits', True) else '**no**'} "
        f"({used:,} of {cap:,} bytes of SRAM).",
        "",
        *([tess.basis_sentence(r["tess_basis"], run=True), ""] if "tess_basis" in r else []),
        md_table(["engine", "test accuracy", "test loss", "hidden spike rate"],
                 [[n, f"{100 * r[n]['test_accuracy']:.2f}%", f"{r[n]['test_loss']:.4f}",
                   ", ".join(f"{x:.3f}" for x in r[n]["hidden_spike_rate"])] for n in engines]),
        "",
    ]
    if "gap_points" in r:
        lines += [gap_sentence(r["gap_points"]), ""]
    lines += [
        "## Latency and energy",
        "",
        "Fixed point is costed in the device's formats with the SRAM words it counted; the "
        "float engines on their own counts with float32 operations and 32-bit accesses on "
        "the same banks (docs/cycle_model.md).",
        "",
        md_table(["engine", "cycles / learned sample", "µs / learned sample",
                  "energy / learned sample", "cycles / inference", "µs / inference",
                  "energy / inference", "bound"],
                 [[n, r[n]["cycles_per_sample"]["cycles"], r[n]["latency_us_per_sample"],
                   energy(r[n]["energy_pj_per_sample"]["total"]),
                   r[n]["cycles_per_inference"]["cycles"], r[n]["latency_us_per_inference"],
                   energy(r[n]["energy_pj_per_inference"]["total"]),
                   r[n]["cycles_per_sample"]["bound"]] for n in engines]),
        "",
        md_table(["energy / learned sample", *engines],
                 [[k.replace("_", " "), *[energy(r[n]["energy_pj_per_sample"].get(k, 0.0))
                                          for n in engines]]
                  for k in r[engines[0]]["energy_pj_per_sample"]]),
        "",
        "## Operations (counted)",
        "",
        md_table(["operation", *[f"{n} / learned sample" for n in engines],
                  *[f"{n} / inference" for n in engines]],
                 [[k.replace("_", " "), *[r[n]["ops_per_sample"][k] for n in engines],
                   *[r[n]["ops_per_inference"][k] for n in engines]]
                  for k in ("synops", "neuron_updates", "trace_updates", "eligibility_macs",
                            "signal_macs", *(("local_signal_macs", "phase_adds")
                                             if "tess_basis" in r else ()),
                            "learning_macs", "multiplies", "weight_writes",
                            "lut_lookups", "lfsr_draws", "rows_skipped")]),
        "",
    ]
    sat = {n: r[n]["saturations"] for n in engines if r[n]["saturations"]}
    if sat:
        names = sorted({t for d in sat.values() for t in d})
        lines += ["## Saturations (over all learned samples)", "",
                  md_table(["tensor", *sat], [[t, *[sat[n].get(t, 0) for n in sat]]
                                              for t in names]), ""]
    lines += [
        "## Validation accuracy over samples",
        "",
        md_table(["samples", *engines],
                 [[k, *[f"{100 * r['curve']['accuracy'][n][i]:.1f}%" for n in engines]]
                  for i, k in enumerate(r["curve"]["samples"])]),
        "",
        f"## Memory on {d['name']}",
        "",
        md_table(["bank", "capacity (bytes)", "used (bytes)", "tensors"],
                 [[b["name"], b["capacity_bytes"], b["used_bytes"], ", ".join(b["tensors"]) or "—"]
                  for b in r["memory"]["banks"]]),
        "",
        "Figures: learning_curve.png, energy.png.",
        "",
    ]
    return "\n".join(lines)


def write_outputs(report: dict[str, Any], out: Path, traced: dict | None = None) -> list[Path]:
    """report.json, report.md, learning_curve.png, energy.png (and trace.npz), atomically."""
    import io

    from edgesnn.plots import energy_bars_png, learning_curve_png
    from edgesnn.report import to_json, write_atomic

    engines = [n for n in ENGINES if n in report]
    title = f"{report['spec']['name']} on {report['device']['name']}"
    curve = learning_curve_png(report["curve"]["samples"],
                               {n: report["curve"]["accuracy"][n] for n in engines},
                               f"{title}: online learning, batch 1 ({report['data']['name']})",
                               {n: report[n]["test_accuracy"] for n in engines})
    bars = {}
    for n in engines:
        bars[f"{n}\nlearn"] = report[n]["energy_pj_per_sample"]
        bars[f"{n}\ninfer"] = report[n]["energy_pj_per_inference"]
    files = {"report.json": to_json(report), "report.md": to_markdown(report),
             "learning_curve.png": curve,
             "energy.png": energy_bars_png(bars, f"{title}: energy per sample")}
    if traced:
        buf = io.BytesIO()
        np.savez_compressed(buf, **traced)
        files["trace.npz"] = buf.getvalue()
    written: list[Path] = []
    try:                  # all rendered above; now all files or none of them
        for name, data in files.items():
            written.append(write_atomic(out / name, data))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written
