"""Online training: one sample at a time through one or more engines.

Every engine sees the same sample stream. Sample ``k`` of a run (counting from
0 over all epochs) is training point ``perm_e[k mod N]`` with ``e = k // N``
and ``perm_e`` the permutation drawn from ``default_rng([seed, e])``; its spikes
come from the encoder seeded by ``(seed, index)``. The stream is a pure
function of ``(seed, k)``, so a run resumed from a checkpoint at ``k`` ends
bit-identical to an uninterrupted one.

An engine is any object with ``run_sample(x, label, learn) -> SampleResult``,
``set_lr_shift(shift)`` (the spec's learning-rate schedule, set before each
learned sample), ``state() -> dict[str, ndarray]`` and ``load_state(dict)``;
an engine with float state also has ``nonfinite() -> str | None`` (the first
tensor holding NaN or Inf), checked after every learned sample.

A checkpoint records everything its bits depend on (``Trainer.identity``:
checkpoint format, engines, device, spec, data set, seed and encoding); a
resume that differs in any of them is refused with one line naming the first
key that differs.
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
from edgesnn.errors import CheckpointError, DataError, DivergenceError, EdgeSnnError, Interrupted
from edgesnn.report import write_atomic
from edgesnn.spec import DELAY_DEFAULTS, NetworkSpec

CHECKPOINT_VERSION = 3            # 2: the fixed engine packs its rounding words two to a slot;
                                  # 3: the checkpoint records device, spec and data identity
#: the first bytes of every .npz archive (a zip file)
_ZIP_MAGIC = b"PK\x03\x04"


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


class Stop(Exception):
    """Raised inside a loop when a stop was requested (caught by ``Trainer.run``)."""


def evaluate_counts(engine: Engine, split: Split, spec: NetworkSpec, encoding: str,
                    limit: int | None = None, counts: Counters | None = None,
                    stop: Callable[[], bool] | None = None) -> tuple[int, int, float]:
    """``(correct, n, mean window loss)`` on the first ``limit`` points, no learning.

    ``counts``, if given, accumulates the counters of every inference; ``stop``
    is polled between samples (raises ``Stop`` when it returns True).
    """
    n = len(split) if limit is None else min(limit, len(split))
    stream = Stream(split, spec, 0, encoding)
    correct, losses = 0, []
    for i in range(n):
        if stop is not None and stop():
            raise Stop
        r = engine.run_sample(stream.x(i), int(split.labels[i]), learn=False)
        correct += int(r.prediction == split.labels[i])
        losses.append(r.loss)
        if counts is not None:
            counts.add(sample_counters(engine, r))
    return correct, n, float(np.mean(losses)) if losses else float("nan")


def evaluate(engine: Engine, split: Split, spec: NetworkSpec, encoding: str,
             limit: int | None = None, counts: Counters | None = None) -> tuple[float, float]:
    """Accuracy and mean window loss on the first ``limit`` points, no learning."""
    correct, n, loss = evaluate_counts(engine, split, spec, encoding, limit, counts)
    return correct / max(n, 1), loss


def _plain(x):
    """Dataclasses, mappings and tuples as JSON-ready dicts and lists."""
    from collections.abc import Mapping
    from dataclasses import fields, is_dataclass

    if is_dataclass(x):
        return {f.name: _plain(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def spec_identity(spec: NetworkSpec) -> dict:
    """Every field of the spec but its file name, as JSON-ready nested dicts; a layer's
    delay and sparsity fields only where they differ from their defaults
    (``spec.DELAY_DEFAULTS``), so that a spec without them has the identity it had
    before they existed (checkpoints and sweep folders of older runs still match)."""
    d = _plain(spec)
    d.pop("source", None)
    for layer in d["layers"]:
        for key, default in DELAY_DEFAULTS.items():
            if key in layer and layer[key] == default:
                del layer[key]
    return d


def device_identity(device) -> dict:
    """Every field of a ``hw.Device`` (banks, formats, energy, LUTs, limits) but its file."""
    d = _plain(device)
    d.pop("source", None)
    return d


def data_identity(name: str, train: Split, validation: Split, test: Split | None) -> dict:
    """What a run's sample stream depends on besides seed and encoding: the data set's
    name, split sizes, input channels and a hash of the training labels."""
    labels = np.ascontiguousarray(np.asarray(train.labels, dtype=np.int64))
    return {"name": name, "inputs": int(train.n_inputs), "train": len(train),
            "validation": len(validation), "test": len(test) if test is not None else None,
            "train_labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest()[:16]}


def _flat(d, prefix: str = "") -> dict[str, object]:
    """Nested dicts and lists as ``{"layers.0.size": 4, ...}`` in their own order."""
    if isinstance(d, dict):
        items = d.items()
    elif isinstance(d, list):
        items = ((str(i), v) for i, v in enumerate(d))
    else:
        return {prefix: d}
    out: dict[str, object] = {}
    for k, v in items:
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    if not out and prefix:
        out[prefix] = d
    return out


def first_difference(there: dict, here: dict) -> tuple[str, object, object] | None:
    """The first dotted key whose value differs: ``(key, value there, value here)``."""
    a, b = _flat(there), _flat(here)
    for key in list(b) + [k for k in a if k not in b]:
        if a.get(key, "(absent)") != b.get(key, "(absent)"):
            return key, a.get(key, "(absent)"), b.get(key, "(absent)")
    return None


class StopRequest:
    """A stop asked for by a signal: set from a handler, polled between samples."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self) -> bool:
        return self.signal_name is not None


