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
  of size D: pooling, ``z = B a`` (C*D MACs), the softmax (C), ``m = B^T
  (softmax(z) - y)`` (C*D MACs) and unpooling per window step, exactly as the
  float engine counts them (:func:`edgesnn.rules.tess.signal_work`); the basis
  costs ``D - 1`` phase-accumulator adds per class pass when the device generates
  it, ``D`` sign reads when it stores it (``[tess] basis``). Memory O(n),
  independent of T.
* BPTT: the forward pass of all T steps, then a backward pass over all T
  steps: one MAC per synapse per step for the weight gradient, one per
  recurrent synapse per step to carry the adjoint back through the
  recurrence, one per synapse of every layer above the first to pass it
  down; memory grows with T (see ``plan.bptt_tensors``).

Multiplies (``counters.is_multiply``): a product with a spike is an add, a
product with 0 or a power-of-two constant a shift. Decays multiply when the
device says ``decay = "multiply"`` (the ``decay`` argument; float32 always
multiplies) and their constant is a multiply. S-TLLR: per window step, ``c*q``
per synapse, ``g*h``, ``g*psi`` and the alpha scalings per neuron, ``e*q`` per
readout synapse, and the signal products (none for a regenerated DFA matrix,
whose entries are a sign and a power of two). BPTT: the adjoint products, and
the leak of the adjoint (one per neuron per step, like the forward leak);
its weight gradients multiply spikes, so they are adds.

Rates are spikes per neuron (or input channel) per step. Counts are floats
because rates are means.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from edgesnn.counters import is_multiply, update_multiplies
from edgesnn.hw import Device, NumberFormat
from edgesnn.plan import Plan, Tensor, delay_shape, layer_state_tensors
from edgesnn.rules.delays import buffer_work as delay_buffer_work
from edgesnn.rules.delays import step_work as delay_step_work
from edgesnn.rules.delays import window_work as delay_window_work
from edgesnn.rules.tess import signal_work
from edgesnn.spec import NetworkSpec


@dataclass(frozen=True)
class OpCounts:
    """Operations per sample.

    ``synops``: synaptic accumulates (one per active input per fan-out);
    ``neuron_updates``: leak-integrate-fire updates; ``trace_updates``: one per
    trace element per step; ``eligibility_macs``: MACs of the weight and bias
    updates (including the per-neuron factor multiplies); ``signal_macs``: MACs
    computing learning signals; ``weight_writes``: parameters written (delays included);
    ``delay_buffer_ops``, ``slope_lookups``: delay-buffer element accesses and slope-table
    reads (``rules.delays.buffer_work``, the float engine's dense count);
    ``multiplies`` and the part of them at the membrane, trace and signal
    widths (the rest, ``update_multiplies``, at the update width), as in
    ``counters``; ``local_signal_macs``: the TESS part of ``signal_macs``.
    """

    synops: float = 0.0
    neuron_updates: float = 0.0
    trace_updates: float = 0.0
    eligibility_macs: float = 0.0
    signal_macs: float = 0.0
    weight_writes: float = 0.0
    multiplies: float = 0.0
    membrane_multiplies: float = 0.0
    trace_multiplies: float = 0.0
    signal_multiplies: float = 0.0
    local_signal_macs: float = 0.0
    phase_adds: float = 0.0
    basis_reads: float = 0.0
    delay_buffer_ops: float = 0.0
    slope_lookups: float = 0.0

    @property
    def learning_macs(self) -> float:
        return self.eligibility_macs + self.signal_macs

    @property
    def update_multiplies(self) -> float:
        return update_multiplies(asdict(self))

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["learning_macs"] = self.learning_macs
        d["update_multiplies"] = self.update_multiplies
        return d

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))


DECAYS = ("multiply", "shift")
BASES = ("generated", "stored")


def _rate_in(i: int, input_rate: float, hidden_rate: float) -> float:
    return input_rate if i == 0 else hidden_rate


def _decays(decay: str, constant: float) -> int:
    """1 if a decay by ``constant`` is a multiply under the device's ``decay`` mode."""
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
    return int(decay == "multiply" and is_multiply(constant))


def _membrane_multiplies(spec: NetworkSpec, decay: str) -> int:
    """Membrane leaks that multiply, per step: ``n`` per layer whose ``beta`` multiplies."""
    return sum(layer.size * _decays(decay, layer.beta) for layer in spec.layers)


