"""Why a run stops before its last round."""


class RoundFailedError(RuntimeError):
    """A round kept getting too few valid replies; the run stops rather than stall."""


class RunStoppedError(RuntimeError):
    """The run cannot go on by design (e.g. a privacy budget is spent)."""
