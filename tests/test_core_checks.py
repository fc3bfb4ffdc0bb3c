"""What the fixed engine checks at build and at load: weight storage, datapath bounds, state.

Issue 13, items 12-14: weight codes keep their values whatever the format's sign; the
int64 datapath check covers every intermediate the kernels form (the unclamped factor
times alpha, left-shifted updates) and the kernels' fast-path gates come from the same
table; a loaded state is refused (one CheckpointError line naming the array and the range)
when its codes leave their formats or its random state could not be what the kernels
rely on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesnn.core import FixedEngine
from edgesnn.core import layout as LY
from edgesnn.core import rng as R
from edgesnn.errors import CheckpointError, DeviceError
from edgesnn.fixed import overflow
from edgesnn.plan import make_plan
from edgesnn.reference import init_params

from test_core_reference import _samples, make_device, make_spec

#: the test device's formats, for the lines a test replaces
Q = {
    "weight": 'signed = true, int_bits = 1, frac_bits = 6, rounding = "stochastic"',
    "current": "signed = true, int_bits = 3, frac_bits = 12",
}


def _engine(spec_kw=None, seed=4, **dev_kw):
    spec = make_spec(**{"layers": [("recurrent", 5, "soft")], **(spec_kw or {})})
    return FixedEngine(make_plan(spec, make_device(**dev_kw)), init_params(spec, seed), seed)


# --------------------------------------------------------------------------- 12: weight storage

UNSIGNED_Q26 = {"weight": "signed = false, int_bits = 2, frac_bits = 6"}


def test_unsigned_8_bit_weights_keep_their_codes():
    """Unsigned Q2.6: 3.0 is code 192, which an int8 store turns into -64 (-1.0)."""
    spec = make_spec(layers=[("recurrent", 5, "soft")])
    params = init_params(spec, 4)
    params.W[0][:] = 3.0
    params.W_out[0, 0] = 255 / 64
    eng = FixedEngine(make_plan(spec, make_device(formats=UNSIGNED_Q26)), params, 4)
    assert np.all(eng.state()["L0.W"] == 192)
    assert np.all(eng.float_params().W[0] == 3.0)
    assert eng.float_params().W_out[0, 0] == 255 / 64
    st = {k: v.astype(np.int64) for k, v in eng.state().items()}
    st["L0.W_rec"][:] = 200
    eng.load_state(st)
    assert np.all(eng.float_params().W_rec[0] == 200 / 64)


UNSIGNED_LEARN_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
import numpy as np
from test_core_checks import UNSIGNED_Q26, _engine
from test_core_reference import _samples
eng = _engine(formats=UNSIGNED_Q26)
st = eng.state()
st["L0.W"][:, :2] = 250                  # codes an int8 store cannot hold
eng.load_state(st)
from test_core_engine import _digest
print(_digest(eng, _samples(eng.spec, 3, seed=2)))
W = eng.state()["L0.W"]
print(W.min(), W.max(), int(np.array_equal(eng.float_params().W[0], W.T / 64)))
"""


def test_unsigned_weights_learn_and_stay_in_range():
    """int64 weight storage learns and stays in [0, 255].

    Run under NUMBA_DISABLE_JIT in a subprocess: the kernels are the same Python
    functions (test_jit_and_pure_python_give_the_same_bits), and a second numba
    specialisation for int64 weights would cost the suite about two minutes of compiling.
    """
    tests = str(Path(__file__).parent)
    script = UNSIGNED_LEARN_SCRIPT.format(paths=[tests, str(Path(__file__).parents[1])])
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    lo, hi, same = map(int, out.stdout.split()[-3:])
    assert lo >= 0 and hi <= 255 and hi > 127
    assert same == 1


