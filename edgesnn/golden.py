"""Run golden-vector cases (``NAME.json`` + ``NAME.npz``) against the float engine.

Every case is configured from its json only (sizes, ``beta``/``leak``,
``theta_eff``/``threshold``, ``reset``, ``PSI``, ``factors`` or else
``factors_effective``, window / ``ls_mask``, ``feedback_mode``, conv fields); its
npz holds the inputs and the recorded outputs. For each recorded array the
engine can compute, the largest absolute difference is printed with PASS/FAIL:
tolerance 1e-10, except TESS ``lsg_*`` arrays (1e-4), TESS ``sin_*`` (1e-6) and
``B_*`` (exact). NaN in a recorded output
marks "no value" (e.g. ``loss`` outside the window) and is not compared; NaN in
an input is a :class:`DataError`.

``net`` cases: the hidden layer learns from the recorded ``g_hidden_f32`` (the
float32-rounded signal the original passes on), as the output says; the engine's
own ``g_hidden`` is checked at 1e-10 and its float32 rounding against
``g_hidden_f32``.

A kind or option the engine does not support is reported ``UNSUPPORTED: reason``
and fails the case; bad data gives a one-line ``DataError`` naming the file and
key, fails the case, and the other cases still run.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgesnn.errors import DataError, EdgeSnnError
from edgesnn.neurons.lif import LIFParams, RESETS, make_psi
from edgesnn.rules.stllr import (ConvParams, DenseParams, Factors, ReadoutLayerParams, SequenceResult,
                                 conv_out_hw, run_conv, run_dense, run_readout, standardize,
                                 standardize_vjp)
from edgesnn.rules.tess import (FMAX, FMIN, pool, pool2d, pool_bounds, tess_basis, tess_sines, unpool,
                                unpool2d)
from edgesnn.signals import FEEDBACK_MODES, NetParams, run_net, tess_local_ce

TOL = 1e-10
TOL_LSG = 1e-4
TOL_SIN = 1e-6
_PSI_DEFAULT = {"linear": ("rational", 100.0), "rec": ("rational", 100.0), "net": ("rational", 100.0),
                "conv": ("triangle", 0.3)}


class Unsupported(Exception):
    """A case asks for a kind or option the float engine does not implement."""


def tolerance(name: str, kind: str | None = None) -> float:
    """Tolerance of a recorded array by name (and, for ``tess`` cases, ``B_*`` exact, ``sin_*``
    1e-6: float32 ``sin`` implementations differ in the last bit)."""
    if name.startswith("lsg_"):
        return TOL_LSG
    if kind == "tess" and name.startswith("B_"):
        return 0.0
    if kind == "tess" and name.startswith("sin_"):
        return TOL_SIN
    return TOL


# --------------------------------------------------------------- surrogate parsing

_NUM = r"(\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)"
_ONE = r"1(?:\.0*)?"
_ZERO = r"0(?:\.0*)?"
_RATIONAL = [re.compile(p) for p in (
    rf"^{_ONE}/\({_NUM}\*?\|d\|\+{_ONE}\)\^2(?:\.0*)?$",
    rf"^{_ONE}/\({_ONE}\+{_NUM}\*?\|d\|\)\^2(?:\.0*)?$",
    rf"^\({_NUM}\*?\|d\|\+{_ONE}\)\^-2(?:\.0*)?$",
    rf"^\({_ONE}\+{_NUM}\*?\|d\|\)\^-2(?:\.0*)?$",
)]
_TRIANGLE = [re.compile(p) for p in (
    rf"^{_NUM}\*max\({_ZERO},{_ONE}-\|d\|\)$",
    rf"^{_NUM}\*max\({_ONE}-\|d\|,{_ZERO}\)$",
    rf"^{_NUM}\*relu\({_ONE}-\|d\|\)$",
    rf"^max\({_ZERO},{_ONE}-\|d\|\)\*{_NUM}$",
    rf"^max\({_ONE}-\|d\|,{_ZERO}\)\*{_NUM}$",
)]


def parse_psi(text: str) -> tuple[str, float]:
    """``("rational", scale)`` or ``("triangle", gamma)`` from a case's PSI string.

    Accepts e.g. ``PSI(d)=1/(100*|d|+1)^2``, ``1/(1+100*abs(x))**2``,
    ``0.3*max(0,1-|d|)``, ``0.3*max(0.0, 1.0 - |u|)``, and any of them followed by
    a note: ``(a parenthesised note)`` or `` -- a note`` after whitespace, ``# a
    note`` or ``; a note``. The formula itself must be one of the known forms;
    raises :class:`Unsupported` otherwise.
    """
    try:
        return _parse_formula(text)
    except Unsupported as e:
        first = e
    for head in _without_note(str(text)):
        try:
            return parse_psi(head)
        except Unsupported:
            continue
    raise first


def _without_note(text: str) -> list[str]:
    """Every head of ``text`` that leaves a trailing note (see :func:`parse_psi`)."""
    heads = []
    for mark in ("#", ";"):
        if mark in text:
            heads.append(text[:text.index(mark)])
    m = re.search(r"\s+--", text)
    if m:
        heads.append(text[:m.start()])
    stripped = text.rstrip()
    if stripped.endswith(")"):
        depth = 0
        for i in range(len(stripped) - 1, -1, -1):      # the "(" that closes at the end
            depth += {")": 1, "(": -1}.get(stripped[i], 0)
            if depth == 0:
                if i > 0 and stripped[i - 1].isspace():
                    heads.append(stripped[:i])
                break
    return [h for h in heads if h.strip()]


def _parse_formula(text: str) -> tuple[str, float]:
    s = re.sub(r"\s+", "", str(text)).lower().replace("**", "^").replace("torch.", "").replace("np.", "")
    var = "d"
    m = re.match(r"^(?:psi|ψ)?\(([a-z_]\w*)\)=(.*)$", s)
    if m:
        var, s = m.group(1), m.group(2)
    elif "=" in s:
        raise Unsupported(f"PSI {text!r} not understood")
    else:
        names = set(re.findall(r"\|([a-z_]\w*)\|", s)) | set(re.findall(r"abs\(([a-z_]\w*)\)", s))
        if len(names) == 1:
            var = names.pop()
    s = re.sub(rf"abs\({var}\)", "|d|", s)
    s = s.replace(f"|{var}|", "|d|")
    s = s.replace("maximum(", "max(").replace("clamp(", "max(")
    for pat in _RATIONAL:
        m = pat.match(s)
        if m:
            return "rational", float(m.group(1))
    for pat in _TRIANGLE:
        m = pat.match(s)
        if m:
            return "triangle", float(m.group(1))
    raise Unsupported(f"PSI {text!r} not understood (known: 1/(a*|d|+1)^2, g*max(0,1-|d|))")


def _psi_label(form: str, coef: float) -> str:
    return f"1/({coef:g}|d|+1)^2" if form == "rational" else f"{coef:g}*max(0,1-|d|)"


# --------------------------------------------------------------- one case

class _Case:
    """A case's json config with lazily loaded, validated npz arrays."""

    def __init__(self, json_path: Path):
        self.json_path = json_path
        self.name = json_path.stem
        self.npz_path = json_path.with_suffix(".npz")
        self.jname, self.zname = json_path.name, self.npz_path.name
        try:
            self.cfg = json.loads(json_path.read_text())
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{self.jname}: cannot read ({e})") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{self.jname}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(self.cfg, dict):
            raise DataError(f"{self.jname}: top level is not a JSON object")
        self._arrays: Optional[dict] = None
        self.inputs: list[str] = []
        self.notes: list[str] = []
        self.header: list[str] = []

    # -- config fields
    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def choice(self, key: str, default: str, allowed, note: str):
        """Field ``key`` if present (Unsupported unless in ``allowed``), else ``default`` + a note."""
        v = self.cfg.get(key)
        if v is None:
            self.notes.append(note)
            return default
        if v not in allowed:
            raise Unsupported(f"{key} {v!r} (supported: {', '.join(allowed)})")
        return v

    def size(self, key: str) -> int:
        v = self.cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise DataError(f"{self.jname}: field '{key}' must be a positive integer, got {v!r}")
        return v

    def num(self, key: str) -> float:
        v = self.cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise DataError(f"{self.jname}: field '{key}' must be a finite number, got {v!r}")
        return float(v)

    # -- arrays
    @property
    def arrays(self) -> dict:
        if self._arrays is None:
            if not self.npz_path.is_file():
                raise DataError(f"{self.zname}: file not found (needed by {self.jname})")
            try:
                with np.load(self.npz_path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except Exception as e:  # zipfile/pickle/ValueError: a corrupt file
                raise DataError(f"{self.zname}: cannot read ({type(e).__name__}: {e})") from None
            listed = self.cfg.get("arrays") or {}
            if not isinstance(listed, dict):
                raise DataError(f"{self.jname}: field 'arrays' must map names to shapes")
            for k, shp in listed.items():
                if k not in arrays:
                    raise DataError(f"{self.zname}: array '{k}' missing (listed in {self.jname})")
                if not isinstance(shp, list):
                    raise DataError(f"{self.jname}: shape of '{k}' in 'arrays' must be a list, got {shp!r}")
                if list(arrays[k].shape) != list(shp):
                    raise DataError(f"{self.zname}: array '{k}' has shape {tuple(arrays[k].shape)}, "
                                    f"{self.jname} says {tuple(shp)}")
            self._arrays = arrays
        return self._arrays

    def arr(self, key: str, shape: Optional[tuple] = None, size: Optional[int] = None) -> np.ndarray:
        """An input array as float64: present, numeric, of ``shape`` (or ``size``), without NaN/inf."""
        if key not in self.arrays:
            raise DataError(f"{self.zname}: input array '{key}' missing")
        a = self.arrays[key]
        if a.dtype.kind not in "biuf":
            raise DataError(f"{self.zname}: array '{key}' is not numeric (dtype {a.dtype})")
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise DataError(f"{self.zname}: array '{key}' has shape {tuple(a.shape)}, expected {tuple(shape)} "
                            f"from the sizes in {self.jname}")
        if size is not None and a.size != size:
            raise DataError(f"{self.zname}: array '{key}' has {a.size} values, expected {size}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise DataError(f"{self.zname}: input array '{key}' contains NaN or inf")
        if key not in self.inputs:
            self.inputs.append(key)
        return a


# --------------------------------------------------------------- config pieces

def _factors(c: _Case, key: str = "factors") -> Factors:
    f = c.cfg.get(key)
    src = key
    if f is None:
        f, src = c.cfg.get(key + "_effective"), key + "_effective"
    if f is None:
        raise DataError(f"{c.jname}: fields '{key}' and '{key}_effective' are both missing or null")
    try:
        return Factors.from_seq(f)
    except (TypeError, ValueError, EdgeSnnError):
        raise DataError(f"{c.jname}: field '{src}' must be 4 numbers, got {f!r}") from None


def _beta(c: _Case, key: str = "beta", leak: str = "leak") -> float:
    if c.has(key):
        return c.num(key)
    if c.has(leak):
        return 1.0 / (1.0 + math.exp(-c.num(leak)))
    raise DataError(f"{c.jname}: fields '{key}' and '{leak}' are both missing")


def _lif(c: _Case, kind: str) -> LIFParams:
    reset = c.choice("reset", "soft", RESETS, "no 'reset' field: soft reset assumed (S-TLLR default)")
    if c.has("PSI"):
        form, coef = parse_psi(c.cfg["PSI"])
    else:
        form, coef = _PSI_DEFAULT[kind]
        c.notes.append(f"no 'PSI' field: {kind} default {_psi_label(form, coef)} assumed")
    if c.has("theta_eff"):
        theta = c.num("theta_eff")
    elif c.has("threshold"):
        theta = max(c.num("threshold"), 0.5)
    else:
        raise DataError(f"{c.jname}: fields 'theta_eff' and 'threshold' are both missing")
    c.header.append(f"reset={reset} PSI={_psi_label(form, coef)} theta={theta:g}")
    return LIFParams(beta=_beta(c), theta=theta, reset=reset, psi=make_psi(form, coef))


def _ls_mask(c: _Case, T: int) -> np.ndarray:
    from_json = None
    if c.has("window"):
        w = c.cfg["window"]
        if not isinstance(w, list) or not all(isinstance(t, int) and 0 <= t < T for t in w):
            raise DataError(f"{c.jname}: field 'window' must list step indices in 0..{T - 1}")
        from_json = np.zeros(T, bool)
        from_json[w] = True
    elif c.has("delay_ls"):
        from_json = (T - np.arange(T)) <= c.num("delay_ls")
    if "ls_mask" in c.arrays:
        mask = c.arr("ls_mask", (T,)) != 0
        if from_json is not None and not np.array_equal(mask, from_json):
            raise DataError(f"{c.zname}: array 'ls_mask' disagrees with the window in {c.jname}")
    elif from_json is not None:
        mask = from_json
        c.notes.append("no 'ls_mask' array: window taken from the json")
    else:
        raise DataError(f"{c.zname}: input array 'ls_mask' missing (and no 'window' in {c.jname})")
    idx = np.flatnonzero(mask)
    c.header.append(f"window={idx[0]}..{idx[-1]} ({idx.size} steps)" if idx.size else "window=empty")
    return mask


def _weight(c: _Case, out: dict, raw: str, gain: str, plain: str, eff: str, shape: tuple):
    """Effective weight; records ``eff`` and returns a function mapping dW_eff to the parameter grads."""
    if raw in c.arrays:
        W_raw = c.arr(raw, shape)
        g = c.arr(gain, size=shape[0])
        W = standardize(W_raw, g)
        out[eff] = W
        return W, lambda d: standardize_vjp(W_raw, g, d)
    if plain in c.arrays:
        c.notes.append(f"'{plain}' used as the effective weight (no '{raw}': no standardisation)")
        W = c.arr(plain, shape)
        return W, None
    raise DataError(f"{c.zname}: input array '{raw}' (or '{plain}') missing")


def _bias(c: _Case, n: int) -> np.ndarray:
    if c.cfg.get("bias") is False:
        return np.zeros(n)
    return c.arr("b", (n,))


def _record_layer(out: dict, res: SequenceResult, vjp, vjp_rec=None) -> None:
    r, st, tot = res.records, res.steps, res.total
    out.update({"u_pre": r.v, "u_post": r.u, "s": r.s, "psi": r.psi, "tr_pre": r.q,
                "tr_post_prev": r.h_prev, "tr_post": r.h,
                "dW_eff_steps": st.dW, "dW_eff": tot.dW, "db_steps": st.db, "db": tot.db,
                "grad_x_steps": st.grad_x})
    if vjp is None:
        out.update({"dW_steps": st.dW, "dW": tot.dW})
    else:
        out["dW_raw"], out["dgain"] = vjp(tot.dW)
    if hasattr(r, "x_rec") and st.dW_rec is not None:
        out.update({"x_rec": r.x_rec, "tr_rec": r.q_rec, "dWrec_eff_steps": st.dW_rec,
                    "dWrec_eff": tot.dW_rec})
        if vjp_rec is None:
            out.update({"dWrec_steps": st.dW_rec, "dWrec": tot.dW_rec})
        else:
            out["dWrec_raw"], out["dgain_rec"] = vjp_rec(tot.dW_rec)


# --------------------------------------------------------------- kinds

def _kind_dense(c: _Case, rec: bool) -> dict:
    kind = "rec" if rec else "linear"
    T, B, N_in, N_out = (c.size(k) for k in ("T", "B", "N_in", "N_out"))
    lif, fac = _lif(c, kind), _factors(c)
    mask = _ls_mask(c, T)
    out: dict = {}
    x, g = c.arr("x", (T, B, N_in)), c.arr("g", (T, B, N_out))
    W, vjp = _weight(c, out, "W_raw", "gain", "W", "W_eff", (N_out, N_in))
    Wr, vjp_rec = (None, None)
    if rec:
        Wr, vjp_rec = _weight(c, out, "W_rec_raw", "gain_rec", "W_rec", "W_rec_eff", (N_out, N_out))
    res = run_dense(x, g, mask, DenseParams(W=W, b=_bias(c, N_out), lif=lif, factors=fac, W_rec=Wr))
    _record_layer(out, res, vjp, vjp_rec)
    return out


def _conv_convention(c: _Case) -> tuple[int, int, int, int]:
    """``(HW_h, HW_w, k, pad)``; raises Unsupported for stride/dilation/groups != 1 or non-zero padding."""
    conv = c.cfg.get("conv")
    if conv is None:
        c.notes.append("no 'conv' field: F.conv2d cross-correlation, stride 1, zero padding assumed")
    elif isinstance(conv, dict):
        for key in ("stride", "dilation", "groups"):
            v = conv.get(key, 1)
            if any(int(e) != 1 for e in (v if isinstance(v, (list, tuple)) else [v])):
                raise Unsupported(f"conv {key}={v!r} (only 1 is supported)")
        if str(conv.get("padding_mode", "zeros")) != "zeros":
            raise Unsupported(f"conv padding_mode={conv['padding_mode']!r} (only zeros)")
    else:
        s = str(conv).lower()
        for key in ("stride", "dilation", "groups"):
            for m in re.finditer(rf"{key}\W{{0,3}}(\d+)", s):
                if int(m.group(1)) != 1:
                    raise Unsupported(f"conv {key} {m.group(1)} in {conv!r} (only 1 is supported)")
        for mode in ("reflect", "circular", "replicate"):
            if mode in s:
                raise Unsupported(f"conv padding mode {mode!r} in {conv!r} (only zero padding)")
        c.notes.append(f"conv convention from the case: {conv} (engine: F.conv2d cross-correlation, "
                       "no kernel flip, stride 1, zero padding)")

    def pair(key):
        v = c.cfg.get(key)
        if isinstance(v, list) and len(v) == 2 and v[0] == v[1]:
            v = v[0]
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "pad" else 1):
            raise Unsupported(f"conv field '{key}'={v!r} (need one non-negative integer, square)")
        return v
    hw, k, pad = pair("HW"), pair("k"), pair("pad")
    return hw, hw, k, pad


def _kind_conv(c: _Case) -> dict:
    H, Wd, k, pad = _conv_convention(c)
    T, B, C_in, C_out = (c.size(key) for key in ("T", "B", "C_in", "C_out"))
    Ho, Wo = conv_out_hw(H, Wd, k, pad)
    if Ho < 1 or Wo < 1:
        raise DataError(f"{c.jname}: kernel {k} with pad {pad} does not fit HW {H}")
    lif, fac = _lif(c, "conv"), _factors(c)
    c.header.append(f"conv C_in={C_in} C_out={C_out} HW={H} k={k} pad={pad} -> {Ho}x{Wo}")
    mask = _ls_mask(c, T)
    out: dict = {}
    x, g = c.arr("x", (T, B, C_in, H, Wd)), c.arr("g", (T, B, C_out, Ho, Wo))
    W, vjp = _weight(c, out, "W_raw", "gain", "W", "W_eff", (C_out, C_in, k, k))
    res = run_conv(x, g, mask, ConvParams(W=W, b=_bias(c, C_out), pad=pad, lif=lif, factors=fac))
    _record_layer(out, res, vjp)
    return out


def _kind_readout(c: _Case) -> dict:
    T, B, N_in, N_out = (c.size(k) for k in ("T", "B", "N_in", "N_out"))
    lam = _factors(c).lambda_pre if (c.has("factors") or c.has("factors_effective")) else c.num("lambda_pre")
    beta = _beta(c)
    c.header.append(f"beta={beta:.6g} lambda_pre={lam:g}")
    mask = _ls_mask(c, T)
    x, g = c.arr("x", (T, B, N_in)), c.arr("g", (T, B, N_out))
    p = ReadoutLayerParams(W=c.arr("W", (N_out, N_in)), b=_bias(c, N_out), beta=beta, lambda_pre=lam)
    res = run_readout(x, g, mask, p)
    return {"u": res.records.u, "tr_pre": res.records.q, "dW_steps": res.steps.dW, "dW": res.total.dW,
            "db_steps": res.steps.db, "db": res.total.db, "grad_x_steps": res.steps.grad_x}


def _kind_net(c: _Case) -> dict:
    mode = c.choice("feedback_mode", "BP", FEEDBACK_MODES, "no 'feedback_mode' field: BP assumed")
    T, B, N_in, N_hid, C = (c.size(k) for k in ("T", "B", "N_in", "N_hid", "C"))
    lif, fac = _lif(c, "net"), _factors(c)
    beta_out = _beta(c, "beta_out", "leak_out")
    lam_out = c.num("lambda_pre_out") if c.has("lambda_pre_out") else _factors(c, "factors_out").lambda_pre
    c.header.append(f"feedback={mode} beta_out={beta_out:.6g} lambda_pre_out={lam_out:g}")
    mask = _ls_mask(c, T)
    out: dict = {}
    x = c.arr("x", (T, B, N_in))
    label = c.arr("label", (B,))
    if not (np.all(label == np.round(label)) and label.min() >= 0 and label.max() < C):
        raise DataError(f"{c.zname}: array 'label' must hold integer classes in 0..{C - 1}")
    label = label.astype(np.int64)
    W, vjp = _weight(c, out, "W_raw", "gain", "W", "W_eff", (N_hid, N_in))
    Wr, vjp_rec = _weight(c, out, "W_rec_raw", "gain_rec", "W_rec", "W_rec_eff", (N_hid, N_hid))
    hidden = DenseParams(W=W, b=_bias(c, N_hid), lif=lif, factors=fac, W_rec=Wr)
    b_out = c.arr("b_out", (C,)) if c.cfg.get("bias_out", True) is not False else np.zeros(C)
    readout = ReadoutLayerParams(W=c.arr("W_out", (C, N_hid)), b=b_out, beta=beta_out, lambda_pre=lam_out)
    B_fb = c.arr("B_fb", (C, N_hid)) if mode == "DFA" else None
    if "g_hidden_f32" in c.arrays:
        g_used = c.arr("g_hidden_f32", (T, B, N_hid))
        c.notes.append("hidden-layer gradients computed from the recorded g_hidden_f32 (float32-rounded "
                       "signal, as in the original); g_hidden checked separately at 1e-10")
    else:
        g_used = None
        c.notes.append("hidden-layer gradients computed from float32(engine g_hidden) (no g_hidden_f32 recorded)")
    res = run_net(x, label, mask, NetParams(hidden, readout, mode, B_fb), signal_dtype=np.float32,
                  g_hidden_used=g_used)
    h, r = res.hidden, res.readout
    hg, rg = res.hidden_grads, res.readout_grads
    out.update({"u_pre": h.v, "u_post": h.u, "s": h.s, "psi": h.psi, "tr_pre": h.q,
                "tr_post_prev": h.h_prev, "tr_post": h.h, "x_rec": h.x_rec, "tr_rec": h.q_rec,
                "logits": r.u, "u_out": r.u, "tr_out_pre": r.q, "loss": res.loss, "g_out": res.g_out,
                "g_hidden": res.g_hidden,
                "g_hidden_f32": res.g_hidden.astype(np.float32).astype(np.float64),
                "dW_eff": hg.dW, "dWrec_eff": hg.dW_rec, "db": hg.db, "dW_out": rg.dW, "db_out": rg.db})
    if vjp is not None:
        out["dW_raw"], out["dgain"] = vjp(hg.dW)
    if vjp_rec is not None:
        out["dWrec_raw"], out["dgain_rec"] = vjp_rec(hg.dW_rec)
    return out


def _tess_pairs(c: _Case) -> list[tuple[int, int]]:
    shapes = c.cfg.get("shapes", [])
    ok = isinstance(shapes, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                    and v >= 1 for v in p) for p in shapes)
    if not ok:
        raise DataError(f"{c.jname}: field 'shapes' must list [C, D] pairs of positive integers")
    return [(C, D) for C, D in shapes]


