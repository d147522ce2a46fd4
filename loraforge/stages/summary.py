"""The final table of a whole-pipeline run, computed from the catalog so a resumed run reports it all."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy.orm import Session

from loraforge.catalog.models import Dataset
from loraforge.stages.report import dataset_report


def build_summary(
    session: Session,
    dataset: Dataset,
    *,
    ingest: dict[str, Any] | None,
    export: dict[str, Any] | None,
) -> dict[str, Any]:
    """Counts a user wants after `loraforge run`: what was found, dropped, captioned, bucketed, exported."""
    images = dataset_report(session, dataset)["images"]
    status = Counter(image["status"] for image in images)
    rejected_by_reason: Counter[str] = Counter()
    for image in images:
        if image["status"] == "rejected":
            for issue in image["issues"] or ["manual" if image["status_manual"] else "other"]:
                rejected_by_reason[issue] += 1
    usable = [image for image in images if image["status"] in ("kept", "pending")]
    skipped = not_exported(images, ingest) + list((export or {}).get("left_out") or [])
    return {
        "dataset": dataset.name,
        "found": (ingest or {}).get("found"),
        "added": (ingest or {}).get("added"),
        "failed_to_ingest": (ingest or {}).get("failed"),
        "copies_skipped_at_ingest": (ingest or {}).get("exact_duplicates"),
        "images": len(images),
        "kept": status.get("kept", 0) + status.get("pending", 0),
        # The catalog's count, as `report` gives it; copies skipped at ingest never entered the catalog.
        "duplicates": status.get("duplicate", 0),
        "rejected": status.get("rejected", 0),
        "rejected_by_reason": dict(sorted(rejected_by_reason.items())),
        "captioned": sum(1 for image in usable if image["caption"]),
        "per_bucket": dict(sorted(Counter(image["bucket"] for image in usable if image["bucket"]).items())),
        "exported": (export or {}).get("images"),
        "export_id": (export or {}).get("export_id"),
        "written_to": (export or {}).get("out"),
        "not_exported": skipped,
    }


def not_exported(images: list[dict[str, Any]], ingest: dict[str, Any] | None) -> list[dict[str, str]]:
    """Every file of the run left out of the export, each with its reason: failed to ingest, exact copy of X
    (skipped at ingest, or found by curation), near copy of X, rejected for Y (the export adds those over
    --max-upscale)."""
    out = [
        {"filename": failure["filename"], "reason": f"failed to ingest: {failure['reason']}"}
        for failure in (ingest or {}).get("failures", [])
    ]
    out += [
        {"filename": copy["filename"], "reason": f"exact copy of {copy['duplicate_of']}"}
        for copy in (ingest or {}).get("duplicate_files", [])
    ]
    for image in images:
        if image["status"] == "duplicate":
            out.append({"filename": image["filename"], "reason": _copy_reason(image)})
        elif image["status"] == "rejected":
            out.append({"filename": image["filename"], "reason": _rejected_reason(image)})
    return out


def _copy_reason(image: dict[str, Any]) -> str:
    reason = image["status_reason"] or ""
    kind = "exact" if reason.startswith("exact") else "near"
    mirrored = " (mirrored)" if "mirrored" in reason else ""
    return f"{kind} copy of {image['duplicate_of']}{mirrored}"


def _rejected_reason(image: dict[str, Any]) -> str:
    if image["status_manual"]:
        return f"rejected by you: {image['status_reason']}" if image["status_reason"] else "rejected by you"
    return f"rejected for {image['status_reason'] or ', '.join(image['issues']) or 'failed checks'}"
