"""Data quality tools a data owner runs at its own site; nothing is sent anywhere.

* :mod:`~fedcurate.quality.crossfit`: out-of-sample probabilities by K-fold
  fine-tuning of the global model;
* :mod:`~fedcurate.quality.confident_learning`: likely label errors;
* :mod:`~fedcurate.quality.duplicates` and :mod:`~fedcurate.quality.outliers`:
  repeated rows and rows unlike the rest;
* :mod:`~fedcurate.quality.calibration` and :mod:`~fedcurate.quality.annotation`:
  temperature-scaled label proposals for unlabelled rows;
* :mod:`~fedcurate.quality.inspection`: all checks on one site file, and the report.
"""

from fedcurate.quality.annotation import Annotation, LabelProposal, annotate, write_proposals_csv
from fedcurate.quality.calibration import TemperatureCalibration, calibrate_temperature
from fedcurate.quality.confident_learning import ConfidentLearning, LabelIssue, find_label_issues
from fedcurate.quality.crossfit import out_of_fold_probabilities
from fedcurate.quality.duplicates import exact_duplicate_groups, near_duplicate_pairs
from fedcurate.quality.inspection import (
    Inspection,
    InspectionSettings,
    fine_tune_config,
    inspect_site,
    write_inspection,
)
from fedcurate.quality.outliers import find_outliers

__all__ = [
    "Annotation",
    "ConfidentLearning",
    "Inspection",
    "InspectionSettings",
    "LabelIssue",
    "LabelProposal",
    "TemperatureCalibration",
    "annotate",
    "calibrate_temperature",
    "exact_duplicate_groups",
    "find_label_issues",
    "find_outliers",
    "fine_tune_config",
    "inspect_site",
    "near_duplicate_pairs",
    "out_of_fold_probabilities",
    "write_inspection",
    "write_proposals_csv",
]
