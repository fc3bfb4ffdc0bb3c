"""The kernels once more, compiled with numba's bounds checks (issue 13, item 14).

numba checks no index by default: an index one past a buffer reads or writes whatever
lies there. The naive-reference cases (every kernel, every update mode, rounding and
overflow policy, on small networks) and the fast-path gate cases run here in a
subprocess with ``NUMBA_BOUNDSCHECK=1`` and a fresh ``NUMBA_CACHE_DIR`` (so that it
compiles with the checks rather than loading the unchecked cache; ``core.jitcache`` keys
the cache to the option as well), at ``NUMBA_OPT=0`` (the same bits, compiled faster).
The compilation dominates (about 90 s on the 2-core development VM), so ``conftest.py``
starts the subprocess as soon as the suite is collected and runs this test last, where
it only waits for it: the subprocess runs on the second core beside the rest of the
suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: every kernel through run_sample_kernel, and each fast path at its gate (one compiled
#: weight type, int8, plus one int64 accumulate)
SUBSET = ("tests/test_core_reference.py", "tests/test_core_gates.py")
TIMEOUT_S = 900
NODE = "tests/test_core_boundscheck.py::test_kernels_pass_with_bounds_checks"


class Run:
    """The background pytest run: its process, output file, cache folder, start time."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="edgesnn-boundscheck-")
        self.out = open(os.path.join(self.folder, "pytest.log"), "w+")
        env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_OPT": "0",
               "NUMBA_CACHE_DIR": os.path.join(self.folder, "numba")}
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               "-W", "ignore:Cannot cache compiled function", *SUBSET]
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.out,
                                     stderr=subprocess.STDOUT)

    def wait(self) -> tuple[int, str, float]:
        """``(exit code, last lines of output, seconds since the start)``."""
        code = self.proc.wait(timeout=TIMEOUT_S)
        elapsed = time.monotonic() - self.start
        self.out.seek(0)
        return code, self.out.read()[-4000:], elapsed

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def skip_reason() -> str | None:
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return "NUMBA_DISABLE_JIT: nothing is compiled"
    if os.environ.get("NUMBA_BOUNDSCHECK", "") == "1":
        return "this run already has NUMBA_BOUNDSCHECK=1"
    return None


def _is_this_test(item) -> bool:
    return item.nodeid.replace("\\", "/").endswith(NODE)


def run_last(items: list) -> None:
    """Move this test to the end of the run (``conftest.pytest_collection_modifyitems``):
    it waits for the background run, which meanwhile compiles beside the other tests."""
    items.sort(key=_is_this_test)            # stable: the others keep their order


def start_if_selected(session) -> None:
    """Start the run in the background if this test is among the collected items
    (``conftest.pytest_collection_finish``)."""
    if (skip_reason() or session.config.option.collectonly
            or not any(_is_this_test(item) for item in session.items)):
        return
    run = Run()
    session.config._edgesnn_boundscheck = run
    session.config.add_cleanup(run.close)


def test_kernels_pass_with_bounds_checks(request, record_property):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    run = getattr(request.config, "_edgesnn_boundscheck", None)
    if run is None:                      # not started at collection (e.g. no conftest hook)
        run = Run()
        request.addfinalizer(run.close)
    code, tail, elapsed = run.wait()
    record_property("seconds", round(elapsed, 1))
    assert code == 0, f"bounds-checked kernels failed ({elapsed:.0f} s):\n{tail}"
