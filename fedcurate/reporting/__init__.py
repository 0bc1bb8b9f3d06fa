"""Run outputs: metrics records, summaries, progress display, plots and reports."""

from fedcurate.reporting.outputs import RunOutputs
from fedcurate.reporting.progress import RoundProgress

__all__ = ["RoundProgress", "RunOutputs"]