@pytest.mark.parametrize("fields,dtype", [
    ("signed = true, int_bits = 1, frac_bits = 6", np.int8),
    ("signed = false, int_bits = 1, frac_bits = 6", np.int8),
    ("signed = false, int_bits = 2, frac_bits = 6", np.int64),
    ("signed = true, int_bits = 2, frac_bits = 6", np.int64),
])
def test_weight_storage_holds_every_code_of_the_format(fields, dtype):
    eng = _engine(formats={"weight": fields})
    assert eng.st.W.dtype == dtype


# --------------------------------------------------------------------------- 14: loaded state

def _refused(eng, good, name, value, *match):
    bad = {k: v.copy() for k, v in good.items()}
    bad[name] = value(bad[name]) if callable(value) else value
    with pytest.raises(CheckpointError) as err:
        eng.load_state(bad)
    msg = str(err.value)
    assert "\n" not in msg and f"checkpoint array {name}" in msg, msg
    for m in match:
        assert m in msg, msg
    # nothing was written: the engine still holds the good state
    for k, v in eng.state().items():
        assert np.array_equal(v, good[k]), k


def _set(idx, v):
    def f(a):
        a = a.astype(np.int64)
        a[idx] = v
        return a
    return f


def test_load_state_refuses_codes_outside_their_formats():
    eng = _engine()
    good = eng.state()
    _refused(eng, good, "L0.W", _set((0, 0), 128), "-128..127", "weight")
    _refused(eng, good, "L0.W_rec", _set((1, 2), -129), "-128..127")
    _refused(eng, good, "out.W", _set((0, 0), 1 << 40), "-128..127")
    _refused(eng, good, "L0.b", _set(0, 1 << 15), "-32768..32767", "bias")
    # an unsigned dtype whose values do not fit int64 is refused, not wrapped
    _refused(eng, good, "out.b", np.full(good["out.b"].shape, 2 ** 64 - 1, np.uint64),
             "-32768..32767")


def test_load_state_refuses_unsigned_weight_codes_outside_0_255():
    eng = _engine(formats=UNSIGNED_Q26)
    good = eng.state()
    _refused(eng, good, "L0.W", _set((0, 0), 256), "0..255")
    _refused(eng, good, "L0.W", _set((0, 0), -1), "0..255")


def test_load_state_refuses_accumulators_and_feedback_outside_their_formats():
    eng = _engine(dict(update="per-sample", residual="carry", signal="dfa", feedback="stored"))
    good = eng.state()
    _refused(eng, good, "L0.dW", _set((0, 0), 1 << 15), "-32768..32767", "update")
    _refused(eng, good, "out.db", _set(0, -(1 << 15) - 1), "-32768..32767")
    _refused(eng, good, "L0.B", _set((0, 0), 200), "-128..127")


def test_load_state_refuses_a_zero_or_wide_lane():
    """A zero xorshift lane gives zero words forever: stochastic rounding would floor."""
    eng = _engine()
    good = eng.state()
    _refused(eng, good, "rng", _set(3, 0), "lane 3", "1..4294967295")
    _refused(eng, good, "rng", _set(0, 1 << 32), "lane 0")
    _refused(eng, good, "rng", _set(R.LANES - 1, -5), f"lane {R.LANES - 1}")


def test_load_state_refuses_a_read_position_or_fill_outside_the_buffer():
    eng = _engine()
    good = eng.state()
    cap = R.capacity(good["rng"])
    _refused(eng, good, "rng", _set(R.FILL, cap + 1), "fill", f"0..{cap}")
    _refused(eng, good, "rng", _set(R.FILL, -1), "fill")
    fill = int(good["rng"][R.FILL])
    _refused(eng, good, "rng", _set(R.POS, fill + 1), "read position", f"0..{fill}")
    _refused(eng, good, "rng", _set(R.POS, -1), "read position")


def test_load_state_refuses_a_zero_feedback_seed():
    eng = _engine(dict(signal="dfa"))
    good = eng.state()
    _refused(eng, good, "L0.B_seed", np.zeros(1, np.int64), "1..4294967295")


