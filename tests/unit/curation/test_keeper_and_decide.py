"""The keeper rule and the per-image decisions, manual choices included."""

from __future__ import annotations

from loraforge.curation import HashRecord, decide, near_duplicate_groups
from loraforge.curation.dedup import DuplicateGroup, DuplicateMember
from loraforge.curation.keeper import choose_keeper, explain_group
from loraforge.curation.registry import CheckOutcome

BASE = 0x0F0F_3C3C_5A5A_9999


def rec(image_id: str, **fields: object) -> HashRecord:
    far = ~BASE & 0xFFFFFFFFFFFFFFFF
    return HashRecord(id=image_id, phash=BASE, phash_mirror=far, dhash=BASE, dhash_mirror=far, **fields)  # type: ignore[arg-type]


def test_keeper_prefers_resolution_then_sharpness_then_file_size_then_id() -> None:
    assert choose_keeper([rec("a", pixels=10), rec("b", pixels=20)]).id == "b"
    assert choose_keeper([rec("a", pixels=10, sharpness=1.0), rec("b", pixels=10, sharpness=3.0)]).id == "b"
    # Within 25% sharpness the larger (higher quality) file wins.
    assert (
        choose_keeper(
            [
                rec("a", pixels=10, sharpness=1.05, file_size=9),
                rec("b", pixels=10, sharpness=1.0, file_size=10),
            ]
        ).id
        == "b"
    )
    assert choose_keeper([rec("b", pixels=10), rec("a", pixels=10)]).id == "a"


def test_keeper_avoids_flagged_copies_and_follows_manual_keeps() -> None:
    assert choose_keeper([rec("big", pixels=99, issue_count=1), rec("ok", pixels=10)]).id == "ok"
    assert choose_keeper([rec("big", pixels=99), rec("mine", pixels=10, manual_keep=True)]).id == "mine"
    assert choose_keeper([rec("big", pixels=99, manual_reject=True), rec("ok", pixels=10)]).id == "ok"


def test_reasons_name_the_keeper_and_how() -> None:
    group = DuplicateGroup(
        "k",
        (DuplicateMember("m", "near", 4, mirrored=True), DuplicateMember("e", "exact", exact_key="sha256")),
    )
    reasons = explain_group(group).reasons
    assert reasons["m"] == "near duplicate of k (distance 4, mirrored)"
    assert reasons["e"] == "exact duplicate of k (same bytes)"


def outcome(name: str, score: float, threshold: float = 0.5) -> CheckOutcome:
    return CheckOutcome(name, score, score >= threshold, threshold)


def test_decide_marks_kept_rejected_and_duplicate() -> None:
    outcomes = {
        "keeper": [outcome("blurry", 0.1)],
        "copy": [outcome("blurry", 0.9)],
        "bad": [outcome("blurry", 0.8), outcome("dark", 0.7)],
        "fine": [outcome("blurry", 0.2)],
    }
    groups = [DuplicateGroup("keeper", (DuplicateMember("copy", "near", 6),))]
    by_id = {d.image_id: d for d in decide(outcomes, groups)}
    assert by_id["keeper"].status == "kept" and by_id["keeper"].issues == ()
    assert by_id["copy"].status == "duplicate" and by_id["copy"].duplicate_of == "keeper"
    assert by_id["copy"].issues == ("blurry", "near_duplicate")
    assert by_id["bad"].status == "rejected"
    assert by_id["bad"].status_reason == "blurry (score 0.80 >= 0.50); dark (score 0.70 >= 0.50)"
    assert by_id["fine"].status == "kept" and by_id["fine"].scores == {"blurry": 0.2}


def test_manual_images_keep_their_status_and_a_manual_keeper_leads_its_group() -> None:
    records = [rec("big", pixels=100), rec("mine", pixels=10, manual_keep=True), rec("other", pixels=50)]
    groups = near_duplicate_groups(records)
    assert groups[0].keeper == "mine"
    outcomes = {r.id: [outcome("blurry", 0.9 if r.id == "mine" else 0.1)] for r in records}
    by_id = {d.image_id: d for d in decide(outcomes, groups, manual_ids={"mine"})}
    assert by_id["mine"].manual and by_id["mine"].status is None
    assert by_id["mine"].issues == ("blurry",)
    assert by_id["big"].status == "duplicate" and by_id["big"].duplicate_of == "mine"


def test_a_manually_rejected_image_never_leads_a_group() -> None:
    records = [rec("gone", pixels=100, manual_reject=True), rec("left", pixels=10)]
    groups = near_duplicate_groups(records)
    assert [g.keeper for g in groups] == ["left"]
    by_id = {d.image_id: d for d in decide({r.id: [] for r in records}, groups, manual_ids={"gone"})}
    assert by_id["left"].status == "kept"
    assert by_id["gone"].status is None and by_id["gone"].issues == ("near_duplicate",)
