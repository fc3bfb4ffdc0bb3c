"""Network specs: what network learns, with which rule; independent of the device.

A spec is a TOML file::

    [network]
    name = "shd"
    inputs = 700            # input channels
    time_steps = 100        # T, steps per sample

    [[layers]]              # spiking layers first, in order ...
    kind = "recurrent"      # "dense" (feed-forward) or "recurrent"
    size = 450
    neuron = "lif"
    beta = 0.9933           # membrane leak per step, in (0, 1)
    threshold = 0.6
    reset = "soft"          # "soft" (subtract threshold) or "hard" (to zero)

    [[layers]]              # ... and exactly one leaky-integrator readout last
    kind = "readout"
    size = 20
    beta = 0.9933
    trace_decay = 0.99      # lambda of the readout's presynaptic trace

    [learning]
    rule = "stllr"
    signal = "bp"           # "bp" (through the readout weights), "dfa" or "tess" (local)
    feedback = "regenerated"   # DFA only: "stored" matrix or "regenerated" from an LFSR seed
    window = 90             # Tl: the last Tl steps carry a learning signal
    lambda_pre = 1.0
    lambda_post = 0.5
    alpha_pre = 1.0
    alpha_post = 1.0
    learning_rate = 0.0009765625   # rounded to a power of two on the device
    lr_halving_every = 0    # halve the rate every N learned samples (a shift counter); 0: never
    init_scale = 1.0        # initial feed-forward weights uniform, variance init_scale^2 / fan-in
    update = "per-step"     # apply each step, or accumulate "per-sample"
    residual = "clear"      # per-sample only: what the fixed engine's accumulator keeps after
                            # the rounded update is applied: "clear" (nothing) or "carry"
                            # (the rounding remainder, into the next sample's accumulation)
    surrogate = "rational"  # psi(d) = 1/(100|d|+1)^2; "triangle": 0.3 max(0, 1-|d|)
    tess_fmin = 50.0        # TESS only: square-wave frequencies linspace(fmin, fmax, classes)
    tess_fmax = 512.0
    tess_temperature = 1.0  # TESS only: local logits z / temperature (a power of two); the
                            # authors' default 1 makes them tiny (|z| <= 1): the local error is
                            # then almost the constant 1/C - onehot
    hidden = "learn"        # "frozen": spiking layers keep their initial weights and only the
                            # readout learns (the baseline a hidden-layer rule must beat)

Each spiking layer may learn delays and be sparse (docs/delays.md; float engine only)::

    delays = "axonal"       # "none" (default), "axonal" (one per input, shared by its
                            # outgoing synapses) or "synaptic" (one per synapse)
    max_delay = 12          # steps, required with delays; delays are clipped to [0, max_delay]
    delay_init = "uniform"  # "zero" (default), "uniform" in [0, max_delay], or a list of
                            # values (axonal: one per input; synaptic: rows of inputs per neuron)
    delay_lr = 0.125        # rounded to a power of two; default 128 x learning_rate (capped at 1)
    sigma = 1.0             # Gaussian width in steps, constant over the run (not annealed)
    connectivity = 0.2      # fraction of feed-forward synapses kept (a fixed random mask with
                            # the same number of inputs per neuron); default 1

Under ``signal = "tess"`` each spiking layer learns from its own local signal
(nothing from the layer above; the readout from its own error) and may set
``tess_groups = D`` in its ``[[layers]]`` table: its neurons average-pooled into D
contiguous groups (PyTorch's adaptive average pooling; default D = size, no
pooling).

Kinds from the papers that are not simulated yet (LLIF/SLIF neurons, the TESS
rule as a whole, learned delays, convolutional layers) are recognised and refused with a
message listing what is supported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from edgesnn.errors import SpecError
from edgesnn.tomlcheck import Table, load_toml

LAYER_KINDS = ("dense", "recurrent", "readout")
NEURONS = ("lif",)
RULES = ("stllr",)
SIGNALS = ("bp", "dfa", "tess")
RESIDUALS = ("clear", "carry")
HIDDEN = ("learn", "frozen")
DELAYS = ("none", "axonal", "synaptic")
#: the delay and sparsity fields of a layer with their defaults: a spec's identity
#: (``train.spec_identity``) leaves out those at their default, so that specs written
#: before delays existed keep their identity
DELAY_DEFAULTS = {"delays": "none", "max_delay": 0, "delay_init": "zero", "delay_lr": None,
                  "sigma": 1.0, "connectivity": 1.0}
#: largest max_delay a spec may ask for (a buffer of max_delay + 3 sigma + 1 steps per source)
MAX_DELAY_LIMIT = 4096
#: kinds a user may know from the papers that this version does not simulate:
#: value -> what it is (refused with the list of what is supported)
NOT_BUILT = {
    "layer kind": {"conv": "convolutional layers", "delay": "delay layers"},
    "neuron": {"llif": "LLIF neurons", "slif": "SLIF neurons"},
    "rule": {"tess": "the TESS rule",
             "delays": 'delay learning is set per layer, delays = "axonal" or "synaptic", '
                       'beside rule = "stllr"'},
    "signal": {},
}
#: how a refusal names the supported values of each ``NOT_BUILT`` group
_SUPPORTED = {"layer kind": "kinds", "neuron": "neurons", "rule": "rules", "signal": "signals"}


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a spiking layer (dense or recurrent) or the leaky readout.

    ``beta`` is the membrane decay per step; ``trace_decay`` only applies to
    the readout (its presynaptic trace factor; spiking layers use the
    learning rule's ``lambda_pre``).
    """

    kind: str
    size: int
    neuron: str = "lif"
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "soft"
    trace_decay: float = 0.0
    tess_groups: int | None = None    # TESS latent size D (set for every spiking layer under tess)
    delays: str = "none"              # "none", "axonal" or "synaptic" (feed-forward inputs only)
    max_delay: int = 0                # steps; delays live in [0, max_delay]
    delay_init: str | tuple = "zero"  # "zero", "uniform" or explicit values (a flat tuple)
    delay_lr: float | None = None     # learning rate of the delays (set when delays are learned)
    sigma: float = 1.0                # Gaussian width of the smoothed input, steps
    connectivity: float = 1.0         # fraction of feed-forward synapses kept

    @property
    def delayed(self) -> bool:
        return self.delays != "none"

    @property
    def sparse(self) -> bool:
        return self.connectivity < 1.0

    @property
    def delay_lr_shift(self) -> int:
        """The device's delay learning rate is ``2**-shift``: the nearest power of two."""
        return max(0, round(-math.log2(self.delay_lr or 1.0)))

    @property
    def recurrent(self) -> bool:
        return self.kind == "recurrent"

    @property
    def spiking(self) -> bool:
        return self.kind != "readout"


