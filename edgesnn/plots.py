"""Figures (matplotlib, Agg backend, PNG bytes written atomically by the caller)."""

from __future__ import annotations

import io

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


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def energy_bars_png(breakdown: dict[str, dict[str, float]], title: str) -> bytes:
    """Energy per sample by component (stacked bars), one bar per engine/mode, in nJ.

    ``breakdown[bar][component] = pJ``; the ``total`` entry is ignored.
    """
    bars = list(breakdown)
    comps = sorted({c for d in breakdown.values() for c in d if c != "total"})
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    bottom = [0.0] * len(bars)
    for comp in comps:
        vals = [breakdown[b].get(comp, 0.0) / 1e3 for b in bars]
        if not any(vals):
            continue
        ax.bar(bars, vals, bottom=bottom, label=comp.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("energy per sample (nJ)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
