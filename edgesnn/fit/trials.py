"""The evaluator of ``edgesnn fit``: a search's devices run as sweep points.

Each device a search asks for is a sweep point that sets every format field the search
may change (``device.formats.KIND.int_bits`` / ``frac_bits`` for every kind of
``search.KINDS``), run for every seed by ``edgesnn.sweep.run_points`` into
``OUT/runs``: on the sweep's backend, one result file per run, and a run already in the
folder (an interrupted fit, rerun) is not computed again. The float baseline of a seed
is shared by every trial. A ``Trial`` takes the validation gaps (float minus fixed, in
points), the plan's bytes and the fixed engine's energy per learned sample, and the test
split's gaps for the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from edgesnn.errors import EdgeSnnError
from edgesnn.fit.search import FIELDS, KINDS, Trial
from edgesnn.sweep.jobs import RunOptions

RUNS = "runs"


def point_of(device: dict[str, Any]) -> list[tuple[str, Any]]:
    """The sweep point that turns the base device into ``device`` (its format widths)."""
    f = device["formats"]
    return [(f"device.formats.{k}.{fld}", int(f[k][fld])) for k in KINDS for fld in FIELDS]


def sweep_evaluator(spec_data: dict, spec_source: str, hw: str, run_opts: RunOptions,
                    out: Path, backend, progress: Callable[[int], None] | None = None,
                    stop: Callable[[], str | None] | None = None,
                    note: Callable[[str], None] | None = None):
    """An ``Evaluate`` for ``search.fit`` on the sweep machinery (module docstring); the
    device mappings it gets must come from ``hw``'s TOML (``search.explicit_formats``)."""
    seeds = len(run_opts.seeds)

    def evaluate(devices: Sequence[dict[str, Any]]) -> list[Trial]:
        points = [point_of(d) for d in devices]
        try:
            results = run_points(points, spec_data, spec_source, hw, run_opts, out,
                                 backend, progress=progress, stop=stop, note=note)
        except EdgeSnnError as exc:           # a point the sweep refuses (e.g. does not fit)
            if len(points) == 1:
                return [Trial(error=str(exc))]
            return [t for d in devices for t in evaluate([d])]
        # seeds outer, points inner
        return [trial_of([results[s * len(points) + i] for s in range(seeds)])
                for i in range(len(points))]

    return evaluate


def run_points(*args, **kwargs):
    from edgesnn.sweep import run_points as run

    return run(*args, **kwargs)


def trial_of(results: Sequence[dict]) -> Trial:
    """One device's ``Trial`` from its result files (one per seed)."""
    bad = [r for r in results if r.get("status") != "ok"]
    if bad:
        return Trial(error=bad[0].get("error") or f"run {bad[0].get('id')} did not finish")
    gaps = tuple(r["validation_gap_points"] for r in results)
    if any(g is None for g in gaps):
        return Trial(error="no float baseline to compare with (its run failed)")
    first = results[0]
    energy = sum(r["energy_pj_per_sample"]["total"] for r in results) / len(results)
    return Trial(gaps=gaps, memory_bytes=int(first["memory"]["total_bytes"]),
                 energy_pj=float(energy),
                 test_gaps=tuple(float(r["gap_points"]) for r in results))