def test_a_loaded_state_at_the_edges_of_its_ranges_is_accepted():
    eng = _engine()
    st = eng.state()
    st["L0.W"][0, 0], st["L0.W"][0, 1] = -128, 127
    st["rng"][0] = 2 ** 32 - 1
    st["rng"][R.FILL] = R.capacity(st["rng"])
    st["rng"][R.POS] = st["rng"][R.FILL]
    eng.load_state(st)
    for k, v in eng.state().items():
        assert np.array_equal(v, st[k]), k
    eng.run_sample(*_samples(eng.spec, 1, seed=0)[0][:2])       # and it runs


def test_word_buffer_holds_the_largest_request_after_a_refill():
    """The invariant visit_rows32 relies on (a chunk holds at least its widest row plus PAD
    words, else its scan takes no row and loops forever): checked on the engine's state and
    by ``rng.check_state``, which refuses a buffer one word too small."""
    for inputs in (5, 5000):
        eng = _engine(dict(layers=[("dense", 1, "soft")], inputs=inputs))
        need = LY.largest_word_request(inputs)
        assert need == inputs + LY.PAD
        assert R.check_state(eng.st.rng, need) is None
        assert R.capacity(eng.st.rng) - R.LANES + 1 >= need
    small = R.new_state(0, 100)
    cap = R.capacity(small)
    assert R.check_state(small, cap - R.LANES + 1) is None
    assert "holds" in R.check_state(small, cap - R.LANES + 2)


# --------------------------------------------------------------------------- 13: datapath bounds

def test_the_unclamped_factor_times_alpha_is_checked():
    """32-bit signal and trace, f_T = 8, alpha_post 0.75: ``a = round(g*h >> 8)`` can reach
    2^54 before it is clamped, and ``a * alpha`` 2^70."""
    wide = {"signal": "signed = true, int_bits = 22, frac_bits = 9",
            "trace": "signed = true, int_bits = 23, frac_bits = 8"}
    with pytest.raises(DeviceError, match="factor a x alpha_post"):
        _engine(dict(alpha_post=0.75), formats=wide)
    _engine(dict(alpha_post=1.0), formats=wide)        # alpha 1 is not multiplied: accepted


def test_a_left_shifted_bias_update_is_checked():
    """A bias format finer than the signal shifts the per-step update left: ``gp << 32`` of
    a Q31.0 signal is 2^63."""
    fmts = {"signal": "signed = true, int_bits = 31, frac_bits = 0",
            "trace": "signed = false, int_bits = 8, frac_bits = 0",
            "bias": "signed = false, int_bits = 0, frac_bits = 32"}
    with pytest.raises(DeviceError, match="bias update"):
        _engine(dict(lr=1.0), formats=fmts)          # lr 2^0: the shift is 0 + 0 - 32


def test_a_checkpoint_with_a_zero_lane_is_one_line_from_the_cli(tmp_path):
    """``simulate --resume`` of a damaged fixed-engine state: exit 2, one line naming the
    array and what is wrong (CLI contract), nothing written."""
    from click.testing import CliRunner

    from edgesnn.cli import main

    fast = ["--engine", "fixed", "--samples", "40", "--eval-every", "20", "--eval-samples", "5",
            "--quiet", "--set", "layers.0.size=8", "--set", "network.time_steps=8",
            "--set", "learning.window=4"]
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(main, ["simulate", *fast, "--out", str(out), "--checkpoint-every", "20"])
    assert res.exit_code == 0, res.output
    ckpt = out / "checkpoint.npz"
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k.endswith("/rng"))
    arrays[key][0] = 0
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    again = tmp_path / "again"
    res = runner.invoke(main, ["simulate", *fast, "--out", str(again), "--resume", str(bad)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "checkpoint array rng" in lines[0] and "lane 0" in lines[0], lines
    assert not again.exists()
