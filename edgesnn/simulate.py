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

from edgesnn import counters
from edgesnn.datasets import load_dataset
from edgesnn.encoders import ENCODINGS
from edgesnn.errors import DataError, SpecError
from edgesnn.hw import Device
from edgesnn.plan import make_plan
from edgesnn.profile import _memory, _spec_summary
from edgesnn.reference import FloatEngine, init_params
from edgesnn.spec import NetworkSpec
from edgesnn.train import Trainer, TrainConfig, evaluate

ENGINES = ("float", "paper")


@dataclass(frozen=True)
class SimulateOptions:
    engines: tuple[str, ...] = ("float",)
    data: str = "yinyang"
    config: TrainConfig = TrainConfig()
    resume: str | None = None
    batch: int = 16


def build_engines(spec: NetworkSpec, names: tuple[str, ...], seed: int,
                  batch: int = 16) -> dict[str, Any]:
    """Engines by name, all starting from the same seeded parameters."""
    engines: dict[str, Any] = {}
    for name in names:
        if name == "float":
            engines[name] = FloatEngine(spec, init_params(spec, seed))
        elif name == "paper":
            from edgesnn.paper import PaperEngine

            engines[name] = PaperEngine(spec, init_params(spec, seed), batch)
        else:
            raise SpecError(f"engine '{name}' is not built yet; engines: {', '.join(ENGINES)}")
    return engines


def prepare(spec: NetworkSpec, device: Device, opts: SimulateOptions) -> Trainer:
    """Check inputs and build a ready Trainer (resumed if asked); raises one-line errors."""
    cfg = opts.config
    if cfg.encoding not in ENCODINGS:
        raise DataError(f"unknown encoding '{cfg.encoding}'; encodings: {', '.join(ENCODINGS)}")
    if cfg.samples < 1 or cfg.eval_every < 1 or cfg.eval_samples < 1:
        raise DataError("--samples, --eval-every and --eval-samples must be >= 1")
    make_plan(spec, device).check()
    train, validation, _ = load_dataset(opts.data)
    if train.features.shape[1] != spec.inputs:
        raise DataError(f"data set '{opts.data}' gives {train.features.shape[1]} inputs, spec "
                        f"'{spec.name}' expects network.inputs = {spec.inputs}")
    if int(train.labels.max()) >= spec.classes:
        raise DataError(f"data set '{opts.data}' has {int(train.labels.max()) + 1} classes, the "
                        f"spec's readout has {spec.classes}")
    trainer = Trainer(spec, build_engines(spec, opts.engines, cfg.seed, opts.batch),
                      train, validation, cfg)
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
    _, _, test = load_dataset(opts.data)
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
    T = spec.time_steps
    for name, eng in trainer.engines.items():
        acc, loss = evaluate(eng, test, spec, cfg.encoding)
        ev = trainer.totals.events.get(name, counters.zeros())
        per_sample = {n: float(v) / learned for n, v in zip(counters.NAMES, ev)}
        per_sample["learning_macs"] = per_sample["eligibility_macs"] + per_sample["signal_macs"]
        sp = trainer.totals.spikes.get(name, np.zeros(len(spec.hidden)))
        report[name] = {
            "test_accuracy": acc,
            "test_loss": loss,
            "ops_per_sample": per_sample,
            "hidden_spike_rate": [float(s) / learned / T / layer.size
                                  for s, layer in zip(sp, spec.hidden)],
        }
    return report


def to_markdown(r: dict[str, Any]) -> str:
    from edgesnn.report import md_table

    s = r["spec"]
    engines = [n for n in ENGINES if n in r]
    layers = " → ".join([str(s["inputs"])] + [f"{x['size']} {x['kind']}" for x in s["layers"]])
    lines = [
        f"# Simulation: {s['name']} on {r['data']['name']}",
        "",
        f"Network {layers}; T = {s['time_steps']}, window {s['window']}, "
        f"{s['rule'].upper()} with {s['signal'].upper()}, updates {s['update']}, learning rate "
        f"{s['learning_rate']:g}. Data: {r['data']['name']} ({r['data']['train']} train / "
        f"{r['data']['validation']} validation / {r['data']['test']} test), "
        f"{r['data']['encoding']} encoding. {r['config']['samples']} samples learned online at "
        f"batch 1, seed {r['config']['seed']}; {r['wall_seconds']:.1f} s.",
        "",
        md_table(["engine", "test accuracy", "test loss", "hidden spike rate"],
                 [[n, f"{100 * r[n]['test_accuracy']:.2f}%", f"{r[n]['test_loss']:.4f}",
                   ", ".join(f"{x:.3f}" for x in r[n]["hidden_spike_rate"])] for n in engines]),
        "",
        "## Operations per learned sample (counted)",
        "",
        md_table(["operation", *engines],
                 [[k.replace("_", " "), *[r[n]["ops_per_sample"][k] for n in engines]]
                  for k in ("synops", "neuron_updates", "trace_updates", "eligibility_macs",
                            "signal_macs", "learning_macs", "weight_writes")]),
        "",
        "## Validation accuracy over samples",
        "",
        md_table(["samples", *engines],
                 [[k, *[f"{100 * r['curve']['accuracy'][n][i]:.1f}%" for n in engines]]
                  for i, k in enumerate(r["curve"]["samples"])]),
        "",
        f"## Memory on {r['device']['name']}",
        "",
        md_table(["bank", "capacity", "used"],
                 [[b["name"], b["capacity_bytes"], b["used_bytes"]]
                  for b in r["memory"]["banks"]]),
        "",
    ]
    return "\n".join(lines)


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    """report.json, report.md and learning_curve.png, each written atomically."""
    from edgesnn.plots import learning_curve_png
    from edgesnn.report import to_json, write_atomic

    engines = [n for n in ENGINES if n in report]
    png = learning_curve_png(report["curve"]["samples"],
                             {n: report["curve"]["accuracy"][n] for n in engines},
                             f"{report['spec']['name']} on {report['device']['name']}: online "
                             f"learning, batch 1 ({report['data']['name']})",
                             {n: report[n]["test_accuracy"] for n in engines})
    return [write_atomic(out / "report.json", to_json(report)),
            write_atomic(out / "report.md", to_markdown(report)),
            write_atomic(out / "learning_curve.png", png)]