def _tess_options(c: _Case) -> tuple[float, float]:
    """``(fmin, fmax)``; Unsupported for a waveform, loss, temperature or smoothing not built."""
    if c.cfg.get("waveform", "square") != "square":
        raise Unsupported(f"TESS waveform {c.cfg['waveform']!r} (only 'square')")
    if str(c.cfg.get("loss", c.cfg.get("loss_function", "CE"))).upper() != "CE":
        raise Unsupported(f"TESS loss {c.cfg.get('loss', c.cfg.get('loss_function'))!r} (only CE)")
    for key, neutral in (("temperature", 1.0), ("label_smoothing", 0.0)):
        if c.has(key) and c.num(key) != neutral:
            raise Unsupported(f"TESS {key} {c.cfg[key]!r} (only {neutral:g})")
    fmin = c.num("fmin") if c.has("fmin") else FMIN
    fmax = c.num("fmax") if c.has("fmax") else FMAX
    if not (c.has("fmin") and c.has("fmax")):
        c.notes.append(f"frequencies torch.linspace({fmin:g}, {fmax:g}, C) in float32 "
                       "(fmin/fmax fields absent: the authors' values)")
    if not fmin < fmax:
        raise DataError(f"{c.jname}: fmin {fmin:g} must be below fmax {fmax:g}")
    return fmin, fmax


