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
from edgesnn.plan import make_plan
from edgesnn.profile import _memory, _spec_summary
from edgesnn.reference import FloatEngine, init_params
from edgesnn.spec import NetworkSpec
from edgesnn.train import Trainer, TrainConfig, evaluate

ENGINES = ("fixed", "float", "paper")
ENGINE_CHOICES = {"both": ("fixed", "float"), "fixed": ("fixed",), "float": ("float",),
                  "paper": ("paper",)}


@dataclass(frozen=True)
class SimulateOptions:
    engines: tuple[str, ...] = ("float",)
    data: str = "yinyang"
    config: TrainConfig = TrainConfig()
    resume: str | None = None
    batch: int = 16
    data_dir: str | None = None


def build_engines(spec: NetworkSpec, device: Device, names: tuple[str, ...], seed: int,
                  batch: int = 16) -> dict[str, Any]:
    """Engines by name, all starting from the same seeded parameters."""
    engines: dict[str, Any] = {}
    for name in names:
        if name == "float":
            engines[name] = FloatEngine(spec, init_params(spec, seed))
        elif name == "fixed":
            from edgesnn.core import FixedEngine

            engines[name] = FixedEngine(make_plan(spec, device), init_params(spec, seed), seed)
        elif name == "paper":
            from edgesnn.paper import PaperEngine

            engines[name] = PaperEngine(spec, init_params(spec, seed), batch)
        else:
            raise SpecError(f"engine '{name}' is not built yet; engines: {', '.join(ENGINES)}")
    return engines


def prepare(spec: NetworkSpec, device: Device, opts: SimulateOptions) -> Trainer:
    """Check inputs and build a ready Trainer (resumed if asked); raises one-line errors."""
    cfg = opts.config
    if cfg.samples < 1 or cfg.eval_every < 1 or cfg.eval_samples < 1:
        raise DataError("--samples, --eval-every and --eval-samples must be >= 1")
    make_plan(spec, device).check()
    train, validation, test = load_dataset(opts.data, opts.data_dir, spec.time_steps,
                                           spec.inputs, cfg.encoding)
    if train.n_inputs != spec.inputs:
        raise DataError(f"data set '{opts.data}' gives {train.n_inputs} inputs, spec "
                        f"'{spec.name}' expects network.inputs = {spec.inputs}")
    if int(train.labels.max()) >= spec.classes:
        raise DataError(f"data set '{opts.data}' has {int(train.labels.max()) + 1} classes, the "
                        f"spec's readout has {spec.classes}")
    trainer = Trainer(spec, build_engines(spec, device, opts.engines, cfg.seed, opts.batch),
                      train, validation, cfg)
    trainer.test = test
    if opts.resume:
        trainer.load(opts.resume)
    return trainer


def simulate(spec: NetworkSpec, device: Device, opts: SimulateOptions,
             progress: Callable[[int], None] | None = None,
             trainer: Trainer | None = None) -> dict[str, Any]:
    """Run (or finish) training and return the report dict."""
    trainer = trainer or prepare(spec, device, opts)
    cfg = opts.config
    start_k = trainer.k
    t0 = time.perf_counter()
    trainer.run(progress)
    seconds = time.perf_counter() - t0
    test = trainer.test
    plan = make_plan(spec, device)
    report: dict[str, Any] = {
        "command": "simulate",
        "spec": _spec_summary(spec),
        "device": {"name": device.name, "title": device.title, "clock_mhz": device.clock_mhz},
        "data": {"name": opts.data, "encoding": cfg.encoding, "train": len(trainer.train_split),
                 "validation": len(trainer.validation), "test": len(test)},
        "config": {"samples": cfg.samples, "seed": cfg.seed, "eval_every": cfg.eval_every,
                   "eval_samples": cfg.eval_samples,
                   "resumed_at": start_k if opts.resume else None},
        "curve": {"samples": trainer.history.samples, "accuracy": trainer.history.accuracy,
                  "train_accuracy": trainer.history.train_accuracy,
                  "loss": trainer.history.loss},
        "memory": _memory(plan),
        "wall_seconds": round(seconds, 3),
    }
    learned = max(trainer.totals.learned, 1)
    for name, eng in trainer.engines.items():
        infer = Counters()
        acc, loss = evaluate(eng, test, spec, cfg.encoding, counts=infer)
        learn = trainer.totals.counters.get(name, Counters())
        sp = trainer.totals.spikes.get(name, np.zeros(len(spec.hidden)))
        report[name] = engine_report(name, plan, learn, learned, infer, len(test),
                                     trainer.totals.spikes.get(name, sp))
        report[name].update(test_accuracy=acc, test_loss=loss)
    if "fixed" in report and "float" in report:
        report["gap_points"] = 100 * (report["float"]["test_accuracy"]
                                      - report["fixed"]["test_accuracy"])
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


def to_markdown(r: dict[str, Any]) -> str:
    """The simulate report for people: accuracy, latency, energy, operations, memory."""
    from edgesnn.report import energy, md_table

    s = r["spec"]
    engines = [n for n in ENGINES if n in r]
    layers = " → ".join([str(s["inputs"])] + [f"{x['size']} {x['kind']}" for x in s["layers"]])
    d = r["device"]
    lines = [
        f"# Simulation: {s['name']} on {d['name']}",
        "",
        f"{d['title']}, {d['clock_mhz']:g} MHz. Network {layers}; T = {s['time_steps']}, "
        f"window {s['window']}, {s['rule'].upper()} with {s['signal'].upper()}, updates "
        f"{s['update']}, learning rate {s['learning_rate']:g}. Data: {r['data']['name']} "
        f"({r['data']['train']} train / {r['data']['validation']} validation / "
        f"{r['data']['test']} test), {r['data']['encoding']} encoding. "
        f"{r['config']['samples']} samples learned online at batch 1, seed "
        f"{r['config']['seed']}; {r['wall_seconds']:.1f} s of simulation.",
        "",
        md_table(["engine", "test accuracy", "test loss", "hidden spike rate"],
                 [[n, f"{100 * r[n]['test_accuracy']:.2f}%", f"{r[n]['test_loss']:.4f}",
                   ", ".join(f"{x:.3f}" for x in r[n]["hidden_spike_rate"])] for n in engines]),
        "",
    ]
    if "gap_points" in r:
        lines += [f"Fixed point costs **{r['gap_points']:+.2f} points** of test accuracy "
                  "against float on the same samples (positive: float is better).", ""]
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
                            "signal_macs", "learning_macs", "multiplies", "weight_writes",
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
    written = [write_atomic(out / "report.json", to_json(report)),
               write_atomic(out / "report.md", to_markdown(report)),
               write_atomic(out / "learning_curve.png", curve),
               write_atomic(out / "energy.png", energy_bars_png(bars, f"{title}: energy per sample"))]
    if traced:
        buf = io.BytesIO()
        np.savez_compressed(buf, **traced)
        written.append(write_atomic(out / "trace.npz", buf.getvalue()))
    return written
