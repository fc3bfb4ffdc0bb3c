"""The tests marked ``uncompiled``, run in a subprocess with the kernels uncompiled.

They are the fixed-vs-float twins on wide formats: their weight codes need an int64
specialisation of the kernels, which would cost the suite about two minutes of numba
compiling on a cold cache. Uncompiled, the kernels are the same Python functions
(tests/test_core_engine.py and tests/test_core_delays.py check both forms give the same
bits), and these tests take seconds. The compiled int64 kernels are checked against their
Python form by ``test_int64_kernels_compiled_give_the_python_bits``, a benchmark (``-m
benchmark``: two minutes of compiling on a cold cache).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT, UNCOMPILED

import pytest


@pytest.mark.skipif(UNCOMPILED, reason="already uncompiled: the marked tests run here")
def test_the_uncompiled_tests_pass():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-m", "uncompiled", str(ROOT / "tests")],
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    passed = re.search(r"(\d+) passed", out.stdout)
    assert passed and int(passed.group(1)) >= 17, out.stdout[-2000:]
    assert "skipped" not in out.stdout.splitlines()[-1], out.stdout[-2000:]


@pytest.mark.benchmark
def test_int64_kernels_compiled_give_the_python_bits():
    """Unsigned Q2.6 weights (int64 codes) learning three samples: compiled here, uncompiled
    in a subprocess, the same weights and counters."""
    from test_core_checks import UNSIGNED_LEARN_SCRIPT

    tests = str(ROOT / "tests")
    script = UNSIGNED_LEARN_SCRIPT.format(paths=[tests, str(ROOT)])
    outs = []
    for jit in ("0", "1"):
        env = {**os.environ, "NUMBA_DISABLE_JIT": jit}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=900, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        outs.append(out.stdout.strip().splitlines()[-2:])      # digest, weight range
    assert outs[0] == outs[1]
