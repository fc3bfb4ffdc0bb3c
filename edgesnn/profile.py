"""``edgesnn profile``: does this network, learning on the chip, fit this device?

Builds one plain dict (the JSON report) from a spec, a device and two mean
spike rates: the memory map of on-chip S-TLLR learning per bank, analytic
per-sample operation counts and an energy estimate, each beside what BPTT and
a float32 implementation of the same network would need; and renders it as
Markdown for people.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgesnn import analytic
from edgesnn.hw import Device
from edgesnn.plan import (Plan, as_float32, bptt_tensors, learning_tensors, make_plan,
                          total_packed_bytes)
from edgesnn.report import energy, human, kib, md_table, power_of_two
from edgesnn.rules import tess
from edgesnn.spec import DELAY_DEFAULTS, NetworkSpec


def profile(spec: NetworkSpec, device: Device, input_rate: float = 0.02,
            hidden_rate: float = 0.05) -> dict[str, Any]:
    """The profile report as a JSON-ready dict (see the module docstring)."""
    plan = make_plan(spec, device)
    ops = analytic.stllr_ops(spec, input_rate, hidden_rate, device.decay, device.tess.basis)
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
        **({"tess_basis": b} if (b := tess.basis_summary(spec, device)) else {}),
        **({"delays": delay_summary(plan, ops, input_rate, hidden_rate)}
           if spec.delayed else {}),
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
        "rules": rule_comparison(plan, input_rate, hidden_rate),
        "stllr": {"state_elements": analytic.learning_state_elements(spec),
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
                    **({"tess_groups": layer.tess_groups} if layer.tess_groups else {}),
                    **({"delays": layer.delays, "max_delay": layer.max_delay,
                        "sigma": layer.sigma, "delay_lr": 2.0 ** -layer.delay_lr_shift}
                       if layer.delayed else {}),
                    **({"connectivity": layer.connectivity} if layer.sparse else {})}
                   for layer in spec.layers],
        "rule": ln.rule, "signal": ln.signal, "hidden": ln.hidden,
        "feedback": ln.feedback if ln.signal == "dfa" else None,
        **({"tess_fmin": ln.tess_fmin, "tess_fmax": ln.tess_fmax,
            "tess_temperature": ln.tess_temperature} if ln.signal == "tess" else {}),
        "update": ln.update, "residual": ln.residual if ln.per_sample else None,
        "learning_rate": 2.0 ** -ln.learning_rate_shift,
        "lr_halving_every": ln.lr_halving_every,
    }


#: plan tensors that exist for delays or a sparse mask (``plan._delay_state_tensors``,
#: ``plan._delay_learning_tensors``, the slope table)
DELAY_TENSORS = (".d", ".hist", ".ring", ".eps", ".dd", ".mask")


def _is_delay_tensor(name: str) -> bool:
    return name == "lut.slope" or (name.startswith("L") and name.endswith(DELAY_TENSORS))


def without_delays(spec: NetworkSpec) -> NetworkSpec:
    """``spec`` with every layer's delays removed (its mask kept)."""
    plain = {k: v for k, v in DELAY_DEFAULTS.items() if k != "connectivity"}
    return replace(spec, layers=tuple(replace(x, **plain) for x in spec.layers))


