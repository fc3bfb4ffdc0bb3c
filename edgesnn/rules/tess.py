"""TESS float mathematics: the square-wave basis and the adaptive average pooling.

TESS (Apolinario, Roy et al. 2025, arXiv 2502.01837; code ``mapolinario94/TESS``,
``models/layers/local_learning_signal_generation.py``) gives every spiking layer
a local learning signal: its output activity is average-pooled to a latent of
size ``D``, projected onto a fixed basis of ``C`` (classes) square waves, and
the gradient of a softmax cross-entropy on that projection is the layer's
signal (:func:`edgesnn.signals.tess_signal`). This module holds what the basis
and the pooling are, as a function of the spec alone, so the float engine and
(later) the fixed engine's plan derive the same basis bits:

* ``f = torch.linspace(fmin, fmax, C)`` in float32 (:func:`tess_frequencies`,
  rounding reproduced exactly);
* ``sin[c, k] = sin(float32(f[c] * k))`` for ``k = 0..D-1`` (:func:`tess_sines`);
* ``B = sign(sin) / D`` (:func:`tess_basis_signs` gives the int8 signs; ``k = 0``
  gives ``sin = 0`` and sign 0, as ``torch.sign``).

A chip gets the signs one of two ways (the device's ``[tess]`` table,
``hw.TessBasis``); :func:`basis_signs_for` gives the bits of either, so that the
plan, the float engine and the fixed engine use the same ones:

* ``stored``: the signs above, 2 bits per entry in SRAM;
* ``generated``: a phase accumulator per class (:func:`phase_steps`,
  :func:`generated_signs`): the phase in turns with ``P`` fractional bits,
  ``step_c = round(f_c / (2 pi) * 2**P) mod 2**P``, ``phase_k = k * step_c mod 2**P``,
  sign +1 in the first half-turn, -1 in the second, 0 at exactly 0 or one half.
  It follows the exact ``f_c * k``, so it differs from the authors' signs where the
  phase is within ``k * 2**-(P+1)`` turns of a zero crossing or where the authors'
  float32 product ``f_c * k`` is itself rounded across one (:func:`basis_summary`
  counts them).

Pooling is PyTorch's adaptive average pooling: ``n`` values in ``D`` groups, group
``i`` covering ``[floor(i*n/D), ceil((i+1)*n/D))``; when ``D`` does not divide
``n`` neighbouring groups overlap by one element. :func:`unpool` is its adjoint.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

import numpy as np

#: the authors' frequency range (``generate_frequency_matrix(..., max_freq=512)``, min 50)
FMIN, FMAX = 50.0, 512.0


# --------------------------------------------------------------- float32 rounding

def round_f32(x: Fraction) -> np.float32:
    """``x`` (an exact rational) rounded once to the nearest float32, ties to even.

    ``float(x)`` is correctly rounded to float64; rounding that to float32 could
    double-round, so the nearest of the float32 candidate and its two neighbours
    is chosen by exact comparison.
    """
    c = np.float32(float(x))
    cands = (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf)))

    def key(v: np.float32):
        return (abs(Fraction(float(v)) - x), int(np.array(v).view(np.uint32)) & 1)
    return min(cands, key=key)


def _f32_fma(a: np.float32, b: float, c: np.float32) -> np.float32:
    """``a*b + c`` with one rounding to float32 (a fused multiply-add)."""
    return round_f32(Fraction(float(a)) * Fraction(b) + Fraction(float(c)))


@lru_cache(maxsize=64)
def _frequencies(C: int, fmin: float, fmax: float) -> tuple[float, ...]:
    start, end = np.float32(fmin), np.float32(fmax)
    if C == 1:
        return (float(start),)
    # torch: step = (end - start) / (steps - 1) in float32, each operation rounded once
    diff = round_f32(Fraction(float(end)) - Fraction(float(start)))
    step = round_f32(Fraction(float(diff)) / (C - 1))
    out = []
    for i in range(C):
        if i < C // 2:
            out.append(_f32_fma(step, i, start))              # start + step*i
        else:
            out.append(_f32_fma(step, -(C - 1 - i), end))     # end - step*(C-1-i)
    return tuple(float(v) for v in out)


def tess_frequencies(C: int, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``torch.linspace(fmin, fmax, C)`` in float32, bit for bit: ``(C,)`` float32.

    PyTorch rounds ``fmin``, ``fmax`` to float32, takes ``step = float32((fmax -
    fmin) / (C - 1))``, and gives element ``i < C // 2`` as ``fmin + step*i`` and
    the others as ``fmax - step*(C-1-i)``, each a fused multiply-add (one
    rounding). ``numpy.linspace`` does not reproduce that for every ``C``. The
    products and sums here are exact rationals rounded once (Python 3.11 has no
    ``math.fma``; float64 arithmetic would double-round).
    """
    if C < 1:
        raise ValueError(f"C must be >= 1, got {C}")
    return np.array(_frequencies(int(C), float(fmin), float(fmax)), dtype=np.float32)


