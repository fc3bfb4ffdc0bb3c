"""The fixed-point, event-driven, counting engine (numba kernels + a thin wrapper).

``FixedEngine(plan, params, seed)`` runs a plan sample by sample in integer
arithmetic with the device's formats, rounding and overflow, and counts every
operation and SRAM access (docs/fixed_point.md).
"""

# first: the kernels' disk cache is keyed to their sources' fingerprint (jitcache), which
# must be in place before any @njit(cache=True) of this package is defined
from edgesnn.core import jitcache  # noqa: F401  (isort: skip)
from edgesnn.core.engine import FixedEngine

__all__ = ["FixedEngine"]
