"""Combine check outcomes and duplicate groups into one decision per image, with a reason a user can read.

Runs once over the whole dataset in the driver. Images a user decided by hand (manual ids) keep their
status: they get their issues and scores refreshed, never a new status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from loraforge.curation.dedup import DuplicateGroup, DuplicateMember
from loraforge.curation.keeper import duplicate_reason
from loraforge.curation.registry import CheckOutcome

KEPT = "kept"
REJECTED = "rejected"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class ImageDecision:
    image_id: str
    status: str | None
    """kept | rejected | duplicate; None for a manual image, whose status stays as the user set it."""
    status_reason: str | None
    duplicate_of: str | None
    issues: tuple[str, ...]
    """Failed check names, plus "exact_duplicate" or "near_duplicate"."""
    scores: dict[str, float]
    manual: bool = False


def decide(
    outcomes: Mapping[str, Sequence[CheckOutcome]],
    groups: Sequence[DuplicateGroup],
    *,
    manual_ids: AbstractSet[str] = frozenset(),
) -> list[ImageDecision]:
    """One decision per image in `outcomes`, in its order.

    A duplicate stays a duplicate even when it also fails checks (its keeper is the better copy); a keeper
    or a singleton that fails a rejecting check is rejected; everything else is kept (a tagging check such
    as grayscale still lists its flag in the issues).
    """
    duplicates: dict[str, tuple[DuplicateMember, str]] = {}
    for group in groups:
        for member in group.members:
            duplicates[member.id] = (member, group.keeper)
    decisions = []
    for image_id, image_outcomes in outcomes.items():
        flagged = [o for o in image_outcomes if o.flagged]
        failed = [o for o in flagged if o.rejects]
        issues = [o.name for o in flagged]
        scores = {o.name: o.score for o in image_outcomes}
        duplicate = duplicates.get(image_id)
        if duplicate is not None:
            issues.append("exact_duplicate" if duplicate[0].kind == "exact" else "near_duplicate")
        if image_id in manual_ids:
            decisions.append(ImageDecision(image_id, None, None, None, tuple(issues), scores, manual=True))
        elif duplicate is not None:
            member, keeper = duplicate
            reason = duplicate_reason(member, keeper)
            decisions.append(ImageDecision(image_id, DUPLICATE, reason, keeper, tuple(issues), scores))
        elif failed:
            decisions.append(
                ImageDecision(image_id, REJECTED, check_reason(failed), None, tuple(issues), scores)
            )
        else:
            decisions.append(ImageDecision(image_id, KEPT, None, None, tuple(issues), scores))
    return decisions


def check_reason(failed: Sequence[CheckOutcome]) -> str:
    """E.g. "blurry (score 0.82 >= 0.50); dark (score 0.61 >= 0.50)", worst first."""
    ordered = sorted(failed, key=lambda o: o.score - o.threshold, reverse=True)
    return "; ".join(f"{o.name} (score {o.score:.2f} >= {o.threshold:.2f})" for o in ordered)
