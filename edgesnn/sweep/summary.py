"""A sweep folder's results for people and scripts: summary.json and summary.md.

Rows are grid points; a point run on several seeds shows the mean over its seeds
(and the number of seeds). Figures per row:

- test and validation accuracy of the fixed engine, of its float baseline, and the
  gap ``float - fixed`` in points of test accuracy (from the counts);
- memory: bytes the plan uses over all banks; energy and cycles per learned sample
  and per inference (the fixed engine in the device's formats);
- saturations per learned sample, per tensor (``counters`` names, e.g. ``L0.W``).

*The tensor whose saturations track the accuracy loss*: for every tensor that
saturates in at least one point, the Spearman rank correlation (average ranks for
ties) across points between its saturations per learned sample and the gap. The
tensor named is the one with the largest positive correlation over at least
``MIN_POINTS`` points; the summary gives its coefficient, the runner-up and the
number of points, and says when no tensor qualifies (every saturation rate
constant, or fewer points).

Pareto fronts: the points no other point beats on both test accuracy (higher) and
cost (lower energy per learned sample, or fewer bytes of memory).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.sweep.grid import short

#: fewest points a rank correlation is computed over
MIN_POINTS = 3


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def rows(man: dict, fixed: list[dict]) -> list[dict]:
    """One row per grid point (mean over its seeds), in grid order."""
    groups: dict[str, list[dict]] = {}
    order: list[str] = []
    for r in fixed:
        key = repr(r["point"]) + "|" + r["hw"]
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(r)
    out = []
    for key in order:
        rs = groups[key]
        ok = [r for r in rs if r.get("status") == "ok"]
        first = rs[0]
        row: dict[str, Any] = {"point": first["point"], "hw": first["hw"],
                               "seeds": [r["seed"] for r in rs], "ids": [r["id"] for r in rs],
                               "errors": [r["error"] for r in rs if r.get("status") != "ok"]}
        if ok:
            tensors = sorted({t for r in ok for t in r["saturations_per_sample"]})
            row.update({
                "format_bits": format_bits(ok[0]["config"]["device"]),
                "test_accuracy": _mean([r["test_accuracy"] for r in ok]),
                "validation_accuracy": _mean([r["validation_accuracy"] for r in ok]),
                "float_test_accuracy": _mean([r["float"].get("test_accuracy") for r in ok]),
                "gap_points": _mean([r["gap_points"] for r in ok]),
                "validation_gap_points": _mean([r["validation_gap_points"] for r in ok]),
                "memory_bytes": ok[0]["memory"]["used_bytes"],
                "energy_pj_per_sample": _mean([r["energy_pj_per_sample"]["total"] for r in ok]),
                "energy_pj_per_inference": _mean([r["energy_pj_per_inference"]["total"]
                                                  for r in ok]),
                "cycles_per_sample": _mean([r["cycles_per_sample"]["cycles"] for r in ok]),
                "cycles_per_inference": _mean([r["cycles_per_inference"]["cycles"] for r in ok]),
                "saturations_per_sample": {t: _mean([r["saturations_per_sample"].get(t, 0.0)
                                                     for r in ok]) for t in tensors},
            })
        out.append(row)
    return out


def format_bits(device_data: dict) -> dict[str, int]:
    """Total bits of every fixed-point format a device TOML declares (``signed + int_bits +
    frac_bits``; float formats left out)."""
    out = {}
    for kind, f in (device_data.get("formats") or {}).items():
        if isinstance(f, dict) and "float" not in f:
            out[kind] = int(bool(f.get("signed", True))) + int(f.get("int_bits", 0)) \
                + int(f.get("frac_bits", 0))
    return out


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (ties get their average rank)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        m = x == v
        r[m] = r[m].mean()
    return r


def spearman(x, y) -> float | None:
    """Spearman's rank correlation of two equal-length sequences (None when either is
    constant or shorter than ``MIN_POINTS``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < MIN_POINTS or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    rx, ry = ranks(x), ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def culprit(table: list[dict]) -> dict:
    """The tensor whose saturations track the gap (see the module docstring)."""
    ok = [r for r in table if r.get("gap_points") is not None]
    tensors = sorted({t for r in ok for t, v in r["saturations_per_sample"].items() if v})
    scores = []
    for t in tensors:
        rho = spearman([r["saturations_per_sample"].get(t, 0.0) for r in ok],
                       [r["gap_points"] for r in ok])
        if rho is not None:
            scores.append((rho, t))
    scores.sort(key=lambda s: (-s[0], s[1]))
    best = next(((rho, t) for rho, t in scores if rho > 0), None)
    return {"tensor": best[1] if best else None, "spearman": best[0] if best else None,
            "points": len(ok), "ranking": [{"tensor": t, "spearman": rho} for rho, t in scores]}


