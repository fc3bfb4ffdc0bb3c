"""``edgesnn profile``: does this network, learning on the chip, fit this device?

Builds one plain dict (the JSON report) from a spec, a device and two mean
spike rates: the memory map of on-chip S-TLLR learning per bank, analytic
per-sample operation counts and an energy estimate, each beside what BPTT and
a float32 implementation of the same network would need; and renders it as
Markdown for people.
"""

from __future__ import annotations

from typing import Any

from edgesnn import analytic
from edgesnn.hw import Device
from edgesnn.plan import (Plan, as_float32, bptt_tensors, learning_tensors, make_plan,
                          total_packed_bytes)
from edgesnn.report import energy, human, kib, md_table, power_of_two
from edgesnn.spec import NetworkSpec


def profile(spec: NetworkSpec, device: Device, input_rate: float = 0.02,
            hidden_rate: float = 0.05) -> dict[str, Any]:
    """The profile report as a JSON-ready dict (see the module docstring)."""
    plan = make_plan(spec, device)
    ops = analytic.stllr_ops(spec, input_rate, hidden_rate, device.decay)
    ops32 = analytic.stllr_ops(spec, input_rate, hidden_rate)    # float decays multiply
    infer = analytic.forward_ops(spec, input_rate, hidden_rate, device.decay)
    bptt = analytic.bptt_ops(spec, input_rate, hidden_rate, device.decay)
    tensors = learning_tensors(spec, device)
    bptt_t = bptt_tensors(spec, device)
    return {
        "command": "profile",
        "spec": _spec_summary(spec),
        "device": {"name": device.name, "title": device.title, "source": device.source,
                   "clock_mhz": device.clock_mhz, "sram_bytes": device.sram_bytes},
        "fits": plan.fits,
        "problems": list(plan.problems),
        "rates": {"input": input_rate, "hidden": hidden_rate},
        "memory": _memory(plan),
        "ops": ops.as_dict(),
        "energy_pj": analytic.energy_pj(ops, plan),
        "inference": {"ops": infer.as_dict(), "energy_pj": analytic.energy_pj(infer, plan)},
        "bptt": {
            "memory_bytes": total_packed_bytes(bptt_t),
            "memory_bytes_float32": total_packed_bytes(as_float32(bptt_t)),
            "state_elements": analytic.bptt_state_elements(spec),
            "ops": bptt.as_dict(),
            "multiplies_float32": analytic.bptt_ops(spec, input_rate, hidden_rate).multiplies,
            "energy_pj": analytic.bptt_energy_pj(spec, plan, input_rate, hidden_rate),
        },
        "float32": {
            "memory_bytes": total_packed_bytes(as_float32(tensors)),
            "multiplies": ops32.multiplies,
            "energy_pj": analytic.energy_pj(ops32, plan, float32=True),
        },
        "stllr": {"state_elements": (analytic.tess_state_elements(spec)
                                     if spec.learning.signal == "tess"
                                     else analytic.stllr_state_elements(spec)),
                  "memory_bytes_packed": total_packed_bytes(tensors)},
    }


def rule_words(s: dict[str, Any]) -> str:
    """How a report names the rule of spec summary ``s``: "STLLR with BP (stored
    feedback)", or the frozen-hidden baseline's "readout only (hidden layers frozen)"."""
    if s.get("hidden") == "frozen":
        return "readout only (hidden layers frozen)"
    words = f"{s['rule'].upper()} with {s['signal'].upper()}"
    return words + (f" ({s['feedback']} feedback)" if s["feedback"] else "")


def _spec_summary(spec: NetworkSpec) -> dict[str, Any]:
    ln = spec.learning
    return {
        "name": spec.name, "source": spec.source, "inputs": spec.inputs,
        "time_steps": spec.time_steps, "window": ln.window,
        "layers": [{"kind": layer.kind, "size": layer.size,
                    **({"tess_groups": layer.tess_groups} if layer.tess_groups else {})}
                   for layer in spec.layers],
        "rule": ln.rule, "signal": ln.signal, "hidden": ln.hidden,
        "feedback": ln.feedback if ln.signal == "dfa" else None,
        **({"tess_fmin": ln.tess_fmin, "tess_fmax": ln.tess_fmax} if ln.signal == "tess" else {}),
        "update": ln.update, "residual": ln.residual if ln.per_sample else None,
        "learning_rate": 2.0 ** -ln.learning_rate_shift,
        "lr_halving_every": ln.lr_halving_every,
    }


