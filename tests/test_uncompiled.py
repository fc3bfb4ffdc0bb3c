"""The tests marked ``uncompiled``, run in a subprocess with the kernels uncompiled.

They are the fixed-vs-float twins on wide formats: their weight codes need an int64
specialisation of the kernels, which would cost the suite about two minutes of numba
compiling on a cold cache. Uncompiled, the kernels are the same Python functions
(tests/test_core_engine.py and tests/test_core_delays.py check both forms give the same
bits), and these tests take seconds. The compiled int64 kernels stay in the suite through
tests/test_campaign.py's generated devices (any weight width).
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
    assert passed and int(passed.group(1)) >= 16, out.stdout[-2000:]
    assert "skipped" not in out.stdout.splitlines()[-1], out.stdout[-2000:]