def pareto(table: list[dict], cost: str) -> list[int]:
    """Indices of the rows on the accuracy/``cost`` front (higher accuracy, lower cost),
    sorted by cost."""
    ok = [(i, r) for i, r in enumerate(table) if r.get("test_accuracy") is not None]
    front = []
    for i, r in ok:
        dominated = any(o[cost] <= r[cost] and o["test_accuracy"] >= r["test_accuracy"]
                        and (o[cost] < r[cost] or o["test_accuracy"] > r["test_accuracy"])
                        for _, o in ok)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (table[i][cost], -table[i]["test_accuracy"]))


def build(out: Path) -> dict:
    """The summary dict of a sweep folder (everything summary.md and the figures show)."""
    from edgesnn.sweep import store

    man, fixed, floats = store.load_results(out)
    table = rows(man, fixed)
    ident, info = man["identity"], man.get("info", {})
    keys = info.get("swept_keys", [])
    baseline = [{"id": f["id"], "seed": f["seed"], "test_accuracy": f.get("test_accuracy"),
                 "validation_accuracy": f.get("validation_accuracy"),
                 "status": f.get("status"), "error": f.get("error")}
                for f in floats.values()]
    return {
        "command": "sweep", "spec": info.get("spec_name"), "hw": ident.get("hw"),
        "grid": info.get("grid_file"), "run": ident.get("run"), "swept_keys": keys,
        "swept_axes": info.get("swept_axes", [[k] for k in keys]),
        "tasks": {"points": len(man["fixed"]), "points_done": len(fixed),
                  "floats": len(man["floats"]), "floats_done": len(floats)},
        "float": baseline, "rows": table, "culprit": culprit(table),
        "pareto_energy": pareto([r for r in table], "energy_pj_per_sample")
        if any(r.get("test_accuracy") is not None for r in table) else [],
        "pareto_memory": pareto([r for r in table], "memory_bytes")
        if any(r.get("test_accuracy") is not None for r in table) else [],
    }


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _num(x, fmt: str = "{:+.2f}") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def point_label(row: dict, keys: list[str]) -> str:
    vals = dict((k, v) for k, v in row["point"])
    parts = [f"{short(k)}={vals[k]}" for k in keys if k in vals]
    return ", ".join(parts) or "(base)"