def tess_sines(C: int, D: int, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``sin(float32(f[c] * k))`` for ``k = 0..D-1``: ``(C, D)`` float32.

    The argument is the float32 product, as the authors' float32 tensors give it
    (exact here: the float64 product of a float32 and an integer below 2**29 is
    exact, then rounded once). The sine is float64 ``numpy.sin`` of that float32
    argument, rounded to float32: correctly rounded in practice, so it may differ
    from torch's float32 ``sin`` in the last bit (the golden tolerance is 1e-6).
    Only its sign enters the basis, and that cannot differ: a non-zero float32
    argument is never within a float32 ``sin``'s error of a multiple of pi.
    """
    f = tess_frequencies(C, fmin, fmax).astype(np.float64)
    k = np.arange(D, dtype=np.float64)
    arg = (f[:, None] * k[None, :]).astype(np.float32)
    return np.sin(arg.astype(np.float64)).astype(np.float32)


def tess_basis_signs(C: int, D: int, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``sign(sin(float32(f[c] * k)))``: ``(C, D)`` int8 in {-1, 0, +1}.

    Column ``k = 0`` is 0 (``sin(0) = 0``, ``torch.sign(0) = 0``): the first latent
    element never reaches the projection. The basis is ``signs / D``; on a chip
    the signs come from a phase counter (no storage) and the ``1/D`` is a right
    shift when ``D`` is a power of two, applied once per projected value.
    """
    return np.sign(tess_sines(C, D, fmin, fmax)).astype(np.int8)


def tess_basis(C: int, D: int, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """The float basis ``B = sign(sin) / D``: ``(C, D)`` float64."""
    return tess_basis_signs(C, D, fmin, fmax).astype(np.float64) / D


# --------------------------------------------------------------- the chip's basis bits

def phase_steps(C: int, phase_bits: int, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """``(C,)`` int64 phase increments of the generated basis, ``phase_bits`` fractional
    bits of a turn: ``round(f_c / (2 pi) * 2**phase_bits) mod 2**phase_bits`` with ``f_c``
    the float32 frequencies (:func:`tess_frequencies`), in float64, ties to even."""
    P = int(phase_bits)
    f = tess_frequencies(C, fmin, fmax).astype(np.float64)
    return np.array([int(round(v / (2.0 * np.pi) * 2.0 ** P)) % (1 << P) for v in f],
                    dtype=np.int64)


def generated_signs(C: int, D: int, phase_bits: int, fmin: float = FMIN,
                    fmax: float = FMAX) -> np.ndarray:
    """``(C, D)`` int8 signs of the phase accumulator: per class, ``phase = 0``, then for
    ``k = 0..D-1`` the sign of ``phase`` (+1 below half a turn, -1 above, 0 at 0 and at
    exactly half) and ``phase = (phase + step_c) mod 2**phase_bits``."""
    P = int(phase_bits)
    mask, half = (1 << P) - 1, 1 << (P - 1)
    out = np.zeros((C, D), dtype=np.int8)
    for c, step in enumerate(phase_steps(C, P, fmin, fmax)):
        ph = 0
        for k in range(D):
            out[c, k] = 0 if ph in (0, half) else (1 if ph < half else -1)
            ph = (ph + int(step)) & mask
    return out


def basis_signs_for(spec, device) -> list[np.ndarray] | None:
    """The signs each spiking layer's basis uses on ``device`` (``(C, D)`` int8 per layer),
    or None unless ``spec`` learns with TESS: the authors' (:func:`tess_basis_signs`) for
    a ``stored`` basis, the phase accumulator's (:func:`generated_signs`) for a
    ``generated`` one. Every engine of a run takes these bits."""
    ln = spec.learning
    if ln.signal != "tess":
        return None
    tb = device.tess
    out = []
    for layer in spec.hidden:
        D = layer.tess_groups or layer.size
        if tb.basis == "stored":
            out.append(tess_basis_signs(spec.classes, D, ln.tess_fmin, ln.tess_fmax))
        else:
            out.append(generated_signs(spec.classes, D, tb.phase_bits, ln.tess_fmin,
                                       ln.tess_fmax))
    return out


def basis_summary(spec, device) -> dict | None:
    """How the chip gets the basis and how far it is from the authors' signs, for reports:
    ``{"basis", "phase_bits" (generated), "signs", "differ", "layers": [{"layer",
    "classes", "groups", "signs", "differ"}]}``; None unless ``spec`` learns with TESS."""
    signs = basis_signs_for(spec, device)
    if signs is None:
        return None
    ln = spec.learning
    layers = []
    for i, s in enumerate(signs):
        authors = tess_basis_signs(s.shape[0], s.shape[1], ln.tess_fmin, ln.tess_fmax)
        layers.append({"layer": i, "classes": int(s.shape[0]), "groups": int(s.shape[1]),
                       "signs": int(s.size), "differ": int(np.count_nonzero(s != authors))})
    tb = device.tess
    out = {"basis": tb.basis}
    if tb.basis == "generated":
        out["phase_bits"] = tb.phase_bits
    out.update(signs=sum(x["signs"] for x in layers), differ=sum(x["differ"] for x in layers),
               layers=layers)
    return out


def basis_sentence(b: dict, run: bool = False) -> str:
    """One sentence on a ``basis_summary`` for the Markdown reports (``run``: a simulate
    report, whose engines all used these signs)."""
    if b["basis"] == "stored":
        return (f"TESS basis: stored, the authors' float32 sign(sin) signs (2 bits each, "
                f"{b['signs']:,} signs in `L{{i}}.basis`).")
    differ = (f"{b['differ']:,} of {b['signs']:,} signs differ from the authors' float32 "
              "sign(sin)" if b["differ"] else
              f"all {b['signs']:,} signs equal the authors' float32 sign(sin)")
    used = ", and every engine of this run used the generated signs" if run else ""
    return (f"TESS basis: generated by a {b['phase_bits']}-bit phase accumulator per class "
            f"(nothing stored); {differ}{used}.")


# --------------------------------------------------------------- adaptive average pooling

def pool_bounds(n: int, D: int) -> np.ndarray:
    """``(D, 2)`` int64 ``[start, end)`` of each group of ``adaptive_avg_pool1d(n -> D)``.

    ``start = floor(i*n/D)``, ``end = ceil((i+1)*n/D)``; e.g. ``n = 10, D = 4`` gives
    ``[0,3), [2,5), [5,8), [7,10)``. ``D = n`` is the identity (groups of one).
    """
    if not 1 <= D <= n:
        raise ValueError(f"pooling {n} values into {D} groups needs 1 <= D <= n")
    i = np.arange(D, dtype=np.int64)
    return np.stack([(i * n) // D, -((-(i + 1) * n) // D)], axis=1)


def group_sizes(bounds: np.ndarray) -> np.ndarray:
    """``(D,)`` int64 number of elements in each group."""
    return bounds[:, 1] - bounds[:, 0]


def pool(s: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Adaptive average pooling of the last axis: ``s (..., n)`` -> ``(..., D)``."""
    return np.stack([s[..., a:b].mean(axis=-1) for a, b in bounds], axis=-1)


def unpool(grad: np.ndarray, bounds: np.ndarray, n: int) -> np.ndarray:
    """Adjoint of :func:`pool`: ``grad (..., D)`` -> ``(..., n)``.

    Each element receives, from every group containing it, that group's gradient
    divided by the group's size (so overlapping elements receive two shares).
    """
    out = np.zeros(grad.shape[:-1] + (n,))
    for k, (a, b) in enumerate(bounds):
        out[..., a:b] += (grad[..., k] / (b - a))[..., None]
    return out


def pool2d(a: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``adaptive_avg_pool2d``: ``a (..., H, W)`` -> ``(..., rows, cols)``, the same
    floor/ceil boundaries on each axis."""
    rows, cols = out_hw
    bh, bw = pool_bounds(a.shape[-2], rows), pool_bounds(a.shape[-1], cols)
    out = np.empty(a.shape[:-2] + (rows, cols))
    for r, (h0, h1) in enumerate(bh):
        for c, (w0, w1) in enumerate(bw):
            out[..., r, c] = a[..., h0:h1, w0:w1].mean(axis=(-2, -1))
    return out


def unpool2d(grad: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`pool2d`: ``grad (..., rows, cols)`` -> ``(..., H, W)``."""
    H, W = hw
    rows, cols = grad.shape[-2:]
    bh, bw = pool_bounds(H, rows), pool_bounds(W, cols)
    out = np.zeros(grad.shape[:-2] + (H, W))
    for r, (h0, h1) in enumerate(bh):
        for c, (w0, w1) in enumerate(bw):
            share = grad[..., r, c] / ((h1 - h0) * (w1 - w0))
            out[..., h0:h1, w0:w1] += share[..., None, None]
    return out


# --------------------------------------------------------------- per-layer setup and work

def pool_matrix(bounds: np.ndarray, n: int) -> np.ndarray:
    """``(D, n)`` float64 matrix of :func:`pool`: ``pool(s) == s @ P.T`` and
    ``unpool(g) == g @ P`` (up to summation order); ``P[d, i] = 1/size_d`` in group d."""
    P = np.zeros((len(bounds), n))
    for d, (a, b) in enumerate(bounds):
        P[d, a:b] = 1.0 / (b - a)
    return P


class TessLayer(NamedTuple):
    """One spiking layer's fixed TESS data: ``signs (C, D)`` int8, ``bounds (D, 2)``
    int64 pooling groups, ``basis = signs / D`` float64 ``(C, D)``, ``P (D, n)`` the
    pooling as a matrix (:func:`pool_matrix`), ``work`` its ``signal_work``."""

    signs: np.ndarray
    bounds: np.ndarray
    basis: np.ndarray
    P: np.ndarray
    work: tuple[int, int]


def spec_layers(spec, signs: list[np.ndarray] | None = None) -> list[TessLayer]:
    """The TESS data of every spiking layer of a ``signal = "tess"`` spec, from the spec
    (classes, each layer's ``tess_groups``, ``tess_fmin``/``tess_fmax``) and ``signs``:
    each layer's ``(C, D)`` basis signs (default the authors', :func:`tess_basis_signs`;
    a run passes its device's, :func:`basis_signs_for`)."""
    ln = spec.learning
    out = []
    for i, layer in enumerate(spec.hidden):
        D = layer.tess_groups
        if signs is None:
            signs_i = tess_basis_signs(spec.classes, D, ln.tess_fmin, ln.tess_fmax)
        else:
            signs_i = np.asarray(signs[i], dtype=np.int8)
            if signs_i.shape != (spec.classes, D):
                raise ValueError(f"layer {i}: basis signs of shape {signs_i.shape}, expected "
                                 f"{(spec.classes, D)}")
            if not np.isin(signs_i, (-1, 0, 1)).all():
                raise ValueError(f"layer {i}: basis signs must be -1, 0 or +1")
        bounds = pool_bounds(layer.size, D)
        out.append(TessLayer(signs_i, bounds, signs_i.astype(np.float64) / D,
                             pool_matrix(bounds, layer.size), signal_work(layer.size, D,
                                                                          spec.classes)))
    return out


def signal_work(n: int, D: int, C: int) -> tuple[int, int]:
    """``(MACs, multiplies)`` of one layer's TESS signal at one window step.

    MACs (``counters.local_signal_macs``): pooling accumulates one per (neuron,
    group containing it) pair, ``z = latent @ B.T`` and ``e @ B`` are ``C*D`` each
    (a sign: add or subtract), the softmax one exp-and-accumulate per class, the
    unpooling one accumulate per (neuron, group) pair again. Multiplies
    (``counters.is_multiply``): the ``1/size`` of each group when pooling and when
    unpooling, and the basis ``1/D`` once per projected value (``C`` for ``z``,
    ``D`` for the latent gradient): none when the sizes and ``D`` are powers of two
    (shifts). This is the dense count of the float engine and of ``analytic.tess_ops``; the
    fixed engine counts the work it does (groups without spikes, zero latents, errors and
    shares skipped; ``1/D`` and ``1/size`` folded into one constant per group), never more
    (docs/fixed_point.md, "TESS").
    """
    from edgesnn.counters import is_multiply

    sizes = group_sizes(pool_bounds(n, D))
    members = int(sizes.sum())
    macs = 2 * members + 2 * C * D + C
    muls = 2 * sum(int(is_multiply(1.0 / m)) for m in sizes) + (C + D) * int(is_multiply(1.0 / D))
    return macs, muls
