"""Place a network spec on a device: every tensor with its format and its bank.

``make_plan(spec, device)`` lists the tensors on-chip S-TLLR learning needs
(``learning_tensors``), checks the device's structural limits (small named
rule functions, each with a message a user can act on), then places the
tensors in the device's SRAM banks: largest first, each in the first bank
(in the device file's order) that may hold its kind and has room. A bank with
a ``holds`` list takes only those kinds; a bank without one takes any tensor
that no bank claims.

Storage is word-exact: a bank stores ``word_bits // bits`` elements per word
(no element straddles two words), so a 16-bit membrane in a 64-bit bank packs
four to a word and 1-bit spikes pack ``word_bits`` to a word.

``plan.check()`` raises ``BudgetError`` naming the bank, the bytes needed, the
bytes it has and the largest tensor that wants it.

The same spec is also costed, not placed, as BPTT would store it
(``bptt_tensors``: T steps of activations) and as float32 (``as_float32``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from edgesnn.errors import BudgetError
from edgesnn.hw import Bank, Device, NumberFormat
from edgesnn.rules.delays import history_steps, reach
from edgesnn.rules.tess import basis_signs_for
from edgesnn.spec import NetworkSpec

#: Roles of tensors in the memory map.
PARAMETER, STATE, LEARNING, BUFFER = "parameter", "state", "learning", "buffer"


@dataclass(frozen=True)
class Tensor:
    """One array the core stores.

    ``bits`` per element (1 for spikes); ``fmt`` is None for raw bits
    (spikes, LFSR state, LUT entries).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    bits: int
    role: str
    description: str
    fmt: NumberFormat | None = None

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def packed_bytes(self) -> int:
        """Bytes with elements packed bit-tight (no word boundaries)."""
        return math.ceil(self.elements * self.bits / 8)

    def words_in(self, bank: Bank) -> int:
        """Words this tensor takes in ``bank`` (no element straddles words)."""
        if self.bits <= bank.word_bits:
            return math.ceil(self.elements / (bank.word_bits // self.bits))
        return self.elements * math.ceil(self.bits / bank.word_bits)

    def bytes_in(self, bank: Bank) -> int:
        return math.ceil(self.words_in(bank) * bank.word_bits / 8)


@dataclass(frozen=True)
class Placement:
    tensor: Tensor
    bank: str
    words: int
    bytes: int


@dataclass(frozen=True)
class BankUse:
    bank: Bank
    used_bytes: int

    @property
    def fraction(self) -> float:
        return self.used_bytes / self.bank.size_bytes


@dataclass(frozen=True)
class Plan:
    """A spec placed on a device. ``problems`` is empty when it fits."""

    spec: NetworkSpec
    device: Device
    placements: tuple[Placement, ...]
    banks: tuple[BankUse, ...]
    problems: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.placements)

    def check(self) -> "Plan":
        """Return self, or raise BudgetError with the first problem."""
        if self.problems:
            raise BudgetError(self.problems[0])
        return self

    @cached_property
    def tess_signs(self) -> list[np.ndarray] | None:
        """Each spiking layer's TESS basis signs ``(C, D)`` int8 on this device (the
        authors' when stored, the phase accumulator's when generated:
        ``rules.tess.basis_signs_for``), or None unless the spec learns with TESS. Every
        engine of a run takes these."""
        return basis_signs_for(self.spec, self.device)

    def placement(self, name: str) -> Placement:
        for p in self.placements:
            if p.tensor.name == name:
                return p
        raise KeyError(name)


# --------------------------------------------------------------------------
# what is stored


def _fmt_tensor(device: Device, name: str, kind: str, fmt_kind: str, shape: tuple[int, ...],
                role: str, description: str) -> Tensor:
    fmt = device.formats[fmt_kind]
    return Tensor(name, kind, shape, fmt.bits, role, description, fmt)


def _bits(name: str, kind: str, shape: tuple[int, ...], bits: int, role: str,
          description: str) -> Tensor:
    return Tensor(name, kind, shape, bits, role, description)


#: xorshift32 lane registers of the rounding random source (edgesnn.core.rng.LANES)
RNG_LANES = 32


def _stochastic(device: Device) -> bool:
    return any(not f.is_float and f.rounding == "stochastic" for f in device.formats.values())


def _regenerated(spec: NetworkSpec) -> bool:
    ln = spec.learning
    return ln.signal == "dfa" and ln.feedback == "regenerated" and not ln.frozen


def synapse_shape(spec: NetworkSpec, i: int) -> tuple[int, int]:
    """Stored feed-forward synapses of layer ``i``: ``(N_in, N)`` dense, ``(k, N)`` with
    ``connectivity`` (the ``k`` kept inputs of each neuron, ``NetworkSpec.kept_inputs``)."""
    return (spec.kept_inputs(i), spec.layers[i].size)


def mask_tensor(spec: NetworkSpec, i: int) -> Tensor:
    """Which inputs a sparse layer's neurons keep, stored as a device would: ``k`` input
    indices per neuron (``ceil(log2 N_in)`` bits each) or a bitmap of ``N_in x N`` bits,
    whichever is smaller. Kind ``weight``: it lives beside the weights it addresses."""
    n_in, n, k = spec.fan_in(i), spec.layers[i].size, spec.kept_inputs(i)
    index_bits = max(1, math.ceil(math.log2(n_in)))
    if k * index_bits < n_in:
        return _bits(f"L{i}.mask", "weight", (k, n), index_bits, PARAMETER,
                     f"layer {i} kept inputs: {k} indices of {index_bits} bits per neuron")
    return _bits(f"L{i}.mask", "weight", (n_in, n), 1, PARAMETER,
                 f"layer {i} kept inputs: a bitmap, one bit per possible synapse")


def delay_shape(spec: NetworkSpec, i: int) -> tuple[int, ...]:
    """Delay values of layer ``i``: one per input (axonal) or per stored synapse."""
    layer = spec.layers[i]
    return (spec.fan_in(i),) if layer.delays == "axonal" else synapse_shape(spec, i)


def history_rows(spec: NetworkSpec, i: int, learns: bool) -> int:
    """Steps of spike history per input of delayed layer ``i``: ``max_delay + 1`` to
    deliver delayed spikes, ``R = ceil(3 sigma)`` more when its delays learn (the
    centred kernel reads spikes up to ``R`` steps beyond the longest delay)."""
    layer = spec.layers[i]
    return history_steps(layer.max_delay, layer.sigma) if learns else layer.max_delay + 1


def slope_table_entries(spec: NetworkSpec, device: Device) -> int:
    """Entries of the Gaussian slope table ``G'(k - d)``: one per tap offset
    ``-R..R`` and fractional code of the delay format, for the widest ``sigma``."""
    R = max(reach(layer.sigma) for layer in spec.hidden if layer.delayed)
    f = device.formats["delay"]
    return (2 * R + 1) * (1 if f.is_float else 2 ** f.frac_bits)


def _delay_state_tensors(spec: NetworkSpec, device: Device, i: int,
                         learns: bool) -> list[Tensor]:
    """What delays and a sparse mask add to layer ``i``'s inference storage: the mask, the
    delay codes, and the buffer that delivers delayed spikes (axonal: a spike history of
    every input; synaptic: Lava's ring of ``max_delay + 1`` input accumulators per
    neuron, written when a spike arrives, read and cleared at its delayed step)."""
    layer, what = spec.layers[i], f"layer {i}"
    n_in, n = spec.fan_in(i), layer.size
    out = [mask_tensor(spec, i)] if layer.sparse else []
    if not layer.delayed:
        return out
    out.append(_fmt_tensor(device, f"L{i}.d", "delay", "delay", delay_shape(spec, i),
                           PARAMETER, f"{what} {layer.delays} delays, steps"))
    if layer.delays == "synaptic":
        out.append(_fmt_tensor(device, f"L{i}.ring", "current", "current",
                               (layer.max_delay + 1, n), BUFFER,
                               f"{what} delayed input accumulators, a ring per neuron"))
    if layer.delays == "axonal" or learns:
        out.append(_bits(f"L{i}.hist", "spike", (history_rows(spec, i, learns), n_in), 1,
                         BUFFER, f"{what} input spike history, a ring per input"))
    return out


def _delay_learning_tensors(spec: NetworkSpec, device: Device, i: int) -> list[Tensor]:
    """What learning delays adds to layer ``i``: the delay eligibility ``eps`` (one per
    input for axonal delays, the weight factored out; one per synapse for synaptic) and,
    with per-sample updates, its accumulator (docs/delays.md)."""
    layer, what = spec.layers[i], f"layer {i}"
    out = [_fmt_tensor(device, f"L{i}.eps", "trace", "eligibility", delay_shape(spec, i), LEARNING,
                       f"{what} delay eligibility trace")]
    if spec.learning.per_sample:
        out.append(_fmt_tensor(device, f"L{i}.dd", "update", "update", delay_shape(spec, i),
                               LEARNING, f"{what} per-sample delay-update accumulator"))
    return out


def layer_state_tensors(spec: NetworkSpec, device: Device,
                        learning: bool = False) -> list[Tensor]:
    """Parameters and per-step neuron state: what inference alone stores (with
    ``learning``, the longer spike histories of layers whose delays learn)."""
    out: list[Tensor] = []
    learns = {i for i, _ in spec.learning_layers} if learning else set()
    for i, layer in enumerate(spec.layers):
        p = f"L{i}" if layer.spiking else "out"
        n_in, n = spec.fan_in(i), layer.size
        what = "readout" if not layer.spiking else f"layer {i}"
        out.append(_fmt_tensor(device, f"{p}.W", "weight", "weight", synapse_shape(spec, i),
                               PARAMETER, f"{what} weights, input-major"
                               + (" (kept synapses only)" if layer.spiking and layer.sparse
                                  else "")))
        if layer.spiking:
            out.extend(_delay_state_tensors(spec, device, i, i in learns))
        if layer.recurrent:
            out.append(_fmt_tensor(device, f"{p}.W_rec", "weight", "weight", (n, n), PARAMETER,
                                   f"{what} recurrent weights, input-major"))
        out.append(_fmt_tensor(device, f"{p}.b", "bias", "bias", (n,), PARAMETER, f"{what} bias"))
        out.append(_fmt_tensor(device, f"{p}.u", "membrane", "membrane", (n,), STATE,
                               f"{what} membrane potential"))
        out.append(_fmt_tensor(device, f"{p}.i", "current", "current", (n,), STATE,
                               f"{what} synaptic accumulators"))
        if layer.spiking:
            # a recurrent layer reads s[t-1] while writing s[t]: double buffer
            out.append(_bits(f"{p}.s", "spike", ((2 if layer.recurrent else 1), n), 1, STATE,
                             f"{what} output spikes"))
    out.append(_bits("input", "input", (spec.inputs,), 1, BUFFER, "input spikes of one step"))
    return out


def learning_tensors(spec: NetworkSpec, device: Device) -> list[Tensor]:
    """Everything on-chip S-TLLR learning stores: independent of T by construction.

    With ``learning.hidden = "frozen"`` a spiking layer stores only what inference
    does (no traces, surrogate, signal, accumulators or feedback); the readout
    learns as usual.
    """
    ln = spec.learning
    out = layer_state_tensors(spec, device, learning=True)
    for i, layer in spec.learning_layers:
        p = f"L{i}" if layer.spiking else "out"
        n_in, n = spec.fan_in(i), layer.size
        what = "readout" if not layer.spiking else f"layer {i}"
        synaptic = layer.spiking and layer.delays == "synaptic"
        # each synapse sees its own delayed train: its presynaptic trace is its own
        out.append(_fmt_tensor(device, f"{p}.q", "trace", "trace",
                               synapse_shape(spec, i) if synaptic else (n_in,), LEARNING,
                               f"{what} presynaptic trace q" + (", one per synapse"
                                                                if synaptic else "")))
        if layer.spiking and layer.delayed:
            out.extend(_delay_learning_tensors(spec, device, i))
        if layer.spiking:
            if layer.recurrent:
                out.append(_fmt_tensor(device, f"{p}.q_rec", "trace", "trace", (n,), LEARNING,
                                       f"{what} recurrent presynaptic trace"))
            out.append(_fmt_tensor(device, f"{p}.h", "trace", "trace", (n,), LEARNING,
                                   f"{what} postsynaptic trace h"))
            out.append(_fmt_tensor(device, f"{p}.psi", "trace", "trace", (n,), LEARNING,
                                   f"{what} secondary activation psi"))
            out.append(_fmt_tensor(device, f"{p}.g", "signal", "signal", (n,), LEARNING,
                                   f"{what} learning signal g"))
            if ln.signal == "tess":
                out.extend(_tess_layer_tensors(spec, device, i))
        else:
            out.append(_fmt_tensor(device, f"{p}.e", "signal", "signal", (n,), LEARNING,
                                   "readout error softmax - onehot"))
        if ln.per_sample:
            out.append(_fmt_tensor(device, f"{p}.dW", "update", "update",
                                   synapse_shape(spec, i), LEARNING,
                                   f"{what} per-sample weight-update accumulator"))
            if layer.recurrent:
                out.append(_fmt_tensor(device, f"{p}.dW_rec", "update", "update", (n, n),
                                       LEARNING, f"{what} recurrent update accumulator"))
            out.append(_fmt_tensor(device, f"{p}.db", "update", "update", (n,), LEARNING,
                                   f"{what} bias update accumulator"))
        if layer.spiking and ln.signal == "dfa" and ln.feedback == "stored":
            out.append(_fmt_tensor(device, f"{p}.B", "feedback", "weight", (spec.classes, n),
                                   LEARNING, f"{what} stored DFA feedback matrix"))
    if ln.signal == "tess" and device.tess.basis == "generated" and not ln.frozen:
        pb = device.tess.phase_bits
        out.append(_bits("tess.steps", "rng", (spec.classes,), pb, STATE,
                         "TESS phase increment per class (the basis is generated)"))
        out.append(_bits("tess.phase", "rng", (device.tess.units,), pb, BUFFER,
                         "TESS phase accumulators that generate the basis signs"))
    luts = device.luts
    if luts.psi_entries and not ln.frozen:
        out.append(_bits("lut.psi", "lut", (luts.psi_entries,), luts.psi_bits, BUFFER,
                         "surrogate psi lookup table"))
    if luts.exp_entries:
        out.append(_bits("lut.exp", "lut", (luts.exp_entries,), luts.exp_bits, BUFFER,
                         "softmax exp lookup table"))
    if luts.psi_entries and any(layer.delayed for _, layer in spec.learning_layers):
        out.append(_bits("lut.slope", "lut", (slope_table_entries(spec, device),),
                         luts.slope_bits, BUFFER,
                         "Gaussian slope table of delay learning, per tap and fraction"))
    if _stochastic(device):
        out.append(_bits("rng", "rng", (RNG_LANES,), 32, STATE,
                         "xorshift32 lane registers of stochastic rounding"))
    if _regenerated(spec):
        for l, layer in enumerate(spec.layers):
            if layer.spiking:
                out.append(_bits(f"L{l}.B_seed", "rng", (1,), 32, STATE,
                                 f"layer {l} DFA feedback seed (the matrix is regenerated)"))
        out.append(_bits("fb_lfsr", "rng", (1,), 32, BUFFER,
                         "Galois LFSR that regenerates DFA feedback signs"))
    return out


#: bits per stored TESS basis entry: sign and magnitude of -1, 0, +1
BASIS_BITS = 2


def _tess_layer_tensors(spec: NetworkSpec, device: Device, i: int) -> list[Tensor]:
    """Spiking layer ``i``'s TESS tensors: its pooled activity (then the latent gradient's
    shares), its local logits (membrane format, as the readout's) and error, and with a
    stored basis its ``C x D`` signs (2 bits each, kind ``feedback``: the bank of a
    stored DFA matrix)."""
    layer, C, what = spec.layers[i], spec.classes, f"layer {i}"
    D = layer.tess_groups or layer.size
    out = [_fmt_tensor(device, f"L{i}.latent", "signal", "signal", (D,), LEARNING,
                       f"{what} TESS pooled activity, then its gradient's shares"),
           _fmt_tensor(device, f"L{i}.z", "signal", "membrane", (C,), LEARNING,
                       f"{what} TESS local logits"),
           _fmt_tensor(device, f"L{i}.e", "signal", "signal", (C,), LEARNING,
                       f"{what} TESS local error softmax - onehot")]
    if device.tess.basis == "stored":
        out.append(_bits(f"L{i}.basis", "feedback", (C, D), BASIS_BITS, LEARNING,
                         f"{what} stored TESS basis signs (2 bits each)"))
    return out


def bptt_tensors(spec: NetworkSpec, device: Device) -> list[Tensor]:
    """What BPTT stores for one sample, in the device's formats.

    Parameters, gradient accumulators for every parameter (the update is
    applied after the backward pass), and for every one of the T steps the
    activations the backward pass reads: each layer's input spikes, membrane
    before reset (for the surrogate), output spikes, and the readout's
    membrane; plus one step of backward state (the membrane adjoint).
    """
    T = spec.time_steps
    out = [t for t in layer_state_tensors(spec, device) if t.role == PARAMETER]
    for i, layer in enumerate(spec.layers):
        p = f"L{i}" if layer.spiking else "out"
        n_in, n = spec.fan_in(i), layer.size
        out.append(_fmt_tensor(device, f"{p}.dW", "update", "update", (n_in, n), LEARNING,
                               "weight gradient accumulator"))
        if layer.recurrent:
            out.append(_fmt_tensor(device, f"{p}.dW_rec", "update", "update", (n, n), LEARNING,
                                   "recurrent gradient accumulator"))
        out.append(_fmt_tensor(device, f"{p}.db", "update", "update", (n,), LEARNING,
                               "bias gradient accumulator"))
        out.append(_bits(f"{p}.x[T]", "input", (T, n_in), 1, STATE, "input spikes, all steps"))
        out.append(_fmt_tensor(device, f"{p}.u[T]", "membrane", "membrane", (T, n), STATE,
                               "membrane before reset, all steps"))
        if layer.spiking:
            out.append(_bits(f"{p}.s[T]", "spike", (T, n), 1, STATE, "output spikes, all steps"))
        out.append(_fmt_tensor(device, f"{p}.delta", "current", "current", (n,), LEARNING,
                               "membrane adjoint of the backward pass"))
    return out


def as_float32(tensors: list[Tensor]) -> list[Tensor]:
    """The same tensors stored as float32, spikes included (as a PyTorch run stores them)."""
    f32 = NumberFormat(float_bits=32)
    return [replace(t, bits=32, fmt=f32) for t in tensors]


def total_packed_bytes(tensors: list[Tensor]) -> int:
    return sum(t.packed_bytes for t in tensors)


# --------------------------------------------------------------------------
# structural rules (each returns a message or None)


def rule_max_inputs(spec: NetworkSpec, device: Device) -> str | None:
    lim = device.limits.max_inputs
    if lim is not None and spec.inputs > lim:
        return (f"does not fit {device.name}: it takes at most {lim} input channels, "
                f"the spec has network.inputs = {spec.inputs}")
    return None


def rule_max_neurons(spec: NetworkSpec, device: Device) -> str | None:
    lim = device.limits.max_neurons
    n = sum(layer.size for layer in spec.hidden)
    if lim is not None and n > lim:
        return (f"does not fit {device.name}: it has {lim} spiking neurons, "
                f"the spec's spiking layers have {n}")
    return None


def rule_max_outputs(spec: NetworkSpec, device: Device) -> str | None:
    lim = device.limits.max_outputs
    if lim is not None and spec.classes > lim:
        return (f"does not fit {device.name}: it has {lim} output neurons, "
                f"the readout has {spec.classes}")
    return None


def rule_max_fanout(spec: NetworkSpec, device: Device) -> str | None:
    lim = device.limits.max_fanout
    if lim is None:
        return None
    for i, layer in enumerate(spec.hidden):
        fanout = spec.layers[i + 1].size + (layer.size if layer.recurrent else 0)
        if fanout > lim:
            return (f"does not fit {device.name}: a neuron may drive at most {lim} synapses, "
                    f"layer {i} neurons drive {fanout}")
    return None


def rule_max_delay(spec: NetworkSpec, device: Device) -> str | None:
    """Delays the device cannot give: none at all (``max_delay = 0``), longer than its
    largest (``limits.max_delay``), or more steps than its delay format's integer part."""
    lim, f = device.limits.max_delay, device.formats["delay"]
    for i, layer in enumerate(spec.hidden):
        if not layer.delayed:
            continue
        if lim == 0:
            return (f"does not fit {device.name}: the device has no delays, layer {i} has "
                    f'delays = "{layer.delays}"')
        if lim is not None and layer.max_delay > lim:
            return (f"does not fit {device.name}: its largest delay is {lim} steps, layer "
                    f"{i} has max_delay = {layer.max_delay}")
        if not f.is_float and layer.max_delay > (1 << f.int_bits) - 1:
            return (f"does not fit {device.name}: its delay format Q{f.int_bits}."
                    f"{f.frac_bits} holds at most {(1 << f.int_bits) - 1} steps, layer {i} "
                    f"has max_delay = {layer.max_delay}")
    return None


STRUCTURE_RULES = (rule_max_inputs, rule_max_neurons, rule_max_outputs, rule_max_fanout,
                   rule_max_delay)


# --------------------------------------------------------------------------
# placement


def _candidates(device: Device, kind: str) -> tuple[Bank, ...]:
    claimed = tuple(b for b in device.banks if b.holds_kind(kind))
    return claimed or tuple(b for b in device.banks if b.general)


def place(tensors: list[Tensor], device: Device) -> tuple[tuple[Placement, ...],
                                                         tuple[BankUse, ...], tuple[str, ...]]:
    """First-fit placement, largest tensors first. Returns placements, use, problems."""
    free = {b.name: b.size_bytes for b in device.banks}
    placements: list[Placement] = []
    unplaced: list[Tensor] = []
    order = sorted(tensors, key=lambda t: (-t.packed_bytes, t.name))
    for t in order:
        for bank in _candidates(device, t.kind):
            size = t.bytes_in(bank)
            if size <= free[bank.name]:
                free[bank.name] -= size
                placements.append(Placement(t, bank.name, t.words_in(bank), size))
                break
        else:
            unplaced.append(t)
    problems = tuple(_budget_message(device, t, tensors, unplaced) for t in unplaced[:1])
    index = {t.name: k for k, t in enumerate(tensors)}
    placements.sort(key=lambda p: index[p.tensor.name])
    use = tuple(BankUse(b, b.size_bytes - free[b.name]) for b in device.banks)
    return tuple(placements), use, problems


def _budget_message(device: Device, failed: Tensor, tensors: list[Tensor],
                    unplaced: list[Tensor]) -> str:
    group = _candidates(device, failed.kind)
    if not group:
        return (f"does not fit {device.name}: no bank may hold '{failed.kind}' tensors "
                f"({failed.name}); add it to a bank's holds list")
    names = {b.name for b in group}
    wanting = [t for t in tensors if {b.name for b in _candidates(device, t.kind)} == names]
    need = sum(t.bytes_in(group[0]) for t in wanting)
    have = sum(b.size_bytes for b in group)
    largest = max(wanting, key=lambda t: t.packed_bytes)
    label = "bank " + "+".join(f"'{b.name}'" for b in group)
    if need <= have:
        return (f"does not fit {device.name}: {label} has {have:,} bytes for {need:,} needed, "
                f"but no single bank has room for {failed.name} ({failed.description}, "
                f"{failed.bytes_in(group[0]):,} bytes); a tensor is never split across banks")
    return (f"does not fit {device.name}: {label} needs {need:,} bytes, has {have:,}; "
            f"largest tensor {largest.name} ({largest.description}, "
            f"{largest.bytes_in(group[0]):,} bytes)")


def make_plan(spec: NetworkSpec, device: Device) -> Plan:
    """Place ``spec`` on ``device``; ``Plan.fits`` tells, ``Plan.check()`` raises."""
    problems = [m for rule in STRUCTURE_RULES if (m := rule(spec, device))]
    placements, use, budget = place(learning_tensors(spec, device), device)
    return Plan(spec, device, placements, use, tuple(problems) + budget)
