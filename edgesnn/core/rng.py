"""The core's rounding random source: a bank of xorshift lanes, read through a word buffer.

Stochastic rounding needs one 32-bit random word per rounding. The device
has ``LANES`` xorshift32 generators (Marsaglia 2003, shifts 13/17/5: a
linear-feedback shift register over GF(2) of period 2**32 - 1, three XOR
stages, one word per cycle); one *round* of the bank gives one word per
lane, and the words are used in lane order: word ``k`` of the core is lane
``k % LANES``'s ``(k // LANES)``-th word. A lane's word is its new state.

Why a bank of xorshift lanes and not one leap-forward Galois LFSR: the
simulator generates a round of independent lanes in a few SIMD instructions
(0.35 ns per word on the development machine, against 2.4 ns for a table
leap of one serial LFSR), and the hardware needs three XOR stages per lane
instead of a 32-step leap network. Learning chips do the same: ReckOn's e-prop
update logic rounds 16 weights a cycle, each with its own 32-bit word of a
512-bit unfolded LFSR (ChFrenkel/ReckOn, src/srnn.v; hw_models/audio-edge.toml).
The DFA feedback signs keep the Galois
LFSR of ``edgesnn.fixed`` (they must equal ``params.dfa_matrix``).

State (``State.rng``, int64, part of checkpoints), laid out as
``[lanes (LANES) | position | fill | buffered words]``: the words
``position .. fill-1`` of the buffer come next, then the lanes' next rounds.
The buffered words are uint32, two to an int64 slot (``words(rng)`` is that
view): half the bytes of one word a slot, so the buffer stays in the L1 cache
and the update loops read 8 words to an AVX2 register without repacking.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgesnn.fixed import lfsr_seed

#: xorshift lanes of the rounding bank (32: the SIMD loop of a round vectorises fully)
LANES = 32
#: index of the read position and of the fill level in the state array
POS = LANES
FILL = LANES + 1
#: offset of the first buffered word
WORDS = LANES + 2
#: seeds of the lanes: lfsr_seed(SEED_BASE + (stream * LANES) + lane)
SEED_BASE = 1 << 48


def new_state(stream: int, min_words: int) -> np.ndarray:
    """A fresh state array: lanes seeded from ``stream``, an empty buffer of at least
    ``min_words`` words (rounded up to whole rounds; at least 4096)."""
    size = max(4096, -(-int(min_words) // LANES) * LANES + LANES)
    rng = np.zeros(WORDS + size // 2, dtype=np.int64)        # LANES is even: whole slots
    for r in range(LANES):
        rng[r] = lfsr_seed(SEED_BASE + stream * LANES + r)
    return rng


def min_capacity(request: int) -> int:
    """Words a buffer needs so that a refill leaves ``request`` consecutive words (a refill
    appends whole rounds: it leaves at least ``capacity - LANES + 1``)."""
    return int(request) + LANES - 1


def check_state(rng: np.ndarray, request: int) -> str | None:
    """What is wrong with a state array for kernels that ask for up to ``request``
    consecutive words at once, or None.

    The kernels trust the state (numba checks no bounds): every lane must be a nonzero
    32-bit state (a zero lane gives zero words forever, and stochastic rounding with zero
    words is floor), the fill level within the buffer, the read position within the fill,
    and the buffer large enough that a refill leaves ``request`` words (``visit_rows32``
    would otherwise loop forever on a row it cannot fit).
    """
    if len(rng) < WORDS:
        return f"{len(rng)} slots, fewer than the {WORDS} of the lanes, position and fill"
    for r in range(LANES):
        if not 0 < int(rng[r]) < 1 << 32:
            return (f"lane {r} is {int(rng[r])}: a lane is a nonzero 32-bit state "
                    f"(1..{(1 << 32) - 1}; a zero lane gives only zero words)")
    cap = capacity(rng)
    if cap < min_capacity(request):
        return (f"the word buffer holds {cap} words; the kernels need {request} after a "
                f"refill, i.e. at least {min_capacity(request)}")
    fill, pos = int(rng[FILL]), int(rng[POS])
    if not 0 <= fill <= cap:
        return f"fill level {fill} outside the buffer's 0..{cap} words"
    if not 0 <= pos <= fill:
        return f"read position {pos} outside 0..{fill} (the fill level)"
    return None


def xorshift32(x: int) -> int:
    """One xorshift32 step (13, 17, 5) of a nonzero 32-bit state: the next state = the word."""
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


@njit(cache=True, inline='always')
def words(rng):
    """The word buffer: a uint32 view of the state's tail (``2 * (len(rng) - WORDS)`` words)."""
    return rng[WORDS:].view(np.uint32)


@njit(cache=True)
def refill(rng, p):
    """Move the unread words ``p .. fill-1`` to the front and append whole rounds.

    Returns the new read position (0); the buffer then holds at least
    ``capacity(rng) - LANES + 1`` words.
    """
    w = words(rng)
    fill = rng[FILL]
    left = fill - p
    for i in range(left):
        w[i] = w[p + i]
    rounds = (len(w) - left) // LANES
    out = w[left:left + rounds * LANES]
    s = rng[:LANES].astype(np.uint32)        # a separate array: the round loop is SIMD
    for k in range(rounds):
        base = k * LANES
        for r in range(LANES):
            x = s[r]
            x ^= np.uint32(x << np.uint32(13))
            x ^= np.uint32(x >> np.uint32(17))
            x ^= np.uint32(x << np.uint32(5))
            s[r] = x
            out[base + r] = x
    rng[:LANES] = s
    rng[FILL] = left + rounds * LANES
    rng[POS] = 0
    return 0


@njit(cache=True, inline='always')
def ensure(rng, p, need):
    """Read position from which ``need`` consecutive words are buffered (refills if not)."""
    if p + need > rng[FILL]:
        return refill(rng, p)
    return p


@njit(cache=True, inline='always')
def take(rng, p):
    """One word: ``(word, next position)``."""
    if p >= rng[FILL]:
        p = refill(rng, p)
    return np.int64(words(rng)[p]), p + 1


def capacity(rng: np.ndarray) -> int:
    """Words the buffer of a state array holds."""
    return 2 * (len(rng) - WORDS)


def reference_words(rng: np.ndarray, count: int) -> list[int]:
    """The next ``count`` words of a state array, computed plainly (for tests):
    the buffered words first, then rounds of ``xorshift32`` over the lanes."""
    buffered = rng[WORDS:].view(np.uint32)[int(rng[POS]):int(rng[FILL])]
    out = [int(w) for w in buffered][:count]
    lanes = [int(s) for s in rng[:LANES]]
    while len(out) < count:
        for r in range(LANES):
            lanes[r] = xorshift32(lanes[r])
            out.append(lanes[r])
    return out[:count]