def _trace_multiplies(spec: NetworkSpec, decay: str) -> int:
    """Trace decays that multiply, per step (the traces of ``_trace_updates``)."""
    ln = spec.learning
    total = 0
    for i, layer in spec.learning_layers:
        n_in, n = spec.fan_in(i), layer.size
        if layer.spiking:
            total += (n_in + (n if layer.recurrent else 0)) * _decays(decay, ln.lambda_pre)
            total += n * _decays(decay, ln.lambda_post)
        else:
            total += n_in * _decays(decay, layer.trace_decay)
    return total


def forward_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float,
                decay: str = "multiply") -> OpCounts:
    """Inference: synaptic accumulates and neuron updates (with their leaks) of all T steps.

    ``decay``: the device's decay mode, ``"multiply"`` (also float32) or ``"shift"``.
    """
    T = spec.time_steps
    synops = neurons = 0.0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.kept_inputs(i), layer.size           # a sparse layer: kept synapses
        synops += T * _rate_in(i, input_rate, hidden_rate) * n_in * n
        if layer.recurrent:
            synops += T * hidden_rate * n * n
        neurons += T * n
    leaks = float(T * _membrane_multiplies(spec, decay))
    buffers, _ = _delay_buffers(spec, input_rate, hidden_rate, learning=False)
    return OpCounts(synops=synops, neuron_updates=neurons, multiplies=leaks,
                    membrane_multiplies=leaks, delay_buffer_ops=buffers)


def _delay_buffers(spec: NetworkSpec, input_rate: float, hidden_rate: float,
                   learning: bool) -> tuple[float, float]:
    """``(delay buffer accesses, slope-table reads)`` per sample of the delayed layers
    (``rules.delays.buffer_work`` per step, plus a synaptic ring add per synaptic
    accumulate); ``learning``: the learning layers' eligibility reads included."""
    learns = {i for i, _ in spec.learning_layers} if learning else set()
    ops = looks = 0.0
    for i, layer in enumerate(spec.layers):
        if not (layer.spiking and layer.delayed):
            continue
        k, n = spec.kept_inputs(i), layer.size
        o, s = delay_buffer_work(layer.delays, spec.fan_in(i), n, layer.sigma, k, i in learns)
        ring = _rate_in(i, input_rate, hidden_rate) * k * n if layer.delays == "synaptic" else 0
        ops += spec.time_steps * (o + ring)
        looks += spec.time_steps * s
    return ops, looks


def _parameters(spec: NetworkSpec, learned: bool = False) -> int:
    """Weights and biases of every layer (``learned``: of the layers that learn)."""
    total = 0
    for i, layer in (spec.learning_layers if learned else enumerate(spec.layers)):
        n_in, n = spec.kept_inputs(i), layer.size
        total += n_in * n + n + (n * n if layer.recurrent else 0)
    return total


def _delay_work(spec: NetworkSpec, i: int) -> tuple[int, int, int, int]:
    """Layer ``i``'s learned delays: ``(delays, trace updates per step, tap MACs per step,
    gradient MACs per window step)`` (``rules.delays.step_work`` and ``window_work``, the
    float engine's counts); zeros without delays."""
    layer = spec.layers[i]
    if not (layer.spiking and layer.delayed):
        return 0, 0, 0, 0
    n_in, n, k = spec.fan_in(i), layer.size, spec.kept_inputs(i)
    traces, taps = delay_step_work(layer.delays, n_in, n, layer.sigma, k)
    return (math.prod(delay_shape(spec, i)), traces, taps,
            delay_window_work(layer.delays, n_in, n, k, forms_signal=i == 0))


def _trace_updates(spec: NetworkSpec) -> float:
    """q (n_in) for every layer incl. readout; h (n) and q_rec (n) for spiking layers."""
    T = spec.time_steps
    total = 0
    for i, layer in spec.learning_layers:
        n_in, n = spec.fan_in(i), layer.size
        total += n_in + _delay_work(spec, i)[1]
        if layer.spiking:
            total += n + (n if layer.recurrent else 0)
    return float(T * total)


def _eligibility_macs(spec: NetworkSpec) -> float:
    """Window MACs of the updates: 2 per synapse + 2 factors + 1 bias per spiking neuron;
    1 per readout synapse and bias (dW_out += e q^T, db_out += e)."""
    Tl, T = spec.learning.window, spec.time_steps
    total = taps = 0
    for i, layer in spec.learning_layers:
        n_in, n = spec.kept_inputs(i), layer.size
        _, _, step_taps, window = _delay_work(spec, i)
        taps += step_taps
        if layer.spiking:
            synapses = n * (n_in + (n if layer.recurrent else 0))
            total += 2 * synapses + 2 * n + n + window
        else:
            total += n_in * n + n
    return float(Tl * total + T * taps)


