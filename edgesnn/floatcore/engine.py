"""The float twin's Python side: spec -> constant arrays -> kernel -> ``SampleResult``.

``FastFloatEngine(spec, params, tess_signs=None)`` is ``reference.FloatEngine`` (device
mode) with ``run_sample`` in numba: the same class interface (it is a subclass), the same
``state``/``load_state``/``nonfinite``/``set_lr_shift``, and ``trace`` is the numpy
engine's own (it records every state variable per step, which the kernel does not).
The spiking layers' matrices live input-major in the engine (a copy of the given
``params``); ``params`` holds their transposed views, output-major as everywhere else, so
what is written through ``params`` (``load_state``, a test) is what the kernel reads.
Results equal the numpy engine's up to the order of floating-point sums (the synaptic
current sums the active inputs in order, numpy's BLAS every input; with deferred updates,
``floatcore.lazy``, a sum of steps is subtracted once): events identical, predictions and
spikes identical, scores, loss and weights within 1e-9 relative over the short runs of
tests/test_floatcore.py. The differences start at the last bit and grow as learning
feeds them back (about 1e-7 relative after 20 samples of the tests' small networks at a
learning rate of 2^-4), as any change of summation order does.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import DataError, SpecError
from edgesnn.params import NetParams, SampleResult, check_sample
from edgesnn.reference import FloatEngine
from edgesnn.spec import NetworkSpec

from . import counting
from . import layout as LY
from .kernel import run_sample_kernel

_EMPTY2 = np.zeros((0, 0))

#: what the twin runs: layer kinds and neuron models (anything else: the numpy engine)
KINDS = ("dense", "recurrent")
NEURONS = ("lif",)


def unsupported(spec: NetworkSpec) -> str | None:
    """Why the twin cannot run ``spec`` (one line), or None when it can."""
    for i, layer in enumerate(spec.hidden):
        if layer.kind not in KINDS or layer.neuron not in NEURONS:
            return (f"layer {i} ({layer.kind}, {layer.neuron}) is not built in the numba "
                    "float engine; use the numpy one (--float-engine numpy)")
        if layer.delayed or layer.sparse:
            return (f"layer {i} has learned delays or a sparse mask, which the numba float "
                    "engine does not run; the numpy one does (--float-engine numpy)")
    return None


def _c64(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


def _input_major(p: NetParams) -> tuple[NetParams, tuple, tuple]:
    """``(params, Wt, Wrt)``: the spiking layers' matrices copied input-major (``Wt[l] (n_in,
    n)``, ``Wrt[l] (n, n)`` or an empty ``(0, 0)``), and parameters whose ``W``/``W_rec`` are
    their transposed views; the other arrays as C-contiguous float64 (themselves if so)."""
    Wt = tuple(np.ascontiguousarray(np.asarray(w, dtype=np.float64).T) for w in p.W)
    Wrt = tuple(_EMPTY2 if w is None else np.ascontiguousarray(np.asarray(w, dtype=np.float64).T)
                for w in p.W_rec)
    views = NetParams([w.T for w in Wt], [None if w is None else r.T
                                           for w, r in zip(p.W_rec, Wrt)],
                      [_c64(b) for b in p.b], _c64(p.W_out), _c64(p.b_out),
                      None if p.B_fb is None else [_c64(B) for B in p.B_fb])
    return views, Wt, Wrt


class FastFloatEngine(FloatEngine):
    """``FloatEngine`` in device mode with a numba float64 ``run_sample``.

    ``tess_signs``: under TESS each spiking layer's ``(C, D)`` basis signs (a run passes
    its plan's, ``Plan.tess_signs``), as ``FloatEngine``'s ``basis``. SpecError (one
    line) for a spec the twin does not run (``unsupported``).
    """

    def __init__(self, spec: NetworkSpec, params: NetParams,
                 tess_signs: list[np.ndarray] | None = None):
        why = unsupported(spec)
        if why:
            raise SpecError(why)
        super().__init__(spec, params, tess_signs)
        self.params, self._wt, self._wrt = _input_major(self.params)
        self.net = self._constants()
        self.buf = self._buffers()
        self.rates = counting.rates(self)

    # ------------------------------------------------------------------ build

    def _constants(self) -> LY.Net:
        spec, ln = self.spec, self.spec.learning
        L = len(spec.hidden)
        n = [layer.size for layer in spec.layers]
        n_in = [spec.fan_in(i) for i in range(L + 1)]
        lay = np.zeros((L + 1, LY.N_COLS), dtype=np.int64)
        lay[:, LY.LC_NIN] = n_in
        lay[:, LY.LC_N] = n
        lay[:, LY.LC_REC] = [int(layer.recurrent) for layer in spec.layers]
        lay[:, LY.LC_NOFF] = np.concatenate([[0], np.cumsum(n)[:-1]])
        lay[:, LY.LC_IOFF] = np.concatenate([[0], np.cumsum(n_in)[:-1]])
        form, coef = {"rational": (LY.PSI_RATIONAL, 100.0),
                      "triangle": (LY.PSI_TRIANGLE, 0.3)}[ln.surrogate]
        signal = {"bp": LY.SIG_BP, "dfa": LY.SIG_DFA, "tess": LY.SIG_TESS}[ln.signal]
        tess_lay = np.zeros((L, 3), dtype=np.int64)
        grp, inv, basis = [np.zeros((0, 2), dtype=np.int64)], [np.zeros(0)], [np.zeros(0)]
        if self.tess is not None:
            goff = boff = 0
            for i, t in enumerate(self.tess):
                D = len(t.bounds)
                tess_lay[i] = (D, goff, boff)
                grp.append(np.asarray(t.bounds, dtype=np.int64))
                inv.append(1.0 / (t.bounds[:, 1] - t.bounds[:, 0]))
                basis.append(np.ascontiguousarray(t.basis, dtype=np.float64).ravel())
                goff += D
                boff += t.basis.size
        return LY.Net(
            T=spec.time_steps, window=ln.window, L=L, C=spec.classes, lay=lay,
            beta=np.array([layer.beta for layer in spec.layers], dtype=np.float64),
            theta=np.array([layer.threshold for layer in spec.hidden], dtype=np.float64),
            hard=np.array([int(layer.reset == "hard") for layer in spec.hidden], dtype=np.int64),
            lambda_pre=float(ln.lambda_pre), lambda_post=float(ln.lambda_post),
            alpha_pre=float(ln.alpha_pre), alpha_post=float(ln.alpha_post),
            out_decay=float(spec.readout.trace_decay), psi_form=form, psi_coef=coef,
            signal=signal, per_sample=int(ln.per_sample),
            learn_from=L if ln.frozen else 0, temperature=float(ln.tess_temperature),
            tess_lay=tess_lay, tess_grp=np.ascontiguousarray(np.concatenate(grp)),
            tess_inv=np.concatenate(inv), tess_basis=np.concatenate(basis),
            lazy=self._lazy())

    def _lazy(self) -> np.ndarray:
        """``(L, 2)`` int64: which matrices defer their per-step updates (``floatcore.lazy``):
        with per-step updates, ``lambda_pre = 1`` and learning hidden layers, every recurrent
        matrix and every feed-forward one that no BP signal reads densely."""
        spec, ln = self.spec, self.spec.learning
        lazy = np.zeros((len(spec.hidden), 2), dtype=np.int64)
        if ln.per_sample or ln.frozen or ln.lambda_pre != 1.0:
            return lazy
        for l, layer in enumerate(spec.hidden):
            lazy[l, LY.LZ_W] = not (ln.signal == "bp" and l >= 1)
            lazy[l, LY.LZ_WR] = layer.recurrent
        return lazy

    def _buffers(self) -> LY.Buffers:
        spec, net = self.spec, self.net
        ntot, itot = int(net.lay[:, LY.LC_N].sum()), int(net.lay[:, LY.LC_NIN].sum())
        width = int(max(net.lay[:, LY.LC_NIN].max(), net.lay[:, LY.LC_N].max()))
        tw = max([spec.classes] + [int(r[LY.TL_D]) for r in net.tess_lay])
        learn_hidden = not spec.learning.frozen
        per_sample = spec.learning.per_sample
        p = self.params
        dW = tuple(np.zeros_like(w) if per_sample and learn_hidden else _EMPTY2.copy()
                   for w in self._wt)
        dWr = tuple(np.zeros_like(w) if per_sample and learn_hidden and w.size
                    else _EMPTY2.copy() for w in self._wrt)
        return LY.Buffers(
            nrn=np.zeros((LY.N_ROWS, ntot)), inp=np.zeros((2, itot)),
            scr=np.zeros((2, width), dtype=np.int64), tsc=np.zeros((3, tw)),
            dW=dW, dWr=dWr,
            dWo=np.zeros_like(p.W_out) if per_sample else _EMPTY2.copy(),
            scores=np.zeros(spec.classes), u_win=np.zeros((spec.learning.window, spec.classes)),
            spikes=np.zeros(net.L, dtype=np.int64), synops=np.zeros(1, dtype=np.int64),
            pc=np.zeros((spec.learning.window + 1, ntot)),
            aw=np.zeros((spec.learning.window, ntot)),
            lzi=np.zeros((2, itot)), lzi_t=np.zeros(itot, dtype=np.int64),
            lzr=np.zeros((2, ntot)), lzr_t=np.zeros(ntot, dtype=np.int64))

    def _params_tuple(self) -> LY.Params:
        """The kernel's arrays: the input-major matrices behind ``self.params`` and its
        other arrays (no copies). An array of ``params`` replaced from outside (not a view
        of the engine's matrices, or not C-contiguous float64) is taken in first."""
        p = self.params
        views = all(w.base is t for w, t in zip(p.W, self._wt)) and all(
            (w is None) == (t.size == 0) and (w is None or w.base is t)
            for w, t in zip(p.W_rec, self._wrt))
        rest = [*p.b, p.W_out, p.b_out, *(p.B_fb or [])]
        if not views or not all(a.dtype == np.float64 and a.flags.c_contiguous for a in rest):
            self.params, self._wt, self._wrt = _input_major(p)
            p = self.params
        return LY.Params(W=self._wt, Wr=self._wrt,
                         b=tuple(p.b), Wo=p.W_out, bo=p.b_out,
                         B=tuple(p.B_fb) if p.B_fb is not None
                         else tuple(_EMPTY2 for _ in p.W))

    # ------------------------------------------------------------------ running

    def trace(self, x: np.ndarray, label: int | None = None) -> dict[str, np.ndarray]:
        """``FloatEngine.trace``, run by a numpy engine built from the current state (C-order
        copies, as the numpy engine holds them: its figures bit for bit); the twin then takes
        the state that sample left (learning as usual)."""
        signs = None if self.tess is None else [t.signs for t in self.tess]
        ref = FloatEngine(self.spec, self.params.copy(), signs)
        ref.set_lr_shift(self.lr_shift)
        out = ref.trace(x, label)
        self.load_state(ref.state())
        return out

    def _run(self, x: np.ndarray, label: int | None, learn: bool,
             rec: dict | None) -> SampleResult:
        if rec is not None:                  # trace(): the numpy engine records every state
            return super()._run(x, label, learn, rec)
        spec = self.spec
        x = np.ascontiguousarray(check_sample(spec, x))
        if label is not None:
            lab = int(label)
            if not 0 <= lab < spec.classes:
                raise DataError(f"label {label} outside 0..{spec.classes - 1}")
        else:
            lab = 0
        learn = bool(learn and label is not None)
        buf = self.buf
        run_sample_kernel(self.net, self._params_tuple(), buf, x, lab, learn, float(self.lr))
        if label is not None:     # mean cross-entropy over the window (signals.cross_entropy)
            u = buf.u_win
            m = u.max(axis=-1, keepdims=True)
            lse = (m + np.log(np.exp(u - m).sum(axis=-1, keepdims=True)))[:, 0]
            loss = float(np.mean(lse - u[:, lab]))
        else:
            loss = float("nan")
        ev = counting.events(self.rates, spec.time_steps, spec.learning.window, learn,
                             spec.learning.per_sample, int(buf.synops[0]))
        scores = buf.scores.copy()
        return SampleResult(int(np.argmax(scores)), scores, loss, buf.spikes.copy(), ev)
