"""What ``edgesnn fit`` writes: the fitted device TOML, ``fit.md`` and ``fit.json``.

The fitted device is the input device's TOML with its formats replaced (every kind of
``search.KINDS`` written out) and its name suffixed ``-fit``; ``edgesnn hw validate``
accepts it and ``edgesnn simulate --hw OUT/NAME-fit.toml`` runs it. The report lists the
start, every step tried with its gap (the worst seed), memory and energy, and what the
fitted device saves against the input device.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from edgesnn.fit.search import KINDS, FitResult, Trial
from edgesnn.report import energy, kib, md_table, to_json, write_atomic
from edgesnn.tomlwrite import dumps


def fitted_device(result: FitResult) -> dict[str, Any]:
    """The fitted device's TOML mapping (name ``NAME-fit``)."""
    data = copy.deepcopy(result.device)
    dev = data["device"]
    dev["name"] = f"{dev['name']}-fit"
    if "title" in dev:
        dev["title"] = f"{dev['title']} (formats fitted by edgesnn fit)"
    return data


def _change(saved: float, fraction: float, unit) -> str:
    """``saves 1.6 KiB (2.6 %)`` or, when the fitted device needs more, ``costs ... more``."""
    if saved >= 0:
        return f"saves {unit(saved)} ({100 * fraction:.1f} %)"
    return f"costs {unit(-saved)} ({-100 * fraction:.1f} %) more"


def _fmt(f: dict[str, Any]) -> str:
    sign = "s" if f["signed"] else "u"
    bits = int(f["signed"]) + f["int_bits"] + f["frac_bits"]
    return f"Q{f['int_bits']}.{f['frac_bits']} ({sign}{bits})"


def _gap(t: Trial) -> str:
    if t.error:
        return f"did not run: {t.error}"
    return " / ".join(f"{g:.2f}" for g in t.gaps)


def _gaps(gaps) -> str:
    return " / ".join(f"{g:.2f}" for g in gaps) if gaps else "-"


def _test_split_verdict(test_gaps: list[float], max_gap: float) -> list[str]:
    """What the test split says of the fitted device: the fit chose on the validation
    split, so the test split is the check it has not seen."""
    if not test_gaps:
        return []
    worst = max(test_gaps)
    seed = test_gaps.index(worst)
    if worst <= max_gap:
        return [f"On the test split, which the fit never chose on, the fitted device holds "
                f"the gap too (worst seed: {worst:.2f} points).", ""]
    return [f"**On the test split, which the fit never chose on, the fitted device loses "
            f"{worst:.2f} points on seed {seed}: more than the gap.** The validation split "
            "chose steps whose gap there was within noise of the bar; a gap that must hold "
            "on unseen samples needs more seeds (`--seeds`), more validation points or a "
            "smaller `--max-gap`.", ""]