def _eligibility_multiplies(spec: NetworkSpec) -> float:
    """Window multiplies of the updates: ``c*q`` per synapse, ``g*h``, ``g*psi`` and each
    alpha that multiplies per spiking neuron; ``e*q`` per readout synapse (``a*x`` and
    the biases are adds)."""
    ln = spec.learning
    per_neuron = 2 + is_multiply(ln.alpha_post) + is_multiply(ln.alpha_pre)
    total = 0
    for i, layer in spec.learning_layers:
        n_in, n = spec.kept_inputs(i), layer.size
        if layer.spiking:
            total += (n * (n_in + (n if layer.recurrent else 0)) + per_neuron * n
                      + _delay_work(spec, i)[3])
        else:
            total += n_in * n
    return float(ln.window * total)


def _with_multiplies(ops: OpCounts, spec: NetworkSpec, decay: str, signal: float) -> OpCounts:
    """``ops`` plus the multiplies of on-chip learning: leaks and trace decays of all T
    steps, the eligibility products and ``signal`` signal products of the window."""
    T = spec.time_steps
    membrane = float(T * _membrane_multiplies(spec, decay))
    trace = float(T * _trace_multiplies(spec, decay))
    total = membrane + trace + _eligibility_multiplies(spec) + signal
    return replace(ops, multiplies=total, membrane_multiplies=membrane, trace_multiplies=trace,
                   signal_multiplies=signal)


def _weight_writes(spec: NetworkSpec) -> float:
    """Weights, biases and delays written by the updates of one sample."""
    per_step = spec.learning.update == "per-step"
    written = _parameters(spec, learned=True) + sum(_delay_work(spec, i)[0]
                                                    for i, _ in spec.learning_layers)
    return float(written * (spec.learning.window if per_step else 1))


def _bp_dfa_signal(spec: NetworkSpec) -> tuple[int, int]:
    """``(MACs, multiplies)`` of the BP or DFA hidden signals of one window step."""
    ln = spec.learning
    C = spec.classes
    signal = products = 0
    hidden = spec.learning_hidden
    for i, layer in enumerate(hidden):
        if ln.signal == "dfa" or i == len(hidden) - 1:
            signal += C * layer.size
            regenerated = ln.signal == "dfa" and ln.feedback == "regenerated"
            products += C * layer.size * (0 if regenerated else 1)
        else:
            signal += spec.layers[i + 1].size * layer.size
            products += spec.layers[i + 1].size * layer.size
    return signal, products


def _tess_signal(spec: NetworkSpec, pooled: dict[int, int] | None = None) -> tuple[int, int]:
    """``(MACs, multiplies)`` of the TESS local signals of one window step (all local)."""
    signal = products = 0
    for i, layer in enumerate(spec.learning_hidden):
        macs, muls = signal_work(layer.size, _groups(spec, i, pooled), spec.classes)
        signal += macs
        products += muls
    return signal, products


def _groups(spec: NetworkSpec, i: int, pooled: dict[int, int] | None) -> int:
    """Layer ``i``'s TESS latent size: ``pooled[i]``, else the spec's ``tess_groups``, else n."""
    layer = spec.hidden[i]
    return (pooled or {}).get(i, layer.tess_groups or layer.size)


def stllr_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float,
              decay: str = "multiply", basis: str = "generated") -> OpCounts:
    """S-TLLR learning one sample, dense count (every synapse in every window step).

    Learning signal per window step: BP sends ``e @ W_out`` to the last
    hidden layer (C*n MACs) and ``(g*psi) @ W`` down to each earlier layer
    (n*n_in MACs); DFA sends ``e @ B`` to every hidden layer (C*n MACs; they
    multiply only when ``B`` is stored); TESS as :func:`tess_ops`. With
    ``learning.hidden = "frozen"`` only the readout learns: no signal, no hidden
    traces or updates. ``decay``: the device's decay mode (``"multiply"`` for float32);
    ``basis``: its TESS basis (``[tess] basis``), for TESS specs only.
    """
    if spec.learning.signal == "tess":
        return tess_ops(spec, input_rate, hidden_rate, decay=decay, basis=basis)
    signal, products = _bp_dfa_signal(spec)
    return _learning_ops(spec, input_rate, hidden_rate, decay, signal, products, 0)


