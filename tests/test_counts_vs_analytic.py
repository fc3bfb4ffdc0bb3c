"""Counted events of both engines against the analytic formulas of `edgesnn profile`.

At the spike rates measured on a sample, the analytic forward counts
(`analytic.forward_ops`, the figures `profile` reports) equal what the
engines count: synaptic operations are T x rate x fan-in x fan-out summed
over layers, neuron and trace updates one per element per step (this
network is feed-forward; in a recurrent layer the spikes of a sample's last
step reach no recurrent synapse within the sample, so the count is lower by
exactly those). The leak and trace-decay multiplies are one per element per
step too, so they are equal as well (the fixed engine's under its device's
decay mode, the float engine's as multiplies). Learning
counts differ by design: the analytic ones are dense upper bounds, the fixed
engine skips zero factors and rows, so its counts are derived exactly from the
values it recorded (``FixedEngine.trace``) by the rules of docs/fixed_point.md;
the float engine counts densely, so its counts equal the formulas.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgesnn import analytic, fixed
from edgesnn.core import FixedEngine
from edgesnn.hw import load_device
from edgesnn.plan import make_plan
from edgesnn.reference import FloatEngine, init_params
from edgesnn.spec import load_spec
from conftest import EXAMPLES

from edgesnn.core.constants import ALPHA_FRAC
from edgesnn.counters import INDEX, is_multiply, update_multiplies

#: the devices: a shift leak and a multiplying one
DEVICES = ("cortex-m7", "spinnaker2-pe")


#: the small Yin-Yang network of these tests: 24 hidden, T 20, window 8
SMALL = ["layers.0.size=24", "network.time_steps=20", "learning.window=8"]


@pytest.fixture(scope="module")
def spec():
    return load_spec(EXAMPLES / "yinyang.toml", SMALL)


def _float_learning(overrides):
    """``(spec, counted events, dense formula)`` of the float engine learning one sample
    of the small network with ``overrides``."""
    spec = load_spec(EXAMPLES / "yinyang.toml", [*SMALL, *overrides])
    x = (np.random.default_rng(5).random((20, 4)) < 0.4).astype(np.uint8)
    ev = _events(_engine("float", spec).run_sample(x, 2))
    return spec, ev, analytic.stllr_ops(spec, 0.0, 0.0)


def _engine(kind, spec, device="cortex-m7"):
    params = init_params(spec, 0)
    if kind == "float":
        return FloatEngine(spec, params)
    return FixedEngine(make_plan(spec, load_device(device)), params, 0)


def _events(r) -> dict[str, int]:
    return {k: int(r.events[i]) for k, i in INDEX.items()}


def _decay(kind: str, device: str) -> str:
    """The decay mode an engine's counts follow: the device's, or float multiplies."""
    return load_device(device).decay if kind == "fixed" else "multiply"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["fixed", "float"])
def test_counted_forward_work_equals_the_formulas_at_measured_rates(spec, kind, device):
    eng = _engine(kind, spec, device)
    x = (np.random.default_rng(3).random((20, 4)) < 0.4).astype(np.uint8)
    r = eng.run_sample(x, 1, learn=True)
    T, n = spec.time_steps, spec.layers[0].size
    input_rate = x.sum() / (T * spec.inputs)
    hidden_rate = r.spikes[0] / (T * n)
    counted = _events(r)
    formula = analytic.stllr_ops(spec, input_rate, hidden_rate, _decay(kind, device))
    assert counted["synops"] == pytest.approx(formula.synops, rel=1e-12)
    assert counted["neuron_updates"] == formula.neuron_updates
    assert counted["trace_updates"] == formula.trace_updates
    assert counted["membrane_multiplies"] == formula.membrane_multiplies
    assert counted["trace_multiplies"] == formula.trace_multiplies
    # yinyang: beta 0.9, lambda_pre 0.9, readout trace 0.9 multiply; lambda_post 0.5 shifts
    multiplies = _decay(kind, device) == "multiply"
    assert formula.membrane_multiplies == multiplies * T * (n + 3)
    assert formula.trace_multiplies == multiplies * T * (4 + n)


@pytest.mark.parametrize("device", DEVICES)
def test_inference_multiplies_are_the_forward_formula(spec, device):
    """Without learning: the leaks of forward_ops plus the trace decays of the sample."""
    x = (np.random.default_rng(6).random((20, 4)) < 0.4).astype(np.uint8)
    for kind in ("fixed", "float"):
        ev = _events(_engine(kind, spec, device).run_sample(x, 0, learn=False))
        fwd = analytic.forward_ops(spec, 0.0, 0.0, _decay(kind, device))
        dense = analytic.stllr_ops(spec, 0.0, 0.0, _decay(kind, device))
        assert ev["membrane_multiplies"] == fwd.membrane_multiplies == fwd.multiplies
        assert ev["multiplies"] == fwd.multiplies + dense.trace_multiplies


def _codes(values: np.ndarray, frac: int) -> np.ndarray:
    """Integer codes of dequantised values (exact: each value is a code times 2**-frac)."""
    return np.rint(np.asarray(values) * 2.0 ** frac).astype(np.int64)


def _exact_learning_counts(eng, spec, x, tr) -> dict[str, int]:
    """The fixed engine's learning counts of one sample (BP), from the values it recorded.

    At each window step, by docs/fixed_point.md, top-down: the signal of the top hidden
    layer is ``e W_out`` (``n`` MACs and multiplies per nonzero ``e_c``), of a lower one
    ``gp W`` over the nonzero ``gp`` above. Factors: ``a = S(g h_prev)`` (times
    ``alpha_post``, a second rounding, unless 1), ``gp = S(g psi)``, ``c = gp`` (times
    ``alpha_pre`` likewise); ``S`` rounds by the trace's fractional bits and saturates into
    the signal format. One MAC per ``g h`` product, two (``c`` and the bias term) per
    ``g psi``; a multiply per product and per alpha scaling that is not a power of two.
    Each weight matrix (``W``, then ``W_rec`` with inputs ``s[t-1]`` and trace ``q_rec``):
    a row with ``x_j = 1`` visits the neurons with ``a != 0`` (a*x) and those with ``c != 0``
    (c*q, a multiply each), a row with only ``q_j != 0`` those with ``c != 0``; neurons with
    ``a = c = 0`` are skipped rows. The readout is a layer with ``c = gp = e``, ``a = 0``.
    Also returned, ``visited``: the synapses and biases visited (at least the parameters
    written per step).
    """
    fs, ft = eng.fmt["signal"], eng.fmt["trace"]
    S, F = fs.frac_bits, ft.frac_bits
    lo, hi = fs.qformat.min_int, fs.qformat.max_int
    mode = fixed.rounding_mode(fs.rounding)
    ln = spec.learning
    apost, apre = (int(round(v * 2 ** ALPHA_FRAC)) for v in (ln.alpha_post, ln.alpha_pre))
    T, W = spec.time_steps, ln.window
    L = len(spec.hidden)

    def sat(v):
        return min(max(v, lo), hi)

    def rnd(v, k):
        return fixed.shift_round(int(v), k, mode, 0)

    def scaled(prods, alpha, into_before):
        out = []
        for v in prods:
            r = rnd(v, F)
            if alpha != 1 << ALPHA_FRAC:
                r = rnd((sat(r) if into_before else r) * alpha, ALPHA_FRAC)
            out.append(sat(r))
        return np.array(out, dtype=np.int64)

    def visits(xs, qs, na, nc, nac):
        rows_x = int(np.count_nonzero(xs))
        rows_q = int(np.count_nonzero((qs != 0) & (xs == 0)))
        nq = int(np.count_nonzero(qs))
        return rows_x * (na + nc) + rows_q * nc, nc * nq, rows_x * nac + rows_q * nc

    e = _codes(tr["out.e"], S)
    q_out = _codes(tr["out.q"], F)
    out = dict(eligibility_macs=0, signal_macs=0, signal_multiplies=0, update_multiplies=0,
               rows_skipped=0, visited=0)
    assert T - W >= 1
    for t in range(T - W, T):
        gp_above = e[t]
        for l in range(L - 1, L - 1 if ln.frozen else -1, -1):   # frozen: the readout only
            p, n = f"L{l}", spec.hidden[l].size
            g, psi = _codes(tr[f"{p}.g"][t], S), _codes(tr[f"{p}.psi"][t], F)
            hp = _codes(tr[f"{p}.h"][t - 1], F)
            nsig = int(np.count_nonzero(gp_above))
            out["signal_macs"] += n * nsig
            out["signal_multiplies"] += n * nsig
            nh = int(np.count_nonzero((g != 0) & (hp != 0)))
            npsi = int(np.count_nonzero((g != 0) & (psi != 0)))
            a = scaled(g * hp, apost, into_before=False)
            gp = scaled(g * psi, 1 << ALPHA_FRAC, into_before=True)
            c = scaled(g * psi, apre, into_before=True)
            na, nc, nac = (int(np.count_nonzero(v)) for v in (a, c, (a != 0) | (c != 0)))
            out["eligibility_macs"] += nh + 2 * npsi
            out["update_multiplies"] += (nh * (1 + is_multiply(ln.alpha_post))
                                         + npsi * (1 + is_multiply(ln.alpha_pre)))
            out["rows_skipped"] += n - nac
            out["visited"] += int(np.count_nonzero(gp))            # biases
            xs = x[t] if l == 0 else tr[f"L{l - 1}.s"][t]
            mats = [(xs, _codes(tr[f"{p}.q"][t], F))]
            if spec.hidden[l].recurrent:
                s_prev = tr[f"{p}.s"][t - 1]
                mats.append((s_prev, _codes(tr[f"{p}.q_rec"][t], F)))
            for xs_, qs in mats:
                macs, muls, vis = visits(xs_, qs, na, nc, nac)
                out["eligibility_macs"] += macs
                out["update_multiplies"] += muls
                out["visited"] += vis
            gp_above = gp
        nnz = int(np.count_nonzero(e[t]))
        macs, muls, vis = visits(tr[f"L{L - 1}.s"][t], q_out[t], 0, nnz, nnz)
        out["eligibility_macs"] += nnz + macs
        out["update_multiplies"] += muls
        out["rows_skipped"] += spec.classes - nnz
        out["visited"] += nnz + vis
    return out


def _changed(before, after) -> int:
    return sum(int(np.count_nonzero(before[k] != after[k]))
               for k in ("L0.W", "L0.b", "out.W", "out.b"))


@pytest.mark.parametrize("update,residual,device,window", [
    ("per-step", "clear", "cortex-m7", 8), ("per-step", "clear", "spinnaker2-pe", 1),
    ("per-sample", "clear", "spinnaker2-pe", 8), ("per-sample", "carry", "cortex-m7", 8)])
def test_fixed_learning_work_is_counted_exactly(spec, update, residual, device, window):
    """The counted learning work equals the count derived from the recorded factors,
    traces and spikes. Weight writes: per sample, or per step with a one-step window,
    each parameter once if it changed; per step over 8 window steps (a parameter may
    move more than once) at least the parameters that changed, at most those visited."""
    spec = replace(spec, learning=replace(spec.learning, update=update, residual=residual,
                                          window=window))
    eng = _engine("fixed", spec, device)
    dense = analytic.stllr_ops(spec, 0.0, 0.0, load_device(device).decay)
    rng = np.random.default_rng(4)
    skipped = 0
    for k in range(5):
        x = (rng.random((20, 4)) < 0.4).astype(np.uint8)
        before = eng.state()
        if k == 2:                   # weights at their limits: updates that saturate write nothing
            wq = eng.fmt["weight"].qformat
            for name in ("L0.W", "out.W"):
                w = before[name]
                before[name] = np.where(np.arange(w.size).reshape(w.shape) % 2, wq.max_int,
                                        wq.min_int).astype(w.dtype)
            eng.load_state(before)
        tr = eng.trace(x, k % 3)
        eng.load_state(before)
        ev = _events(eng.run_sample(x, k % 3))
        after = eng.state()
        want = _exact_learning_counts(eng, spec, x, tr)
        for name in ("eligibility_macs", "signal_macs", "signal_multiplies", "rows_skipped"):
            assert ev[name] == want[name], (k, name)
        assert update_multiplies(ev) == want["update_multiplies"], k
        assert ev["trace_multiplies"] == dense.trace_multiplies
        assert ev["membrane_multiplies"] == dense.membrane_multiplies
        assert ev["multiplies"] == (want["update_multiplies"] + want["signal_multiplies"]
                                    + dense.trace_multiplies + dense.membrane_multiplies)
        if spec.learning.per_sample or window == 1:
            assert ev["weight_writes"] == _changed(before, after), k
        else:
            assert _changed(before, after) <= ev["weight_writes"] <= want["visited"], k
        skipped += ev["rows_skipped"]
    assert skipped > 0 and ev["eligibility_macs"] < dense.eligibility_macs   # rows were skipped


@pytest.mark.parametrize("overrides", [[], ["learning.signal=dfa"],
                                       ["learning.signal=dfa", "learning.feedback=stored"],
                                       ["learning.alpha_post=0.8", "learning.alpha_pre=0.5"]])
def test_float_learning_counts_are_the_dense_formula(overrides):
    spec, ev, dense = _float_learning(overrides)
    for name in ("eligibility_macs", "signal_macs", "weight_writes", "multiplies",
                 "membrane_multiplies", "trace_multiplies", "signal_multiplies"):
        assert ev[name] == getattr(dense, name), name
    # yinyang, 24 hidden, 3 classes, window 8: c*q 24*4 + g*h, g*psi 2*24 (+ 24 for
    # alpha_post 0.8; alpha_pre 0.5 shifts) + e*q 3*24; BP e W_out 3*24, DFA stored 3*24,
    # DFA regenerated (+-1/4 on 24 neurons: 2**-round(log2 sqrt 24)) 0
    alpha = 24 if "learning.alpha_post=0.8" in overrides else 0
    assert update_multiplies(ev) == 8 * (24 * 4 + 48 + alpha + 72)
    regenerated = overrides == ["learning.signal=dfa"]
    assert ev["signal_multiplies"] == (0 if regenerated else 8 * 72)


def test_two_hidden_layers_with_recurrence():
    """BP below the top layer (``(g*psi) W`` products), a recurrent trace and recurrent
    rows, alphas that multiply, on a multiplying device. Leaks per step: L0 8, readout 3
    (L1's beta 0.5 is a shift). Traces per step: L0 q 4, q_rec 8, h 8; L1 q 8, h 6;
    readout q 6 (every decay multiplies: 0.9, 0.6)."""
    from edgesnn.spec import parse_spec

    spec = parse_spec({
        "network": {"name": "deep", "inputs": 4, "time_steps": 12},
        "layers": [{"kind": "recurrent", "size": 8, "beta": 0.9, "threshold": 0.4},
                   {"kind": "dense", "size": 6, "beta": 0.5, "threshold": 0.4},
                   {"kind": "readout", "size": 3, "beta": 0.9, "trace_decay": 0.9}],
        "learning": {"window": 5, "lambda_pre": 0.9, "lambda_post": 0.6, "alpha_post": 0.7,
                     "alpha_pre": 1.0, "learning_rate": 2.0 ** -6, "surrogate": "triangle",
                     "init_scale": 3.0}})
    dense = analytic.stllr_ops(spec, 0.0, 0.0)
    # per window step: signal e W_out 3*6 + gp W 6*8; factors (2 + alpha_post) per neuron;
    # c*q 8*(4+8) + 6*8; readout e*q 3*6
    assert dense.signal_multiplies == 5 * (18 + 48)
    assert dense.update_multiplies == 5 * (3 * 14 + 96 + 48 + 18)
    rng = np.random.default_rng(8)
    x = (rng.random((12, 4)) < 0.5).astype(np.uint8)
    fixed = FixedEngine(make_plan(spec, load_device("spinnaker2-pe")), init_params(spec, 0), 0)
    before = fixed.state()
    tr = fixed.trace(x, 1)
    fixed.load_state(before)
    ev = _events(fixed.run_sample(x, 1))
    want = _exact_learning_counts(fixed, spec, x, tr)
    assert ev["signal_multiplies"] == ev["signal_macs"] == want["signal_macs"] > 0
    assert ev["membrane_multiplies"] == dense.membrane_multiplies == 12 * (8 + 3)
    assert ev["trace_multiplies"] == dense.trace_multiplies == 12 * (4 + 8 + 8 + 8 + 6 + 6)
    assert update_multiplies(ev) == want["update_multiplies"]
    assert ev["eligibility_macs"] == want["eligibility_macs"]
    assert ev["rows_skipped"] == want["rows_skipped"]
    fl = _events(FloatEngine(spec, init_params(spec, 0)).run_sample(x, 1))
    for name in ("multiplies", "membrane_multiplies", "trace_multiplies", "signal_multiplies"):
        assert fl[name] == getattr(dense, name), name


@pytest.mark.parametrize("overrides", [[], ["learning.signal=dfa"],
                                       ["learning.update=per-step"]])
def test_frozen_hidden_counts_only_the_readouts_learning(overrides):
    """Frozen hidden: no signal, no hidden traces, eligibility or writes; readout as before.
    Yin-Yang, 24 hidden, 3 classes, 4 inputs, T 20, window 8: per step traces are the
    readout's q (24); per window step e*q_out 3*24 MACs and multiplies, db_out 3 MACs."""
    spec, ev, dense = _float_learning(["learning.hidden=frozen", *overrides])
    for name in ("eligibility_macs", "signal_macs", "weight_writes", "multiplies",
                 "trace_updates", "trace_multiplies", "signal_multiplies"):
        assert ev[name] == getattr(dense, name), name
    assert ev["signal_macs"] == ev["signal_multiplies"] == 0
    assert ev["trace_updates"] == 20 * 24
    assert ev["eligibility_macs"] == 8 * (3 * 24 + 3)
    assert update_multiplies(ev) == 8 * 3 * 24
    writes = 3 * 24 + 3
    assert ev["weight_writes"] == (8 * writes if spec.learning.update == "per-step"
                                   else writes)
    assert analytic.stllr_state_elements(spec) == 24


@pytest.mark.parametrize("device", DEVICES)
def test_fixed_frozen_hidden_counts_only_the_readouts_work(spec, device):
    """Frozen hidden in the fixed engine: hidden weights and biases stay, the readout
    learns; no psi lookups, no hidden traces or signals; the readout's learning work is
    counted exactly (from the trace, as for the full rule) and its traces are T x 24."""
    spec = replace(spec, learning=replace(spec.learning, hidden="frozen"))
    eng = FixedEngine(make_plan(spec, load_device(device)), init_params(spec, 0), 0)
    x = (np.random.default_rng(3).random((20, 4)) < 0.4).astype(np.uint8)
    before = eng.state()
    tr = eng.trace(x, 1)
    eng.load_state(before)
    ev = _events(eng.run_sample(x, 1))
    after = eng.state()
    for k in ("L0.W", "L0.b"):
        np.testing.assert_array_equal(after[k], before[k])
    assert _changed(before, after) > 0
    want = _exact_learning_counts(eng, spec, x, tr)
    assert want["eligibility_macs"] > 0
    for name in ("eligibility_macs", "signal_macs", "update_multiplies", "rows_skipped"):
        got = update_multiplies(ev) if name == "update_multiplies" else ev[name]
        assert got == want[name], name
    assert ev["signal_macs"] == 0
    assert ev["lut_lookups"] == 8 * 3          # the readout error's exp table only, no psi
    assert ev["trace_updates"] == 20 * 24
    dense = analytic.stllr_ops(spec, 0.0, 0.0, _decay("fixed", device))
    assert ev["trace_multiplies"] == dense.trace_multiplies
    assert ev["eligibility_macs"] <= dense.eligibility_macs


# --------------------------------------------------------------------------
# delays and sparse masks (issue 16): the float engine's counts against the formulas


@pytest.mark.parametrize("example,overrides", [
    ("timing_delays", []), ("timing_delays", ["layers.0.delays=synaptic"]),
    ("timing_delays", ["layers.0.connectivity=0.5"]),
    ("timing_delays", ["layers.0.delays=synaptic", "layers.0.connectivity=0.5"]),
    ("timing_delays", ["learning.update=per-step"]),
    ("timing_weights", ["layers.0.connectivity=0.25"]),
], ids=["axonal", "synaptic", "axonal-sparse", "synaptic-sparse", "per-step", "sparse-only"])
def test_delay_and_mask_counts_are_the_formulas(example, overrides):
    """Learned delays add their eligibility (traces, tap products), their gradient and
    their writes; a sparse layer's masked synapses are neither updated nor counted."""
    spec = load_spec(EXAMPLES / f"{example}.toml", overrides)
    x = np.zeros((spec.time_steps, spec.inputs), np.uint8)
    x[np.arange(spec.inputs) * 2, np.arange(spec.inputs)] = 1
    ev = _events(_engine("float", spec).run_sample(x, 1))
    dense = analytic.stllr_ops(spec, 0.0, 0.0)
    for name in ("trace_updates", "eligibility_macs", "signal_macs", "weight_writes",
                 "multiplies", "trace_multiplies", "signal_multiplies"):
        assert ev[name] == getattr(dense, name), name
    # by hand: 8 inputs, 16 LIF, 4 classes, T 32, window 32, sigma 1.5 (R 5, 11 taps)
    assert (spec.inputs, spec.layers[0].size, spec.classes) == (8, 16, 4)
    k, layer = spec.kept_inputs(0), spec.layers[0]
    delays = {"none": 0, "axonal": 8, "synaptic": k * 16}[layer.delays]
    writes = k * 16 + 16 + 16 * 4 + 4 + delays
    assert ev["weight_writes"] == writes * (32 if spec.learning.update == "per-step" else 1)
    # axonal: eps times (g psi) W per input, and forming (g psi) W on the kept synapses
    # (no layer below gets it as its signal)
    window = {"none": 0, "axonal": 8 + k * 16, "synaptic": 2 * k * 16}[layer.delays]
    assert ev["eligibility_macs"] == (32 * (2 * k * 16 + 3 * 16 + 16 * 4 + 4 + window)
                                      + 32 * 11 * delays)
    # the buffers: history push and delayed reads every step, the eligibility's 11 taps
    # per delay (each a slope read), a synaptic ring add per arriving spike per synapse
    at_rate = analytic.stllr_ops(spec, 1 / 32, 0.0)        # each input spikes once
    assert ev["delay_buffer_ops"] == at_rate.delay_buffer_ops
    assert ev["slope_lookups"] == at_rate.slope_lookups == 32 * 11 * delays
    per_step = {"none": 0, "axonal": 8 + 8, "synaptic": 8 + 16 + k * 16}[layer.delays]
    ring = k * 16 if layer.delays == "synaptic" else 0
    assert ev["delay_buffer_ops"] == 32 * (per_step + 11 * delays) + ring