def summary(result: FitResult, context: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready report (``context``: spec, device, max gap, seeds, samples, objective,
    data, the fitted file's name)."""
    s, e, p = result.start_trial, result.trial, result.preset_trial
    return {
        "command": "fit", **context,
        "widened_rounds": result.widened,
        "preset": {"formats": {k: result.preset["formats"][k] for k in KINDS},
                   "gaps": list(p.gaps), "test_gaps": list(p.test_gaps), "error": p.error,
                   "memory_bytes": p.memory_bytes, "energy_pj": p.energy_pj},
        "start": {"formats": {k: result.start["formats"][k] for k in KINDS},
                  "gaps": list(s.gaps), "test_gaps": list(s.test_gaps),
                  "memory_bytes": s.memory_bytes, "energy_pj": s.energy_pj},
        "steps": [{"step": str(step), "kind": step.kind, "field": step.field, "from": step.old,
                   "to": step.new, "estimated_saving": step.saving, "gaps": list(t.gaps),
                   "error": t.error, "memory_bytes": t.memory_bytes, "energy_pj": t.energy_pj,
                   "kept": kept, "held": t.holds(result.max_gap)}
                  for step, t, kept in result.tried],
        "fitted": {"formats": {k: result.device["formats"][k] for k in KINDS},
                   "gaps": list(e.gaps), "test_gaps": list(e.test_gaps),
                   "memory_bytes": e.memory_bytes, "energy_pj": e.energy_pj},
        # against the device's own formats (also when the narrowing started wider)
        "saves": {"memory_bytes": p.memory_bytes - e.memory_bytes,
                  "memory_fraction": 1 - e.memory_bytes / max(p.memory_bytes, 1),
                  "energy_pj": p.energy_pj - e.energy_pj,
                  "energy_fraction": 1 - e.energy_pj / max(p.energy_pj, 1e-300)},
    }


def markdown(r: dict[str, Any]) -> str:
    s, f, saves, p = r["start"], r["fitted"], r["saves"], r["preset"]
    gap = r["max_gap"]
    start_name = r["device"]
    lines = [
        f"# Fitted formats: {r['spec']} on {start_name}",
        "",
        f"The narrowest formats found that keep the fixed engine within **{gap:g} "
        f"point{'' if gap == 1 else 's'}** of "
        f"float on the validation split ({r['eval_samples']} points) on every one of "
        f"{r['seeds']} seed{'s' if r['seeds'] != 1 else ''}, after {r['samples']:,} learned "
        f"{r['data']} samples a run; steps chosen by {r['objective']} saved. Written: "
        f"`{r['fitted_file']}` (`edgesnn hw validate {r['fitted_file']}`).",
        "",
        f"**The fitted device {_change(saves['memory_bytes'], saves['memory_fraction'], kib)} "
        "of memory and "
        f"{_change(saves['energy_pj'], saves['energy_fraction'], energy)} per learned sample** "
        f"against {start_name}'s formats.",
        "",
        md_table(["format", start_name, *(["widened start"] if r["widened_rounds"] else []),
                  "fitted"],
                 [[k, _fmt(p["formats"][k]),
                   *([_fmt(s["formats"][k])] if r["widened_rounds"] else []),
                   _fmt(f["formats"][k])] for k in KINDS]),
        "",
        md_table(["", "gap per seed (points)", "test split gap (not used to choose)", "memory",
                  "energy / learned sample"],
                 [[start_name, _gap(Trial(tuple(p["gaps"]), error=p["error"])),
                   _gaps(p.get("test_gaps")), kib(p["memory_bytes"]), energy(p["energy_pj"])],
                  *([["widened start", _gaps(s["gaps"]), _gaps(s.get("test_gaps")),
                      kib(s["memory_bytes"]), energy(s["energy_pj"])]]
                    if r["widened_rounds"] else []),
                  ["fitted", _gaps(f["gaps"]), _gaps(f.get("test_gaps")),
                   kib(f["memory_bytes"]), energy(f["energy_pj"])]]),
        "",
        *_test_split_verdict(f.get("test_gaps") or [], gap),
    ]
    if r["widened_rounds"]:
        n = r["widened_rounds"]
        bits = "bit" if n == 1 else "bits"
        lines += [f"The device's own formats lost more than the gap: every format was first "
                  f"widened by up to {n} integer and {n} fractional {bits} (within the "
                  "accumulator; the start column shows the widened formats).", ""]
    lines += ["## The path taken", "",
              "Each step narrows one field of one format to the first width that saves "
              f"{r['objective']}; steps are tried largest saving first, as many at once as "
              "there are workers, and the first of them whose gap holds on every seed is "
              "kept.", ""]
    if r["steps"]:
        lines.append(md_table(
            ["#", "step", "gap per seed (points)", "memory", "energy / learned sample", "kept"],
            [[i + 1, st["step"], _gap(Trial(tuple(st["gaps"]), error=st["error"])),
              kib(st["memory_bytes"]), energy(st["energy_pj"]),
              "yes" if st["kept"] else "held; a step before it was kept" if st["held"] else "no"]
             for i, st in enumerate(r["steps"])]))
    else:
        lines.append("No step saves anything from the start.")
    lines.append("")
    return "\n".join(lines)


def write(out: Path, result: FitResult, context: dict[str, Any]) -> list[Path]:
    """Write the fitted TOML, fit.json and fit.md into ``out`` (each atomically)."""
    dev = fitted_device(result)
    name = f"{dev['device']['name']}.toml"
    ctx = {**context, "fitted_file": str(out / name)}
    r = summary(result, ctx)
    header = (f"{dev['device']['name']}: {context['device']} with the formats edgesnn fit "
              f"found for {context['spec']} (max gap {context['max_gap']:g} points on "
              f"{context['seeds']} seeds, {context['samples']:,} samples); see fit.md")
    return [write_atomic(out / name, dumps(dev, header=header)),
            write_atomic(out / "fit.json", to_json(r)),
            write_atomic(out / "fit.md", markdown(r))]
