"""Analytic per-sample operation counts and energy, for S-TLLR, TESS and BPTT.

These are the formulas behind ``edgesnn profile``: counts at given mean spike
rates, before any simulation. They instantiate the complexity statements of
the papers on a concrete network:

* S-TLLR (Apolinario & Roy): learning state per layer is the presynaptic
  trace (n_in), the postsynaptic trace (n) and, for a recurrent layer, the
  recurrent presynaptic trace (n): O(n), independent of T. The weight update
  in each of the Tl window steps is ``dW = (g*alpha_post*h) x^T +
  (g*alpha_pre*psi) q^T``: two MACs per synapse (one causal, one non-causal)
  and two multiplies per neuron for the factors.
* TESS (Apolinario, Roy & Frenkel): the same eligibility traces, and a local
  learning signal per layer from a fixed square-wave basis ``B`` (C x D,
  generated on the fly, not stored) applied to the layer's (pooled) activity
  of size D: ``z = B a`` (C*D MACs) and ``m = B^T (softmax(z) - y)`` (C*D MACs)
  per window step. Memory O(n), independent of T.
* BPTT: the forward pass of all T steps, then a backward pass over all T
  steps: one MAC per synapse per step for the weight gradient, one per
  recurrent synapse per step to carry the adjoint back through the
  recurrence, one per synapse of every layer above the first to pass it
  down; memory grows with T (see ``plan.bptt_tensors``).

Rates are spikes per neuron (or input channel) per step. Counts are floats
because rates are means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgesnn.hw import Device, NumberFormat
from edgesnn.plan import Plan, Tensor, layer_state_tensors
from edgesnn.spec import NetworkSpec


@dataclass(frozen=True)
class OpCounts:
    """Operations per sample.

    ``synops``: synaptic accumulates (one per active input per fan-out);
    ``neuron_updates``: leak-integrate-fire updates; ``trace_updates``: one per
    trace element per step; ``eligibility_macs``: MACs of the weight and bias
    updates (including the per-neuron factor multiplies); ``signal_macs``: MACs
    computing learning signals; ``weight_writes``: parameters written.
    """

    synops: float = 0.0
    neuron_updates: float = 0.0
    trace_updates: float = 0.0
    eligibility_macs: float = 0.0
    signal_macs: float = 0.0
    weight_writes: float = 0.0

    @property
    def learning_macs(self) -> float:
        return self.eligibility_macs + self.signal_macs

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["learning_macs"] = self.learning_macs
        return d

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))


def _rate_in(i: int, input_rate: float, hidden_rate: float) -> float:
    return input_rate if i == 0 else hidden_rate


def forward_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float) -> OpCounts:
    """Inference: synaptic accumulates and neuron updates of all T steps."""
    T = spec.time_steps
    synops = neurons = 0.0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.fan_in(i), layer.size
        synops += T * _rate_in(i, input_rate, hidden_rate) * n_in * n
        if layer.recurrent:
            synops += T * hidden_rate * n * n
        neurons += T * n
    return OpCounts(synops=synops, neuron_updates=neurons)


def _parameters(spec: NetworkSpec) -> int:
    total = 0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.fan_in(i), layer.size
        total += n_in * n + n + (n * n if layer.recurrent else 0)
    return total


def _trace_updates(spec: NetworkSpec) -> float:
    """q (n_in) for every layer incl. readout; h (n) and q_rec (n) for spiking layers."""
    T = spec.time_steps
    total = 0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.fan_in(i), layer.size
        total += n_in
        if layer.spiking:
            total += n + (n if layer.recurrent else 0)
    return float(T * total)


def _eligibility_macs(spec: NetworkSpec) -> float:
    """Window MACs of the updates: 2 per synapse + 2 factors + 1 bias per spiking neuron;
    1 per readout synapse and bias (dW_out += e q^T, db_out += e)."""
    Tl = spec.learning.window
    total = 0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.fan_in(i), layer.size
        if layer.spiking:
            synapses = n * (n_in + (n if layer.recurrent else 0))
            total += 2 * synapses + 2 * n + n
        else:
            total += n_in * n + n
    return float(Tl * total)


def _weight_writes(spec: NetworkSpec) -> float:
    per_step = spec.learning.update == "per-step"
    return float(_parameters(spec) * (spec.learning.window if per_step else 1))


def stllr_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float) -> OpCounts:
    """S-TLLR learning one sample, dense count (every synapse in every window step).

    Learning signal per window step: BP sends ``e @ W_out`` to the last
    hidden layer (C*n MACs) and ``(g*psi) @ W`` down to each earlier layer
    (n*n_in MACs); DFA sends ``e @ B`` to every hidden layer (C*n MACs).
    """
    Tl = spec.learning.window
    C = spec.classes
    signal = 0
    hidden = spec.hidden
    for i, layer in enumerate(hidden):
        if spec.learning.signal == "dfa" or i == len(hidden) - 1:
            signal += C * layer.size
        else:
            signal += spec.layers[i + 1].size * layer.size
    fwd = forward_ops(spec, input_rate, hidden_rate)
    return OpCounts(synops=fwd.synops, neuron_updates=fwd.neuron_updates,
                    trace_updates=_trace_updates(spec), eligibility_macs=_eligibility_macs(spec),
                    signal_macs=float(Tl * signal), weight_writes=_weight_writes(spec))


def tess_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float,
             pooled: dict[int, int] | None = None) -> OpCounts:
    """TESS learning one sample: S-TLLR eligibility, local square-wave learning signal.

    ``pooled[i]`` is the size D of layer i's pooled activity (default: the layer
    size, no pooling, as for a dense layer). Per window step and hidden layer:
    ``2*C*D`` signal MACs and ``n`` multiplies to spread the pooled signal back.
    """
    Tl = spec.learning.window
    C = spec.classes
    signal = 0
    for i, layer in enumerate(spec.hidden):
        D = (pooled or {}).get(i, layer.size)
        signal += 2 * C * D + layer.size
    base = stllr_ops(spec, input_rate, hidden_rate)
    return OpCounts(synops=base.synops, neuron_updates=base.neuron_updates,
                    trace_updates=base.trace_updates, eligibility_macs=base.eligibility_macs,
                    signal_macs=float(Tl * signal), weight_writes=base.weight_writes)


def bptt_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float) -> OpCounts:
    """BPTT on one sample: forward, then backward over all T steps, one update."""
    T = spec.time_steps
    grad = adjoint = 0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.fan_in(i), layer.size
        rec = n * n if layer.recurrent else 0
        grad += n_in * n + rec + n        # dW, dW_rec, db
        adjoint += rec + (n * n_in if i > 0 else 0) + (n if layer.spiking else 0)
    fwd = forward_ops(spec, input_rate, hidden_rate)
    return OpCounts(synops=fwd.synops, neuron_updates=fwd.neuron_updates,
                    eligibility_macs=float(T * grad), signal_macs=float(T * adjoint),
                    weight_writes=float(_parameters(spec)))


# --------------------------------------------------------------------------
# memory formulas (elements), the papers' O(n) vs O(Tn)


def stllr_state_elements(spec: NetworkSpec) -> int:
    """Trace elements S-TLLR keeps: q per layer input, h and q_rec per spiking layer."""
    return int(_trace_updates(spec) // spec.time_steps)


def tess_state_elements(spec: NetworkSpec, pooled: dict[int, int] | None = None) -> int:
    """TESS: S-TLLR's traces plus each hidden layer's pooled activity (D) for the LSG."""
    extra = sum((pooled or {}).get(i, layer.size) for i, layer in enumerate(spec.hidden))
    return stllr_state_elements(spec) + extra


def bptt_state_elements(spec: NetworkSpec) -> int:
    """Activation elements BPTT keeps: per step and layer x (n_in), u (n), s (n, spiking)."""
    per_step = 0
    for i, layer in enumerate(spec.layers):
        per_step += spec.fan_in(i) + layer.size + (layer.size if layer.spiking else 0)
    return spec.time_steps * per_step


# --------------------------------------------------------------------------
# energy


@dataclass(frozen=True)
class AccessCost:
    """Per-element SRAM energy (pJ) of one tensor, read and write, from its bank."""

    read_pj: float
    write_pj: float


def _element_access(t: Tensor, plan: Plan, bits: int | None = None) -> AccessCost:
    """Energy share of one element access: a word's energy over the elements it holds."""
    try:
        bank = plan.device.bank(plan.placement(t.name).bank)
    except KeyError:  # not placed (over budget): charge the largest bank
        bank = max(plan.device.banks, key=lambda b: b.size_bytes)
    b = bits or t.bits
    # words per element: a fraction when several elements share a word
    share = 1 / (bank.word_bits // b) if b <= bank.word_bits else -(-b // bank.word_bits)
    return AccessCost(bank.read_pj * share, bank.write_pj * share)


def _mean_access(tensors: list[Tensor], plan: Plan, bits: int | None) -> AccessCost:
    if not tensors:
        return AccessCost(0.0, 0.0)
    total = sum(t.elements for t in tensors)
    costs = [(_element_access(t, plan, bits), t.elements) for t in tensors]
    return AccessCost(sum(c.read_pj * n for c, n in costs) / total,
                      sum(c.write_pj * n for c, n in costs) / total)


def energy_pj(ops: OpCounts, plan: Plan, float32: bool = False,
              activations: int = 0) -> dict[str, float]:
    """Energy of ``ops`` on ``plan.device``, by component, in pJ per sample.

    Each synaptic accumulate: an add at the current width plus its share of a
    weight-word read. Each neuron update: decay (a multiply, or a shift
    charged as an add), bias and current adds, threshold compare, a psi LUT
    read, and its share of a membrane-word read and write. Each trace update:
    a multiply and an add plus a read and write share. Each learning MAC: a
    multiply and an add at the update (or signal) width. Each weight write:
    read, add, write of the weight's share of a word. ``float32``: every
    operation in fp32 and every element 32 bits wide, on the same banks.
    ``activations``: BPTT's stored activation elements, each written once and
    read once (charged as membrane-sized elements).
    """
    dev: Device = plan.device
    f = dev.formats
    e = dev.energy
    if float32:
        f32 = NumberFormat(float_bits=32)
        f = {k: f32 for k in f}
    bits = 32 if float32 else None
    state = layer_state_tensors(plan.spec, dev)
    weights = [t for t in state if t.kind == "weight"]
    membranes = [t for t in state if t.kind == "membrane"]
    traces = [p.tensor for p in plan.placements if p.tensor.kind == "trace"]
    w_acc = _mean_access(weights, plan, bits)
    u_acc = _mean_access(membranes, plan, bits)
    q_acc = _mean_access(traces, plan, bits) if traces else u_acc
    add = lambda k: e.op_pj("add", f[k])  # noqa: E731
    mul = lambda k: e.op_pj("mul", f[k])  # noqa: E731
    shift = dev.decay == "shift" and not float32       # x - (x >> k): an add, not a multiply
    decay = {k: add(k) if shift else mul(k) for k in ("membrane", "trace")}
    lut = e.lut_read_pj if dev.luts.psi_entries and not float32 else 0.0
    parts = {
        "synaptic": ops.synops * (add("current") + w_acc.read_pj),
        "neuron": ops.neuron_updates * (decay["membrane"] + 3 * add("membrane") + lut
                                        + u_acc.read_pj + u_acc.write_pj),
        "trace": ops.trace_updates * (decay["trace"] + add("trace") + q_acc.read_pj
                                      + q_acc.write_pj),
        "learning": ops.eligibility_macs * (mul("update") + add("update"))
        + ops.signal_macs * (mul("signal") + add("signal") + w_acc.read_pj),
        "weight_update": ops.weight_writes * (w_acc.read_pj + add("weight") + w_acc.write_pj),
        "activation_storage": activations * (u_acc.read_pj + u_acc.write_pj),
    }
    parts["total"] = sum(parts.values())
    return parts


def bptt_energy_pj(spec: NetworkSpec, plan: Plan, input_rate: float, hidden_rate: float,
                   float32: bool = False) -> dict[str, float]:
    """BPTT energy per sample: its operations plus storing and re-reading activations."""
    ops = bptt_ops(spec, input_rate, hidden_rate)
    return energy_pj(ops, plan, float32=float32, activations=bptt_state_elements(spec))

