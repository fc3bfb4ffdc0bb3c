"""The float twin: a numba float64 engine of device mode, tested against the numpy one.

``FastFloatEngine(spec, params, tess_signs)`` runs what ``reference.FloatEngine`` runs in
device mode (batch 1, SGD with a power-of-two rate, per-step or per-sample updates), one
``@njit`` call per sample, with the same interface, results (up to the order of float
sums) and counts. The numpy engine stays the definition and the paper mode.
"""

from pathlib import Path

# first: the kernels' disk cache is keyed to their sources' fingerprint (core.jitcache),
# which must be in place before any @njit(cache=True) of this package is defined
from edgesnn.core import jitcache

_HERE = Path(__file__).resolve().parent
#: the modules the kernels read (engine.py is Python run at build only)
KERNEL_SOURCES = sorted(p for p in _HERE.glob("*.py") if p.name not in ("engine.py",
                                                                         "counting.py"))
FOLDER = jitcache.register(_HERE, KERNEL_SOURCES, jitcache.PACKAGE)

from edgesnn.floatcore.engine import FastFloatEngine, unsupported  # noqa: E402

__all__ = ["FastFloatEngine", "unsupported"]
