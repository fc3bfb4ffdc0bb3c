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


class OutputError(EdgeSnnError):
    """An output file or folder cannot be written, is locked, or holds another run's results."""


class DivergenceError(EdgeSnnError):
    """A learning run's weights or states became non-finite: names the tensor and the sample."""


class Interrupted(EdgeSnnError):
    """A run stopped by SIGINT or SIGTERM between two samples (exit 130 or 143).

    ``checkpoint`` is the path written at the stop (None when the run does not
    checkpoint); ``sample`` is the number of samples learned.
    """

    def __init__(self, signal_name: str, sample: int, checkpoint: str | None,
                 before: bool = False):
        self.signal_name, self.sample, self.checkpoint = signal_name, sample, checkpoint
        self.exit_code = 130 if signal_name == "SIGINT" else 143
        if before:
            super().__init__(f"stopped by {signal_name} before learning started; nothing was "
                             "written")
            return
        where = (f"checkpoint written to {checkpoint}" if checkpoint
                 else "nothing saved (--checkpoint-every N makes a run resumable)")
        super().__init__(f"stopped by {signal_name} after {sample} learned samples; {where}")