def _kind_tess(c: _Case) -> dict:
    """Basis per listed ``(C, D)``, and the LSG example when its arrays are present.

    ``lsg_activation`` is ``(B, channels, H, W)`` (``adaptive_avg_pool2d`` to
    ``lsg_pool = [rows, cols]``), or ``(B, n)`` / ``(B, channels, n)``
    (``adaptive_avg_pool1d`` to ``lsg_pool = D``); latents are flattened
    channel-major as ``view(B, -1)`` does.
    """
    fmin, fmax = _tess_options(c)
    out: dict = {}
    pairs = _tess_pairs(c)
    for C, D in pairs:
        sines = tess_sines(C, D, fmin, fmax)
        out[f"sin_C{C}_D{D}"] = sines.astype(np.float64)
        out[f"B_C{C}_D{D}"] = tess_basis(C, D, fmin, fmax)
    c.header.append(f"bases {', '.join(f'{C}x{D}' for C, D in pairs) or 'none'} "
                    f"f=linspace({fmin:g},{fmax:g},C) float32")
    if "lsg_activation" not in c.arrays:
        return out
    a = c.arr("lsg_activation")
    C = c.size("lsg_classes")
    if a.ndim not in (2, 3, 4):
        raise Unsupported(f"lsg_activation of {a.ndim} dimensions (2, 3 or 4: (B, [channels,] n) "
                          "or (B, channels, H, W))")
    Bn = a.shape[0]
    labels = c.arr("lsg_labels", (Bn,))
    if not (np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() < C):
        raise DataError(f"{c.zname}: array 'lsg_labels' must hold integer classes in 0..{C - 1}")
    labels = labels.astype(np.int64)
    pool_cfg = c.cfg.get("lsg_pool")
    if a.ndim == 4:
        if isinstance(pool_cfg, int) and not isinstance(pool_cfg, bool):
            pool_cfg = [pool_cfg, pool_cfg]
        if not (isinstance(pool_cfg, list) and len(pool_cfg) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pool_cfg)):
            raise DataError(f"{c.jname}: field 'lsg_pool' must be [rows, cols] for a 4-D activation")
        rows, cols = pool_cfg
        if not (1 <= rows <= a.shape[2] and 1 <= cols <= a.shape[3]):
            raise DataError(f"{c.jname}: lsg_pool {pool_cfg} does not fit H, W = {a.shape[2:]}")
        latents = pool2d(a, (rows, cols)).reshape(Bn, -1)
        back = lambda gl: unpool2d(gl.reshape(Bn, a.shape[1], rows, cols), a.shape[2:])  # noqa: E731
        how = f"adaptive_avg_pool2d to {rows}x{cols}"
    else:
        if isinstance(pool_cfg, list) and len(pool_cfg) == 1:
            pool_cfg = pool_cfg[0]
        if isinstance(pool_cfg, bool) or not isinstance(pool_cfg, int) or not 1 <= pool_cfg <= a.shape[-1]:
            raise DataError(f"{c.jname}: field 'lsg_pool' must be an integer in 1..{a.shape[-1]} "
                            "for a 2-D or 3-D activation")
        bounds = pool_bounds(a.shape[-1], pool_cfg)
        latents = pool(a, bounds).reshape(Bn, -1)
        back = lambda gl: unpool(gl.reshape(a.shape[:-1] + (pool_cfg,)), bounds, a.shape[-1])  # noqa: E731
        how = f"adaptive_avg_pool1d to {pool_cfg}"
    D = latents.shape[1]
    loss, grad_latents = tess_local_ce(latents, labels, tess_basis(C, D, fmin, fmax))
    out["lsg_loss"] = np.float64(loss)
    out["lsg_grad"] = back(grad_latents)
    c.header.append(f"LSG {tuple(a.shape)} {how} -> D={D}, C={C}, batch-mean CE")
    return out


