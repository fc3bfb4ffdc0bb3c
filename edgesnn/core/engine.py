"""The fixed engine's Python side: build integer constants from a plan, call the kernel.

``FixedEngine(plan, params, seed)`` builds, in order (one private method each):
the tensor ids with their banks and words (``_tensors``), the layout of the flat
arrays (``_offsets``), every constant the kernel needs (``_constants``, from
:mod:`edgesnn.core.constants`), the check that no intermediate of the int64 datapath
can overflow and the kernel's fast-path gates from the same table (``_bounds``,
:mod:`edgesnn.core.bounds`), the parameter codes quantised into the plan's formats
(``_state``) and the work buffers, allocated once (``_buffers``). ``run_sample`` is
one ``kernel.run_sample_kernel`` call. Arithmetic choices: docs/fixed_point.md.
"""

from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from edgesnn import counters as C
from edgesnn.errors import CheckpointError, DataError, DeviceError
from edgesnn.fixed import lfsr_seed, quantize
from edgesnn.params import NetParams, SampleResult, check_sample, dfa_matrix, dfa_scale
from edgesnn.plan import Plan
from edgesnn.rules.tess import group_sizes, pool_bounds
from edgesnn.rules.delays import gaussian_slope, history_steps, reach

from . import bounds
from . import layout as LY
from . import rng as R
from .arith import Fmt, Formats
from .constants import (ALPHA_FRAC, decay_constant, exp_table, format_row, psi_table,
                        quantize_const, reciprocal_constant)
from .kernel import run_sample_kernel

#: format kinds: the fields of ``arith.Formats`` (the device's ``[formats]`` names)
FORMAT_KINDS = Formats._fields
#: the rounding LFSR lanes are seeded from stream seed * 1000 + RNG_STREAM (core.rng);
#: layer l's DFA feedback LFSR at lfsr_seed(seed * 1000 + l), as params.dfa_matrix
#: draws it
RNG_STREAM = 999


def _kind_names(prefix: str, spiking: bool, rec: bool, stored_fb: bool,
                per_sample: bool, tess: str | None = None, delays: str = "none",
                learns: bool = True) -> dict[int, str]:
    """Tensor kind -> plan tensor name for one layer (pseudo names for registers); ``tess``:
    the device's TESS basis (``"stored"``, ``"generated"``) under TESS, else None;
    ``delays`` the layer's (``learns``: whether they learn)."""
    names = {LY.K_W: f"{prefix}.W", LY.K_B: f"{prefix}.b", LY.K_U: f"{prefix}.u",
             LY.K_I: f"{prefix}.i", LY.K_Q: f"{prefix}.q"}
    if spiking:
        names.update({LY.K_S: f"{prefix}.s", LY.K_H: f"{prefix}.h", LY.K_PSI: f"{prefix}.psi",
                      LY.K_G: f"{prefix}.g", LY.K_A: f"{prefix}.a", LY.K_C: f"{prefix}.c"})
        if stored_fb:
            names[LY.K_FB] = f"{prefix}.B"
    else:
        names[LY.K_G] = f"{prefix}.e"
    if rec:
        names.update({LY.K_WR: f"{prefix}.W_rec", LY.K_QR: f"{prefix}.q_rec"})
    if spiking and tess:
        names.update({LY.K_LAT: f"{prefix}.latent", LY.K_ZL: f"{prefix}.z",
                      LY.K_EL: f"{prefix}.e"})
        if tess == "stored":
            names[LY.K_BAS] = f"{prefix}.basis"
    if per_sample:
        names.update({LY.K_DW: f"{prefix}.dW", LY.K_DB: f"{prefix}.db"})
        if rec:
            names[LY.K_DWR] = f"{prefix}.dW_rec"
    if spiking and delays != "none":
        names.update({LY.K_D: f"{prefix}.d", LY.K_HIST: f"{prefix}.hist"})
        if delays == "synaptic":
            names[LY.K_RING] = f"{prefix}.ring"
        if learns:
            names[LY.K_EPS] = f"{prefix}.eps"
            if per_sample:
                names[LY.K_DD] = f"{prefix}.dd"
    return names


class _Delays(NamedTuple):
    """The delay and mask tables of ``Net`` and the sizes of their buffers (core.delays)."""

    dly: np.ndarray           # (L+1, DL_COLS)
    fmt_d: Fmt
    fmt_e: Fmt
    slope: np.ndarray
    in_ptr: np.ndarray
    in_idx: np.ndarray
    out_ptr: np.ndarray
    out_idx: np.ndarray       # (2, kept): the inputs, the synapse numbers (Net.out_idx)
    kept: list                # per layer: the flat (n_in, n) indices of its kept synapses,
                              # in the order of a synaptic layer's per-synapse arrays (or None)
    n_d: int                  # State.d
    n_hist: int
    n_eps: int                # Buffers.eps, .dd
    n_ring: int
    n_qs: int                 # Buffers.qs, .xs
    n_col: int                # Buffers.wcol


def weight_dtype(f: Fmt) -> type:
    """Storage type of the weight codes of format ``f`` (``constants.format_row``).

    ``int8`` when every code of the format fits it (signed of 8 bits or fewer, unsigned
    of 7 or fewer: an eighth of the cache footprint of the SHD matrices, whose rows the
    synaptic accumulates read), else ``int64`` (an unsigned 8-bit code such as 192 would
    wrap in int8). The kernels compute in int64 either way; two storage types keep the
    compiled signatures to two.
    """
    i8 = np.iinfo(np.int8)
    return np.int8 if i8.min <= f.lo and f.hi <= i8.max else np.int64


