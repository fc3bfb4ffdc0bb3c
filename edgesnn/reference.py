"""The float engine in device mode: what the chip runs, in float64.

Batch 1, plain SGD with the spec's power-of-two learning rate, no weight
standardisation, updates applied every window step or once per sample (as
the spec says). It is the mathematical definition every fixed-point result is
compared with; the per-step maths is :mod:`edgesnn.rules.stllr` (pinned by
the golden vectors), the learning signals :mod:`edgesnn.signals`.

One sample ``x (T, N_in)`` of 0/1 spikes runs all layers step by step. At each
window step (the last ``Tl`` steps) the readout error ``e = softmax(u_out) -
onehot(label)`` gives the readout update and the hidden learning signals:
BP sends ``e @ W_out`` to the last hidden layer and ``(g*psi) @ W`` further
down; DFA sends ``e @ B_l`` to every hidden layer, ``B_l`` a fixed matrix of
±scale entries drawn from the LFSR (so the fixed engine can regenerate the
same matrix on chip); TESS gives every hidden layer its own local signal from
its spikes of this step (:func:`edgesnn.signals.tess_signal`, basis and pooling
fixed by the spec: :func:`edgesnn.rules.tess.spec_layers`). Every update of a
step is computed from the weights as they were at the start of that step, then
applied.

The prediction is the argmax of the readout potential summed over the window.

A layer with learned delays (``delays = "axonal"`` or ``"synaptic"``) runs
:mod:`edgesnn.rules.delays` instead of S-TLLR's dense step (docs/delays.md): integer
delays in the forward pass, the Gaussian-smoothed input's slope in an eligibility
trace, delays updated beside the weights at ``2**-(delay shift)``, halved with the
weights' schedule. A sparse layer (``connectivity < 1``) keeps its masked weights at
zero: their updates are dropped.
"""

from __future__ import annotations

import numpy as np

from edgesnn import counters as C
from edgesnn.errors import CheckpointError
from edgesnn.neurons.lif import LIFParams, make_psi
from edgesnn.params import (NetParams, SampleResult, check_sample, dfa_matrix,  # noqa: F401
                            dfa_scale, init_params)
from edgesnn.rules.stllr import (DenseParams, Factors, ReadoutLayerParams, dense_forward,
                                 dense_grads, dense_init, readout_forward, readout_grads,
                                 readout_layer_init)
from edgesnn.rules import delays, tess
from edgesnn.signals import ce_error, cross_entropy, tess_signal
from edgesnn.spec import NetworkSpec

SURROGATES = {"rational": ("rational", 100.0), "triangle": ("triangle", 0.3)}


