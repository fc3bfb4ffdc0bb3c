"""The fixed-point, event-driven, counting engine (numba kernels + a thin wrapper).

``FixedEngine(plan, params, seed)`` runs a plan sample by sample in integer
arithmetic with the device's formats, rounding and overflow, and counts every
operation and SRAM access (docs/fixed_point.md).
"""

from edgesnn.core.engine import FixedEngine

__all__ = ["FixedEngine"]