def delay_summary(plan: Plan, ops: analytic.OpCounts, input_rate: float,
                  hidden_rate: float) -> dict[str, Any]:
    """What delays and sparse masks cost on ``plan``: their tensors' bytes and share of the
    memory map, and the energy their learning work adds (the delay eligibility's traces
    and tap products, the delay gradient and writes, the buffers' reads and writes and the
    slope-table reads: the analytic energy of the spec's ``ops`` against the same spec
    without delays, mask kept), and the buffers' and table's own part of it."""
    spec, device = plan.spec, plan.device
    mine = [p for p in plan.placements if _is_delay_tensor(p.tensor.name)]
    plain = without_delays(spec)
    plain_ops = analytic.stllr_ops(plain, input_rate, hidden_rate, device.decay,
                                   device.tess.basis)
    energy = analytic.energy_pj(ops, plan)
    total = energy["total"]
    added = total - analytic.energy_pj(plain_ops, make_plan(plain, device))["total"]
    return {
        "tensors": [{"name": p.tensor.name, "bytes": p.bytes, "bank": p.bank,
                     "description": p.tensor.description} for p in mine],
        "bytes": sum(p.bytes for p in mine),
        "memory_percent": round(100 * sum(p.bytes for p in mine) / max(plan.total_bytes, 1), 2),
        "learning_energy_pj": added,
        "energy_percent": round(100 * added / total, 2) if total else 0.0,
        "buffer_energy_pj": energy["delay_buffers"],
        "buffer_energy_percent": round(100 * energy["delay_buffers"] / total, 2) if total else 0.0,
    }


def _delays_markdown(d: dict[str, Any]) -> list[str]:
    return ["## Delays and sparse masks",
            "",
            md_table(["tensor", "bank", "bytes", "what"],
                     [[t["name"], t["bank"], t["bytes"], t["description"]]
                      for t in d["tensors"]]),
            "",
            f"Together {d['bytes']:,} bytes, {d['memory_percent']:.1f}% of the memory map."
            + (f" The delays add {energy(d['learning_energy_pj'])} per sample "
               f"({d['energy_percent']:.1f}% of the energy: their buffers, eligibility traces, "
               f"tap products, gradient and writes), of which the spike histories, rings and "
               f"slope table take {energy(d['buffer_energy_pj'])} "
               f"({d['buffer_energy_percent']:.1f}%)."
               if d["learning_energy_pj"] else ""),
            ""]


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


#: the TESS paper's reductions against BPTT (arXiv 2502.01837, VGG-9 networks)
PAPER_TESS = {"macs": (205, 661), "memory": (3, 10)}


def _variants(spec: NetworkSpec) -> list[tuple[str, NetworkSpec]]:
    """The online rules this network could learn with, as spec variants: S-TLLR with BP,
    with DFA (regenerated feedback), TESS (the spec's groups, else no pooling) and the
    frozen-hidden baseline; the spec's own rule is one of them."""
    ln = spec.learning
    learn = replace(ln, hidden="learn")
    tess_layers = tuple(replace(x, tess_groups=x.tess_groups or x.size) if x.spiking else x
                        for x in spec.layers)
    plain = tuple(replace(x, tess_groups=None) for x in spec.layers)
    return [
        ("S-TLLR, BP", replace(spec, layers=plain, learning=replace(learn, signal="bp"))),
        ("S-TLLR, DFA", replace(spec, layers=plain, learning=replace(
            learn, signal="dfa", feedback="regenerated"))),
        ("TESS", replace(spec, layers=tess_layers, learning=replace(learn, signal="tess"))),
        ("frozen hidden (readout only)", replace(spec, layers=plain, learning=replace(
            ln, signal="bp", hidden="frozen"))),
    ]