def _learning_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float, decay: str,
                  signal: int, products: int, local: int, phase_adds: int = 0,
                  basis_reads: int = 0) -> OpCounts:
    Tl = spec.learning.window
    fwd = forward_ops(spec, input_rate, hidden_rate, decay)
    buffers, lookups = _delay_buffers(spec, input_rate, hidden_rate, learning=True)
    ops = OpCounts(synops=fwd.synops, neuron_updates=fwd.neuron_updates,
                   trace_updates=_trace_updates(spec), eligibility_macs=_eligibility_macs(spec),
                   signal_macs=float(Tl * signal), weight_writes=_weight_writes(spec),
                   local_signal_macs=float(Tl * local), phase_adds=float(Tl * phase_adds),
                   basis_reads=float(Tl * basis_reads), delay_buffer_ops=buffers,
                   slope_lookups=lookups)
    return _with_multiplies(ops, spec, decay, float(Tl * products))


def tess_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float,
             pooled: dict[int, int] | None = None, decay: str = "multiply",
             basis: str = "generated") -> OpCounts:
    """TESS learning one sample: S-TLLR eligibility, local square-wave learning signal.

    ``pooled[i]`` is the size D of layer i's pooled activity (default: the spec's
    ``tess_groups``, else the layer size: no pooling). Per window step and hidden
    layer (:func:`edgesnn.rules.tess.signal_work`, as the float engine counts):
    ``2*P + 2*C*D + C`` signal MACs, ``P`` the (neuron, group) memberships of the
    pooling (``n`` when D divides n), all of them ``local_signal_macs``; and as
    multiplies the group ``1/size`` scales (twice) and ``C + D`` basis ``1/D``
    scales, each only when not a power of two (a shift). The basis (``basis``, the
    device's ``[tess] basis``) in its ``2*C`` class passes (logits, then shares): a
    ``generated`` one adds ``D - 1`` to its phase accumulator per pass (``phase_adds``), a
    ``stored`` one reads its ``D`` signs (``basis_reads``), as the fixed engine counts them
    when every group has a spike and every class an error.
    """
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    signal, products = _tess_signal(spec, pooled)
    passes = [(2 * spec.classes, _groups(spec, i, pooled))
              for i, _ in enumerate(spec.learning_hidden)]
    adds = sum(p * (D - 1) for p, D in passes) if basis == "generated" else 0
    reads = sum(p * D for p, D in passes) if basis == "stored" else 0
    return _learning_ops(spec, input_rate, hidden_rate, decay, signal, products, signal,
                         adds, reads)


def bptt_ops(spec: NetworkSpec, input_rate: float, hidden_rate: float,
             decay: str = "multiply") -> OpCounts:
    """BPTT on one sample: forward, then backward over all T steps, one update.

    Multiplies: every adjoint MAC, and the leak twice per neuron and step
    (forward, and the adjoint's way back); the gradients ``delta x^T`` multiply
    spikes (adds).
    """
    T = spec.time_steps
    grad = adjoint = 0
    for i, layer in enumerate(spec.layers):
        n_in, n = spec.fan_in(i), layer.size
        rec = n * n if layer.recurrent else 0
        grad += n_in * n + rec + n        # dW, dW_rec, db
        adjoint += rec + (n * n_in if i > 0 else 0) + (n if layer.spiking else 0)
    fwd = forward_ops(spec, input_rate, hidden_rate, decay)
    leaks = 2 * fwd.membrane_multiplies
    return OpCounts(synops=fwd.synops, neuron_updates=fwd.neuron_updates,
                    eligibility_macs=float(T * grad), signal_macs=float(T * adjoint),
                    weight_writes=float(_parameters(spec)),
                    multiplies=leaks + T * adjoint, membrane_multiplies=leaks,
                    signal_multiplies=float(T * adjoint),
                    delay_buffer_ops=fwd.delay_buffer_ops)


# --------------------------------------------------------------------------
# memory formulas (elements), the papers' O(n) vs O(Tn)


def learning_state_elements(spec: NetworkSpec) -> int:
    """The state elements of the spec's own rule (TESS or S-TLLR)."""
    return (tess_state_elements(spec) if spec.learning.signal == "tess"
            else stllr_state_elements(spec))


