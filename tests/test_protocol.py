"""Typed records crossing the wire: the curator's verdict."""

from __future__ import annotations

import pytest

from fedcurate.curation.curator import Decision
from fedcurate.curation.ledger import OwnerRecord, RoundRecord
from fedcurate.protocol import CuratorVerdict, ProtocolError

OWNERS = ("owner-000", "owner-001")


def decision(server_round: int = 3) -> Decision:
    return Decision(
        round=server_round,
        method="first_order",
        utility="loss",
        values={"owner-000": 0.02, "owner-001": -0.01},
        weights={"owner-000": 1.0, "owner-001": 0.0},
        reasons={"owner-000": "kept", "owner-001": "excluded: confidently harmful"},
        evaluations=1,
        note="",
    )


def entry(server_round: int = 3, owners: tuple[str, ...] = OWNERS) -> RoundRecord:
    records = {
        name: OwnerRecord(
            value=0.01,
            relative=1.0,
            weight=1.0,
            included=True,
            reason="kept",
            score=0.1,
            signals={"label_quality": 2.0},
            alignment=0.4,
        )
        for name in owners
    }
    return RoundRecord(server_round, "first_order", "loss", 1, "", records)


def test_a_verdict_carries_its_rounds_ledger_entry_only() -> None:
    sent = CuratorVerdict(decision(), entry())
    received = CuratorVerdict.from_content(sent.to_content())
    assert received == sent
    assert set(sent.to_content().config_records["verdict"]) >= {"ledger_round", "weights"}


@pytest.mark.parametrize(
    ("mismatch", "message"),
    [(entry(server_round=2), "round 2"), (entry(owners=OWNERS[:1]), "owners")],
)
def test_a_ledger_entry_of_another_round_or_other_owners_is_refused(
    mismatch: RoundRecord, message: str
) -> None:
    content = CuratorVerdict(decision(), mismatch).to_content()
    with pytest.raises(ProtocolError, match=f"ledger entry.*{message}.*not of its decision"):
        CuratorVerdict.from_content(content)


def test_a_mangled_ledger_entry_is_refused_naming_it() -> None:
    content = CuratorVerdict(decision(), entry()).to_content()
    content.config_records["verdict"]["ledger_round"] = '{"round": 3}'
    with pytest.raises(ProtocolError, match="ledger entry lacks or mangles"):
        CuratorVerdict.from_content(content)
