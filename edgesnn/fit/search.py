"""``edgesnn fit``'s search: the narrowest formats of a device that still learn.

The search is greedy and runs on any evaluator (``Evaluate``: device TOML mappings in,
one ``Trial`` each out), so that the sweep machinery can run its trials on a pool or a
cluster and resume them; this module only decides which devices to try.

1. **Start.** The device's formats, every kind written out explicitly (``bias`` and
   ``signal`` fall back to other kinds when a file omits them; here each narrows on its
   own). If the start loses more than ``max_gap`` points on some seed, every kind is
   widened by ``WIDEN_INT`` integer and ``WIDEN_FRAC`` fractional bits (``widened``:
   within the device's limits), up to ``WIDEN_ROUNDS`` times; if even that loses more,
   the fit fails with the figures.
2. **Steps.** For each kind and each of its ``frac_bits`` and ``int_bits``, the smallest
   narrowing that lowers the objective (memory: the plan's bytes; energy: the analytic
   energy of a learned sample at the profile's rates). One bit often saves nothing: 32-bit
   words hold four 8-bit or four 7-bit weights, five 6-bit ones. Steps are tried in order
   of saving, largest first, ``batch`` at a time (a pool runs them together); the first
   in that order whose gap holds on every seed is kept, and the search starts again from
   it. A width that failed is not offered again, nor any narrower one: narrowing further
   does not make it hold in practice, and it would cost another trial. A smaller step of
   the same field may still come (after another kind narrowed, a smaller step may save).
3. **Stop** when no step holds, or none saves anything.

Gaps are percentage points of validation accuracy, float minus fixed, per seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from edgesnn import analytic
from edgesnn.errors import DeviceError, EdgeSnnError
from edgesnn.hw import Device, parse_device
from edgesnn.plan import make_plan
from edgesnn.spec import NetworkSpec

#: the kinds a fit narrows (``delay`` only matters to specs with delays)
KINDS = ("weight", "bias", "membrane", "current", "trace", "signal", "update")
FIELDS = ("frac_bits", "int_bits")
OBJECTIVES = ("memory", "energy")
WIDEN_INT, WIDEN_FRAC = 1, 1
WIDEN_ROUNDS = 4
#: the activity the energy objective assumes (``edgesnn profile``'s defaults)
INPUT_RATE, HIDDEN_RATE = 0.02, 0.05


class FitError(EdgeSnnError):
    """The fit cannot start or cannot hold the gap (one line, with the figures)."""


@dataclass(frozen=True)
class Trial:
    """One evaluated device: the gap per seed (points, float minus fixed, validation
    split), memory (bytes the plan places) and energy (pJ per learned sample, fixed
    engine); ``error``: why it could not run (then it does not hold). ``test_gaps``: the
    same gaps on the test split, reported and never used to choose."""

    gaps: tuple[float, ...] = ()
    memory_bytes: int = 0
    energy_pj: float = 0.0
    error: str | None = None
    test_gaps: tuple[float, ...] = ()

    def holds(self, max_gap: float) -> bool:
        return self.error is None and bool(self.gaps) and max(self.gaps) <= max_gap


#: the evaluator: device TOML mappings -> one Trial each, in order
Evaluate = Callable[[Sequence[dict[str, Any]]], Sequence[Trial]]


@dataclass(frozen=True)
class Step:
    """Narrow ``kind``'s ``field`` from ``old`` to ``new`` bits, saving ``saving`` (bytes or
    pJ per learned sample) by the objective's estimate."""

    kind: str
    field: str
    old: int
    new: int
    saving: float

    def __str__(self) -> str:
        return f"{self.kind}.{self.field} {self.old} -> {self.new}"


@dataclass
class FitResult:
    """The path of a fit: the start, every step tried (kept or not), the fitted device."""

    start: dict[str, Any]                 # where the narrowing starts (widened if it had to be)
    start_trial: Trial
    preset: dict[str, Any] = field(default_factory=dict)     # the device's own formats
    preset_trial: Trial = field(default_factory=Trial)
    max_gap: float = 0.0
    widened: int = 0
    #: (step, trial, kept); a step not kept held too when ``trial.holds`` (a step before
    #: it in its batch was kept first)
    tried: list[tuple[Step, Trial, bool]] = field(default_factory=list)
    device: dict[str, Any] = field(default_factory=dict)
    trial: Trial = field(default_factory=Trial)

    @property
    def kept(self) -> list[tuple[Step, Trial]]:
        return [(s, t) for s, t, k in self.tried if k]


