"""numba's disk cache of the kernels is keyed to a fingerprint of every module they read.

numba checks a cached function against its own file only: a changed constant in another
module (``rng.LANES``, ``constants.ALPHA_FRAC``, a ``counters`` index) or a changed
``@njit`` callee of another file would load stale machine code. ``core.jitcache`` puts
the kernels' cache in a folder named by a hash of those modules (issue 13, item 15).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgesnn.core import jitcache
from edgesnn.core import kernel as KN
from edgesnn.core import update as UP
from edgesnn.core import rng as R
from conftest import ROOT

PACKAGE = ROOT / "edgesnn"


def _copy_package(tmp_path: Path) -> Path:
    dst = tmp_path / "edgesnn"
    shutil.copytree(PACKAGE, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("module,old,new", [
    ("core/rng.py", "LANES = 32", "LANES = 16"),
    ("core/constants.py", "ALPHA_FRAC = 16", "ALPHA_FRAC = 15"),
    ("core/layout.py", "PAD = 8", "PAD = 16"),
    ("core/arith.py", "I32_MAX = (1 << 31) - 1", "I32_MAX = (1 << 31) - 2"),
    ("fixed.py", "SATURATE = 0", "SATURATE = 2"),
    ("counters.py", '"synops"', '"synaptic_ops"'),
])
def test_a_changed_constant_of_a_module_the_kernels_read_changes_the_fingerprint(
        tmp_path, module, old, new):
    copy = _copy_package(tmp_path)
    before = jitcache.fingerprint(copy)
    assert before == jitcache.fingerprint(PACKAGE)          # content, not location
    _edit(copy / module, old, new)
    assert jitcache.fingerprint(copy) != before


def test_python_only_modules_do_not_change_the_fingerprint(tmp_path):
    """The engine wrapper and the bounds table run in Python: editing them recompiles nothing."""
    copy = _copy_package(tmp_path)
    before = jitcache.fingerprint(copy)
    for module in jitcache.PYTHON_ONLY:
        with open(copy / "core" / module, "a") as f:
            f.write("\n# an edit\n")
    assert jitcache.fingerprint(copy) == before


def _edgesnn_imports(path: Path) -> set[Path]:
    """Files of the edgesnn modules that ``path`` imports from (absolute or relative)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                parts = (node.module or "").split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == "edgesnn":
                base, parts = PACKAGE, node.module.split(".")[1:]
            else:
                continue
            target = base.joinpath(*parts)
            out.add(target.with_suffix(".py") if target.with_suffix(".py").exists()
                    else target / "__init__.py")
    return {p.resolve() for p in out}


def _has_kernels(path: Path) -> bool:
    """True if a function of ``path`` is decorated with ``njit`` (or ``njit(...)``)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                d = d.func if isinstance(d, ast.Call) else d
                if getattr(d, "id", getattr(d, "attr", None)) == "njit":
                    return True
    return False


def test_every_module_the_kernels_import_is_fingerprinted():
    """A module with ``@njit`` kernels and every edgesnn module it imports from are hashed;
    the Python-only modules define no kernel and no kernel module imports them."""
    hashed = {p.resolve() for p in jitcache.kernel_sources(PACKAGE)}
    python_only = {(PACKAGE / "core" / m).resolve() for m in jitcache.PYTHON_ONLY}
    jitted = [p for p in sorted((PACKAGE / "core").glob("*.py")) if _has_kernels(p)]
    assert {p.name for p in jitted} >= {"arith.py", "counting.py", "forward.py", "signal.py",
                                        "update.py", "kernel.py", "rng.py"}
    for path in jitted:
        assert path.resolve() in hashed, path.name
        for target in _edgesnn_imports(path):
            assert target in hashed and target not in python_only, (path.name, target.name)
    for path in python_only:
        assert not _has_kernels(path), path.name


def test_the_kernels_are_cached_under_the_fingerprint():
    folder = f"{jitcache.FOLDER_PREFIX}{jitcache.FINGERPRINT[:jitcache.FOLDER_DIGITS]}"
    for fn in (KN.run_sample_kernel, UP.visit_rows32, R.refill):
        path = Path(fn._cache._cache_path)
        assert path.name.startswith(folder), path


MODULE_A = """
from numba import njit
from b import K

@njit(cache=True)
def f():
    return K
"""

SCRIPT = """
import sys
sys.path[:0] = [{pkg!r}, {root!r}]
from edgesnn.core import jitcache
jitcache.register({pkg!r}, [{a!r}, {b!r}])
import a
print(a.f())
"""


def test_a_changed_constant_in_another_module_is_recompiled(tmp_path):
    """numba alone would load ``f`` (whose own file did not change) with the old ``K``."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(textwrap.dedent(MODULE_A))
    (pkg / "b.py").write_text("K = 1\n")
    script = SCRIPT.format(pkg=str(pkg), root=str(ROOT), a=str(pkg / "a.py"),
                           b=str(pkg / "b.py"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_DEBUG_CACHE"] = "1"

    def run():
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    def loaded(out):                     # numba's cache log: f's machine code came from disk
        return any("data loaded" in line and "a.f-" in line for line in out.splitlines())

    cache = pkg / "__pycache__"
    cache.mkdir()
    for name in ("a.f-5.py311.nbi", "a.f-5.py311.1.nbc", "c.g-1.py311.nbi"):
        (cache / name).write_bytes(b"numba's own, unkeyed")
    first = run()
    assert first.strip().splitlines()[-1] == "1" and not loaded(first)
    # numba's unkeyed files of the registered modules are removed, others kept
    assert sorted(p.name for p in cache.glob("*.nb*")) == ["c.g-1.py311.nbi"]
    second = run()
    assert second.strip().splitlines()[-1] == "1" and loaded(second)     # cached
    (pkg / "b.py").write_text("K = 2\n")
    third = run()
    assert third.strip().splitlines()[-1] == "2" and not loaded(third)   # recompiled
    # one folder per fingerprint; the stale one is removed
    folders = [p.name for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].startswith(jitcache.FOLDER_PREFIX), folders
