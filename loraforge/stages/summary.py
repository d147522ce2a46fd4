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
    return {
        "dataset": dataset.name,
        "found": (ingest or {}).get("found"),
        "added": (ingest or {}).get("added"),
        "failed_to_ingest": (ingest or {}).get("failed"),
        "images": len(images),
        "kept": status.get("kept", 0) + status.get("pending", 0),
        "duplicates": status.get("duplicate", 0) + (ingest or {}).get("exact_duplicates", 0),
        "rejected": status.get("rejected", 0),
        "rejected_by_reason": dict(sorted(rejected_by_reason.items())),
        "captioned": sum(1 for image in usable if image["caption"]),
        "per_bucket": dict(sorted(Counter(image["bucket"] for image in usable if image["bucket"]).items())),
        "exported": (export or {}).get("images"),
        "export_id": (export or {}).get("export_id"),
        "written_to": (export or {}).get("out"),
    }