@dataclass(frozen=True)
class LearningSpec:
    """The learning rule and its constants (S-TLLR factors as in the paper)."""

    rule: str = "stllr"
    signal: str = "bp"
    feedback: str = "regenerated"
    window: int = 1
    lambda_pre: float = 1.0
    lambda_post: float = 0.5
    alpha_pre: float = 1.0
    alpha_post: float = 1.0
    learning_rate: float = 2.0 ** -10
    update: str = "per-step"
    surrogate: str = "rational"
    init_scale: float = 1.0
    lr_halving_every: int = 0
    residual: str = "clear"
    tess_fmin: float = 50.0
    tess_fmax: float = 512.0
    tess_temperature: float = 1.0
    hidden: str = "learn"

    @property
    def frozen(self) -> bool:
        """Only the readout learns: every spiking layer keeps its initial weights and
        stores no learning state (the frozen-hidden baseline)."""
        return self.hidden == "frozen"

    @property
    def learning_rate_shift(self) -> int:
        """The device's initial learning rate is ``2**-shift``: the nearest power of two."""
        return max(0, round(-math.log2(self.learning_rate)))

    def shift_at(self, sample: int) -> int:
        """Learning-rate shift for the ``sample``-th learned sample (0-based) of a run."""
        extra = sample // self.lr_halving_every if self.lr_halving_every else 0
        return self.learning_rate_shift + extra

    @property
    def per_sample(self) -> bool:
        return self.update == "per-sample"

    @property
    def carry(self) -> bool:
        """Per-sample updates keep the rounding remainder in the accumulator (fixed engine;
        the float engine applies every update exactly, so it has no remainder to keep)."""
        return self.residual == "carry"


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: inputs, spiking layers, readout, learning rule."""

    name: str
    inputs: int
    time_steps: int
    layers: tuple[LayerSpec, ...]
    learning: LearningSpec
    source: str = "<spec>"

    @property
    def hidden(self) -> tuple[LayerSpec, ...]:
        return self.layers[:-1]

    @property
    def readout(self) -> LayerSpec:
        return self.layers[-1]

    @property
    def classes(self) -> int:
        return self.readout.size

    def learns(self, index: int) -> bool:
        """Whether layer ``index`` learns: every layer, or with ``learning.hidden =
        "frozen"`` the readout alone (a frozen layer keeps no traces, makes no updates)."""
        return not (self.layers[index].spiking and self.learning.frozen)

    @property
    def learning_layers(self) -> list[tuple[int, LayerSpec]]:
        """``(index, layer)`` of the layers that learn (:meth:`learns`)."""
        return [(i, layer) for i, layer in enumerate(self.layers) if self.learns(i)]

    @property
    def learning_hidden(self) -> tuple[LayerSpec, ...]:
        """The spiking layers that learn: all of them, or none when frozen."""
        return () if self.learning.frozen else self.hidden

    @property
    def delayed(self) -> bool:
        """Whether any spiking layer has learned delays or a sparse mask (engines that do
        not simulate them refuse the spec: :func:`refuse_delays`)."""
        return any(layer.delayed or layer.sparse for layer in self.hidden)

    def fan_in(self, index: int) -> int:
        """Number of feed-forward inputs of layer ``index``."""
        return self.inputs if index == 0 else self.layers[index - 1].size

    def kept_inputs(self, index: int) -> int:
        """Feed-forward inputs each neuron of layer ``index`` keeps: its fan-in, or with
        ``connectivity`` below 1 ``round(connectivity * fan-in)``, at least 1 (the same
        count for every neuron: a device stores that many indices per neuron)."""
        layer, n_in = self.layers[index], self.fan_in(index)
        return max(1, round(layer.connectivity * n_in)) if layer.sparse else n_in


def refuse_delays(spec: NetworkSpec, engine: str) -> None:
    """SpecError in one line when ``spec`` has delays or a sparse mask: ``engine`` (e.g.
    "the paper engine") does not simulate them (the float and fixed engines do)."""
    for i, layer in enumerate(spec.hidden):
        if layer.delayed or layer.sparse:
            what = (f'delays = "{layer.delays}"' if layer.delayed
                    else f"connectivity = {layer.connectivity:g}")
            raise SpecError(f"{spec.source}: layer {i} has {what}: delays and sparse "
                            f"connectivity are not yet in {engine}; "
                            "run them with --engine float or fixed")


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> NetworkSpec:
    """Read and validate a spec TOML file; SpecError names file, key and what is allowed.

    ``overrides`` are ``KEY=VALUE`` strings applied before validation, e.g.
    ``learning.alpha_post=-1`` or ``layers.0.size=128`` (VALUE in TOML syntax;
    a bare word is taken as a string).
    """
    data = load_toml(path, SpecError)
    for item in overrides:
        apply_override(data, item, str(path))
    return parse_spec(data, source=str(path))


def apply_override(data: dict, item: str, source: str = "<spec>") -> None:
    """Set one ``dotted.key=value`` in parsed TOML ``data`` (in place)."""
    import tomllib

    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise SpecError(f"{source}: override '{item}' must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    node = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(f"{source}: override '{item}': '{'.'.join(parts[:depth])}' has "
                                f"{len(node)} entries, '{part}' is not one of them")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise SpecError(f"{source}: override '{item}': '{part}' is not a table")
    if not isinstance(node, dict):
        raise SpecError(f"{source}: override '{item}': '{'.'.join(parts[:-1])}' is not a table")
    node[parts[-1]] = value


def parse_spec(data: dict, source: str = "<spec>") -> NetworkSpec:
    top = Table(data, source, "", SpecError)
    net = top.table("network")
    name = net.string("name", Path(source).stem)
    inputs = net.integer("inputs", lo=1, hi=1_000_000)
    steps = net.integer("time_steps", lo=1, hi=1_000_000)
    net.reject_unknown()

    layer_tables = top.tables("layers")
    if len(layer_tables) < 2:
        top.fail("needs at least one spiking layer and a readout ([[layers]] twice or more)",
                 "layers")
    layers = tuple(_parse_layer(t) for t in layer_tables)
    for i, layer in enumerate(layers[:-1]):
        if not layer.spiking:
            layer_tables[i].fail("a readout must be the last layer; spiking layers come first",
                                 "kind")
    if layers[-1].spiking:
        layer_tables[-1].fail("the last layer must be kind = \"readout\"", "kind")
    if layers[-1].size < 2:
        layer_tables[-1].fail("a readout needs at least 2 classes", "size")

    learning = _parse_learning(top.table("learning"), steps)
    layers = _tess_groups(layers, layer_tables, learning)
    top.reject_unknown()
    spec = NetworkSpec(name=name, inputs=inputs, time_steps=steps, layers=layers,
                       learning=learning, source=source)
    return _resolve_delays(spec, layer_tables)


def _refuse_unbuilt(t: Table, key: str, value: str, what: str, built: tuple[str, ...]) -> None:
    """"'conv' (convolutional layers) is not supported yet; supported kinds: dense, ..."."""
    desc = NOT_BUILT.get(what, {}).get(value)
    if desc:
        t.fail(f"'{value}' ({desc}) is not supported yet; supported {_SUPPORTED[what]}: "
               f"{', '.join(built)}", key)


def _parse_layer(t: Table) -> LayerSpec:
    kind = t.string("kind")
    _refuse_unbuilt(t, "kind", kind, "layer kind", LAYER_KINDS)
    kind = t.choice("kind", LAYER_KINDS)
    size = t.integer("size", lo=1, hi=1_000_000)
    beta = t.number("beta", lo=0.0, hi=1.0)
    if kind == "readout":
        layer = LayerSpec(kind=kind, size=size, neuron="readout", beta=beta,
                          trace_decay=t.number("trace_decay", 0.0, lo=0.0, hi=1.0))
    else:
        neuron = t.string("neuron", "lif")
        _refuse_unbuilt(t, "neuron", neuron, "neuron", NEURONS)
        layer = LayerSpec(kind=kind, size=size, neuron=t.choice("neuron", NEURONS, "lif"),
                          beta=beta, threshold=t.number("threshold", lo=0.0, lo_open=True),
                          reset=t.choice("reset", ("soft", "hard"), "soft"))
    if t.has("tess_groups"):
        if kind == "readout":
            t.fail("applies to spiking layers only (the readout learns from its own error)",
                   "tess_groups")
        D = t.integer("tess_groups", lo=1)
        if D > size:
            t.fail(f"must be <= the layer's size ({size}): D groups of its neurons, got {D}",
                   "tess_groups")
        layer = replace(layer, tess_groups=D)
    if kind != "readout":
        layer = _parse_delays(t, layer)
    else:
        for key in DELAY_DEFAULTS:
            if t.has(key):
                t.fail("applies to spiking layers only (the readout has no delays or mask)", key)
    t.reject_unknown()
    return layer


def _parse_delays(t: Table, layer: LayerSpec) -> LayerSpec:
    """The delay and sparsity keys of a spiking layer (docs/delays.md)."""
    connectivity = t.number("connectivity", 1.0, lo=0.0, lo_open=True, hi=1.0)
    delays = t.choice("delays", DELAYS, "none")
    if delays == "none":
        for key in ("max_delay", "delay_init", "delay_lr", "sigma"):
            if t.has(key):
                t.fail('only applies with delays = "axonal" or "synaptic" (delays is "none")', key)
        return replace(layer, connectivity=connectivity)
    max_delay = t.integer("max_delay", lo=1, hi=MAX_DELAY_LIMIT)
    sigma = t.number("sigma", 1.0, lo=0.0, lo_open=True, hi=float(MAX_DELAY_LIMIT))
    delay_lr = t.number("delay_lr", lo=0.0, lo_open=True, hi=1.0) if t.has("delay_lr") else None
    raw = t.value("delay_init", "zero")
    if isinstance(raw, list):
        init: str | tuple = _delay_values(t, raw, max_delay)
    else:
        init = t.choice("delay_init", ("zero", "uniform"), "zero")
    return replace(layer, delays=delays, max_delay=max_delay, delay_init=init,
                   delay_lr=delay_lr, sigma=sigma, connectivity=connectivity)


def _delay_values(t: Table, raw: list, max_delay: int) -> tuple[float, ...]:
    """Explicit initial delays: a flat list, or a list of rows (synaptic), each in
    ``[0, max_delay]``; their count is checked against the layer's fan-in later."""
    flat = [v for row in raw for v in row] if raw and all(isinstance(r, list) for r in raw) \
        else raw
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not 0 <= v <= max_delay:
            t.fail(f'must be "zero", "uniform" or a list of numbers in [0, {max_delay}] '
                   f"(max_delay), got {_show_value(v)}", "delay_init")
    if not flat:
        t.fail('must be "zero", "uniform" or a non-empty list of numbers', "delay_init")
    return tuple(float(v) for v in flat)