KINDS: dict[str, Callable[[_Case], dict]] = {
    "linear": lambda c: _kind_dense(c, rec=False),
    "rec": lambda c: _kind_dense(c, rec=True),
    "readout": _kind_readout,
    "net": _kind_net,
    "conv": _kind_conv,
    "tess": _kind_tess,
}


# --------------------------------------------------------------- comparison and reporting

def compare(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference; NaN in ``want`` is skipped; shape mismatch or engine NaN give inf."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return math.inf
    got, want = np.atleast_1d(got), np.atleast_1d(want)
    keep = ~np.isnan(want)
    d = np.abs(got - want)
    d[got == want] = 0.0
    d = d[keep]
    if d.size == 0:
        return 0.0
    return math.inf if np.isnan(d).any() else float(d.max())


def run_case(json_path: Path, echo: Callable[[str], None] = print) -> bool:
    """Run one case, print its report, return True if every computable array is within tolerance."""
    json_path = Path(json_path)
    try:
        c = _Case(json_path)
    except DataError as e:
        echo(f"== {json_path.stem}")
        echo(f"   DataError: {e}")
        echo(f"   FAIL  {json_path.stem} (data error)")
        return False
    kind = c.cfg.get("kind")
    try:
        handler = KINDS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise Unsupported(f"kind {kind!r} (supported: {', '.join(KINDS)})")
        got = handler(c)
        recorded = c.arrays
    except Unsupported as e:
        echo(f"== {c.name} [{kind}]")
        echo(f"   UNSUPPORTED: {e}")
        echo(f"   FAIL  {c.name} (unsupported)")
        return False
    except EdgeSnnError as e:
        echo(f"== {c.name} [{kind}]")
        echo(f"   {type(e).__name__}: {e}")
        echo(f"   FAIL  {c.name} ({type(e).__name__})")
        return False
    except Exception as e:  # an engine bug on an unforeseen case: fail this case, run the others
        echo(f"== {c.name} [{kind}]")
        echo(f"   internal error (a bug, please report): {type(e).__name__}: {e}")
        echo(f"   FAIL  {c.name} (internal error)")
        return False
    sizes = " ".join(f"{k}={c.cfg[k]}" for k in ("T", "B", "N_in", "N_out", "N_hid", "C") if k in c.cfg)
    if kind == "tess":
        fac = "tess"
    elif c.cfg.get("factors") is not None:
        fac = f"factors={c.cfg['factors']}"
    else:
        fac = f"factors(effective)={c.cfg.get('factors_effective')}"
    echo(f"== {c.name} [{kind}] {sizes} {fac} " + " ".join(c.header))
    for note in c.notes:
        echo(f"   note: {note}")
    n_ok = n_all = 0
    for name, want in recorded.items():
        if name not in got or (name in c.inputs and name != "g_hidden_f32"):
            continue
        tol = tolerance(name, kind)
        gv = np.asarray(got[name])
        diff = compare(gv, want)
        ok = diff <= tol
        shape_msg = "" if gv.shape == np.shape(want) else f"  (shape {gv.shape} vs recorded {np.shape(want)})"
        echo(f"   {name:<18} max|diff| {diff:9.3g}  tol {tol:g}  {'PASS' if ok else 'FAIL'}{shape_msg}")
        n_all += 1
        n_ok += ok
    unchecked = [k for k in recorded if k not in got and k not in c.inputs]
    if unchecked:
        echo(f"   not checked (no engine value): {', '.join(unchecked)}")
    passed = n_all > 0 and n_ok == n_all
    if n_all == 0:
        echo("   no recorded output the engine computes")
    echo(f"   {'PASS' if passed else 'FAIL'}  {c.name}: {n_ok}/{n_all} arrays within tolerance")
    return passed


def run_golden(folder, echo: Callable[[str], None] = print) -> bool:
    """Run every ``NAME.json`` + ``NAME.npz`` case in ``folder`` (GLOSSARY.json skipped).

    Prints per case and per array the largest absolute difference and a final
    summary line; returns True only if every case passes. Raises
    :class:`DataError` for a missing folder or a folder without cases.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"golden folder not found: {folder}")
    cases = sorted(p for p in folder.glob("*.json") if p.name != "GLOSSARY.json")
    if not cases:
        raise DataError(f"no golden cases (NAME.json + NAME.npz) in {folder}")
    failed = [p.stem for p in cases if not run_case(p, echo)]
    n = len(cases)
    if failed:
        echo(f"golden: {n - len(failed)}/{n} cases passed; FAILED: {', '.join(failed)}")
    else:
        echo(f"golden: {n}/{n} cases passed")
    return not failed