def stllr_state_elements(spec: NetworkSpec) -> int:
    """Trace elements S-TLLR keeps: q per layer input, h and q_rec per spiking layer."""
    return int(_trace_updates(spec) // spec.time_steps)


def tess_state_elements(spec: NetworkSpec, pooled: dict[int, int] | None = None) -> int:
    """TESS: S-TLLR's traces plus each hidden layer's pooled activity (D) for the LSG
    (``pooled[i]``, else the spec's ``tess_groups``, else the layer size; the plan's
    ``L{i}.latent``)."""
    extra = sum(_groups(spec, i, pooled) for i in range(len(spec.hidden)))
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

    ``cost.energy_pj`` on analytic counts: each synaptic accumulate an add at
    the current width plus its share of a weight-word read. Each neuron
    update: bias and current adds, threshold compare (3 adds; a 4th for a
    shift decay), a psi LUT read, and its share of a membrane-word read and
    write. Each trace update: an add (and one for a shift decay) plus a read
    and write share. Each learning MAC: an add at the update (or signal)
    width; a signal MAC also reads its weight. Multiplies as counted, each at
    its width (membrane, trace, signal, the rest at update); a TESS local signal
    MAC reads no weight (its basis is a generated sign). Each weight
    write: read, add, write of the weight's share of a word. ``float32``:
    every operation in fp32 and every element 32 bits wide, on the same banks
    (``ops`` must then count float decays: ``decay="multiply"``).
    ``activations``: BPTT's stored activation elements, each written once and
    read once (charged as membrane-sized elements). A TESS basis (``basis``): a generated
    one's phase adds at ``[tess] phase_bits``, a stored one's sign reads as their share of
    a word of the bank holding ``L{i}.basis``; none in float32 (the float engine's signs
    cost nothing, as in ``cost.energy_pj``). Delay buffers and the slope table
    (``delay_buffers``): ``_delay_buffers_pj``.
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
    shift = int(dev.decay == "shift" and not float32)   # x - (x >> k): one more add
    has_lut = any(p.tensor.name == "lut.psi" for p in plan.placements)   # none when frozen
    lut = e.lut_read_pj if has_lut and not float32 else 0.0
    parts = {
        "synaptic": ops.synops * (add("current") + w_acc.read_pj),
        "neuron": ops.neuron_updates * ((3 + shift) * add("membrane") + lut
                                        + u_acc.read_pj + u_acc.write_pj)
        + ops.membrane_multiplies * mul("membrane"),
        "trace": ops.trace_updates * ((1 + shift) * add("trace") + q_acc.read_pj
                                      + q_acc.write_pj)
        + ops.trace_multiplies * mul("trace"),
        "learning": ops.eligibility_macs * add("update") + ops.update_multiplies * mul("update")
        + ops.signal_macs * add("signal")
        + (ops.signal_macs - ops.local_signal_macs) * w_acc.read_pj
        + ops.signal_multiplies * mul("signal"),
        "weight_update": ops.weight_writes * (w_acc.read_pj + add("weight") + w_acc.write_pj),
        "activation_storage": activations * (u_acc.read_pj + u_acc.write_pj),
        "basis": 0.0 if float32 else _basis_pj(ops, plan),
        "delay_buffers": _delay_buffers_pj(ops, plan, float32),
    }
    parts["total"] = sum(parts.values())
    return parts


def _delay_buffers_pj(ops: OpCounts, plan: Plan, float32: bool) -> float:
    """The delay buffers' energy per sample: each access an element's share of a word of
    the bank holding the spike histories and rings, at the mean of its read and write
    energy (the counter does not split them), and each slope-table read a LUT read (none
    in float32: the float engine computes ``G'``)."""
    if not (ops.delay_buffer_ops or ops.slope_lookups):
        return 0.0
    buffers = [p.tensor for p in plan.placements
               if p.tensor.name.endswith((".hist", ".ring"))]
    acc = _mean_access(buffers, plan, 32 if float32 else None)
    pj = ops.delay_buffer_ops * (acc.read_pj + acc.write_pj) / 2
    if not float32:
        pj += ops.slope_lookups * plan.device.energy.lut_read_pj
    return pj


def _basis_pj(ops: OpCounts, plan: Plan) -> float:
    """The TESS basis's energy per sample: phase adds, or stored sign reads."""
    pj = ops.phase_adds * plan.device.energy.op_pj("add", plan.device.tess.phase_bits)
    if ops.basis_reads:
        stored = [p.tensor for p in plan.placements if p.tensor.name.endswith(".basis")]
        pj += ops.basis_reads * _mean_access(stored, plan, None).read_pj
    return pj


def bptt_energy_pj(spec: NetworkSpec, plan: Plan, input_rate: float, hidden_rate: float,
                   float32: bool = False) -> dict[str, float]:
    """BPTT energy per sample: its operations plus storing and re-reading activations."""
    ops = bptt_ops(spec, input_rate, hidden_rate,
                   "multiply" if float32 else plan.device.decay)
    return energy_pj(ops, plan, float32=float32, activations=bptt_state_elements(spec))

