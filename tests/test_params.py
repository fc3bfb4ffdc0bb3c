"""``edgesnn.params`` is what both engines share; the fixed engine never imports the float one."""

from __future__ import annotations

import ast
import subprocess
import sys

from edgesnn import params, reference
from conftest import ROOT

CORE = ROOT / "edgesnn" / "core"


def _imported_modules(path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved in core)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["edgesnn", "core"][:max(0, 2 - (node.level - 1))]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def test_no_module_of_the_fixed_engine_imports_the_float_engine():
    for path in sorted(CORE.glob("*.py")):
        mods = _imported_modules(path)
        assert not any(m == "edgesnn.reference" or m.startswith("edgesnn.reference.")
                       for m in mods), path.name


def test_importing_the_fixed_engine_loads_no_float_engine():
    code = ("import sys; import edgesnn.core.engine; "
            "assert 'edgesnn.reference' not in sys.modules, sorted(sys.modules); "
            "assert 'edgesnn.params' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_float_engine_shares_the_params_module():
    for name in ("NetParams", "SampleResult", "check_sample", "dfa_scale", "dfa_matrix",
                 "init_params"):
        assert getattr(reference, name) is getattr(params, name), name
