"""A sweep's work list: grid points x seeds -> fixed-point tasks and their float baselines.

Each grid point and seed is one ``fixed`` task. The float engine does not read the
device's formats, banks or energies, so its run depends only on the spec, the run
options, the seed and (under TESS) the basis signs the plan hands every engine: one
``float`` task per distinct such configuration, referenced by every fixed task that
shares it (``float_id``), not one per point.

Ids are the first 16 hex digits of the sha256 of the canonical JSON of everything the
result depends on (``points.digest``): the parsed device and spec (not their file
names, not the grid syntax that produced them), the run options and the seed. The
same configuration reached twice gets one id, and a folder's results are found again
by recomputing ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgesnn.errors import BudgetError
from edgesnn.sweep.grid import Grid, GridError, describe
from edgesnn.sweep.points import digest, resolve


@dataclass(frozen=True)
class RunOptions:
    """What every task of a sweep shares (the ``simulate`` options of a point)."""

    data: str = "yinyang"
    data_dir: str | None = None
    encoding: str = "regular"
    samples: int = 3000
    eval_every: int = 3000
    eval_samples: int = 500
    seeds: tuple[int, ...] = (0,)

    def identity(self) -> dict:
        """The options results depend on (the data folder's place is not one of them)."""
        d = asdict(self)
        d.pop("data_dir")
        d.pop("seeds")
        d["seeds"] = list(self.seeds)
        return d


@dataclass
class Work:
    """The tasks of a sweep: ``fixed`` in grid order (seed outermost), ``floats`` by id."""

    fixed: list[dict] = field(default_factory=list)
    floats: dict[str, dict] = field(default_factory=dict)

    def all(self) -> list[dict]:
        """Float baselines first (every fixed point waits for one), then the points."""
        return list(self.floats.values()) + self.fixed


def _tess_digest(spec, device) -> str | None:
    from edgesnn.plan import make_plan

    signs = make_plan(spec, device).tess_signs
    if signs is None:
        return None
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a in (signs if isinstance(signs, (list, tuple)) else [signs]):
        h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()[:16]


def make_work(grid: Grid, hw: str, spec_data: dict, spec_source: str,
              run: RunOptions) -> Work:
    """Every task of the sweep, every point checked on its device first.

    Raises GridError naming the grid key or the point for a value that does not parse,
    and BudgetError naming the point for one whose network does not fit its device.
    """
    from edgesnn.plan import make_plan
    from edgesnn.train import device_identity, spec_identity

    work = Work()
    base_run = run.identity()
    base_run.pop("seeds")
    resolved = []
    for point in grid.points():
        r = resolve(point, hw, spec_data, spec_source, grid.source)
        try:
            make_plan(r.spec, r.device).check()
        except BudgetError as exc:
            raise BudgetError(f"{grid.source}: point {describe(point)}: {exc}") from None
        resolved.append((r, device_identity(r.device), spec_identity(r.spec),
                         _tess_digest(r.spec, r.device)))
    seen: dict[str, str] = {}
    for seed in run.seeds:
        for r, dev_id, spec_id, tess in resolved:
            common = {"data": run.data, "data_dir": run.data_dir, "encoding": run.encoding,
                      "samples": run.samples, "eval_every": run.eval_every,
                      "eval_samples": run.eval_samples, "seed": seed,
                      "spec": r.spec_data, "spec_source": spec_source,
                      "device": r.device_data, "device_source": r.device.source}
            fid = digest({"kind": "float", "spec": spec_id, "run": base_run, "seed": seed,
                          "tess_signs": tess})
            if fid not in work.floats:
                work.floats[fid] = {"kind": "float", "id": fid, **common}
            pid = digest({"kind": "fixed", "device": dev_id, "spec": spec_id, "run": base_run,
                          "seed": seed})
            if pid in seen:
                raise GridError(f"{grid.source}: points {seen[pid]} and {describe(r.point)} "
                                "give the same configuration")
            seen[pid] = describe(r.point)
            work.fixed.append({"kind": "fixed", "id": pid, "float_id": fid,
                               "point": [list(kv) for kv in r.point], "hw": r.hw, **common})
    return work
