"""Quantisation sweeps: many ``simulate`` runs over a grid of device and spec keys.

One module per job:

- ``grid``: parse and validate GRID.toml into points (product, ``[[zip]]``, ``[[points]]``);
- ``points``: apply a point to the device and spec TOML and re-parse (every check applies);
- ``jobs``: points x seeds -> fixed-point tasks and the float baselines they share, ids;
- ``task``: the worker function, one task -> one result dict;
- ``store``: the folder: manifest, one atomic JSON file per result, resume;
- ``execute``: run the missing tasks on a process pool or a Dask cluster;
- ``summary`` / ``figures``: summary.md, summary.json and the PNG figures.

``prepare`` + ``run`` are what ``edgesnn sweep`` does. A caller with its own points
(``edgesnn fit``) calls ``run_points``: a list of points in, the missing runs computed
into a folder (pool or Dask, resumable), every point's result out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgesnn.sweep.grid import Grid, load_grid
from edgesnn.sweep.jobs import RunOptions, Work, make_work


@dataclass
class Sweep:
    """A checked sweep: its grid, its tasks and the manifest of its folder."""

    grid: Grid
    work: Work
    manifest: dict


def prepare(spec_path: str | Path | None, spec_data: dict, hw: str, grid_path: str | Path,
            run: RunOptions) -> Sweep:
    """Parse the grid, resolve and check every point (GridError / BudgetError naming it),
    and build the tasks and the manifest."""
    from edgesnn.sweep import store
    from edgesnn.sweep.points import device_toml
    from edgesnn.hw import parse_device
    from edgesnn.spec import parse_spec
    from edgesnn.train import device_identity, spec_identity

    grid = load_grid(grid_path)
    source = str(spec_path) if spec_path else "<spec>"
    base_spec = parse_spec(spec_data, source=source)
    dev_data, dev_source = device_toml(hw)
    base_dev = parse_device(dev_data, source=dev_source)
    work = make_work(grid, hw, spec_data, source, run)
    identity = {"grid": grid.raw, "spec": spec_identity(base_spec), "hw": hw,
                "device": device_identity(base_dev), "run": run.identity()}
    info = {"spec_name": base_spec.name, "grid_file": Path(grid_path).name,
            "swept_keys": grid.swept_keys, "swept_axes": grid.swept_axes}
    return Sweep(grid, work, store.manifest(identity, work, info))


def run(sweep: Sweep, out: Path, backend, progress=None, stop=None,
        warm: bool = True, note=None, drained=None) -> dict[str, dict]:
    """Open (or resume) the folder and run the missing tasks; returns every result by id."""
    from edgesnn.sweep import store
    from edgesnn.sweep.execute import run_tasks

    store.open_folder(Path(out), sweep.manifest)
    return run_tasks(sweep.work.all(), Path(out), backend, progress=progress, stop=stop,
                     warm=warm, note=note, drained=drained)


def run_points(points, spec_data: dict, spec_source: str, hw: str, run_opts: RunOptions,
               out: Path, backend, progress=None, stop=None, note=None) -> list[dict]:
    """Run the fixed-point runs of ``points`` (lists of ``(key, value)``, keys as in a grid:
    ``device.formats.weight.bits``, ``spec.layers.0.size``, ``hw``) for every seed of
    ``run_opts`` into ``out``, computing only those whose result file is missing, and
    return their results (with the float baseline's figures and the gaps) in
    ``jobs.make_work`` order: seeds outer, points inner.

    No manifest is written or checked: a caller that grows its list of points between
    calls (``edgesnn fit``) keeps its own record; ids name configurations, so a point
    already run in ``out`` is found again. Raises what ``make_work`` raises for a bad
    point (GridError, BudgetError), before anything runs. The caller owns ``backend``
    (``execute.PoolBackend`` / ``DaskBackend``) and closes it when done with it.
    """
    from edgesnn.sweep.execute import run_tasks
    from edgesnn.sweep.grid import points_grid

    work = make_work(points_grid(list(points)), hw, spec_data, spec_source, run_opts)
    results = run_tasks(work.all(), Path(out), backend, progress=progress, stop=stop,
                        note=note)
    return [results[t["id"]] for t in work.fixed]
