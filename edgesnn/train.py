"""Online training: one sample at a time through one or more engines.

Every engine sees the same sample stream. Sample ``k`` of a run (counting from
0 over all epochs) is training point ``perm_e[k mod N]`` with ``e = k // N``
and ``perm_e`` the permutation drawn from ``default_rng([seed, e])``; its spikes
come from the encoder seeded by ``(seed, index)``. The stream is a pure
function of ``(seed, k)``, so a run resumed from a checkpoint at ``k`` ends
bit-identical to an uninterrupted one.

An engine is any object with ``run_sample(x, label, learn) -> SampleResult``,
``set_lr_shift(shift)`` (the spec's learning-rate schedule, set before each
learned sample), ``state() -> dict[str, ndarray]`` and ``load_state(dict)``.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from edgesnn import counters
from edgesnn.counters import Counters
from edgesnn.datasets.base import PointSplit, SpikeSplit
from edgesnn.errors import CheckpointError
from edgesnn.report import write_atomic
from edgesnn.spec import NetworkSpec

CHECKPOINT_VERSION = 2            # 2: the fixed engine packs its rounding words two to a slot


class Engine(Protocol):
    def run_sample(self, x: np.ndarray, label: int | None, learn: bool = True): ...
    def set_lr_shift(self, shift: int) -> None: ...
    def state(self) -> dict[str, np.ndarray]: ...
    def load_state(self, arrays: dict[str, np.ndarray]) -> None: ...


#: Any split: ``labels``, ``n_inputs``, ``encodings``, ``spikes(i, T, encoding)``
#: (``datasets.base`` and ``datasets.events.EventSplit``).
Split = PointSplit | SpikeSplit


@dataclass(frozen=True)
class TrainConfig:
    samples: int = 5000           # training samples presented (all epochs)
    eval_every: int = 1000        # evaluate on the validation split every N samples
    eval_samples: int = 500       # validation points per evaluation (first N of the split)
    seed: int = 0
    encoding: str = "regular"     # a point encoder, or the audio/event encoding of the data
    checkpoint_every: int = 0     # 0: no periodic checkpoints
    checkpoint_path: str | None = None


@dataclass
class History:
    """Learning curves: per evaluation point, samples seen and accuracy per engine."""

    samples: list[int] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    train_accuracy: dict[str, list[float]] = field(default_factory=dict)
    loss: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class RunTotals:
    """Per engine: counters (events, SRAM words, saturations) and spikes over learned samples."""

    counters: dict[str, Counters] = field(default_factory=dict)
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    learned: int = 0


def sample_counters(engine: Engine, result) -> Counters:
    """The full counters of the sample an engine just ran (events only if it counts no SRAM)."""
    last = getattr(engine, "last_counters", None)
    return last if last is not None else Counters(events=result.events.copy())


def _checked_events(path: Path, events: np.ndarray) -> np.ndarray:
    """A checkpoint's event totals, refused (CheckpointError) unless one per ``counters.NAMES``.

    A checkpoint from before a counter existed has no count for it: continuing
    its totals would report that counter for the resumed samples only.
    """
    names = counters.NAMES
    if events.ndim == 1 and events.size < len(names):
        raise CheckpointError(f"{path}: written before the counters "
                              f"{', '.join(names[events.size:])} existed; its totals cannot be "
                              "continued, start the run again")
    if events.shape != (len(names),):
        raise CheckpointError(f"{path}: counter totals of shape {events.shape}, expected "
                              f"({len(names)},): written by another version of edgesnn")
    return events.astype(np.int64).copy()


class Stream:
    """The deterministic training stream of a run (see the module docstring)."""

    def __init__(self, split: Split, spec: NetworkSpec, seed: int, encoding: str):
        self.split, self.spec, self.seed, self.encoding = split, spec, seed, encoding
        self._perm_epoch = -1
        self._perm = np.arange(0)

    def index(self, k: int) -> int:
        n = len(self.split)
        epoch = k // n
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            self._perm_epoch = epoch
        return int(self._perm[k % n])

    def sample(self, k: int) -> tuple[np.ndarray, int]:
        i = self.index(k)
        return self.x(i), int(self.split.labels[i])

    def x(self, i: int) -> np.ndarray:
        return self.split.spikes(i, self.spec.time_steps, self.encoding)


def evaluate(engine: Engine, split: Split, spec: NetworkSpec, encoding: str,
             limit: int | None = None, counts: Counters | None = None) -> tuple[float, float]:
    """Accuracy and mean window loss on the first ``limit`` points, no learning.

    ``counts``, if given, accumulates the counters of every inference.
    """
    n = len(split) if limit is None else min(limit, len(split))
    stream = Stream(split, spec, 0, encoding)
    correct, losses = 0, []
    for i in range(n):
        r = engine.run_sample(stream.x(i), int(split.labels[i]), learn=False)
        correct += int(r.prediction == split.labels[i])
        losses.append(r.loss)
        if counts is not None:
            counts.add(sample_counters(engine, r))
    return correct / max(n, 1), float(np.mean(losses)) if losses else float("nan")


def spec_fingerprint(spec: NetworkSpec) -> str:
    """Hash of everything in the spec but its file name: a checkpoint fits only its spec."""
    d = asdict(spec)
    d.pop("source", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


class Trainer:
    """Drives engines over a stream, evaluates, checkpoints."""

    def __init__(self, spec: NetworkSpec, engines: dict[str, Engine], train: Split,
                 validation: Split, config: TrainConfig):
        self.spec, self.engines, self.config = spec, engines, config
        self.train_split, self.validation = train, validation
        self.test: Split | None = None           # the final evaluation split, if any
        self.stream = Stream(train, spec, config.seed, config.encoding)
        self.k = 0
        self.history = History(accuracy={n: [] for n in engines},
                               train_accuracy={n: [] for n in engines},
                               loss={n: [] for n in engines})
        self.totals = RunTotals()
        self.trace_at: int | None = None         # sample whose states are recorded
        self.traced: dict[str, np.ndarray] = {}
        self._window_correct = {n: 0 for n in engines}
        self._window_count = 0

    # -- running ----------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None) -> History:
        cfg = self.config
        if self.k == 0 and not self.history.samples:
            self._evaluate()                     # the curve starts at the untrained network
        while self.k < cfg.samples:
            x, label = self.stream.sample(self.k)
            shift = self.spec.learning.shift_at(self.k)
            if self.k == self.trace_at:
                self._trace(x, label)
            for name, eng in self.engines.items():
                eng.set_lr_shift(shift)
                r = eng.run_sample(x, label, learn=True)
                self._window_correct[name] += int(r.prediction == label)
                self.totals.counters.setdefault(name, Counters()).add(sample_counters(eng, r))
                sp = self.totals.spikes.setdefault(name, np.zeros_like(r.spikes))
                sp += r.spikes
            self.totals.learned += 1
            self._window_count += 1
            self.k += 1
            if progress:
                progress(1)
            # checkpoint before evaluating: the checkpoint holds what an interrupted run has,
            # and load() redoes a due evaluation (deterministic: same weights, same points)
            if cfg.checkpoint_every and cfg.checkpoint_path and self.k % cfg.checkpoint_every == 0:
                self.save(cfg.checkpoint_path)
            if self.k % cfg.eval_every == 0 or self.k == cfg.samples:
                self._evaluate()
        return self.history

    def _trace(self, x: np.ndarray, label: int) -> None:
        """Record every state variable of this sample in each engine, leaving runs unchanged.

        The engine's state is restored after ``trace`` so that the sample is then
        learned exactly as in an untraced run.
        """
        for name, eng in self.engines.items():
            if not hasattr(eng, "trace"):
                continue
            saved = eng.state()
            for key, arr in eng.trace(x, label).items():
                self.traced[f"{name}/{key}"] = np.asarray(arr)
            eng.load_state(saved)
        self.traced["x"], self.traced["label"] = x, np.array(label)

    def _evaluate(self) -> None:
        h = self.history
        if h.samples and h.samples[-1] == self.k:
            return
        h.samples.append(self.k)
        for name, eng in self.engines.items():
            acc, loss = evaluate(eng, self.validation, self.spec, self.config.encoding,
                                 self.config.eval_samples)
            h.accuracy[name].append(acc)
            h.loss[name].append(loss)
            h.train_accuracy[name].append(self._window_correct[name] / max(self._window_count, 1))
            self._window_correct[name] = 0
        self._window_count = 0

    # -- checkpoints ------------------------------------------------------
    def _meta(self) -> dict:
        return {"version": CHECKPOINT_VERSION, "spec": spec_fingerprint(self.spec),
                "config": {k: v for k, v in asdict(self.config).items()
                           if k not in ("samples", "checkpoint_every", "checkpoint_path")},
                "engines": sorted(self.engines)}

    def save(self, path: str | Path) -> Path:
        """Write engines' state, position, history and totals atomically to ``path`` (.npz)."""
        arrays: dict[str, np.ndarray] = {}
        for name, eng in self.engines.items():
            for key, a in eng.state().items():
                arrays[f"engine/{name}/{key}"] = np.asarray(a)
        for name in self.engines:
            if name in self.totals.counters:
                arrays[f"totals/{name}/events"] = self.totals.counters[name].events
                arrays[f"totals/{name}/spikes"] = self.totals.spikes[name]
        memory = {name: {"sram_reads": c.sram_reads, "sram_writes": c.sram_writes,
                         "saturations": c.saturations} for name, c in self.totals.counters.items()}
        state = {"meta": self._meta(), "k": self.k, "learned": self.totals.learned,
                 "counters": memory,
                 "history": asdict(self.history), "window_correct": self._window_correct,
                 "window_count": self._window_count}
        arrays["state_json"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return write_atomic(path, buf.getvalue())

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint written by ``save`` for the same spec, seed and engines."""
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            state = json.loads(arrays.pop("state_json").tobytes().decode())
        except FileNotFoundError:
            raise CheckpointError(f"{p}: no such checkpoint") from None
        except Exception as exc:  # zip, npy or JSON damage: one line, not a traceback
            raise CheckpointError(f"{p}: not a readable edgesnn checkpoint ({exc})") from None
        meta = state.get("meta", {})
        mine = self._meta()
        for key, what in (("version", "checkpoint format"), ("spec", "network spec"),
                          ("engines", "engines"), ("config", "seed, encoding or evaluation")):
            if meta.get(key) != mine[key]:
                raise CheckpointError(f"{p}: written for another {what} "
                                      f"({meta.get(key)!r} != {mine[key]!r})")
        for name, eng in self.engines.items():
            prefix = f"engine/{name}/"
            eng.load_state({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
            if f"totals/{name}/events" in arrays:
                self.totals.counters[name] = Counters(
                    events=_checked_events(p, arrays[f"totals/{name}/events"]),
                    **state.get("counters", {}).get(name, {}))
                self.totals.spikes[name] = arrays[f"totals/{name}/spikes"].copy()
        self.k = int(state["k"])
        self.totals.learned = int(state["learned"])
        self.history = History(**state["history"])
        self._window_correct = {k: int(v) for k, v in state["window_correct"].items()}
        self._window_count = int(state["window_count"])
        if self.k % self.config.eval_every == 0 and self.k > 0:
            self._evaluate()
        if self.k > self.config.samples:
            raise CheckpointError(f"{p}: already at sample {self.k}, past --samples "
                                  f"{self.config.samples}")