def _show_value(v) -> str:
    return repr(v) if isinstance(v, str) else ("a list" if isinstance(v, list) else str(v))


def _resolve_delays(spec: NetworkSpec, tables: list[Table]) -> NetworkSpec:
    """Per delayed layer: the default delay rate (128 x the weights', at most 1: the
    paper's delays learn about 100 times faster than its weights) and the count of
    explicit initial delays (axonal: one per input; synaptic: one per synapse)."""
    layers = list(spec.layers)
    for i, (layer, t) in enumerate(zip(spec.hidden, tables)):
        if not layer.delayed:
            continue
        if layer.delay_lr is None:
            layers[i] = layer = replace(layer, delay_lr=min(1.0, 128 * spec.learning.learning_rate))
        if isinstance(layer.delay_init, tuple):
            n_in = spec.fan_in(i)
            want = n_in if layer.delays == "axonal" else n_in * layer.size
            if len(layer.delay_init) != want:
                what = (f"{n_in} (one per input)" if layer.delays == "axonal"
                        else f"{want} ({layer.size} neurons x {n_in} inputs)")
                t.fail(f"a list of initial delays needs {what} values, got "
                       f"{len(layer.delay_init)}", "delay_init")
    return replace(spec, layers=tuple(layers))


def _tess_groups(layers: tuple[LayerSpec, ...], tables: list[Table],
                 learning: LearningSpec) -> tuple[LayerSpec, ...]:
    """Under TESS every spiking layer gets its D (default: its size); elsewhere none may."""
    if learning.signal != "tess":
        for layer, t in zip(layers, tables):
            if layer.tess_groups is not None:
                t.fail(f'only applies with learning.signal = "tess" (signal is '
                       f'"{learning.signal}")', "tess_groups")
        return layers
    return tuple(replace(layer, tess_groups=layer.tess_groups or layer.size)
                 if layer.spiking else layer for layer in layers)