class Layout(NamedTuple):
    """Per-layer sizes, offsets and constants (Python side; the kernels get them packed as
    the rows of ``Net.lay``). Index ``L`` is the readout."""

    n_in: np.ndarray
    n: np.ndarray
    rec: np.ndarray
    w_off: np.ndarray
    wr_off: np.ndarray
    b_off: np.ndarray
    nrn_off: np.ndarray
    in_off: np.ndarray
    fb_off: np.ndarray
    dw_off: np.ndarray
    dwr_off: np.ndarray
    db_off: np.ndarray
    nu: np.ndarray            # (L+1, 5)
    tq: np.ndarray            # (L+1, 2)
    th: np.ndarray            # (L+1, 2)
    theta: np.ndarray
    hard: np.ndarray
    tid: np.ndarray           # (L+1, N_KINDS)

    def packed(self) -> np.ndarray:
        """The ``(L+1, N_COLS)`` table of the kernels (column order of ``layout.LC_*``)."""
        cols = [self.n_in, self.n, self.rec, self.w_off, self.wr_off, self.b_off, self.nrn_off,
                self.in_off, self.fb_off, self.dw_off, self.dwr_off, self.db_off]
        lay = np.column_stack([*(c[:, None] for c in cols), self.nu, self.tq, self.th,
                               self.theta[:, None], self.hard[:, None], self.tid])
        assert lay.shape[1] == LY.N_COLS
        return np.ascontiguousarray(lay, dtype=np.int64)


class _Offsets(NamedTuple):
    """Where each layer's slice of a flat array starts (``(L+1,)`` int64, elements; -1 where
    a layer has none), and each flat array's length (elements)."""

    w: np.ndarray             # State.W: the feed-forward matrix (n_in x n, input-major) ...
    wr: np.ndarray            # ... then the recurrent one (n x n)
    b: np.ndarray             # State.b
    nrn: np.ndarray           # columns of Buffers.nrn (neurons)
    inp: np.ndarray           # columns of Buffers.inp (inputs)
    fb: np.ndarray            # State.B: stored DFA feedback (C x n)
    dw: np.ndarray            # Buffers.dW / db: per-sample accumulators (the parameters' layout)
    dwr: np.ndarray
    db: np.ndarray
    n_w: int
    n_b: int
    n_fb: int
    n_dw: int
    n_db: int


class _Constants(NamedTuple):
    """The integer constants of the kernel that are not sizes or offsets."""

    nu: np.ndarray            # (L+1, 5): membrane decay code, shifts of u*code, i and b, rounding
    tq: np.ndarray            # (L+1, 2): presynaptic trace decay (code, k)
    th: np.ndarray            # (L+1, 2): postsynaptic trace decay (code, k); spiking layers
    theta: np.ndarray         # (L+1,): threshold codes (membrane format); 0 for the readout
    hard: np.ndarray          # (L+1,): 1 for a hard reset
    alpha_post: int           # Q.16 codes (ALPHA_FRAC)
    alpha_pre: int
    lr: int                   # learning rate 2**-lr
    fb_mag: int               # DFA feedback entry magnitude in weight codes (0 under BP)
    acc_lo: int               # the device's MAC accumulator range
    acc_hi: int


class _Tess(NamedTuple):
    """The TESS tables of ``Net`` (``layout.TL_*``, ``layout.G_*``; empty without TESS)."""

    lay: np.ndarray           # (L, TL_COLS) int64
    grp: np.ndarray           # (groups, G_COLS) int64
    sgn: np.ndarray           # int8 signs, (C, D) per layer in C order
    largest: dict             # largest codes, sizes and shifts (bounds.Operands)


