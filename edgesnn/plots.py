"""Figures (matplotlib, Agg backend, PNG bytes written atomically by the caller)."""

from __future__ import annotations

import io
import textwrap
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve_png(samples: list[int], accuracy: dict[str, list[float]],
                       title: str, test_accuracy: dict[str, float] | None = None) -> bytes:
    """Validation accuracy against training samples seen, one line per engine."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, acc in accuracy.items():
        label = name
        if test_accuracy and name in test_accuracy:
            label += f" (test {100 * test_accuracy[name]:.1f}%)"
        ax.plot(samples, [100 * a for a in acc], marker="o", ms=3, label=label)
    ax.set_xlabel("training samples seen (online, batch 1)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    return _png(fig)


def _png(fig, tight_bbox: bool = False) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", **({"bbox_inches": "tight"} if tight_bbox else {}))
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------------------- energy

#: The energy categories of ``cost.energy_pj`` in stacking order (bottom first), each with
#: its own colour: the same in every figure, run and process.
ENERGY_COLOURS: dict[str, str] = {
    "sram": "#4c72b0",           # blue
    "learning": "#dd8452",       # orange
    "synaptic": "#55a868",       # green
    "neuron": "#c44e52",         # red
    "trace": "#8172b3",          # purple
    "weight_update": "#937860",  # brown
    "lut": "#da8bc3",            # pink
    "lfsr": "#ccb974",           # olive
    "basis": "#17becf",          # cyan (a generated TESS basis)
}
#: the colour of the grouped small categories
OTHER_COLOUR = "#b0b0b0"
#: colours for a category not in ``ENERGY_COLOURS``, chosen by a CRC of its name (stable
#: across processes, unlike ``hash``)
EXTRA_COLOURS = ("#64b5cd", "#8c613c", "#4d4d4d", "#a1c9f4", "#8de5a1", "#ff9f9b")
#: a category below this share of every bar's total is grouped into "other"
SMALL_SHARE = 0.03
#: totals further apart than this factor get a second panel of shares
SHARES_PANEL_RATIO = 10.0


def energy_colour(category: str) -> str:
    """The fixed colour of an energy category (``"other"`` for the grouped ones)."""
    if category == "other":
        return OTHER_COLOUR
    if category in ENERGY_COLOURS:
        return ENERGY_COLOURS[category]
    return EXTRA_COLOURS[zlib.crc32(category.encode()) % len(EXTRA_COLOURS)]


def energy_groups(breakdown: dict[str, dict[str, float]], small: float = SMALL_SHARE
                  ) -> tuple[list[str], list[str]]:
    """``(shown, grouped)``: the categories drawn on their own, in stacking order, and those
    drawn together as ``"other"``, sorted.

    A category is grouped when it is below ``small`` of the total of every bar
    (``breakdown[bar][category]`` in pJ; ``total`` is ignored and recomputed). A lone
    small category keeps its name (grouping it would only hide it); categories that are
    zero in every bar are left out.
    """
    cats = {c for d in breakdown.values() for c in d if c != "total"}
    totals = {b: sum(v for c, v in d.items() if c != "total") for b, d in breakdown.items()}
    present = [c for c in cats if any(d.get(c, 0.0) for d in breakdown.values())]
    grouped = sorted(c for c in present
                     if all(d.get(c, 0.0) < small * totals[b] for b, d in breakdown.items()))
    if len(grouped) < 2:
        grouped = []
    order = list(ENERGY_COLOURS) + sorted(c for c in present if c not in ENERGY_COLOURS)
    shown = [c for c in order if c in present and c not in grouped]
    return shown, grouped


def _nj(v: float) -> str:
    return f"{v:,.0f} nJ" if v >= 100 else f"{v:.3g} nJ"


def energy_bars_png(breakdown: dict[str, dict[str, float]], title: str) -> bytes:
    """Energy per sample by category (stacked bars), one bar per engine/mode, in nJ.

    ``breakdown[bar][category] = pJ``; the ``total`` entry is ignored. Each category has
    its fixed colour (``energy_colour``); categories below 3 % of every bar are one
    "other" segment, named in the legend; each bar carries its total and the share of
    its large segments; the legend sits outside the axes. When the totals differ by more
    than ``SHARES_PANEL_RATIO``, a second panel shows each bar's composition in percent.
    """
    bars = list(breakdown)
    shown, grouped = energy_groups(breakdown)
    series = [(c, c.replace("_", " "), [breakdown[b].get(c, 0.0) / 1e3 for b in bars])
              for c in shown]
    if grouped:
        names = [c.replace("_", "\u00a0") for c in grouped]         # keep a name on one line
        label = "\n".join(textwrap.wrap("other: " + ", ".join(names), 28))
        label = label.replace("\u00a0", " ") + f"\n(each < {100 * SMALL_SHARE:g} % of every bar)"
        series.append(("other", label, [sum(breakdown[b].get(c, 0.0) for c in grouped) / 1e3
                                        for b in bars]))
    totals = [sum(vals[i] for _, _, vals in series) for i in range(len(bars))]
    positive = [t for t in totals if t > 0]
    two = bool(positive) and max(positive) > SHARES_PANEL_RATIO * min(positive)
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(9.6 if two else 7.2, 4.2), dpi=120,
                             squeeze=False)
    ax = axes[0, 0]
    x = range(len(bars))
    if two:                          # totals apart by orders of magnitude: log totals + shares
        ax.bar(x, totals, color="#606060", width=0.6)
        ax.set_yscale("log")
        ax.set_ylabel("total energy per sample (nJ, log scale)")
        for i, t in enumerate(totals):
            ax.annotate(_nj(t), (i, t), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
        share_ax = axes[0, 1]
        share_ax.set_ylabel("share of the bar's energy (%)")
        share_ax.set_ylim(0, 100)
        scale = [100 / t if t else 0.0 for t in totals]
    else:
        share_ax = ax
        ax.set_ylabel("energy per sample (nJ)")
        ax.set_ylim(0, 1.1 * max(totals + [1e-12]))
        scale = [1.0] * len(bars)
    bottom = [0.0] * len(bars)
    for cat, label, vals in series:
        heights = [v * k for v, k in zip(vals, scale)]
        share_ax.bar(x, heights, bottom=bottom, width=0.6, color=energy_colour(cat), label=label,
                     edgecolor="white", linewidth=0.5)
        top = max(totals) if not two else 100.0
        for i, (h, b0, t) in enumerate(zip(heights, bottom, totals)):
            frac = vals[i] / t if t else 0.0
            if h >= 0.07 * top:          # tall enough to carry its share
                share_ax.text(i, b0 + h / 2, f"{100 * frac:.0f} %", ha="center", va="center",
                              fontsize=8, color="white")
        bottom = [b0 + h for b0, h in zip(bottom, heights)]
    if not two:
        for i, t in enumerate(totals):
            ax.annotate(_nj(t), (i, t), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    for a in axes[0]:
        a.set_xticks(list(x), bars)
        a.grid(axis="y", alpha=0.3)
        a.set_axisbelow(True)
    fig.suptitle(title, fontsize=10)
    handles, labels = share_ax.get_legend_handles_labels()
    share_ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left",
                    bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    return _png(fig, tight_bbox=True)
