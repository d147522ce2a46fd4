"""Which copy of a duplicate group to keep, and the sentence that says why each other copy was dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loraforge.curation.dedup import DuplicateGroup, DuplicateMember, HashRecord

SHARPNESS_STEP = 1.25
"""Sharpness counts only in steps of 25%: a low-quality JPEG's block edges add a little false sharpness,
and the file size (next in the rule) should then decide between two equally sharp copies."""


@dataclass(frozen=True)
class KeeperChoice:
    keeper_id: str
    reasons: dict[str, str]
    """Member id -> why it is a duplicate of the keeper."""


def keeper_rank(record: HashRecord, *, mirror_copy: bool = False) -> tuple[object, ...]:
    """Sort key, best keeper first.

    A user's manual keep wins, a manual reject never leads; then fewer failed quality checks (a group
    should not be represented by its blurred copy); then more pixels, sharper; then, of a mirrored pair
    otherwise equal, the copy ingested first (`mirror_copy` marks the other: the file size of a mirrored
    re-save says nothing of its quality); then larger file; then id so the choice is the same on every run.
    """
    return (
        not record.manual_keep,
        record.manual_reject,
        record.issue_count,
        -record.pixels,
        -_sharpness_step(record.sharpness),
        mirror_copy,
        -record.file_size,
        record.id,
    )


def mirror_copy_of(copy: HashRecord, original: HashRecord) -> bool:
    """Whether `copy` is the later-ingested half of a mirrored pair the rule above cannot otherwise tell
    apart (same checks failed, same pixels, same sharpness step)."""
    return (copy.issue_count, copy.pixels, _sharpness_step(copy.sharpness)) == (
        original.issue_count,
        original.pixels,
        _sharpness_step(original.sharpness),
    ) and (copy.ingest_order, copy.id) > (original.ingest_order, original.id)


def choose_keeper(records: list[HashRecord]) -> HashRecord:
    if not records:
        raise ValueError("a duplicate group needs at least one image")
    return min(records, key=keeper_rank)


def explain_group(group: DuplicateGroup) -> KeeperChoice:
    """The keeper of a group and the reason text of each other member."""
    return KeeperChoice(
        keeper_id=group.keeper, reasons={m.id: duplicate_reason(m, group.keeper) for m in group.members}
    )


def duplicate_reason(member: DuplicateMember, keeper_id: str) -> str:
    if member.kind == "exact":
        what = "same bytes" if member.exact_key == "sha256" else "same pixels, other metadata"
        return f"exact duplicate of {keeper_id} ({what})"
    details = [f"distance {member.distance}"]
    if member.mirrored:
        details.append("mirrored")
    if member.cropped:
        details.append("cropped")
    return f"near duplicate of {keeper_id} ({', '.join(details)})"


def _sharpness_step(sharpness: float) -> int:
    if sharpness <= 0.0:
        return -(10**6)
    return math.floor(math.log(sharpness) / math.log(SHARPNESS_STEP))
