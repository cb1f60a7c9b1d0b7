"""A chain's turns as EdiVal-CC turn specs, for either pairing."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from edit_rl.data.chain import ChainTurn

if TYPE_CHECKING:  # edit_rl.consistency imports transformers: loaded only when specs are built
    from edit_rl.consistency.edival_cc import TurnSpec

Pairing = Literal["consecutive", "reference"]  # edit_rl.consistency.Pairing


def cumulative_lists(turns: Sequence[ChainTurn]) -> list["TurnSpec"]:
    """Per turn k, what the reference pairing (image 0 vs image k) checks, from the turns' own
    lists (EdiVal's CSV convention):

        unchanged_k = objects in the own unchanged list of EVERY turn 1..k (order of turn 1's list)
        all_k       = union of the own all_objects of turns 1..k (order of first appearance)
        check_bg_k  = bg_consistency of every turn 1..k (False from the first background change on)
    """
    from edit_rl.consistency.edival_cc import TurnSpec

    specs: list[TurnSpec] = []
    unchanged: list[str] = []
    everything: list[str] = []
    check_background = True
    for k, turn in enumerate(turns):
        own = set(turn.unchanged_objects)
        unchanged = list(dict.fromkeys(turn.unchanged_objects)) if k == 0 else [o for o in unchanged if o in own]
        everything += [o for o in turn.all_objects if o not in everything]
        check_background = check_background and turn.bg_consistency
        specs.append(TurnSpec(tuple(unchanged), tuple(everything), check_background))
    return specs


def turn_specs(turns: Sequence[ChainTurn], pairing: Pairing) -> tuple["TurnSpec", ...]:
    """One :class:`~edit_rl.consistency.TurnSpec` per turn: "consecutive" (image k-1 vs k) uses
    each turn's own lists; "reference" (image 0 vs k) the cumulated ones (:func:`cumulative_lists`)."""
    from edit_rl.consistency.edival_cc import PAIRINGS, TurnSpec

    if pairing == "consecutive":
        return tuple(TurnSpec(t.unchanged_objects, t.all_objects, t.bg_consistency) for t in turns)
    if pairing == "reference":
        return tuple(cumulative_lists(turns))
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
