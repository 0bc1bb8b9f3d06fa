"""Sample-level differential privacy at each data owner (Opacus DP-SGD).

Integration at a data owner, once per round::

    plan = plan_privacy(cfg.privacy, cfg.train, len(train), num_rounds=cfg.num_rounds)
    ledger = open_ledger(path, plan, missing_ok=first_round_of_run)
    try:
        result = train_private_round(ledger, model, train, cfg.train,
                                     server_round=r, generator=g, proximal_mu=mu)
    except BudgetExhaustedError:
        ...  # reply without an update
    save_ledger(ledger, path)
    reply_metrics = ledger.metrics()

Modules: :mod:`accountants` (Opacus accountant registry), :mod:`rdp` (Opacus'
RDP epsilon and noise calibration, fast), :mod:`calibration`
(validation, delta, the noise multiplier), :mod:`ledger` (budget guard and
persistence), :mod:`mechanisms` and :mod:`optimizer` (grad-sample modes),
:mod:`dp_sgd` (training), :mod:`audit` (one-run canary audit).
"""

from fedcurate.privacy.accountants import (
    ACCOUNTANTS,
    create_accountant,
    epsilon_for_history,
)
from fedcurate.privacy.audit import AuditResult, audit_dp_sgd, epsilon_lower_bound
from fedcurate.privacy.calibration import (
    DPPlan,
    DPSettings,
    calibrate,
    default_delta,
    plan_privacy,
    validate_privacy_config,
)
from fedcurate.privacy.dp_sgd import (
    BudgetExhaustedError,
    DPTrainResult,
    train_dp_sgd,
    train_private_round,
)
from fedcurate.privacy.ledger import (
    BudgetStop,
    LedgerError,
    PrivacyLedger,
    RoundRecord,
    load_ledger,
    open_ledger,
    open_ledger_bytes,
    save_ledger,
)
from fedcurate.privacy.mechanisms import GRAD_SAMPLE_MODES

__all__ = [
    "ACCOUNTANTS",
    "GRAD_SAMPLE_MODES",
    "AuditResult",
    "BudgetExhaustedError",
    "BudgetStop",
    "DPPlan",
    "DPSettings",
    "DPTrainResult",
    "LedgerError",
    "PrivacyLedger",
    "RoundRecord",
    "audit_dp_sgd",
    "calibrate",
    "create_accountant",
    "default_delta",
    "epsilon_for_history",
    "epsilon_lower_bound",
    "load_ledger",
    "open_ledger",
    "open_ledger_bytes",
    "plan_privacy",
    "save_ledger",
    "train_dp_sgd",
    "train_private_round",
    "validate_privacy_config",
]
