"""``edgesnn fit``: the narrowest formats of a device that keep fixed point within a gap of
float.

- ``search``: the greedy search over format widths, on any evaluator;
- ``trials``: the evaluator that runs a search's devices through the sweep machinery
  (pool or Dask, one result file per run, resumable);
- ``report``: the fitted device TOML and the report of the path taken.
"""

from edgesnn.fit.search import (KINDS, OBJECTIVES, FitError, FitResult, Step, Trial,  # noqa: F401
                                candidate_steps, cost, explicit_formats, fit, widened,
                                with_field)