class FloatEngine:
    """Runs a spec in float64, device mode; ``run_sample`` learns online.

    Counts (``SampleResult.events``, ``counters.NAMES``): forward work as done;
    learning work dense (every synapse and neuron of every window step).
    Multiplies follow ``counters.is_multiply``: every decay whose constant is
    neither 0 nor a power of two is a multiply (float has no shift leak, so
    on a shift device the fixed engine counts fewer); products with spikes,
    the power-of-two learning rate and a regenerated DFA matrix's ``+-2**-k``
    are not. TESS signals count in ``signal_macs`` and, apart, in
    ``local_signal_macs`` (:func:`edgesnn.rules.tess.signal_work`: pooling,
    the two ``C x D`` sign projections, softmax, unpooling); their multiplies
    are the ``1/D`` and group ``1/size`` scales that are not powers of two. The
    float engine gets its basis signs for free (no phase-accumulator adds or basis
    reads are counted): it is the float reference, whatever the device's basis.
    """

    def __init__(self, spec: NetworkSpec, params: NetParams,
                 basis: list[np.ndarray] | None = None):
        self.spec = spec
        self.params = params
        ln = spec.learning
        self.set_lr_shift(ln.learning_rate_shift)
        self.factors = Factors(ln.lambda_post, ln.lambda_pre, ln.alpha_post, ln.alpha_pre)
        self.psi = make_psi(*SURROGATES[ln.surrogate])
        self._membrane_muls, self._trace_muls = self._decay_multiplies()
        #: the delay eligibility's tap products of one step (slope times spike: adds)
        self._delay_macs = sum(delays.step_work(layer.delays, spec.fan_in(i), layer.size,
                                                layer.sigma, spec.kept_inputs(i))[1]
                               for i, layer in spec.learning_layers if layer.delayed)
        #: the delay buffers' accesses and slope-table reads of one step (dense count,
        #: ``rules.delays.buffer_work``; the synaptic ring's adds are counted per spike)
        learns = {i for i, _ in spec.learning_layers}
        work = [delays.buffer_work(layer.delays, spec.fan_in(i), layer.size, layer.sigma,
                                   spec.kept_inputs(i), i in learns)
                for i, layer in enumerate(spec.hidden) if layer.delayed]
        self._delay_buffer_ops = sum(w[0] for w in work)
        self._slope_lookups = sum(w[1] for w in work)
        #: TESS: each hidden layer's fixed basis signs and pooling groups (None otherwise);
        #: ``basis``: each layer's ``(C, D)`` signs (a run passes its plan's,
        #: ``Plan.tess_signs``), default the authors' float32 ``sign(sin)``
        self.tess = tess.spec_layers(spec, basis) if ln.signal == "tess" else None

    def set_lr_shift(self, shift: int) -> None:
        """Learning rate ``2**-shift`` from the next update on (the trainer's schedule)."""
        self.lr_shift = int(shift)
        self.lr = 2.0 ** -self.lr_shift

    def _delay_shift(self, i: int) -> int:
        """Layer ``i``'s delay rate is ``2**-shift``: its own shift plus the halvings the
        weights' schedule has made so far."""
        return self.spec.hidden[i].delay_lr_shift + self.lr_shift \
            - self.spec.learning.learning_rate_shift

    def state(self) -> dict[str, np.ndarray]:
        """Learnable state by plan tensor name (for checkpoints)."""
        return {k: v.copy() for k, v in self.params.arrays().items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore ``state()`` output in place; CheckpointError on a missing, misshaped,
        non-numeric or non-finite array (nothing is changed then)."""
        mine = self.params.arrays()
        for name, a in mine.items():
            got = arrays.get(name)
            if got is None or got.shape != a.shape or got.dtype.kind not in "iuf":
                what = "missing" if got is None else f"{got.dtype} {got.shape}"
                raise CheckpointError(f"checkpoint array {name}: expected a float array of "
                                      f"shape {a.shape}, got {what}")
            if not np.isfinite(got).all():
                raise CheckpointError(f"checkpoint array {name}: holds NaN or Inf")
        for name, a in mine.items():
            a[...] = arrays[name]

    def nonfinite(self) -> str | None:
        """The first learnable tensor holding NaN or Inf, or None (checked after learning)."""
        for name, a in self.params.arrays().items():
            if not np.isfinite(a).all():
                return name
        return None

    def _layer_params(self) -> list:
        """Each hidden layer's parameters: S-TLLR's ``DenseParams``, or ``DelayParams``."""
        p = self.params
        out: list = []
        for i, layer in enumerate(self.spec.hidden):
            lif = LIFParams(beta=layer.beta, theta=layer.threshold, reset=layer.reset,
                            psi=self.psi)
            if layer.delayed:
                out.append(delays.DelayParams(W=p.W[i], b=p.b[i], lif=lif, factors=self.factors,
                                              W_rec=p.W_rec[i], mode=layer.delays, d=p.d[i],
                                              max_delay=layer.max_delay, sigma=layer.sigma))
            else:
                out.append(DenseParams(W=p.W[i], b=p.b[i], W_rec=p.W_rec[i],
                                       factors=self.factors, lif=lif))
        return out

    def _init_state(self, i: int, lp):
        n_in, n = self.spec.fan_in(i), self.spec.hidden[i].size
        if self.spec.hidden[i].delayed:
            return delays.delay_init(n_in, n, lp)
        return dense_init(1, n_in, n)

    def run_sample(self, x: np.ndarray, label: int | None = None,
                   learn: bool = True) -> SampleResult:
        """Run one sample ``x (T, N_in)``; learn from ``label`` when ``learn``."""
        return self._run(x, label, learn, None)

    def trace(self, x: np.ndarray, label: int | None = None) -> dict[str, np.ndarray]:
        """Run one sample (learning as usual) and return every state variable per step.

        Keys (float64, first axis the step): ``L{i}.i`` (synaptic current, bias apart),
        ``L{i}.v`` (before reset), ``L{i}.u``,
        ``L{i}.s``, ``L{i}.psi``, ``L{i}.q``, ``L{i}.h``, ``L{i}.q_rec`` (recurrent
        layers), ``L{i}.g`` (0 outside the window), ``out.i``, ``out.u``, ``out.q``, ``out.e``
        (``softmax - onehot``, 0 outside the window); the fixed engine's ``trace``
        returns the same keys.
        """
        rec: dict[str, list] = {}
        self._run(x, label, True, rec)
        return {k: np.array(v) for k, v in rec.items()}

    def _run(self, x: np.ndarray, label: int | None, learn: bool,
             rec: dict[str, list] | None) -> SampleResult:
        spec, p = self.spec, self.params
        x = check_sample(spec, x)
        T, window = spec.time_steps, spec.learning.window
        learn = learn and label is not None
        per_sample = spec.learning.per_sample
        ro = spec.readout
        rparams = ReadoutLayerParams(W=p.W_out, b=p.b_out, beta=ro.beta, lambda_pre=ro.trace_decay)
        states = [self._init_state(i, lp) for i, lp in enumerate(self._layer_params())]
        rstate = readout_layer_init(1, spec.hidden[-1].size, spec.classes)
        ev = C.zeros()
        scores = np.zeros(spec.classes)
        spikes = np.zeros(len(spec.hidden), dtype=np.int64)
        losses = []
        acc = None
        label_arr = np.array([label if label is not None else 0])
        for t in range(T):
            lparams = self._layer_params()
            inp = x[t][None, :]
            steps = []
            for i, (lp, layer) in enumerate(zip(lparams, spec.hidden)):
                if layer.recurrent:
                    carried = states[i].dense if layer.delayed else states[i]
                    ev[C.SYNOPS] += int(np.count_nonzero(carried.s)) * layer.size
                forward = delays.delay_forward if layer.delayed else dense_forward
                step, states[i] = forward(inp, states[i], lp)
                if layer.delays == "synaptic":
                    # the accumulate is the ring add, made when the spike is scheduled (one
                    # per spike per kept synapse, also for arrivals past the sample's end)
                    ring_adds = self._synops(i, inp)
                    ev[C.SYNOPS] += ring_adds
                    ev[C.DELAY_BUFFER_OPS] += ring_adds
                else:
                    ev[C.SYNOPS] += self._synops(i, step.x)
                steps.append(step)
                spikes[i] += int(step.s.sum())
                inp = step.s
            ev[C.SYNOPS] += int(np.count_nonzero(inp)) * spec.classes
            rstep, rstate = readout_forward(inp, rstate, rparams)
            ev[C.NEURON_UPDATES] += sum(layer.size for layer in spec.layers)
            ev[C.TRACE_UPDATES] += self._traces_per_step()
            _count_muls(ev, C.MEMBRANE_MULTIPLIES, self._membrane_muls)
            _count_muls(ev, C.TRACE_MULTIPLIES, self._trace_muls)
            ev[C.ELIGIBILITY_MACS] += self._delay_macs
            ev[C.DELAY_BUFFER_OPS] += self._delay_buffer_ops
            ev[C.SLOPE_LOOKUPS] += self._slope_lookups
            gs: list | None = None
            if rec is not None:
                gs = [np.zeros(layer.size) for layer in spec.hidden] + [np.zeros(spec.classes)]
                _record(rec, spec, steps, rstep, gs)
            if t < T - window:
                continue
            scores += rstep.u[0]
            losses.append(cross_entropy(rstep.u, label_arr) if label is not None else np.nan)
            if not learn:
                continue
            grads = self._window_grads(label_arr, steps, rstep, lparams, rparams, ev, gs)
            if per_sample:
                acc = grads if acc is None else [_add(a, g) for a, g in zip(acc, grads)]
            else:
                self._apply(grads, ev)
        if learn and per_sample and acc is not None:
            self._apply(acc, ev)
        loss = float(np.mean(losses)) if losses else float("nan")
        return SampleResult(int(np.argmax(scores)), scores, loss, spikes, ev)

    def _synops(self, i: int, x: np.ndarray) -> int:
        """Synaptic accumulates of layer ``i``'s feed-forward input ``x`` (``(1, N_in)``: the
        input spikes, or an axonal layer's delayed ones): one per spike per kept synapse."""
        layer, M = self.spec.hidden[i], None if self.params.M is None else self.params.M[i]
        if M is None:
            return int(np.count_nonzero(x)) * layer.size
        return int(M[:, x[0] != 0].sum())

    def _traces_per_step(self) -> int:
        """Trace elements updated per step; a frozen hidden layer keeps none."""
        total = 0
        for i, layer in self.spec.learning_layers:
            total += self.spec.fan_in(i)
            if layer.spiking:
                total += layer.size * (2 if layer.recurrent else 1)
            if layer.delayed:
                total += delays.step_work(layer.delays, self.spec.fan_in(i), layer.size,
                                          layer.sigma, self.spec.kept_inputs(i))[0]
        return total

    def _decay_multiplies(self) -> tuple[int, int]:
        """``(membrane, trace)`` multiplies of one step: each decay whose constant multiplies.

        Membranes decay by ``beta``; ``q`` and ``q_rec`` by ``lambda_pre`` (the
        readout's ``q`` by its ``trace_decay``), ``h`` by ``lambda_post``. A
        decay of 1 (or 0.5, 0) is not a multiply (``counters.is_multiply``).
        """
        spec, ln = self.spec, self.spec.learning
        membrane = trace = 0
        for i, layer in enumerate(spec.layers):
            n = layer.size
            membrane += n * C.is_multiply(layer.beta)
            if not spec.learns(i):
                continue
            if layer.spiking:
                trace += (spec.fan_in(i) + (n if layer.recurrent else 0)) \
                    * C.is_multiply(ln.lambda_pre)
                trace += n * C.is_multiply(ln.lambda_post)
            else:
                trace += spec.fan_in(i) * C.is_multiply(layer.trace_decay)
        return membrane, trace

    def _factor_multiplies(self, n: int) -> int:
        """Multiplies of the factors of ``n`` neurons: ``g*h``, ``g*psi`` and the alphas."""
        ln = self.spec.learning
        return n * (2 + C.is_multiply(ln.alpha_post) + C.is_multiply(ln.alpha_pre))

    def _signal_multiplies(self, i: int) -> int:
        """Multiplies of hidden layer ``i``'s learning signal (one window step, dense)."""
        spec = self.spec
        n = spec.hidden[i].size
        if spec.learning.signal == "tess":     # the 1/D and 1/size scales (shifts for 2**k)
            return self.tess[i].work[1]
        if spec.learning.signal == "dfa":
            if spec.learning.feedback == "regenerated":   # +-scale: a sign and a shift
                return spec.classes * n * C.is_multiply(dfa_scale(n))
            return spec.classes * n
        if i == len(spec.hidden) - 1:
            return spec.classes * n
        return spec.hidden[i + 1].size * n

    def _window_grads(self, label, steps, rstep, lparams, rparams, ev, gs=None) -> list:
        """Updates of one window step: ``[(dW, dW_rec, db) per hidden layer..., readout]``.

        ``gs`` (when tracing): per-layer arrays, filled in place with each hidden
        layer's learning signal and (last) the readout error.
        """
        spec, p = self.spec, self.params
        err = ce_error(rstep.u, label)                     # (1, C); batch 1, so g_out = err
        if gs is not None:
            gs[-1][:] = err[0]
        out = readout_grads(err, rstep, rparams)
        ev[C.ELIGIBILITY_MACS] += spec.classes * (spec.hidden[-1].size + 1)
        _count_muls(ev, -1, spec.classes * spec.hidden[-1].size)     # e*q_out (db_out += e)
        grads: list = [(None, None, None)] * len(spec.hidden)
        g = None
        for i in reversed(range(len(spec.learning_hidden))):
            layer = spec.hidden[i]
            if self.tess is not None:
                t = self.tess[i]
                g = tess_signal(steps[i].s, label, t.basis, t.bounds, t.P,
                                spec.learning.tess_temperature)
                macs = t.work[0]
                ev[C.SIGNAL_MACS] += macs
                ev[C.LOCAL_SIGNAL_MACS] += macs
            elif spec.learning.signal == "dfa":
                g = err @ p.B_fb[i]
                ev[C.SIGNAL_MACS] += spec.classes * layer.size
            elif i == len(spec.hidden) - 1:
                g = out.grad_x
                ev[C.SIGNAL_MACS] += spec.classes * layer.size
            else:
                ev[C.SIGNAL_MACS] += spec.hidden[i + 1].size * layer.size
                g = g_below
            _count_muls(ev, C.SIGNAL_MULTIPLIES, self._signal_multiplies(i))
            if gs is not None:
                gs[i][:] = g[0]
            # a sparse layer's masked synapses are neither updated nor counted
            synapses = layer.size * (spec.kept_inputs(i) + (layer.size if layer.recurrent else 0))
            ev[C.ELIGIBILITY_MACS] += 2 * synapses + 3 * layer.size
            # c*q per synapse (a*x multiplies a spike: an add) and the factors
            _count_muls(ev, -1, synapses + self._factor_multiplies(layer.size))
            if layer.delayed:
                dgr = delays.delay_grads(g, steps[i], lparams[i])
                macs = delays.window_work(layer.delays, spec.fan_in(i), layer.size,
                                          spec.kept_inputs(i), forms_signal=i == 0)
                ev[C.ELIGIBILITY_MACS] += macs
                _count_muls(ev, -1, macs)
                g_below = dgr.grad_x
                grads[i] = (dgr.dW, dgr.dW_rec, dgr.db, dgr.dd)
                continue
            gr = dense_grads(g, steps[i], lparams[i])
            g_below = gr.grad_x
            grads[i] = (gr.dW, gr.dW_rec, gr.db)
        grads.append((out.dW, None, out.db))
        return grads

    def _apply(self, grads: list, ev: np.ndarray) -> None:
        p, lr = self.params, self.lr
        for i, (dW, dW_rec, db, *dd) in enumerate(grads[:-1]):
            if dW is None:                      # a frozen hidden layer
                continue
            if p.M is not None:
                dW = delays.mask_update(dW, p.M[i])
            layer = self.spec.hidden[i]
            kept = layer.size * self.spec.kept_inputs(i)       # synapses a device stores
            if dd:
                delays.apply_delays(p.d[i], dd[0], self._delay_shift(i), layer.max_delay)
                ev[C.WEIGHT_WRITES] += dd[0].size if layer.delays == "axonal" else kept
            p.W[i] -= lr * dW
            p.b[i] -= lr * db
            ev[C.WEIGHT_WRITES] += kept + db.size
            if dW_rec is not None:
                p.W_rec[i] -= lr * dW_rec
                ev[C.WEIGHT_WRITES] += dW_rec.size
        dW, _, db = grads[-1]
        p.W_out -= lr * dW
        p.b_out -= lr * db
        ev[C.WEIGHT_WRITES] += dW.size + db.size


def _record(rec: dict[str, list], spec: NetworkSpec, steps: list, rstep, gs: list) -> None:
    """Append one step's state to ``rec`` (``gs`` is filled later in the step, in place)."""
    for i, (st, layer) in enumerate(zip(steps, spec.hidden)):
        items = {"i": st.i, "v": st.v, "u": st.u, "s": st.s, "psi": st.psi, "q": st.q,
                 "h": st.h}
        if layer.recurrent:
            items["q_rec"] = st.q_rec
        for k, v in items.items():
            rec.setdefault(f"L{i}.{k}", []).append(v[0].copy())
        rec.setdefault(f"L{i}.g", []).append(gs[i])
    rec.setdefault("out.i", []).append(rstep.i[0].copy())
    rec.setdefault("out.u", []).append(rstep.u[0].copy())
    rec.setdefault("out.q", []).append(rstep.q[0].copy())
    rec.setdefault("out.e", []).append(gs[-1])


def _count_muls(ev: np.ndarray, kind: int, count: int) -> None:
    """``count`` multiplies into ``ev[MULTIPLIES]`` and (``kind >= 0``) their width's counter."""
    ev[C.MULTIPLIES] += count
    if kind >= 0:
        ev[kind] += count


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(None if u is None else u + v for u, v in zip(a, b))