class Trainer:
    """Drives engines over a stream, evaluates, checkpoints."""

    def __init__(self, spec: NetworkSpec, engines: dict[str, Engine], train: Split,
                 validation: Split, config: TrainConfig, identity: dict | None = None):
        """``identity``: what else a checkpoint must match (``device``, ``data``: see
        ``device_identity`` and ``data_identity``); the spec, engines, seed and
        encoding are always recorded."""
        self.spec, self.engines, self.config = spec, engines, config
        self.identity = dict(identity or {})
        self.stop = StopRequest()
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
    def check_schedule(self) -> None:
        """Refuse up front a run whose learning-rate schedule leaves an engine's range.

        The shift of the last learned sample is known before the first one;
        a device's shift counter has a largest value (the fixed engine's formats
        bound it), so a run that would reach past it fails now, not hours in.
        """
        cfg, ln = self.config, self.spec.learning
        last = ln.shift_at(cfg.samples - 1)
        for name, eng in self.engines.items():
            try:
                eng.set_lr_shift(last)
            except EdgeSnnError:
                top = _largest_shift(eng, last)
                reach = (f"--samples {cfg.samples} with learning.lr_halving_every = "
                         f"{ln.lr_halving_every} halves the learning rate down to 2^-{last}"
                         if ln.lr_halving_every else f"the learning rate 2^-{last}")
                allowed = (f"the {name} engine's formats allow at most 2^-{top}"
                           if top is not None else f"the {name} engine allows no such shift")
                if ln.lr_halving_every and top is not None:
                    most = (top - ln.learning_rate_shift + 1) * ln.lr_halving_every
                    allowed += f" (at most --samples {most})"
                raise DataError(f"{reach}; {allowed}") from None
            finally:
                eng.set_lr_shift(ln.shift_at(self.k))

    def warm_up(self) -> float:
        """Compile every engine's kernels with one sample, leaving every state unchanged.

        Returns the seconds it took (the compile time a first run reports apart).
        """
        import time

        x, label = self.stream.sample(self.k)
        t0 = time.perf_counter()
        for eng in self.engines.values():
            saved = eng.state()
            eng.run_sample(x, label, learn=True)
            eng.load_state(saved)
        return time.perf_counter() - t0

    def run(self, progress: Callable[[int], None] | None = None) -> History:
        """Learn up to ``config.samples``; raises ``Interrupted`` when ``self.stop`` is set
        (checkpoint written first, if the run checkpoints) and ``DivergenceError`` when an
        engine's state becomes non-finite (the last checkpoint is left as it was)."""
        cfg = self.config
        try:
            if self._due(self.k):
                self._evaluate()          # the curve starts at the untrained network
            while self.k < cfg.samples:
                if self.stop():
                    raise Stop
                self._learn_one()
                if progress:
                    progress(1)
                # checkpoint before evaluating: the checkpoint holds what an interrupted run
                # has, and run() redoes a due evaluation (deterministic: same weights, points)
                if cfg.checkpoint_every and cfg.checkpoint_path \
                        and self.k % cfg.checkpoint_every == 0:
                    self.save(cfg.checkpoint_path)
                if self._due(self.k):
                    self._evaluate()
        except Stop:
            raise self.interrupted() from None
        return self.history

    def interrupted(self) -> Interrupted:
        """The stop asked for: the checkpoint written now (if the run checkpoints), and the
        ``Interrupted`` error to raise."""
        cfg = self.config
        path = None
        if cfg.checkpoint_every and cfg.checkpoint_path:
            path = str(self.save(cfg.checkpoint_path))
        return Interrupted(self.stop.signal_name or "SIGINT", self.k, path)

    def _due(self, k: int) -> bool:
        """An evaluation belongs at sample ``k`` (start, every eval_every, the end)."""
        return k == 0 or k % self.config.eval_every == 0 or k == self.config.samples

    def _learn_one(self) -> None:
        x, label = self.stream.sample(self.k)
        shift = self.spec.learning.shift_at(self.k)
        if self.k == self.trace_at:
            self._trace(x, label)
        for name, eng in self.engines.items():
            eng.set_lr_shift(shift)
            r = eng.run_sample(x, label, learn=True)
            self._check_finite(name, eng, r)
            self._window_correct[name] += int(r.prediction == label)
            self.totals.counters.setdefault(name, Counters()).add(sample_counters(eng, r))
            sp = self.totals.spikes.setdefault(name, np.zeros_like(r.spikes))
            sp += r.spikes
        self.totals.learned += 1
        self._window_count += 1
        self.k += 1

    def _check_finite(self, name: str, eng: Engine, r) -> None:
        """DivergenceError naming the tensor and the sample when a state is NaN or Inf."""
        import math

        check = getattr(eng, "nonfinite", None)
        bad = check() if check is not None else None
        if bad is None and not math.isfinite(r.loss):
            bad = "out.u (the readout membrane: the sample's loss is not finite)"
        if bad is None:
            return
        cfg = self.config
        if cfg.checkpoint_every and cfg.checkpoint_path and Path(cfg.checkpoint_path).exists():
            kept = (f"the last good checkpoint, {cfg.checkpoint_path}, is kept "
                    f"(sample {self.k - self.k % cfg.checkpoint_every})")
        else:
            kept = "no checkpoint was written"
        raise DivergenceError(f"the {name} engine diverged at training sample {self.k}: {bad} "
                              f"holds NaN or Inf; {kept}; try a smaller learning_rate")

    def _trace(self, x: np.ndarray, label: int) -> None:
        """Record the per-step states of this sample in each engine (``trace``), and its
        parameters before and after it (``weights_before/L0.W`` ..., float, output-major),
        leaving the run unchanged.

        The engine's state is restored after ``trace`` so that the sample is then
        learned exactly as in an untraced run.
        """
        for name, eng in self.engines.items():
            if not hasattr(eng, "trace"):
                continue
            saved = eng.state()
            for key, arr in _weights(eng).items():
                self.traced[f"{name}/weights_before/{key}"] = arr
            for key, arr in eng.trace(x, label).items():
                self.traced[f"{name}/{key}"] = np.asarray(arr)
            for key, arr in _weights(eng).items():
                self.traced[f"{name}/weights_after/{key}"] = arr
            eng.load_state(saved)
        self.traced["x"], self.traced["label"] = x, np.array(label)

    def _evaluate(self) -> None:
        """Append a validation point to the curve (all engines, or none if stopped)."""
        h = self.history
        if h.samples and h.samples[-1] == self.k:
            return
        points = {}
        for name, eng in self.engines.items():
            correct, n, loss = evaluate_counts(eng, self.validation, self.spec,
                                               self.config.encoding, self.config.eval_samples,
                                               stop=self.stop)
            points[name] = (correct / max(n, 1), loss)
        h.samples.append(self.k)
        for name, (acc, loss) in points.items():
            h.accuracy[name].append(acc)
            h.loss[name].append(loss)
            h.train_accuracy[name].append(self._window_correct[name] / max(self._window_count, 1))
            self._window_correct[name] = 0
        self._window_count = 0

    # -- checkpoints ------------------------------------------------------
    def _meta(self) -> dict:
        """Everything a checkpoint's bits depend on, in the order a refusal names them."""
        config = {k: v for k, v in asdict(self.config).items()
                  if k not in ("samples", "checkpoint_every", "checkpoint_path")}
        return {"version": CHECKPOINT_VERSION, "engines": sorted(self.engines),
                "device": self.identity.get("device"), "spec": spec_identity(self.spec),
                "data": self.identity.get("data"), "config": config}

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
        """Resume from a checkpoint written by ``save`` for the same run (``_meta``)."""
        p = Path(path)
        arrays, state = _read_checkpoint(p)
        meta = state.get("meta", {})
        mine = self._meta()
        if meta.get("version") != mine["version"]:
            raise CheckpointError(f"{p}: checkpoint format {meta.get('version')!r}; this edgesnn "
                                  f"reads format {mine['version']}: start the run again")
        for key, what in (("engines", "engines"), ("device", "device"), ("spec", "network spec"),
                          ("data", "data set"), ("config", "seed, encoding or evaluation")):
            diff = first_difference({key: meta.get(key)}, {key: mine[key]})
            if diff is not None:
                k, there, here = diff
                raise CheckpointError(f"{p}: written for another {what}: {k} is {there!r} "
                                      f"there, {here!r} here (a checkpoint resumes only the run "
                                      "that wrote it)")
        try:
            for name, eng in self.engines.items():
                prefix = f"engine/{name}/"
                eng.load_state({k[len(prefix):]: v for k, v in arrays.items()
                                if k.startswith(prefix)})
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
        except CheckpointError as exc:
            msg = str(exc)
            raise CheckpointError(msg if msg.startswith(str(p)) else f"{p}: {msg}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{p}: damaged checkpoint state ({type(exc).__name__}: "
                                  f"{exc})") from None
        if self.k > self.config.samples:
            raise CheckpointError(f"{p}: already at sample {self.k}, past --samples "
                                  f"{self.config.samples}")


