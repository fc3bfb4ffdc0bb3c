"""Figures of a sweep summary (matplotlib Agg, PNG bytes; the caller writes them).

``render(summary)`` returns ``{file name: PNG bytes}`` for the figures the grid
allows:

- ``accuracy_vs_bits.png``: one panel per tensor kind whose total width
  (``signed + int_bits + frac_bits``) varies across points, however the grid set it;
  fixed test accuracy (%, mean over seeds) against the width, one line per combination
  of the other swept keys (at most ``MAX_LINES``, else their mean), float dashed;
- ``heatmap.png``: a grid of exactly two swept axes (a ``[[zip]]`` group is one axis),
  fixed test accuracy per cell;
- ``pareto_energy.png`` / ``pareto_memory.png``: test accuracy against energy per
  learned sample (nJ) / memory used (KiB), one colour per device, the front drawn;
- ``saturations.png``: saturations per learned sample, tensor x point (log colour), for
  the tensors that saturate in some point.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgesnn.plots import _png, plt
from edgesnn.sweep.grid import short

#: most lines per panel of accuracy_vs_bits.png (beyond: one mean line)
MAX_LINES = 8


def _label(row: dict, keys: list[str]) -> str:
    vals = dict((k, v) for k, v in row["point"])
    return ", ".join(f"{short(k)}={vals[k]}" for k in keys if k in vals) or "(base)"


def _float_line(s: dict) -> float | None:
    acc = [f["test_accuracy"] for f in s["float"] if f.get("status") == "ok"]
    return 100 * float(np.mean(acc)) if acc else None


def accuracy_vs_bits(s: dict) -> bytes | None:
    rows = [r for r in s["rows"] if r.get("test_accuracy") is not None]
    kinds = sorted({k for r in rows for k in r.get("format_bits", {})
                    if len({q.get("format_bits", {}).get(k) for q in rows}) > 1})
    if not kinds or not rows:
        return None
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), dpi=110,
                             squeeze=False)
    base = _float_line(s)
    for ax, kind in zip(axes[0], kinds):
        # lines: one per combination of the swept keys that do not set this kind's width
        width = {f"device.formats.{kind}.{f}" for f in ("bits", "int_bits", "frac_bits",
                                                        "signed")}
        others = [k for k in s["swept_keys"] if k not in width]
        lines: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            p = dict(map(tuple, r["point"]))
            label = ", ".join(f"{short(k)}={p.get(k)}" for k in others) or "fixed"
            lines[label][int(r["format_bits"][kind])].append(100 * r["test_accuracy"])
        if len(lines) > MAX_LINES:           # too many to tell apart: the mean over them
            merged: dict[int, list[float]] = defaultdict(list)
            for by in lines.values():
                for x, v in by.items():
                    merged[x].extend(v)
            lines = {"fixed (mean over the other keys)": merged}
        xs = sorted({x for by in lines.values() for x in by})
        for label, by in sorted(lines.items()):
            bx = sorted(by)
            ax.plot(bx, [np.mean(by[x]) for x in bx], "-o", ms=3, lw=1, label=label)
        if base is not None:
            ax.axhline(base, ls="--", color="tab:orange", label=f"float {base:.1f}%")
        ax.set_xticks(xs)
        ax.set_xlabel(f"{kind} format (total bits)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{s['spec']} on {s['hw']}: accuracy against width", fontsize=10)
    return _png(fig)


def _cell(row: dict, keys: list[str]) -> str:
    p = dict(map(tuple, row["point"]))
    return ", ".join(str(p.get(k)) for k in keys)


def heatmap(s: dict) -> bytes | None:
    axes = s.get("swept_axes") or [[k] for k in s["swept_keys"]]
    rows = [r for r in s["rows"] if r.get("test_accuracy") is not None]
    if len(axes) != 2 or not rows:
        return None
    ka, kb = axes
    va = sorted({_cell(r, ka) for r in rows}, key=_order)
    vb = sorted({_cell(r, kb) for r in rows}, key=_order)
    grid = np.full((len(va), len(vb)), np.nan)
    for r in rows:
        grid[va.index(_cell(r, ka)), vb.index(_cell(r, kb))] = 100 * r["test_accuracy"]
    a, b = " / ".join(short(k) for k in ka), " / ".join(short(k) for k in kb)
    fig, ax = plt.subplots(figsize=(1.2 * len(vb) + 2.5, 0.6 * len(va) + 2), dpi=110)
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(vb)), vb)
    ax.set_yticks(range(len(va)), va)
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    for i in range(len(va)):
        for j in range(len(vb)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 60 else "black")
    fig.colorbar(im, ax=ax, label="fixed test accuracy (%)")
    ax.set_title(f"{s['spec']} on {s['hw']}", fontsize=10)
    return _png(fig)


def _order(v: str):
    """Sort key of a cell label "5, 16": numbers by value, words after them."""
    def one(x: str):
        try:
            return (0, float(x), "")
        except ValueError:
            return (1, 0.0, x)
    return tuple(one(x) for x in v.split(", "))


def pareto_png(s: dict, cost: str, front_key: str, xlabel: str, scale: float) -> bytes | None:
    rows = [r for r in s["rows"] if r.get("test_accuracy") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    for hw in sorted({r["hw"] for r in rows}):
        rs = [r for r in rows if r["hw"] == hw]
        ax.scatter([r[cost] * scale for r in rs], [100 * r["test_accuracy"] for r in rs],
                   s=18, alpha=0.7, label=hw)
    front = [s["rows"][i] for i in s[front_key]]
    ax.step([r[cost] * scale for r in front], [100 * r["test_accuracy"] for r in front],
            where="post", color="black", lw=1, label="Pareto front")
    base = _float_line(s)
    if base is not None:
        ax.axhline(base, ls="--", color="tab:orange", lw=1, label=f"float {base:.1f}%")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fixed test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{s['spec']}: accuracy against {xlabel.split(' (')[0]}", fontsize=10)
    return _png(fig)


def saturations(s: dict) -> bytes | None:
    rows = [r for r in s["rows"] if r.get("test_accuracy") is not None]
    names = sorted({t for r in rows for t, v in r["saturations_per_sample"].items() if v})
    if not rows or not names:
        return None
    m = np.array([[r["saturations_per_sample"].get(t, 0.0) for r in rows] for t in names])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(rows) + 2), 0.4 * len(names) + 2.2),
                           dpi=110)
    im = ax.imshow(np.log10(m + 1e-3), cmap="magma", aspect="auto")
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(range(len(rows)), [_label(r, s["swept_keys"]) for r in rows], rotation=90,
                  fontsize=6)
    fig.colorbar(im, ax=ax, label="log10(saturations per learned sample + 0.001)")
    ax.set_title("saturations per tensor and point (tensors that never saturate left out)",
                 fontsize=9)
    return _png(fig, tight_bbox=True)


def render(s: dict) -> dict[str, bytes]:
    """Every figure the summary allows (see the module docstring)."""
    figs = {"accuracy_vs_bits.png": accuracy_vs_bits(s), "heatmap.png": heatmap(s),
            "pareto_energy.png": pareto_png(s, "energy_pj_per_sample", "pareto_energy",
                                            "energy per learned sample (nJ)", 1e-3),
            "pareto_memory.png": pareto_png(s, "memory_bytes", "pareto_memory",
                                            "memory used (KiB)", 1 / 1024),
            "saturations.png": saturations(s)}
    return {k: v for k, v in figs.items() if v is not None}
