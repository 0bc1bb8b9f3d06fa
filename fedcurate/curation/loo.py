"""Leave-one-out values: ``v(N) - v(N - {i})``.

The classic baseline (e.g. Cook 1977 for influence; Jia et al., AISTATS 2019, as
the cheapest data-valuation reference): n + 1 evaluations, but an owner whose
update duplicates another's gets almost nothing, because the rest already
carry what it brings.
"""

from __future__ import annotations

from fedcurate.curation.games import CoalitionGame


def leave_one_out(game: CoalitionGame) -> dict[str, float]:
    """``v(N) - v(N - {i})`` for every player ``i``."""
    grand = game.grand_coalition
    grand_worth = game.value(grand)
    return {player: grand_worth - game.value(grand - {player}) for player in game.players}