def _parse_learning(t: Table, steps: int) -> LearningSpec:
    rule = t.string("rule", "stllr")
    _refuse_unbuilt(t, "rule", rule, "rule", RULES)
    signal = t.string("signal", "bp")
    _refuse_unbuilt(t, "signal", signal, "signal", SIGNALS)
    window = t.integer("window", lo=1)
    if window > steps:
        t.fail(f"must be <= network.time_steps ({steps}), got {window}", "window")
    learning = LearningSpec(
        rule=t.choice("rule", RULES, "stllr"),
        signal=t.choice("signal", SIGNALS, "bp"),
        feedback=t.choice("feedback", ("stored", "regenerated"), "regenerated"),
        window=window,
        lambda_pre=t.number("lambda_pre", 1.0, lo=0.0, hi=1.0),
        lambda_post=t.number("lambda_post", 0.5, lo=0.0, hi=1.0),
        alpha_pre=t.number("alpha_pre", 1.0, lo=-16.0, hi=16.0),
        alpha_post=t.number("alpha_post", 1.0, lo=-16.0, hi=16.0),
        learning_rate=t.number("learning_rate", lo=0.0, lo_open=True, hi=1.0),
        update=t.choice("update", ("per-step", "per-sample"), "per-step"),
        surrogate=t.choice("surrogate", ("rational", "triangle"), "rational"),
        init_scale=t.number("init_scale", 1.0, lo=0.0, lo_open=True, hi=100.0),
        lr_halving_every=t.integer("lr_halving_every", 0, lo=0),
        residual=t.choice("residual", RESIDUALS, "clear"),
        hidden=t.choice("hidden", HIDDEN, "learn"),
        **_parse_tess(t, signal),
    )
    if learning.carry and not learning.per_sample:
        t.fail('"carry" needs update = "per-sample" (per-step updates have no accumulator to '
               'carry a remainder in)', "residual")
    t.reject_unknown()
    return learning


def _parse_tess(t: Table, signal: str) -> dict:
    """``tess_fmin``/``tess_fmax``: only with signal tess, ``0 < fmin < fmax``;
    ``tess_temperature``: a power of two (a shift of the local logits on the chip)."""
    if signal != "tess":
        for key in ("tess_fmin", "tess_fmax", "tess_temperature"):
            if t.has(key):
                t.fail(f'only applies with signal = "tess" (signal is "{signal}")', key)
        return {}
    fmin = t.number("tess_fmin", 50.0, lo=0.0, lo_open=True, hi=1e6)
    fmax = t.number("tess_fmax", 512.0, lo=0.0, lo_open=True, hi=1e6)
    if not fmin < fmax:
        t.fail(f"must be above tess_fmin ({fmin:g}), got {fmax:g}", "tess_fmax")
    tau = t.number("tess_temperature", 1.0, lo=2.0 ** -16, hi=2.0 ** 16)
    if math.log2(tau) != round(math.log2(tau)):
        t.fail(f"must be a power of two (the chip shifts the local logits), got {tau:g}",
               "tess_temperature")
    return {"tess_fmin": fmin, "tess_fmax": fmax, "tess_temperature": tau}
