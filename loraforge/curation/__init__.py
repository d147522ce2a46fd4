"""Curation: quality checks and duplicate groups from one small decode per image.

Per image, on workers: `measure(bytes) -> ImageFeatures` (JSON-ready). Once per dataset, in the driver:
`evaluate(features, context)` per image, `near_duplicate_groups(records)`, then `decide(...)`.
"""

from loraforge.curation.decide import ImageDecision, decide
from loraforge.curation.dedup import (
    DuplicateGroup,
    DuplicateMember,
    HashRecord,
    near_duplicate_groups,
    refine_with_embeddings,
)
from loraforge.curation.features import ImageFeatures, measure
from loraforge.curation.keeper import KeeperChoice, choose_keeper, explain_group
from loraforge.curation.registry import (
    Check,
    CheckContext,
    CheckOutcome,
    all_checks,
    evaluate,
    register_check,
)

__all__ = [
    "Check",
    "CheckContext",
    "CheckOutcome",
    "DuplicateGroup",
    "DuplicateMember",
    "HashRecord",
    "ImageDecision",
    "ImageFeatures",
    "KeeperChoice",
    "all_checks",
    "choose_keeper",
    "decide",
    "evaluate",
    "explain_group",
    "measure",
    "near_duplicate_groups",
    "refine_with_embeddings",
    "register_check",
]