class FixedEngine:
    """Runs a plan in integer arithmetic, sample by sample, counting every operation."""

    def __init__(self, plan: Plan, params: NetParams, seed: int):
        dev, spec = plan.device, plan.spec
        if dev.is_float:
            raise DeviceError(f"device '{dev.name}' is a float device; the fixed engine needs "
                              "fixed-point formats (use the float engine)")
        plan.check()
        self.plan, self.spec, self.device, self.seed = plan, spec, dev, int(seed)
        ln = spec.learning
        self.fmt = {k: dev.formats[k] for k in FORMAT_KINDS}
        self.formats = Formats(*(format_row(self.fmt[k]) for k in FORMAT_KINDS))
        L = len(spec.hidden)
        n = np.array([ly.size for ly in spec.layers], dtype=np.int64)
        n_in = np.array([spec.fan_in(i) for i in range(L + 1)], dtype=np.int64)
        rec = np.array([int(ly.recurrent) for ly in spec.layers], dtype=np.int64)
        self._dfa = ln.signal == "dfa"
        self._regen = self._dfa and ln.feedback == "regenerated"
        tid, tid_input, tens = self._tensors(rec)
        offs = self._offsets(n_in, n, rec)
        consts = self._constants(n)
        tess = self._tess_tables()
        dly = self._delay_tables(params, n_in, n)
        gates = self._bounds(consts, tess)
        self.layout = Layout(n_in=n_in, n=n, rec=rec, w_off=offs.w, wr_off=offs.wr, b_off=offs.b,
                             nrn_off=offs.nrn, in_off=offs.inp, fb_off=offs.fb, dw_off=offs.dw,
                             dwr_off=offs.dwr, db_off=offs.db, nu=consts.nu, tq=consts.tq,
                             th=consts.th, theta=consts.theta, hard=consts.hard, tid=tid)
        self.net = LY.Net(
            T=spec.time_steps, window=ln.window, L=L, C=spec.classes, lay=self.layout.packed(),
            fmt=self.formats,
            psi_lut=self.psi_lut.codes, psi_sh=self.psi_lut.shift, psi_half=self.psi_lut.half,
            exp_lut=self.exp_lut.codes, exp_sh=self.exp_lut.shift, exp_half=self.exp_lut.half,
            alpha_post=consts.alpha_post, alpha_pre=consts.alpha_pre, lr=consts.lr,
            dfa=int(self._dfa), regen=int(self._regen),
            per_sample=(LY.CARRY if ln.carry else 1) if ln.per_sample else 0,
            fb_mag=consts.fb_mag, acc_lo=consts.acc_lo, acc_hi=consts.acc_hi,
            sig_exact=gates.sig_exact, syn_rows=gates.syn_rows, syn_rows32=gates.syn_rows32,
            factor_det=gates.factor_det, tid_input=tid_input, tens=tens,
            decay_mul=int(dev.decay == "multiply"), learn_from=L if ln.frozen else 0,
            tess=int(ln.signal == "tess"),
            tess_gen=int(self._tess_basis == "generated"), tess_lay=tess.lay, tess_grp=tess.grp,
            tess_sgn=tess.sgn, dly=dly.dly, fmt_d=dly.fmt_d, fmt_e=dly.fmt_e, slope=dly.slope,
            in_ptr=dly.in_ptr, in_idx=dly.in_idx, out_ptr=dly.out_ptr, out_idx=dly.out_idx)
        self._dl = dly
        self._params_mask = params.M
        self.fmt_delay = dev.formats["delay"]
        self.st = self._state(params, offs)
        self.buf = self._buffers(offs, tens)
        e2 = np.zeros((0, 0), dtype=np.int64)
        self._no_record = LY.Record(e2, e2, e2, e2, e2, e2, e2, e2, e2)
        self.last_counters = C.Counters()

    # ------------------------------------------------------------------ building

    @property
    def _stored_fb(self) -> bool:
        return self._dfa and not self._regen

    @property
    def _tess_basis(self) -> str | None:
        """The device's TESS basis (``"stored"``/``"generated"``) under TESS, else None."""
        return self.device.tess.basis if self.spec.learning.signal == "tess" else None

    def _tess_tables(self) -> _Tess:
        """The TESS constants (docs/fixed_point.md, "TESS"): per spiking layer its group
        count, table offsets and logit constant ``1/(D*temperature)``; per pooling group its
        neurons and constants ``1/size``, ``1/(D*temperature*size)`` (each ``code / 2**k``,
        ``constants.reciprocal_constant``); the plan's basis signs. Sets ``tess_signs``."""
        spec = self.spec
        L = len(spec.hidden)
        lay = np.zeros((L, LY.TL_COLS), dtype=np.int64)
        self.tess_signs = self.plan.tess_signs
        if self.tess_signs is None:
            return _Tess(lay, np.zeros((0, LY.G_COLS), dtype=np.int64),
                         np.zeros(0, dtype=np.int8), {})
        temp = Fraction(spec.learning.tess_temperature)
        grp, sgn = [], []
        g_off = s_off = 0
        for l, layer in enumerate(spec.hidden):
            signs = self.tess_signs[l]
            D = signs.shape[1]
            bounds_ = pool_bounds(layer.size, D)
            z = reciprocal_constant(1 / (D * temp))
            lay[l] = (D, g_off, s_off, z.code, z.k)
            for (a, b), size in zip(bounds_, group_sizes(bounds_)):
                r = reciprocal_constant(Fraction(1, int(size)))
                w = reciprocal_constant(1 / (D * temp * int(size)))
                grp.append((int(a), int(b), r.code, r.k, w.code, w.k))
            sgn.append(np.ascontiguousarray(signs, dtype=np.int8).ravel())
            g_off += D
            s_off += signs.size
        grp_a = np.array(grp, dtype=np.int64).reshape(-1, LY.G_COLS)
        largest = {"tess_groups": int(lay[:, LY.TL_D].max()),
                   "tess_size": int((grp_a[:, LY.G_B] - grp_a[:, LY.G_A]).max()),
                   "tess_codes": (int(grp_a[:, LY.G_RC].max()), int(lay[:, LY.TL_ZC].max()),
                                  int(grp_a[:, LY.G_WC].max())),
                   "tess_shifts": (int(grp_a[:, LY.G_RK].max()), int(lay[:, LY.TL_ZK].max()),
                                   int(grp_a[:, LY.G_WK].max()))}
        return _Tess(lay, grp_a, np.concatenate(sgn), largest)

    def _delay_tables(self, params: NetParams, n_in: np.ndarray, n: np.ndarray) -> _Delays:
        """Per layer its delay mode, buffer sizes and offsets, the eligibility's decay, the
        delay shift, the CSR tables of its kept synapses (every synapse of a dense
        synaptic layer) and the slope table ``G'(tap - R - frac)`` in the eligibility
        format, saturated to ``[luts] slope_bits`` (docs/delays.md, "On the device")."""
        spec, dev = self.spec, self.device
        ln = spec.learning
        L = len(spec.hidden)
        fd = dev.formats["delay"]
        if fd.is_float:
            raise DeviceError(f"device '{dev.name}': its delay format is floating point")
        fmt_d = format_row(fd)
        fmt_e = format_row(dev.formats["eligibility"])
        dly = np.zeros((L + 1, LY.DL_COLS), dtype=np.int64)
        slope, in_ptr, in_idx, out_ptr, out_idx, out_syn = [], [], [], [], [], []
        kept = [None] * L
        n_d = n_hist = n_eps = n_ring = n_qs = n_col = n_slope = n_pin = n_pout = n_idx = 0
        nf = 1 << fmt_d.frac
        top = (1 << (dev.luts.slope_bits - 1)) - 1
        for l, layer in enumerate(spec.hidden):
            if not (layer.delayed or layer.sparse):
                continue
            mode = {"none": LY.DL_NONE, "axonal": LY.DL_AXONAL,
                    "synaptic": LY.DL_SYNAPTIC}[layer.delays]
            row = dly[l]
            row[LY.DL_MODE] = mode
            row[LY.DL_SIMPLE] = int(layer.sparse or mode == LY.DL_SYNAPTIC)
            keep = (np.ones((int(n[l]), int(n_in[l])), dtype=bool) if params.M is None
                    or params.M[l] is None else params.M[l] != 0)
            if row[LY.DL_SIMPLE]:
                row[LY.DL_PIN], row[LY.DL_POUT] = n_pin, n_pout
                by_in = keep.T
                # pointers into the concatenated index lists: each layer's start after the
                # layers before it
                in_ptr.append(n_idx + np.concatenate([[0], np.cumsum(by_in.sum(axis=1))]))
                in_idx.append(np.nonzero(by_in)[1])
                out_ptr.append(n_idx + np.concatenate([[0], np.cumsum(keep.sum(axis=1))]))
                out_idx.append(np.nonzero(keep)[1])
                # a kept synapse's number: its place in the input-major list (the order of
                # a synaptic layer's per-synapse arrays), by neuron-major place
                number = np.full(by_in.shape, -1, dtype=np.int64)
                number[by_in] = np.arange(int(keep.sum()))
                out_syn.append(number.T[keep])
                kept[l] = np.flatnonzero(by_in)
                n_idx += int(keep.sum())
                n_pin += int(n_in[l]) + 1
                n_pout += int(n[l]) + 1
            if mode == LY.DL_NONE:
                continue
            learns = not ln.frozen
            M = layer.max_delay
            R = reach(layer.sigma)
            H = history_steps(M, layer.sigma) if learns else M + 1
            # axonal: one delay an input; synaptic: one a kept synapse, input-major
            nd = int(n_in[l]) if mode == LY.DL_AXONAL else int(keep.sum())
            e = decay_constant(layer.beta, dev.decay, fmt_e.frac)
            row[[LY.DL_M, LY.DL_H, LY.DL_R, LY.DL_DOFF, LY.DL_HOFF, LY.DL_EOFF, LY.DL_SOFF,
                 LY.DL_EC, LY.DL_EK, LY.DL_FI, LY.DL_ND]] = (
                M, H, R, n_d, n_hist, n_eps, n_slope, e.code, e.k, nf, nd)
            row[LY.DL_SHIFT] = layer.delay_lr_shift - ln.learning_rate_shift
            row[LY.DL_HW] = -(-H // 64)
            n_d += nd
            n_hist += int(row[LY.DL_HW]) * int(n_in[l])
            if learns:
                n_eps += nd
            if learns and mode == LY.DL_AXONAL:
                row[LY.DL_COL], row[LY.DL_COFF] = 1, n_col
                n_col += int(n_in[l] * n[l])
            if mode == LY.DL_SYNAPTIC:
                row[LY.DL_ROFF], row[LY.DL_QOFF] = n_ring, n_qs
                n_ring += (M + 1) * int(n[l])
                n_qs += nd
            half = (nf // 2) if fmt_d.frac > 0 else 0
            taps = np.arange(-R, R + 1)[:, None] - (np.arange(nf)[None, :] - half) / nf
            codes = np.rint(gaussian_slope(taps, layer.sigma) * 2.0 ** fmt_e.frac)
            slope.append(np.clip(codes, -top, top).astype(np.int64).ravel())
            n_slope += slope[-1].size
        cat = lambda parts: (np.ascontiguousarray(np.concatenate(parts), dtype=np.int64)  # noqa
                             if parts else np.zeros(0, dtype=np.int64))
        # one (2, kept) table, not two arrays: numba reference-counts every array of the
        # Net tuple at every kernel call, and one more cost the plain row 4 %
        out_tab = np.ascontiguousarray(np.stack([cat(out_idx), cat(out_syn)]))
        return _Delays(dly, fmt_d, fmt_e, cat(slope), cat(in_ptr), cat(in_idx), cat(out_ptr),
                       out_tab, kept, n_d, n_hist, n_eps, n_ring, n_qs, n_col)

    def _tensors(self, rec: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
        """Tensor ids, banks and words; sets ``tensor_names`` (one name per id, ``input``
        last).

        Returns ``(tid, tid_input, tens)``: ``tid (L+1, N_KINDS)`` the id of each layer's
        tensor of each kind (``layout.K_*``; -1 where it has none), the id of the input
        spikes, and ``tens (2, tensors)`` int64: row 0 the bank index of each tensor (-1:
        a register, no SRAM traffic), row 1 its elements per word (> 0) or ``-(words per
        element)`` for elements wider than a word.
        """
        plan, dev = self.plan, self.device
        L = len(rec) - 1
        self.tensor_names: list[str] = []
        tid = np.full((L + 1, LY.N_KINDS), -1, dtype=np.int64)
        for l in range(L + 1):
            prefix = f"L{l}" if l < L else "out"
            layer = self.spec.layers[l]
            for kind, name in _kind_names(prefix, l < L, bool(rec[l]), self._stored_fb,
                                          self.spec.learning.per_sample, self._tess_basis,
                                          layer.delays if l < L else "none",
                                          not self.spec.learning.frozen).items():
                tid[l, kind] = len(self.tensor_names)
                self.tensor_names.append(name)
        tid_input = len(self.tensor_names)
        self.tensor_names.append("input")
        bank_index = {b.name: i for i, b in enumerate(dev.banks)}
        t_bank = np.full(len(self.tensor_names), -1, dtype=np.int64)
        t_epw = np.ones(len(self.tensor_names), dtype=np.int64)
        for k, name in enumerate(self.tensor_names):
            try:
                p = plan.placement(name)
            except KeyError:
                continue                       # a register (a, c): no SRAM traffic
            bank = dev.bank(p.bank)
            t_bank[k] = bank_index[p.bank]
            bits = p.tensor.bits
            t_epw[k] = (bank.word_bits // bits if bits <= bank.word_bits
                        else -math.ceil(bits / bank.word_bits))
        return tid, tid_input, np.stack([t_bank, t_epw])

    def _offsets(self, n_in: np.ndarray, n: np.ndarray, rec: np.ndarray) -> _Offsets:
        """The layout of the flat arrays from the layer sizes ``n_in``, ``n`` and the
        recurrent flags ``rec`` (``(L+1,)`` each, the readout last): weights layer by
        layer, input-major, each layer's recurrent matrix after its feed-forward one; the
        per-sample accumulators mirror the parameters (empty per step)."""
        L = len(n) - 1
        per_sample = self.spec.learning.per_sample
        w_off, wr_off, b_off, fb_off = (np.full(L + 1, -1, dtype=np.int64) for _ in range(4))
        nrn_off = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        in_off = np.concatenate([[0], np.cumsum(n_in)[:-1]]).astype(np.int64)
        nw = nb = nfb = 0
        for l in range(L + 1):
            w_off[l] = nw
            nw += n_in[l] * n[l]
            if rec[l]:
                wr_off[l] = nw
                nw += n[l] * n[l]
            b_off[l] = nb
            nb += n[l]
            if l < L and self._stored_fb:
                fb_off[l] = nfb
                nfb += self.spec.classes * n[l]
        if per_sample:
            acc = (w_off.copy(), wr_off.copy(), b_off.copy(), nw, nb)
        else:
            acc = (*(np.full(L + 1, -1, dtype=np.int64) for _ in range(3)), 0, 0)
        return _Offsets(w=w_off, wr=wr_off, b=b_off, nrn=nrn_off, inp=in_off, fb=fb_off,
                        dw=acc[0], dwr=acc[1], db=acc[2], n_w=int(nw), n_b=int(nb),
                        n_fb=int(nfb), n_dw=int(acc[3]), n_db=int(acc[4]))

    def _constants(self, n: np.ndarray) -> _Constants:
        """Decay codes, thresholds, LUTs, alphas, DFA magnitude, accumulator range, in the
        formats' codes (``n (L+1,)`` the layer sizes). Sets ``decays`` (the decays the device
        applies, by name), ``psi_lut`` and ``exp_lut`` (``constants.Table``). DeviceError if
        a constant does not fit its format or the formats cannot hold exact accumulates."""
        dev, spec, fmt = self.device, self.spec, self.formats
        ln = spec.learning
        L = len(n) - 1
        f_w, f_b, f_u, f_i, f_t = (fmt.weight.frac, fmt.bias.frac, fmt.membrane.frac,
                                   fmt.current.frac, fmt.trace.frac)
        if f_i < f_w:
            raise DeviceError(f"device '{dev.name}': the current format ({self.fmt['current']}) "
                              f"needs at least the weight format's {f_w} fractional bits, so that "
                              "synaptic accumulates are exact")
        nu = np.zeros((L + 1, 5), dtype=np.int64)
        tq = np.zeros((L + 1, 2), dtype=np.int64)
        th = np.zeros((L + 1, 2), dtype=np.int64)
        theta = np.zeros(L + 1, dtype=np.int64)
        hard = np.zeros(L + 1, dtype=np.int64)
        self.decays = {}
        for l, ly in enumerate(spec.layers):
            d = decay_constant(ly.beta, dev.decay, f_u)
            F = max(f_u + d.k, f_i, f_b)
            nu[l] = (d.code, F - f_u - d.k, F - f_i, F - f_b, F - f_u)
            dq = decay_constant(ln.lambda_pre if ly.spiking else ly.trace_decay, dev.decay, f_t)
            tq[l] = dq
            self.decays[f"{'out' if l == L else f'L{l}'}.beta"] = d.effective
            self.decays[f"{'out' if l == L else f'L{l}'}.lambda_pre"] = dq.effective
            if ly.spiking:
                dh = decay_constant(ln.lambda_post, dev.decay, f_t)
                th[l] = dh
                self.decays[f"L{l}.lambda_post"] = dh.effective
                theta[l] = quantize_const(ly.threshold, f_u, 1, fmt.membrane.hi,
                                          f"layer {l} threshold")
                hard[l] = int(ly.reset == "hard")
        luts = dev.luts
        self.psi_lut = psi_table(ln.surrogate, luts.psi_entries, luts.psi_bits, f_u, fmt.trace)
        self.exp_lut = exp_table(luts.exp_entries, luts.exp_bits, f_u)
        alpha_lo, alpha_hi = -(1 << (ALPHA_FRAC + 5)), 1 << (ALPHA_FRAC + 5)
        alpha_post = quantize_const(ln.alpha_post, ALPHA_FRAC, alpha_lo, alpha_hi, "alpha_post")
        alpha_pre = quantize_const(ln.alpha_pre, ALPHA_FRAC, alpha_lo, alpha_hi, "alpha_pre")
        fb_mag = 0
        if self._dfa:
            k = -round(math.log2(dfa_scale(n[L - 1])))
            scales = {round(-math.log2(dfa_scale(int(m)))) for m in n[:L]}
            if max(scales) > f_w:
                raise DeviceError(f"DFA feedback magnitude 2^-{max(scales)} is below the weight "
                                  f"format's resolution 2^-{f_w}")
            if len(scales) > 1:
                raise DeviceError("DFA with hidden layers of different sizes needs one feedback "
                                  "magnitude; give the hidden layers sizes with the same "
                                  "power-of-two 1/sqrt(N)")
            fb_mag = 1 << (f_w - k)
        acc_bits = min(dev.accumulator_bits, 63)
        return _Constants(nu=nu, tq=tq, th=th, theta=theta, hard=hard, alpha_post=alpha_post,
                          alpha_pre=alpha_pre, lr=ln.learning_rate_shift, fb_mag=fb_mag,
                          acc_lo=-(1 << (acc_bits - 1)), acc_hi=(1 << (acc_bits - 1)) - 1)

    def _bounds(self, c: _Constants, tess: _Tess) -> bounds.Gates:
        """The int64 datapath check and the kernel's fast-path gates (:mod:`.bounds`); sets
        ``_operands`` (what ``set_lr_shift`` checks again). DeviceError if an intermediate
        could leave int64."""
        ln = self.spec.learning
        self._operands = bounds.Operands(
            fmt=self.formats, nu=c.nu, tq=c.tq, th=c.th, alpha_post=c.alpha_post,
            alpha_pre=c.alpha_pre, lr=c.lr, classes=self.spec.classes,
            exp_bits=self.device.luts.exp_bits, fb_mag=c.fb_mag, acc_hi=c.acc_hi,
            per_sample=ln.per_sample, carry=bool(ln.carry), **tess.largest)
        excess = bounds.first_excess(self._operands)
        if excess:
            raise DeviceError(f"device '{self.device.name}': formats too wide for the fixed "
                              f"engine's 64-bit datapath ({excess}); use fewer bits or, for a "
                              "shift, a larger learning rate")
        return bounds.gates(self._operands)

    def _state(self, params: NetParams, offs: _Offsets) -> LY.State:
        """The persistent state: ``params`` (float, output-major) quantised to weight and
        bias codes (nearest-even, saturating) in the layout ``offs`` (input-major), the
        stored DFA feedback codes, the feedback LFSR seeds and a fresh rounding state.
        Weights are int8 where their format fits (``weight_dtype``), everything else int64.
        Sets ``_word_request``; DeviceError if the rounding buffer cannot serve it."""
        L = self.net.L
        wq, bq = self.fmt["weight"].qformat, self.fmt["bias"].qformat
        W = np.zeros(offs.n_w, dtype=weight_dtype(self.formats.weight))
        b = np.zeros(offs.n_b, dtype=np.int64)
        mats = [(params.W[l], params.W_rec[l], params.b[l]) for l in range(L)]
        mats.append((params.W_out, None, params.b_out))
        for l, (w, wr, bias) in enumerate(mats):
            W[offs.w[l]:offs.w[l] + w.size] = quantize(np.asarray(w).T, wq)[0].ravel()
            if wr is not None:
                W[offs.wr[l]:offs.wr[l] + wr.size] = quantize(np.asarray(wr).T, wq)[0].ravel()
            b[offs.b[l]:offs.b[l] + bias.size] = quantize(bias, bq)[0]
        B = np.zeros(offs.n_fb, dtype=np.int64)
        if self._stored_fb:
            for l in range(L):
                codes = quantize(params.B_fb[l], wq)[0].ravel()
                B[offs.fb[l]:offs.fb[l] + codes.size] = codes
        fb_seed = np.array([lfsr_seed(self.seed * 1000 + l) for l in range(L + 1)], dtype=np.int64)
        width = self._width()
        # the buffer must hold the largest request after a refill (the kernels rely on it:
        # check_state); 4 rows keeps visit_rows32's chunks long
        self._word_request = LY.largest_word_request(width)
        rng = R.new_state(self.seed * 1000 + RNG_STREAM,
                          max(4 * width, R.min_capacity(self._word_request)))
        problem = R.check_state(rng, self._word_request)
        if problem:
            raise DeviceError(f"the rounding state of {width}-wide layers: {problem}")
        d = np.zeros(self._dl.n_d, dtype=np.int64)
        fd = self.device.formats["delay"].qformat
        self._masked_d = {}
        for l in range(L):
            row = self._dl.dly[l]
            if row[LY.DL_MODE] == LY.DL_NONE:
                continue
            # synaptic delays input-major, as the weights (the float engine's are (N_out, N_in)),
            # the kept synapses only
            vals = np.asarray(params.d[l], dtype=np.float64).T.ravel()
            top = int(row[LY.DL_M]) << self._dl.fmt_d.frac
            codes = np.clip(quantize(vals, fd)[0], 0, top).astype(np.int64)
            if row[LY.DL_MODE] == LY.DL_SYNAPTIC:
                # a masked synapse has no delay on the device; state() shows its initial one
                self._masked_d[l] = codes
                codes = codes[self._dl.kept[l]]
            d[row[LY.DL_DOFF]:row[LY.DL_DOFF] + codes.size] = codes
        return LY.State(W=W, b=b, B=B, fb_seed=fb_seed, rng=rng, d=d)

    def _width(self) -> int:
        """The widest layer or input vector (neurons or inputs): the scratch rows' length."""
        return int(max(self.layout.n.max(), self.layout.n_in.max()))

    def _buffers(self, offs: _Offsets, tens: np.ndarray) -> LY.Buffers:
        """The work buffers and counters, allocated once per engine (shapes in
        ``layout.Buffers``; every neuron row spans all layers, readout last)."""
        spec, L = self.spec, self.net.L
        ntot, itot = int(self.layout.n.sum()), int(self.layout.n_in.sum())
        width = self._width()
        z = lambda k: np.zeros(k, dtype=np.int64)  # noqa: E731
        epw_max = int(max(1, tens[1].max()))
        return LY.Buffers(
            nrn=np.zeros((11, ntot), dtype=np.int64), act=np.zeros((2, ntot), dtype=np.int64),
            cnt=np.zeros((L + 1, 3), dtype=np.int64), inp=np.zeros((2, itot), dtype=np.int64),
            scr=np.zeros((LY.SCR_ROWS, width), dtype=np.int64),
            wtab=np.zeros((4, epw_max), dtype=np.int64),
            cmp=np.zeros((LY.CMP_DELTA + 1, width), dtype=np.int64),
            c32=np.zeros((4, width + LY.PAD), dtype=np.int32),
            acc32=np.zeros(width, dtype=np.int32),
            vis=np.zeros((4, width), dtype=np.int64),
            dW=z(offs.n_dw), db=z(offs.n_db),
            scores=z(spec.classes),
            u_win=np.zeros((spec.learning.window, spec.classes), dtype=np.int64),
            spikes=z(L), ev=C.zeros(), sram=np.zeros((2, len(self.device.banks)), dtype=np.int64),
            sats=z(len(self.tensor_names)), hist=np.zeros(self._dl.n_hist, dtype=np.uint64),
            eps=z(self._dl.n_eps), dd=z(self._dl.n_eps if spec.learning.per_sample else 0),
            ring=z(self._dl.n_ring), qs=z(self._dl.n_qs), xs=z(self._dl.n_qs), gx=z(width),
            gx32=np.zeros(width, dtype=np.int32),
            wcol=np.zeros(self._dl.n_col, dtype=weight_dtype(self.formats.weight)),
            colok=z(1))

    # ------------------------------------------------------------------ running

    @property
    def lr_shift(self) -> int:
        """The learning rate is ``2**-lr_shift`` (a shift on the device)."""
        return int(self.net.lr)

    def set_lr_shift(self, shift: int) -> None:
        """Set the learning-rate shift (the spec's schedule, before each learned sample);
        DeviceError if an update would leave the datapath (the build's check, ``core.bounds``)."""
        shift = int(shift)
        if shift == self.net.lr:
            return
        op = self._operands._replace(lr=shift)
        excess = "it is negative" if shift < 0 else bounds.first_excess(op)
        if excess:
            raise DeviceError(f"learning-rate shift {shift} is outside what the fixed engine's "
                              f"formats allow ({excess})")
        self._operands = op
        self.net = self.net._replace(lr=shift)

    def _prepare(self, x: np.ndarray, label: int | None) -> tuple[np.ndarray, int]:
        x = np.asarray(x)
        if x.dtype in (np.uint8, np.bool_) and x.shape == (self.spec.time_steps, self.spec.inputs):
            spikes = np.ascontiguousarray(x.view(np.uint8) != 0, dtype=np.uint8)
        else:
            spikes = np.ascontiguousarray(check_sample(self.spec, x) != 0, dtype=np.uint8)
        if label is None:
            return spikes, -1
        lab = int(label)
        if not 0 <= lab < self.spec.classes:
            raise DataError(f"label {label} outside 0..{self.spec.classes - 1}")
        return spikes, lab

    def _run(self, x, label, learn: bool, rec: LY.Record | None) -> SampleResult:
        spikes, lab = self._prepare(x, label)
        learn = bool(learn and label is not None)
        run_sample_kernel(self.net, self.st, self.buf, spikes, lab, learn, rec is not None,
                            self._no_record if rec is None else rec)
        buf = self.buf
        scale = float(1 << self.formats.membrane.frac)
        scores = buf.scores.astype(np.float64) / scale
        if label is not None:   # mean cross-entropy over the window, from the dequantised readout
            u = buf.u_win.astype(np.float64) / scale
            m = u.max(axis=1)
            lse = m + np.log(np.exp(u - m[:, None]).sum(axis=1))
            loss = float(np.mean(lse - u[:, lab]))
        else:
            loss = float("nan")
        events = buf.ev.copy()
        banks = [b.name for b in self.device.banks]
        self.last_counters = C.Counters(
            events=events.copy(),
            sram_reads={b: int(v) for b, v in zip(banks, buf.sram[0])},
            sram_writes={b: int(v) for b, v in zip(banks, buf.sram[1])},
            saturations={name: int(v) for name, v in zip(self.tensor_names, buf.sats)
                         if name != "input"})
        return SampleResult(int(np.argmax(buf.scores)), scores, loss, buf.spikes.copy(), events)

    def run_sample(self, x: np.ndarray, label: int | None = None,
                   learn: bool = True) -> SampleResult:
        """Run one sample ``x (T, N_in)`` of 0/1 spikes; learn from ``label`` when ``learn``."""
        return self._run(x, label, learn, None)

    def trace(self, x: np.ndarray, label: int | None = None) -> dict[str, np.ndarray]:
        """Run one sample (learning as usual) and return every state variable per step.

        Keys (dequantised float64, first axis the step): ``L{i}.i`` (synaptic
        current, bias apart), ``L{i}.v`` (before reset), ``L{i}.u``, ``L{i}.s``,
        ``L{i}.psi``, ``L{i}.q``, ``L{i}.h``, ``L{i}.q_rec`` (recurrent layers), ``L{i}.g`` (0 outside the window),
        ``out.i``, ``out.u``, ``out.q``, ``out.e``; the same keys as
        ``FloatEngine.trace``.
        """
        net = self.net
        T = net.T
        ntot, itot = self.buf.nrn.shape[1], self.buf.inp.shape[1]
        z = lambda k: np.zeros((T, k), dtype=np.int64)  # noqa: E731
        rec = LY.Record(v=z(ntot), u=z(ntot), s=z(ntot), psi=z(ntot), h=z(ntot), q_rec=z(ntot),
                       g=z(ntot), q=z(itot), i=z(ntot))
        self._run(x, label, True, rec)
        f = {k: float(1 << getattr(self.formats, k).frac) for k in FORMAT_KINDS}
        out: dict[str, np.ndarray] = {}
        for l in range(net.L + 1):
            a, b = int(self.layout.nrn_off[l]), int(self.layout.nrn_off[l] + self.layout.n[l])
            qa, qb = int(self.layout.in_off[l]), int(self.layout.in_off[l] + self.layout.n_in[l])
            if l < net.L:
                p = f"L{l}"
                out[f"{p}.i"] = rec.i[:, a:b] / f["current"]
                out[f"{p}.v"] = rec.v[:, a:b] / f["membrane"]
                out[f"{p}.u"] = rec.u[:, a:b] / f["membrane"]
                out[f"{p}.s"] = rec.s[:, a:b].astype(np.float64)
                out[f"{p}.psi"] = rec.psi[:, a:b] / f["trace"]
                out[f"{p}.q"] = rec.q[:, qa:qb] / f["trace"]
                out[f"{p}.h"] = rec.h[:, a:b] / f["trace"]
                if self.layout.rec[l]:
                    out[f"{p}.q_rec"] = rec.q_rec[:, a:b] / f["trace"]
                out[f"{p}.g"] = rec.g[:, a:b] / f["signal"]
            else:
                out["out.i"] = rec.i[:, a:b] / f["current"]
                out["out.u"] = rec.u[:, a:b] / f["membrane"]
                out["out.q"] = rec.q[:, qa:qb] / f["trace"]
                out["out.e"] = rec.g[:, a:b] / f["signal"]
        return out

    # ------------------------------------------------------------------ state

    def _views(self) -> dict[str, tuple[np.ndarray, int, tuple[int, ...]]]:
        """Plan tensor name -> (flat array, offset, shape) of every persistent tensor."""
        net, spec = self.net, self.spec
        v: dict[str, tuple[np.ndarray, int, tuple[int, ...]]] = {}
        for l in range(net.L + 1):
            p = f"L{l}" if l < net.L else "out"
            n, n_in = int(self.layout.n[l]), int(self.layout.n_in[l])
            v[f"{p}.W"] = (self.st.W, int(self.layout.w_off[l]), (n_in, n))
            if self.layout.rec[l]:
                v[f"{p}.W_rec"] = (self.st.W, int(self.layout.wr_off[l]), (n, n))
            v[f"{p}.b"] = (self.st.b, int(self.layout.b_off[l]), (n,))
            if l < net.L and net.dfa and not net.regen:
                v[f"{p}.B"] = (self.st.B, int(self.layout.fb_off[l]), (spec.classes, n))
            if l < net.L and net.dfa and net.regen:
                v[f"{p}.B_seed"] = (self.st.fb_seed, l, (1,))
            if l < net.L and self._dl.dly[l, LY.DL_MODE] != LY.DL_NONE:
                row = self._dl.dly[l]
                shape = ((n_in,) if row[LY.DL_MODE] == LY.DL_AXONAL else (n_in, n))
                v[f"{p}.d"] = (self.st.d, int(row[LY.DL_DOFF]), shape)
            if net.per_sample == LY.CARRY:       # the carried remainders persist across samples
                v[f"{p}.dW"] = (self.buf.dW, int(self.layout.dw_off[l]), (n_in, n))
                if self.layout.rec[l]:
                    v[f"{p}.dW_rec"] = (self.buf.dW, int(self.layout.dwr_off[l]), (n, n))
                v[f"{p}.db"] = (self.buf.db, int(self.layout.db_off[l]), (n,))
        v["rng"] = (self.st.rng, 0, self.st.rng.shape)
        return v

    def _synaptic_delays(self, name: str) -> int | None:
        """The layer whose synaptic delays persistent array ``name`` is (stored for the kept
        synapses only, ``_Delays.kept``), else None."""
        if not name.endswith(".d") or name.startswith("out"):
            return None
        l = int(name[1:].split(".")[0])
        return l if self._dl.dly[l, LY.DL_MODE] == LY.DL_SYNAPTIC else None

    def state(self) -> dict[str, np.ndarray]:
        """Integer arrays by plan tensor name (weights input-major), plus ``rng``; with
        residual carry also the update accumulators (``L0.dW`` ..., input-major), which
        hold the remainders carried into the next sample. A synaptic layer's delays are
        ``(n_in, n)``: its kept synapses' codes, a masked synapse's initial one."""
        out = {}
        for name, (arr, off, shape) in self._views().items():
            l = self._synaptic_delays(name)
            if l is None:
                out[name] = arr[off:off + math.prod(shape)].reshape(shape).copy()
            else:
                kept, full = self._dl.kept[l], self._masked_d[l].copy()
                full[kept] = arr[off:off + kept.size]
                out[name] = full.reshape(shape)
        return out

    def _code_range(self, name: str) -> tuple[int, int, str]:
        """``(lo, hi, what)``: the codes persistent array ``name`` may hold (``_views`` names)."""
        if name.endswith(".B_seed"):
            return 1, (1 << 32) - 1, "a feedback LFSR state (nonzero, 32 bits)"
        if name.endswith(".d"):
            l = int(name[1:].split(".")[0])
            top = int(self._dl.dly[l, LY.DL_M]) << self._dl.fmt_d.frac
            return 0, top, f"0..max_delay in the delay format {self.fmt_delay}"
        kind = {"W": "weight", "W_rec": "weight", "B": "weight", "b": "bias",
                "dW": "update", "dW_rec": "update", "db": "update"}[name.rsplit(".", 1)[-1]]
        f = getattr(self.formats, kind)
        return f.lo, f.hi, f"the {kind} format {self.fmt[kind]}"

    def _loaded_problem(self, name: str, a: np.ndarray) -> str | None:
        """What is wrong with the values of loaded array ``name`` (right shape), or None."""
        if name == "rng":
            return R.check_state(a, self._word_request)
        if a.size == 0:
            return None
        lo, hi, what = self._code_range(name)
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi:
            return f"codes {amin}..{amax} outside {what}: {lo}..{hi}"
        return None

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore ``state()`` output. CheckpointError, naming the array, on a missing, extra
        or misshaped array and on values the engine could not have written: codes outside
        their format, a zero feedback seed, a rounding state the kernels cannot use
        (``rng.check_state``); nothing is restored then."""
        views = self._views()
        extra = sorted(set(arrays) - set(views))
        if extra:
            raise CheckpointError(f"checkpoint array {extra[0]} is not part of this fixed engine")
        for name, (arr, off, shape) in views.items():
            a = np.asarray(arrays[name]) if name in arrays else None
            if a is None or a.shape != shape or a.dtype.kind not in "iu":
                got = "missing" if a is None else f"{a.dtype} {a.shape}"
                raise CheckpointError(f"checkpoint array {name}: expected integer array of shape "
                                      f"{shape}, got {got}")
            problem = self._loaded_problem(name, a)
            if problem:
                raise CheckpointError(f"checkpoint array {name}: {problem}")
        for name, (arr, off, shape) in views.items():
            a = np.asarray(arrays[name], dtype=np.int64).ravel()
            l = self._synaptic_delays(name)
            if l is None:
                arr[off:off + math.prod(shape)] = a
            else:
                arr[off:off + self._dl.kept[l].size] = a[self._dl.kept[l]]
        self.buf.colok[0] = 0                # the weights' column copy is stale

    def float_params(self) -> NetParams:
        """Dequantised parameters (output-major float64, as ``params.NetParams``)."""
        st = self.state()
        fw = float(1 << self.formats.weight.frac)
        fb = float(1 << self.formats.bias.frac)
        L = self.net.L
        W = [st[f"L{l}.W"].T / fw for l in range(L)]
        W_rec = [st[f"L{l}.W_rec"].T / fw if f"L{l}.W_rec" in st else None for l in range(L)]
        b = [st[f"L{l}.b"] / fb for l in range(L)]
        B_fb = None
        if self.net.dfa:
            if self.net.regen:
                B_fb = [dfa_matrix(self.seed, l, self.spec.classes, int(self.layout.n[l]))
                        for l in range(L)]
            else:
                B_fb = [st[f"L{l}.B"] / fw for l in range(L)]
        d = None
        if self._dl.n_d:
            fd = float(1 << self._dl.fmt_d.frac)
            d = [st[f"L{l}.d"].T / fd if f"L{l}.d" in st else None for l in range(L)]
        M = self._params_mask
        return NetParams(W, W_rec, b, st["out.W"].T / fw, st["out.b"] / fb, B_fb, d, M)