def _read_checkpoint(p: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the JSON state of a checkpoint file; CheckpointError in one line."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{p}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{p}: is a folder; give the checkpoint file "
                              "(OUT/checkpoint.npz)") from None
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot read ({exc.strerror})") from None
    if head != _ZIP_MAGIC:
        raise CheckpointError(f"{p}: not an edgesnn checkpoint (not an .npz archive; "
                              "checkpoints are written by simulate --checkpoint-every)")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zip or npy damage: one line, not a traceback
        raise CheckpointError(f"{p}: damaged or truncated checkpoint "
                              f"({type(exc).__name__}: {exc})") from None
    if "state_json" not in arrays:
        raise CheckpointError(f"{p}: an .npz archive but not an edgesnn checkpoint "
                              "(no state_json)")
    try:
        state = json.loads(arrays.pop("state_json").tobytes().decode())
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{p}: damaged checkpoint state ({exc})") from None
    return arrays, state


def _weights(eng: Engine) -> dict[str, np.ndarray]:
    """An engine's parameters as float arrays by tensor name (copies)."""
    if hasattr(eng, "float_params"):
        params = eng.float_params()
    else:
        params = getattr(eng, "params", None)
    return {} if params is None else {k: np.array(v, dtype=np.float64)
                                      for k, v in params.arrays().items()}


def _largest_shift(eng: Engine, start: int) -> int | None:
    """The largest learning-rate shift below ``start`` that ``eng`` accepts (None: none)."""
    for shift in range(start - 1, -1, -1):
        try:
            eng.set_lr_shift(shift)
            return shift
        except EdgeSnnError:
            continue
    return None