def _memory(plan: Plan) -> dict[str, Any]:
    by_bank: dict[str, list[str]] = {u.bank.name: [] for u in plan.banks}
    for p in plan.placements:
        by_bank[p.bank].append(p.tensor.name)
    return {
        "total_bytes": plan.total_bytes,
        "banks": [{"name": u.bank.name, "capacity_bytes": u.bank.size_bytes,
                   "used_bytes": u.used_bytes, "percent": round(100 * u.fraction, 2),
                   "word_bits": u.bank.word_bits, "tensors": by_bank[u.bank.name]}
                  for u in plan.banks],
        "tensors": [{"name": p.tensor.name, "kind": p.tensor.kind, "role": p.tensor.role,
                     "shape": list(p.tensor.shape),
                     "format": str(p.tensor.fmt) if p.tensor.fmt else f"{p.tensor.bits}-bit",
                     "bank": p.bank, "bytes": p.bytes}
                    for p in plan.placements],
    }


def to_markdown(r: dict[str, Any]) -> str:
    """Render a profile report for people."""
    s, d, m = r["spec"], r["device"], r["memory"]
    layers = " → ".join([str(s["inputs"])] + [f"{x['size']} {x['kind']}" for x in s["layers"]])
    verdict = "**fits**" if r["fits"] else "**does not fit**: " + "; ".join(r["problems"])
    out = [
        f"# Profile: {s['name']} on {d['name']}",
        "",
        f"{d['title']}. Network {layers}; T = {s['time_steps']}, window {s['window']}, "
        f"{rule_words(s)}, updates {s['update']}, learning rate {power_of_two(s['learning_rate'])}.",
        "",
        f"On-chip learning {verdict}. Spike rates assumed: inputs {r['rates']['input']:g}, "
        f"hidden {r['rates']['hidden']:g} per neuron per step.",
        "",
        "## Memory map",
        "",
        md_table(["bank", "word bits", "capacity", "used", "% used", "tensors"],
                 [[b["name"], b["word_bits"], kib(b["capacity_bytes"]), kib(b["used_bytes"]),
                   f"{b['percent']:.1f}%", ", ".join(b["tensors"]) or "—"] for b in m["banks"]]),
        "",
        md_table(["tensor", "kind", "shape", "format", "bank", "bytes"],
                 [[t["name"], t["kind"], "×".join(map(str, t["shape"])), t["format"], t["bank"],
                   t["bytes"]] for t in m["tensors"]]),
        "",
        "## Against BPTT and float32",
        "",
        md_table(["", "on-chip S-TLLR", "BPTT (device formats)", "BPTT float32", "S-TLLR float32"],
                 [["memory", kib(m["total_bytes"]), kib(r["bptt"]["memory_bytes"]),
                   kib(r["bptt"]["memory_bytes_float32"]), kib(r["float32"]["memory_bytes"])],
                  ["learning state (elements)", r["stllr"]["state_elements"],
                   r["bptt"]["state_elements"], r["bptt"]["state_elements"],
                   r["stllr"]["state_elements"]],
                  ["learning MACs / sample", r["ops"]["learning_macs"],
                   r["bptt"]["ops"]["learning_macs"], r["bptt"]["ops"]["learning_macs"],
                   r["ops"]["learning_macs"]],
                  ["multiplies / sample", r["ops"]["multiplies"],
                   r["bptt"]["ops"]["multiplies"], r["bptt"]["multiplies_float32"],
                   r["float32"]["multiplies"]],
                  ["energy / sample", energy(r["energy_pj"]["total"]),
                   energy(r["bptt"]["energy_pj"]["total"]), "—",
                   energy(r["float32"]["energy_pj"]["total"])]]),
        "",
        "## Operations per sample (analytic, dense: every synapse in every window step)",
        "",
        md_table(["operation", "learning", "inference only"],
                 [[k.replace("_", " "), r["ops"][k], r["inference"]["ops"][k]]
                  for k in ("synops", "neuron_updates", "trace_updates", "eligibility_macs",
                            "signal_macs", "learning_macs", "multiplies", "weight_writes")]),
        "",
        "## Energy per sample",
        "",
        md_table(["component", "fixed point", "float32"],
                 [[k.replace("_", " "), energy(v), energy(r["float32"]["energy_pj"][k])]
                  for k, v in r["energy_pj"].items()]),
        "",
        f"Inference alone: {energy(r['inference']['energy_pj']['total'])} per sample. "
        f"Counts are dense analytic upper bounds at the assumed rates ({human(r['ops']['synops'])} "
        "synaptic operations): learning touches every synapse in every window step. The "
        "event-driven simulators count only the work done, skipping rows whose factors are zero.",
        "",
    ]
    return "\n".join(out)
