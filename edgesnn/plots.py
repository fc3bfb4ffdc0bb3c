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
