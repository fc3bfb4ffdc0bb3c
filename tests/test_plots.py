"""Figures: the energy chart's colours and grouping (decided by functions, tested without pixels)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from edgesnn.plots import (ENERGY_COLOURS, OTHER_COLOUR, energy_bars_png, energy_colour,
                           energy_groups, learning_curve_png)

#: a report's shape: SRAM dominates, learning matters in one bar only, the rest are slivers
BREAKDOWN = {
    "fixed\nlearn": {"synaptic": 600.0, "neuron": 400.0, "trace": 450.0, "learning": 4700.0,
                     "weight_update": 20.0, "lut": 5200.0, "lfsr": 0.0, "sram": 832000.0,
                     "total": 843370.0},
    "float\nlearn": {"synaptic": 5200.0, "neuron": 13700.0, "trace": 11800.0,
                     "learning": 61100.0, "weight_update": 400.0, "lut": 0.0, "lfsr": 0.0,
                     "sram": 1001000.0, "total": 1093200.0},
    "float\ninfer": {"synaptic": 4900.0, "neuron": 13700.0, "trace": 11900.0, "learning": 0.0,
                     "weight_update": 0.0, "lut": 0.0, "lfsr": 0.0, "sram": 565300.0,
                     "total": 595800.0},
}


def _reordered(breakdown, bar_order, cat_order):
    return {b: {c: breakdown[b][c] for c in cat_order if c in breakdown[b]} for b in bar_order}


def test_each_category_has_its_own_fixed_colour():
    colours = [energy_colour(c) for c in ENERGY_COLOURS] + [energy_colour("other")]
    assert len(set(colours)) == len(ENERGY_COLOURS) + 1          # all distinct
    assert energy_colour("other") == OTHER_COLOUR
    assert energy_colour("sram") == "#4c72b0" and energy_colour("learning") == "#dd8452"


def test_colours_do_not_depend_on_the_order_or_subset_of_categories():
    """The colour a chart gives a category is the same whichever categories it has and in
    whatever order they come (the old chart took the next colour of matplotlib's cycle)."""
    want = {c: energy_colour(c) for c in ENERGY_COLOURS}
    cats = list(ENERGY_COLOURS)
    for k, perm in enumerate(itertools.permutations(cats, 4)):
        if k % 97:
            continue
        sub = {b: {c: 1.0 for c in perm} for b in ("a", "b")}
        shown, grouped = energy_groups(sub)
        assert {c: energy_colour(c) for c in shown} == {c: want[c] for c in shown}
        assert shown == [c for c in cats if c in perm]              # the fixed stacking order


def test_an_unknown_category_gets_the_same_colour_in_every_process():
    code = "from edgesnn.plots import energy_colour; print(energy_colour('dram_refresh'))"
    seen = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        seen.add(out.stdout.strip())
    assert seen == {energy_colour("dram_refresh")}
    assert energy_colour("dram_refresh") not in set(ENERGY_COLOURS.values()) | {OTHER_COLOUR}


def test_categories_small_in_every_bar_are_grouped():
    """Shares: learning 0.6 % of fixed learn but 5.6 % of float learn (shown); lut 0.6 %
    at most; synaptic, neuron, trace, weight_update under 3 % everywhere; lfsr 0 (left out)."""
    shown, grouped = energy_groups(BREAKDOWN)
    assert shown == ["sram", "learning"]
    assert grouped == ["lut", "neuron", "synaptic", "trace", "weight_update"]
    # in any order of bars and categories
    cats = sorted(BREAKDOWN["fixed\nlearn"], reverse=True)
    again = energy_groups(_reordered(BREAKDOWN, list(BREAKDOWN)[::-1], cats))
    assert again == (shown, grouped)


def test_a_category_large_in_one_bar_is_shown_and_a_lone_small_one_keeps_its_name():
    b = {"x": {"sram": 90.0, "trace": 7.0, "lut": 3.0}, "y": {"sram": 99.0, "trace": 1.0}}
    assert energy_groups(b) == (["sram", "trace", "lut"], [])    # lut alone: not hidden
    b["y"]["lfsr"] = 0.5
    b["x"]["lfsr"] = 0.5
    assert energy_groups(b) == (["sram", "trace"], ["lfsr", "lut"])
    assert energy_groups(b, small=0.005) == (["sram", "trace", "lut", "lfsr"], [])


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_energy_chart_renders_with_one_or_two_panels(scale):
    """Totals within a factor of 10: one panel; 1000 x apart: log totals and shares."""
    b = {k: dict(v) for k, v in BREAKDOWN.items()}
    b["fixed\nlearn"] = {c: v * scale for c, v in b["fixed\nlearn"].items()}
    png = energy_bars_png(b, "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert (width > 1000) == (scale != 1.0)          # the two-panel figure is wider


def test_learning_curve_renders():
    png = learning_curve_png([0, 10], {"fixed": [0.3, 0.5]}, "t", {"fixed": 0.5})
    assert png[:4] == b"\x89PNG"
