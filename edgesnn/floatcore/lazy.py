"""Deferred per-step updates: a weight column is brought up to date when it is read.

With ``lambda_pre = 1`` an input's presynaptic trace ``q[j]`` only changes at the steps
where input ``j`` is active. Between two such steps ``s0 < t`` the per-step updates of
column ``j`` (``W[:, j] -= lr * (a_k * x_k[j] + c_k * q_k[j])`` at each window step; the
kernel's matrices are input-major, so a column is one contiguous row ``Wt[j]``
``k``) add up to::

    W[:, j] -= lr * (a_{s0} * x_{s0}[j] + q[j] * (Pc[t] - Pc[s0]))

with ``Pc`` the prefix sums of ``c`` over the window steps (``Buffers.pc``, row ``w`` = the
sum over the window steps before window step ``w``) and ``a_{s0}`` the ``a`` of step
``s0`` (``Buffers.aw``; zero outside the window). So a column is synchronised when the
forward pass reads it (its input is active; the numpy engine reads every column there)
and at the end of the sample, and the per-step work follows the input events instead
of every synapse (``sync_accumulate`` updates the rows the forward pass reads and adds
them to the synaptic current in one pass). The result equals the numpy engine's
per-step updates up to the order of float sums (one subtraction of a sum instead of one
per step).

Used for a matrix that nothing reads densely: every recurrent matrix, and every
feed-forward one except under BP the matrices of layers above the first (their
``(g*psi) @ W`` reads all of ``W`` each window step). ``Net.lazy`` marks them; the engine
sets it only for per-step updates with ``lambda_pre = 1`` and learning hidden layers.
"""

from __future__ import annotations

from numba import njit

from .layout import LZ_Q, LZ_X


@njit(cache=True)
def sync_column(Wt, j, t, t0, window, pc, aw, noff, lz, lz_t, col, lr):
    """Apply to input ``j`` (row ``j`` of the input-major ``Wt (k, n)``) the updates of the steps from its last
    synchronised step ``lz_t[col]`` to ``t - 1`` (neurons from column ``noff`` of ``pc`` and
    ``aw``; the input's bookkeeping at column ``col`` of ``lz``, ``lz_t``)."""
    s0 = lz_t[col]
    qv = lz[LZ_Q, col]
    xv = lz[LZ_X, col]
    ws = min(max(s0 - t0, 0), window)
    we = min(max(t - t0, 0), window)
    has_a = xv != 0.0 and t0 <= s0 < t
    has_c = qv != 0.0 and we > ws
    if not has_a and not has_c:
        return
    wa = s0 - t0
    row = Wt[j]
    for m in range(Wt.shape[1]):
        d = 0.0
        if has_c:
            d = qv * (pc[we, noff + m] - pc[ws, noff + m])
        if has_a:
            d = aw[wa, noff + m] * xv + d
        row[m] = row[m] - lr * d


@njit(cache=True)
def sync_accumulate(Wt, xin, act, cnt, cur, t, t0, window, pc, aw, noff, lz, lz_t, coff, lr):
    """``sync_column`` for the ``cnt`` inputs listed in ``act`` and, in the same pass over
    each row, the synaptic current ``cur[m] = sum_k xin[act[k]] * Wt[act[k], m]`` of the
    updated rows (``forward.accumulate_rows``, the same sums in the same order)."""
    cur[:] = 0.0
    we = min(max(t - t0, 0), window)
    for k in range(cnt):
        j = act[k]
        col = coff + j
        xj = xin[j]
        row = Wt[j]
        s0 = lz_t[col]
        qv = lz[LZ_Q, col]
        xv = lz[LZ_X, col]
        ws = min(max(s0 - t0, 0), window)
        has_a = xv != 0.0 and t0 <= s0 < t
        has_c = qv != 0.0 and we > ws
        if has_a and has_c:
            wa = s0 - t0
            for m in range(len(cur)):
                r = row[m] - lr * (aw[wa, noff + m] * xv
                                   + qv * (pc[we, noff + m] - pc[ws, noff + m]))
                row[m] = r
                cur[m] += xj * r
        elif has_c:
            for m in range(len(cur)):
                r = row[m] - lr * (qv * (pc[we, noff + m] - pc[ws, noff + m]))
                row[m] = r
                cur[m] += xj * r
        elif has_a:
            wa = s0 - t0
            for m in range(len(cur)):
                r = row[m] - lr * (aw[wa, noff + m] * xv)
                row[m] = r
                cur[m] += xj * r
        else:
            for m in range(len(cur)):
                cur[m] += xj * row[m]


@njit(cache=True)
def mark_active(act, cnt, t, q, xin, lz, lz_t, coff):
    """After the traces of step ``t``: the listed inputs are synchronised up to ``t``, their
    trace and input of ``t`` kept for the next synchronisation."""
    for k in range(cnt):
        j = act[k]
        lz_t[coff + j] = t
        lz[LZ_Q, coff + j] = q[j]
        lz[LZ_X, coff + j] = xin[j]


@njit(cache=True)
def sync_all(Wt, t, t0, window, pc, aw, noff, lz, lz_t, coff, lr):
    """Every input of ``Wt`` brought up to step ``t`` (the end of the sample)."""
    for j in range(Wt.shape[0]):
        sync_column(Wt, j, t, t0, window, pc, aw, noff, lz, lz_t, coff + j, lr)


@njit(cache=True)
def record_step(pc, aw, w, a, c, noff):
    """Window step ``w``'s factors of one layer: ``aw[w] = a``, ``pc[w+1] = pc[w] + c``."""
    for m in range(len(a)):
        aw[w, noff + m] = a[m]
        pc[w + 1, noff + m] = pc[w, noff + m] + c[m]