def to_markdown(s: dict, figures: list[str]) -> str:
    """summary.md: the table of points, the float baseline, the culprit, the fronts."""
    from edgesnn.report import energy, md_table

    keys = [k for k in s["swept_keys"]]
    t = s["tasks"]
    run = s["run"] or {}
    lines = [f"# Sweep: {s['spec']} on {s['hw']}", "",
             f"Grid {s['grid']}: {t['points']} point runs ({t['points_done']} done), "
             f"{t['floats']} float baselines ({t['floats_done']} done); "
             f"{run.get('samples', '?')} samples learned per run, data {run.get('data', '?')} "
             f"({run.get('encoding', '?')}), seeds {', '.join(map(str, run.get('seeds', [])))}. "
             f"Swept: {', '.join(short(k) for k in keys) or 'nothing'}.", ""]
    if s["float"]:
        fl = [f for f in s["float"] if f["status"] == "ok"]
        lines += [f"Float baseline (device-mode float engine, once per seed and spec "
                  f"variant): test accuracy "
                  f"{', '.join(_pct(f['test_accuracy']) for f in fl) or '—'}.", ""]
    sat_names = sorted({n for r in s["rows"] for n in r.get("saturations_per_sample", {})})
    header = ["point", "seeds", "fixed test", "fixed validation", "float test", "gap (points)",
              "memory (B)", "energy / learned sample", "energy / inference",
              "cycles / sample", "saturations / sample"]
    body = []
    for r in s["rows"]:
        if r.get("test_accuracy") is None:
            body.append([point_label(r, keys), len(r["seeds"]), "error: " + "; ".join(r["errors"]),
                         "", "", "", "", "", "", "", ""])
            continue
        sat = r["saturations_per_sample"]
        top = sorted(((v, k) for k, v in sat.items() if v), reverse=True)[:2]
        body.append([point_label(r, keys), len(r["seeds"]), _pct(r["test_accuracy"]),
                     _pct(r["validation_accuracy"]), _pct(r["float_test_accuracy"]),
                     _num(r["gap_points"]), r["memory_bytes"],
                     energy(r["energy_pj_per_sample"]), energy(r["energy_pj_per_inference"]),
                     round(r["cycles_per_sample"]),
                     ", ".join(f"{k} {v:.3g}" for v, k in top) or "0"])
    lines += ["## Points", "", md_table(header, body), ""]
    c = s["culprit"]
    lines += ["## Which tensor's saturations track the accuracy loss", "",
              "For every tensor that saturates somewhere, the Spearman rank correlation across "
              "points between its saturations per learned sample and the gap to float; the "
              f"tensor named has the largest positive one (over {MIN_POINTS} points or more).",
              ""]
    if c["tensor"]:
        others = [x for x in c["ranking"] if x["tensor"] != c["tensor"]]
        nxt = (f"; next: {others[0]['tensor']} ({others[0]['spearman']:+.2f})" if others else "")
        lines += [f"**{c['tensor']}**: Spearman {c['spearman']:+.2f} over {c['points']} points"
                  f"{nxt}.", ""]
    else:
        lines += [f"No tensor qualifies ({c['points']} points; no saturation rate that varies "
                  "and rises with the gap).", ""]
    if c["ranking"]:
        lines += [md_table(["tensor", "Spearman (saturations vs gap)"],
                           [[x["tensor"], f"{x['spearman']:+.2f}"] for x in c["ranking"]]), ""]
    for name, key, what in (("energy", "pareto_energy", "energy per learned sample"),
                            ("memory", "pareto_memory", "memory")):
        front = s[key]
        if front:
            lines += [f"## Pareto front: accuracy against {what}", "",
                      md_table(["point", "device", "fixed test", what],
                               [[point_label(s["rows"][i], keys), s["rows"][i]["hw"],
                                 _pct(s["rows"][i]["test_accuracy"]),
                                 energy(s["rows"][i]["energy_pj_per_sample"]) if name == "energy"
                                 else s["rows"][i]["memory_bytes"]] for i in front]), ""]
    if sat_names:
        lines += ["Saturations per learned sample, all tensors: summary.json (`rows[].saturations_"
                  "per_sample`) and saturations.png.", ""]
    if figures:
        lines += ["Figures: " + ", ".join(figures) + ".", ""]
    return "\n".join(lines)


def write_summary(out: Path) -> list[Path]:
    """summary.json, summary.md and the figures of a sweep folder, each atomically."""
    from edgesnn.report import to_json, write_atomic
    from edgesnn.sweep.figures import render

    s = build(out)
    figs = render(s)
    files: dict[str, str | bytes] = {"summary.json": to_json(s),
                                     "summary.md": to_markdown(s, sorted(figs))}
    files.update(figs)
    return [write_atomic(Path(out) / name, data) for name, data in files.items()]