def explicit_formats(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of device mapping ``data`` whose ``[formats]`` names every kind of ``KINDS``
    (as parsed: the fallbacks written out); DeviceError for a float device."""
    dev = parse_device(data)
    if dev.is_float:
        raise FitError(f"{dev.name} is a float device: fit narrows fixed-point formats")
    out = copy.deepcopy(data)
    fmts = out.setdefault("formats", {})
    for kind in KINDS:
        f = dev.formats[kind]
        fmts[kind] = {"signed": f.signed, "int_bits": f.int_bits, "frac_bits": f.frac_bits,
                      "rounding": f.rounding, "overflow": f.overflow}
    return out


def with_field(data: dict[str, Any], kind: str, fld: str, value: int) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out["formats"][kind][fld] = int(value)
    return out


def cost(spec: NetworkSpec, data: dict[str, Any], objective: str) -> float:
    """The objective's estimate for a device mapping: plan bytes, or analytic pJ per
    learned sample; DeviceError if the mapping is not a valid device."""
    dev = parse_device(data)
    plan = make_plan(spec, dev)
    if objective == "memory":
        return float(plan.total_bytes)
    ops = analytic.stllr_ops(spec, INPUT_RATE, HIDDEN_RATE, dev.decay, dev.tess.basis)
    return float(analytic.energy_pj(ops, plan)["total"])


def refusal(spec: NetworkSpec, data: dict[str, Any]) -> str | None:
    """Why the fixed engine would refuse to build ``spec`` on device mapping ``data`` (one
    line), or None. ``fit`` checks a step with it before running it, so that no trial is
    spent on a device that cannot run (the current format, say, must keep the weight
    format's fractional bits); about 50 ms a device."""
    from edgesnn.core import FixedEngine
    from edgesnn.params import init_params

    try:
        FixedEngine(make_plan(spec, parse_device(data)), init_params(spec, 0), 0)
    except EdgeSnnError as exc:
        return str(exc)
    return None


def candidate_steps(spec: NetworkSpec, data: dict[str, Any], objective: str,
                    failed: dict[tuple[str, str], int] | None = None,
                    kinds: Sequence[str] = KINDS) -> list[Step]:
    """Every kind's (of ``kinds``) smallest narrowing of each field that lowers the
    objective, largest saving first (ties: ``KINDS`` then ``FIELDS`` order).
    ``failed[(kind, field)]``: a width that did not hold; a step to it or below is not
    offered again."""
    failed = failed or {}
    base = cost(spec, data, objective)
    steps = []
    for kind in (k for k in KINDS if k in kinds):
        for fld in FIELDS:
            old = data["formats"][kind][fld]
            floor = failed.get((kind, fld), -1)
            for new in range(old - 1, floor, -1):
                try:
                    c = cost(spec, with_field(data, kind, fld, new), objective)
                except (DeviceError, EdgeSnnError):
                    break                        # too narrow to be a format at all
                if c < base:
                    steps.append(Step(kind, fld, old, new, base - c))
                    break
    order = {(k, f): i for i, (k, f) in enumerate((k, f) for k in KINDS for f in FIELDS)}
    return sorted(steps, key=lambda s: (-s.saving, order[(s.kind, s.field)]))


def widened(data: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Every kind ``rounds * WIDEN_INT`` integer and ``rounds * WIDEN_FRAC`` fractional bits
    wider (more range and more resolution), each within what the device allows: 32 bits,
    the accumulator for ``update``, and a signal-by-trace product (``c * q`` of an update,
    formed in the accumulator) that still fits the accumulator: past it, the product
    saturates there and learning stops, however wide each format is."""
    out = copy.deepcopy(data)
    acc = parse_device(data).accumulator_bits

    def width(f):
        return int(f["signed"]) + f["int_bits"] + f["frac_bits"]

    fmts = out["formats"]
    for kind in KINDS:
        f = fmts[kind]
        limit = acc if kind == "update" else 32
        if kind in ("signal", "trace"):
            other = fmts["trace" if kind == "signal" else "signal"]
            limit = min(limit, width(f) + max(0, acc - width(f) - width(other)) // 2)
        room = max(0, limit - width(f))
        more_int = min(rounds * WIDEN_INT, room)
        f["int_bits"] += more_int
        f["frac_bits"] += min(rounds * WIDEN_FRAC, room - more_int)
    return out


def fit(spec: NetworkSpec, data: dict[str, Any], max_gap: float, evaluate: Evaluate,
        objective: str = "memory", batch: int = 1, kinds: Sequence[str] = KINDS,
        log: Callable[[str], None] | None = None,
        check: Callable[[NetworkSpec, dict[str, Any]], str | None] | None = refusal
        ) -> FitResult:
    """Run the search (module docstring) from device mapping ``data``, narrowing the
    formats of ``kinds`` only; ``batch`` steps are evaluated per call of ``evaluate``;
    ``check`` (default ``refusal``; None: none) refuses a step's device before it runs.
    FitError when no start holds the gap."""
    if objective not in OBJECTIVES:
        raise FitError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise FitError(f"formats to fit must be some of {', '.join(KINDS)}, got "
                       f"{', '.join(unknown) or 'none'}")
    say = log or (lambda _: None)
    preset = explicit_formats(data)
    current, trial, rounds = preset, evaluate([preset])[0], 0
    preset_trial = trial
    while not trial.holds(max_gap):
        if rounds == WIDEN_ROUNDS:
            raise FitError(_not_held(max_gap, trial, rounds))
        rounds += 1
        say(f"start loses {_worst(trial)}: widening every format by up to {rounds * WIDEN_INT} "
            f"integer and {rounds * WIDEN_FRAC} fractional bits")
        current = widened(preset, rounds)
        trial = evaluate([current])[0]
    result = FitResult(start=current, start_trial=trial, preset=preset,
                       preset_trial=preset_trial, max_gap=max_gap, widened=rounds)
    failed: dict[tuple[str, str], int] = {}
    while True:
        steps = candidate_steps(spec, current, objective, failed, kinds)
        if not steps:
            break
        kept = None
        runnable = []
        for s in steps:
            why = check(spec, with_field(current, s.kind, s.field, s.new)) if check else None
            if why is None:
                runnable.append(s)
                continue
            result.tried.append((s, Trial(error=why), False))
            failed[(s.kind, s.field)] = max(s.new, failed.get((s.kind, s.field), -1))
            say(f"{s}: not run ({why})")
        for i in range(0, len(runnable), max(1, batch)):
            chunk = runnable[i:i + max(1, batch)]
            trials = evaluate([with_field(current, s.kind, s.field, s.new) for s in chunk])
            for s, t in zip(chunk, trials):
                ok = kept is None and t.holds(max_gap)
                result.tried.append((s, t, ok))
                verdict = ("kept" if ok else "held, but an earlier step of its batch was kept"
                           if t.holds(max_gap) else "not kept")
                say(f"{s}: gap {_worst(t)} -> {verdict}")
                if ok:
                    kept = (s, t)
                elif kept is None:
                    failed[(s.kind, s.field)] = max(s.new, failed.get((s.kind, s.field), -1))
            if kept is not None:
                break
        if kept is None:
            break
        s, trial = kept
        current = with_field(current, s.kind, s.field, s.new)
    result.device, result.trial = current, trial
    return result


def _worst(t: Trial) -> str:
    if t.error:
        return f"none ({t.error})"
    return f"{max(t.gaps):.2f} points" if t.gaps else "none (no seeds)"


def _not_held(max_gap: float, t: Trial, rounds: int) -> str:
    return (f"the fixed engine loses {_worst(t)} against float (more than --max-gap "
            f"{max_gap:g}) even with every format up to {rounds * WIDEN_INT} integer and "
            f"{rounds * WIDEN_FRAC} fractional bits wider; a wider accumulator, other roundings, "
            "more --samples or --eval-samples (a gap below a point is within the noise of "
            "a few hundred validation points) or another device may hold it")


def device_summary(dev: Device) -> str:
    """``weight Q1.6, bias Q3.12, ...`` (the formats a fit changes)."""
    return ", ".join(f"{k} Q{dev.formats[k].int_bits}.{dev.formats[k].frac_bits}" for k in KINDS)
