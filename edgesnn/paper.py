"""The float engine in paper mode: what the S-TLLR authors ran.

Differences from device mode (:mod:`edgesnn.reference`):

* hidden weights are the weight standardisation of raw parameters,
  ``W_eff = gain*(W_raw - rowmean)/sqrt(rowvar*fan_in + 1e-4)``
  (:func:`edgesnn.rules.stllr.standardize`), and their gradients reach
  ``W_raw`` and ``gain`` through its VJP; the readout is not standardised;
* Adam (betas 0.9, 0.999, eps 1e-8) with the spec's ``learning_rate`` as is
  (not rounded to a power of two, no halving schedule);
* mini-batches of ``batch`` samples: gradients are summed over a batch and
  divided by its size (the readout signal ``(softmax - onehot)/B``; under DFA
  the hidden signal is not divided, as in the authors' code), then one Adam
  step. Samples of a batch see the same weights, so running them one by one
  is the same as running them as a batch, and the trainer's one-sample
  stream needs no change.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import CheckpointError
from edgesnn.params import NetParams
from edgesnn.reference import FloatEngine
from edgesnn.rules.stllr import standardize, standardize_vjp
from edgesnn.spec import NetworkSpec, refuse_delays

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class PaperEngine(FloatEngine):
    """Weight standardisation, Adam, mini-batches; ``run_sample`` feeds one sample of a batch."""

    def __init__(self, spec: NetworkSpec, params: NetParams, batch: int = 16,
                 basis: list[np.ndarray] | None = None):
        refuse_delays(spec, "the paper engine")
        self.raw = [w.copy() for w in params.W]
        self.raw_rec = [None if w is None else w.copy() for w in params.W_rec]
        self.gain = [np.ones(w.shape[0]) for w in params.W]
        self.gain_rec = [None if w is None else np.ones(w.shape[0]) for w in params.W_rec]
        super().__init__(spec, params, basis)
        self.batch = int(batch)
        self.adam_lr = spec.learning.learning_rate
        self._refresh_effective()
        self._grad = self._zeros()
        self._m, self._v = self._zeros(), self._zeros()
        self._t = 0
        self._in_batch = 0

    # -- parameters -----------------------------------------------------------
    def _trainables(self) -> dict[str, np.ndarray]:
        d: dict[str, np.ndarray] = {}
        for i in range(len(self.raw)):
            d[f"L{i}.W_raw"], d[f"L{i}.gain"], d[f"L{i}.b"] = self.raw[i], self.gain[i], self.params.b[i]
            if self.raw_rec[i] is not None:
                d[f"L{i}.W_rec_raw"], d[f"L{i}.gain_rec"] = self.raw_rec[i], self.gain_rec[i]
        d["out.W"], d["out.b"] = self.params.W_out, self.params.b_out
        return d

    def _zeros(self) -> dict[str, np.ndarray]:
        return {k: np.zeros_like(v) for k, v in self._trainables().items()}

    def _refresh_effective(self) -> None:
        for i in range(len(self.raw)):
            self.params.W[i][...] = standardize(self.raw[i], self.gain[i])
            if self.raw_rec[i] is not None:
                self.params.W_rec[i][...] = standardize(self.raw_rec[i], self.gain_rec[i])

    def set_lr_shift(self, shift: int) -> None:
        """Paper mode keeps Adam's rate; the device schedule does not apply."""
        self.lr_shift = int(shift)
        self.lr = 1.0

    # -- learning ---------------------------------------------------------------
    def _apply(self, grads: list, ev: np.ndarray) -> None:
        """Accumulate this step's gradients (through the standardisation) into the batch sum."""
        dfa = self.spec.learning.signal == "dfa"
        scale_hidden = 1.0 if dfa else 1.0 / self.batch
        for i, (dW, dW_rec, db) in enumerate(grads[:-1]):
            if dW is None:     # frozen hidden: zero gradient, so Adam leaves the layer as is
                continue
            dW_raw, dgain = standardize_vjp(self.raw[i], self.gain[i], dW)
            self._grad[f"L{i}.W_raw"] += scale_hidden * dW_raw
            self._grad[f"L{i}.gain"] += scale_hidden * dgain
            self._grad[f"L{i}.b"] += scale_hidden * db
            if dW_rec is not None:
                r_raw, r_gain = standardize_vjp(self.raw_rec[i], self.gain_rec[i], dW_rec)
                self._grad[f"L{i}.W_rec_raw"] += scale_hidden * r_raw
                self._grad[f"L{i}.gain_rec"] += scale_hidden * r_gain
        dW, _, db = grads[-1]
        self._grad["out.W"] += dW / self.batch
        self._grad["out.b"] += db / self.batch

    def run_sample(self, x, label=None, learn=True):
        r = super().run_sample(x, label, learn)
        if learn and label is not None:
            self._in_batch += 1
            if self._in_batch == self.batch:
                self._adam_step(r.events)
        return r

    def _adam_step(self, ev: np.ndarray) -> None:
        from edgesnn import counters as C

        b1, b2 = ADAM_BETAS
        self._t += 1
        for name, p in self._trainables().items():
            g = self._grad[name]
            self._m[name] = b1 * self._m[name] + (1 - b1) * g
            self._v[name] = b2 * self._v[name] + (1 - b2) * g * g
            mhat = self._m[name] / (1 - b1 ** self._t)
            vhat = self._v[name] / (1 - b2 ** self._t)
            p -= self.adam_lr * mhat / (np.sqrt(vhat) + ADAM_EPS)
            g[...] = 0.0
            ev[C.WEIGHT_WRITES] += p.size
        self._in_batch = 0
        self._refresh_effective()

    # -- checkpoints ------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        d = {k: v.copy() for k, v in self._trainables().items()}
        d.update({f"adam_m/{k}": v.copy() for k, v in self._m.items()})
        d.update({f"adam_v/{k}": v.copy() for k, v in self._v.items()})
        d.update({f"grad/{k}": v.copy() for k, v in self._grad.items()})
        d["adam_t"] = np.array([self._t, self._in_batch])
        return d

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        mine = self.state()
        for name, a in mine.items():
            if name not in arrays or arrays[name].shape != a.shape:
                got = arrays[name].shape if name in arrays else "missing"
                raise CheckpointError(f"checkpoint array {name}: expected shape {a.shape}, "
                                      f"got {got}")
            if arrays[name].dtype.kind not in "iuf" or not np.isfinite(arrays[name]).all():
                raise CheckpointError(f"checkpoint array {name}: not finite numbers")
        for k, p in self._trainables().items():
            p[...] = arrays[k]
        for store, prefix in ((self._m, "adam_m/"), (self._v, "adam_v/"), (self._grad, "grad/")):
            for k in store:
                store[k][...] = arrays[prefix + k]
        self._t, self._in_batch = (int(v) for v in arrays["adam_t"])
        self._refresh_effective()
