"""What the phases count besides their arithmetic: SRAM words per access, multiplies.

Every phase counts the words it reads and writes per bank (``Buffers.sram``) and the
multiplies it performs (``Buffers.ev``); the helpers live here, apart from the
arithmetic of :mod:`edgesnn.core.arith`, so that module stays pure integer maths
tested against :mod:`edgesnn.fixed`, and the word accounting (``epw`` elements per
word, or ``-epw`` words per element: ``Net.tens`` row 1) has one home.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.counters import MULTIPLIES


@njit(cache=True)
def vec_words(epw, count):
    """Words of a word-aligned vector of ``count`` elements (``epw`` elements per word)."""
    if epw > 0:
        return (count + epw - 1) // epw
    return count * (-epw)


@njit(cache=True)
def range_words(epw, start, count):
    """Words covering elements ``start .. start+count-1`` of a packed tensor."""
    if count <= 0:
        return 0
    if epw > 0:
        return (start + count - 1) // epw - start // epw + 1
    return count * (-epw)


@njit(cache=True, inline='always')
def word_shift(epw):
    """log2 of a power-of-two ``epw`` (elements per word), else -1 (divide instead)."""
    if epw <= 0 or epw & (epw - 1):
        return -1
    k = 0
    while (np.int64(1) << k) < epw:
        k += 1
    return k


@njit(cache=True)
def list_words(epw, sh, start, lst, row, off, cnt):
    """Distinct words holding elements ``start + lst[row, off+k]`` (ascending list).

    ``sh = word_shift(epw)``: a shift replaces the division for power-of-two words.
    """
    if epw < 0:
        return cnt * (-epw)
    words = 0
    last = -1
    for k in range(cnt):
        e = start + lst[row, off + k]
        w = e >> sh if sh >= 0 else e // epw
        if w != last:
            words += 1
            last = w
    return words


@njit(cache=True)
def word_table(epw, lst, cnt, out):
    """``out[r]`` = distinct words holding elements ``r + lst[k]`` (k < cnt), r < epw.

    A weight row starting at element ``j*n`` touches ``out[(j*n) % epw]``
    words for the (ascending) neuron list ``lst``: one table per list and
    step replaces a per-row count.
    """
    sh = word_shift(epw)                 # a 64-bit division costs ~40 cycles; a shift, one
    for r in range(epw):
        words = 0
        last = -1
        for k in range(cnt):
            e = r + lst[k]
            w = e >> sh if sh >= 0 else e // epw
            if w != last:
                words += 1
                last = w
        out[r] = words


@njit(cache=True)
def chunk_words(wt, rows, count, n, epw, cnt):
    """Words read by the listed ``rows[:count]`` visiting a list of ``cnt`` neurons:
    ``wt[(j*n) % epw]`` for row ``j`` (``word_table``), ``cnt*(-epw)`` without packing."""
    if epw <= 0:
        return count * cnt * (-epw)
    words = 0
    sh = word_shift(epw)
    if sh >= 0:
        mask = epw - 1
        for h in range(count):
            words += wt[(rows[h] * n) & mask]
    else:
        for h in range(count):
            words += wt[(rows[h] * n) % epw]
    return words


@njit(cache=True)
def vec_access(tens, sram, tid, count, reads, writes):
    """Count ``reads`` and ``writes`` of a whole vector of ``count`` elements of tensor ``tid``."""
    b = tens[0, tid]
    if b >= 0:
        w = vec_words(tens[1, tid], count)
        sram[0, b] += reads * w
        sram[1, b] += writes * w


@njit(cache=True)
def add_words(sram, tens, rw, tid, words):
    """``sram[rw, bank of tid] += words`` (rw 0 reads, 1 writes; registers are not counted)."""
    b = tens[0, tid]
    if b >= 0:
        sram[rw, b] += words


@njit(cache=True, inline='always')
def real_mul(code):
    """1 if a product with the constant ``code`` is a multiply: ``|code|`` neither 0 nor a
    power of two (``counters.is_multiply`` on integer codes), else 0."""
    a = abs(np.int64(code))
    return np.int64(a != 0 and (a & (a - 1)) != 0)


@njit(cache=True, inline='always')
def count_muls(ev, kind, count):
    """``count`` multiplies: into ``ev[MULTIPLIES]`` and, for ``kind >= 0``, ``ev[kind]``
    (the width they work at: ``MEMBRANE_``, ``TRACE_`` or ``SIGNAL_MULTIPLIES``)."""
    ev[MULTIPLIES] += count
    if kind >= 0:
        ev[kind] += count
