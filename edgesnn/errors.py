"""The one exception family of edgesnn.

The CLI turns every ``EdgeSnnError`` into one readable line and exit code 2;
any other exception reaching the user is a bug.
"""


class EdgeSnnError(Exception):
    """Base of every error a user can cause and fix."""


class SpecError(EdgeSnnError):
    """A network spec is malformed, inconsistent or asks for an unbuilt kind."""


class DeviceError(EdgeSnnError):
    """A device model is malformed, inconsistent or unknown."""


class BudgetError(EdgeSnnError):
    """A network does not fit a device: names the bank, need, capacity, largest tensor."""


class DataError(EdgeSnnError):
    """A data set, data file or golden case is missing or malformed."""


class CheckpointError(EdgeSnnError):
    """A checkpoint is missing, corrupt or belongs to another run."""
