"""Temperature scaling fitted on a site's own labelled rows, judged out of sample.

Guo et al., "On Calibration of Modern Neural Networks", ICML 2017: divide the
logits by one temperature ``T`` chosen to minimise the negative log-likelihood
of labelled data; predictions (the argmax) do not change, confidences do.

The NLL is convex in the inverse temperature ``β = 1/T`` (a log-sum-exp of
``β z`` minus a linear term), so its derivative, ``E_p[z] - z_y`` averaged over
rows, increases with ``β`` and a bisection on it finds the optimum.

Reported ECE "after" is cross-fitted: the rows are split into folds, each
fold's confidences use a temperature fitted on the other folds, so the number
says how the temperature does on rows it was not fitted to. The temperature
finally applied is fitted on all labelled rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedcurate.evaluation import expected_calibration_error, mean_cross_entropy, softmax
from fedcurate.quality.crossfit import stratified_folds

#: Bisection range of the inverse temperature (T from 1/50 to 50).
INVERSE_TEMPERATURE_RANGE = (0.02, 50.0)
BISECTION_STEPS = 60


@dataclass(frozen=True)
class TemperatureCalibration:
    """A fitted temperature and how well it calibrates held-out labelled rows.

    Attributes
    ----------
    temperature : float
        ``T`` fitted on every labelled row (1.0 when there were too few).
    num_rows : int
        Labelled rows used.
    num_folds : int
        Folds of the cross-fitted ECE (0 when not cross-fitted).
    ece_before, ece_after : float or None
        ECE of the raw confidences and of the cross-fitted temperature-scaled ones.
    nll_before, nll_after : float or None
        Mean negative log-likelihood, the same way.
    """

    temperature: float
    num_rows: int
    num_folds: int
    ece_before: float | None
    ece_after: float | None
    nll_before: float | None
    nll_after: float | None


def _mean_nll_slope(inverse_temperature: float, logits: np.ndarray, labels: np.ndarray) -> float:
    """d NLL / d β at ``β``: expected logit under the tempered softmax minus the true logit."""
    probabilities = softmax(logits * inverse_temperature)
    expected = (probabilities * logits).sum(axis=1)
    return float((expected - logits[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the NLL of ``labels`` (bisection in log β).

    Returns 1.0 (no scaling) when the NLL has no finite minimiser because every
    row is already right by a wide margin, and the largest temperature of the
    range when the model does worse than a uniform guess.
    """
    logits = np.asarray(logits, dtype=np.float64)
    low, high = np.log(INVERSE_TEMPERATURE_RANGE[0]), np.log(INVERSE_TEMPERATURE_RANGE[1])
    if _mean_nll_slope(np.exp(low), logits, labels) >= 0:
        return 1.0 / float(np.exp(low))
    if _mean_nll_slope(np.exp(high), logits, labels) <= 0:
        # Every row right by a wide margin (typically rows the model trained on): the
        # likelihood keeps rising as T -> 0 and has no finite optimum, so it says
        # nothing about unseen rows; leave the confidences as they are.
        return 1.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if _mean_nll_slope(np.exp(middle), logits, labels) < 0:
            low = middle
        else:
            high = middle
    return float(np.exp(-(low + high) / 2))


def calibrate_temperature(
    logits: np.ndarray, labels: np.ndarray, num_folds: int = 5, seed: int = 0
) -> TemperatureCalibration:
    """Fit a temperature on labelled rows and measure it by cross-fitting.

    Parameters
    ----------
    logits : np.ndarray
        ``(n, C)`` logits of the labelled rows.
    labels : np.ndarray
        ``(n,)`` their labels.
    num_folds : int
        Folds of the cross-fitted ECE; reduced to ``n`` for tiny sites.
    seed : int
        Seeds the folds.
    """
    if len(labels) == 0:
        return TemperatureCalibration(1.0, 0, 0, None, None, None, None)
    before = softmax(logits)
    folds_used = min(num_folds, len(labels))
    if folds_used < 2:
        return TemperatureCalibration(
            1.0,
            len(labels),
            0,
            expected_calibration_error(before, labels),
            None,
            mean_cross_entropy(before, labels),
            None,
        )
    folds = stratified_folds(labels, folds_used, seed)
    after = np.empty_like(before)
    for fold in range(folds_used):
        held = folds == fold
        temperature = fit_temperature(logits[~held], labels[~held])
        after[held] = softmax(logits[held], temperature)
    return TemperatureCalibration(
        temperature=fit_temperature(logits, labels),
        num_rows=len(labels),
        num_folds=folds_used,
        ece_before=expected_calibration_error(before, labels),
        ece_after=expected_calibration_error(after, labels),
        nll_before=mean_cross_entropy(before, labels),
        nll_after=mean_cross_entropy(after, labels),
    )