def rule_comparison(plan: Plan, input_rate: float, hidden_rate: float) -> list[dict[str, Any]]:
    """BPTT and every online rule on this network and device: memory (bytes packed
    bit-tight in the device's formats, so that BPTT's activation store compares like for
    like), learning state elements, dense learning and signal MACs and energy per sample,
    and BPTT's MACs and memory divided by each rule's, for ``plan``'s spec and device."""
    spec, device = plan.spec, plan.device
    bptt_ops = analytic.bptt_ops(spec, input_rate, hidden_rate, device.decay)
    bptt_mem = total_packed_bytes(bptt_tensors(spec, device))
    rows = [{"rule": "BPTT", "memory_bytes": bptt_mem,
             "state_elements": analytic.bptt_state_elements(spec),
             "learning_macs": bptt_ops.learning_macs, "signal_macs": bptt_ops.signal_macs,
             "energy_pj": analytic.bptt_energy_pj(spec, plan, input_rate, hidden_rate)["total"]}]
    for name, v in _variants(spec):
        ops = analytic.stllr_ops(v, input_rate, hidden_rate, device.decay, device.tess.basis)
        rows.append({"rule": name, "memory_bytes": total_packed_bytes(learning_tensors(v, device)),
                     "state_elements": analytic.learning_state_elements(v),
                     "learning_macs": ops.learning_macs,
                     "signal_macs": ops.signal_macs,
                     "energy_pj": analytic.energy_pj(ops, make_plan(v, device))["total"]})
    for row in rows:
        row["bptt_macs_ratio"] = bptt_ops.learning_macs / max(row["learning_macs"], 1e-300)
        row["bptt_memory_ratio"] = bptt_mem / row["memory_bytes"]
    return rows


def _rules_markdown(r: dict[str, Any]) -> list[str]:
    rows = r["rules"]
    out = ["## Learning rules on this network",
           "",
           "Every rule on the same network and device, dense analytic counts at the assumed "
           "rates; memory packed bit-tight in the device's formats (BPTT stores every step's "
           "activations). The frozen row is the baseline a hidden-layer rule must beat in "
           "accuracy to earn its memory and energy.",
           "",
           md_table(["rule", "memory", "learning state (elements)", "learning MACs / sample",
                     "of which signal", "energy / sample", "BPTT MACs ÷", "BPTT memory ÷"],
                    [[x["rule"], kib(x["memory_bytes"]), x["state_elements"],
                      x["learning_macs"], x["signal_macs"], energy(x["energy_pj"]),
                      f"{x['bptt_macs_ratio']:.2f}×", f"{x['bptt_memory_ratio']:.2f}×"]
                     for x in rows]),
           ""]
    if r["spec"]["signal"] == "tess":
        t = next(x for x in rows if x["rule"] == "TESS")
        (m0, m1), (b0, b1) = PAPER_TESS["macs"], PAPER_TESS["memory"]
        out += [f"Against the TESS paper: it reports {m0}-{m1}× fewer MACs and {b0}-{b1}× "
                f"less memory than BPTT; on this network TESS needs "
                f"{t['bptt_macs_ratio']:.2f}× fewer learning MACs and "
                f"{t['bptt_memory_ratio']:.2f}× less memory. The paper's networks are VGG-9 "
                "convolutional networks with long sequences: each weight is shared by every "
                "spatial position, so weights are a small part of memory and BPTT's stored "
                "feature maps of every step dominate it, and the backward pass through the "
                "layers costs as much as the forward pass at every step. Here the layers are "
                "dense (and recurrent): the weights and their eligibility updates (2 MACs per "
                "synapse per window step, the same for S-TLLR and TESS) dominate both memory "
                "and MACs; the online rules differ only in the signal (TESS: 2·C·D plus the "
                "pooling per layer; BP: C·n at the top layer and n·n_above below it) and save "
                "BPTT's per-step activations. The ratio grows with T/window and with "
                "activations per weight; docs/results.md works it through.", ""]
    return out


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
        *([tess.basis_sentence(r["tess_basis"]), ""] if "tess_basis" in r else []),
        *(_delays_markdown(r["delays"]) if "delays" in r else []),
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
        *_rules_markdown(r),
        "## Operations per sample (analytic, dense: every synapse in every window step)",
        "",
        md_table(["operation", "learning", "inference only"],
                 [[k.replace("_", " "), r["ops"][k], r["inference"]["ops"][k]]
                  for k in ("synops", "neuron_updates", "trace_updates", "eligibility_macs",
                            "signal_macs", "learning_macs", "multiplies", "weight_writes",
                            *(k for k in ("phase_adds", "basis_reads") if r["ops"][k]))]),
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
