"""Export manifests: every file with its hash and source, the settings, canonical JSON, and diffs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loraforge.exporters.base import ExportSpec, ManifestEntry

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset an export was taken from, as the manifest records it."""

    dataset_id: str
    name: str
    trigger_word: str | None = None
    class_word: str | None = None
    target_model: str | None = None


@dataclass(frozen=True)
class ManifestDiff:
    """How two exports differ by content; ids and times are ignored."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    settings_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings_changed)


def build_manifest(
    export_id: str,
    dataset_info: DatasetInfo | Mapping[str, Any],
    spec: ExportSpec,
    entries: Sequence[ManifestEntry],
    created_at: datetime,
) -> dict[str, Any]:
    """The manifest of one export, as plain JSON values with files sorted by name."""
    if isinstance(dataset_info, DatasetInfo):
        dataset = dataclasses.asdict(dataset_info)
    else:
        dataset = dict(dataset_info)
    files = [
        {
            "name": e.name,
            "sha256": e.sha256,
            "bytes": e.bytes,
            "source_image_id": e.source_image_id,
            "caption_sha256": e.caption_sha256,
        }
        for e in sorted(entries, key=lambda e: e.name)
    ]
    return {
        "manifest_version": MANIFEST_VERSION,
        "export_id": export_id,
        "created_at": created_at.isoformat(),
        "dataset": dataset,
        "format": spec.format,
        "settings": spec.settings(),
        "files": files,
        "totals": {
            "files": len(files),
            "bytes": sum(e.bytes for e in entries),
            "images": len({e.source_image_id for e in entries if e.source_image_id}),
        },
    }


def canonical_json(manifest: Mapping[str, Any]) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 kept: equal manifests give equal bytes and hashes."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def diff_manifests(a: Mapping[str, Any], b: Mapping[str, Any]) -> ManifestDiff:
    """Files added, removed or changed (by content hash) from `a` to `b`, and settings that differ."""
    # A manifest read back from the catalog has lists where a fresh one may hold tuples: compare JSON values.
    a, b = json.loads(canonical_json(a)), json.loads(canonical_json(b))
    files_a = {f["name"]: f["sha256"] for f in a.get("files", [])}
    files_b = {f["name"]: f["sha256"] for f in b.get("files", [])}
    settings_a = {"format": a.get("format"), **a.get("settings", {})}
    settings_b = {"format": b.get("format"), **b.get("settings", {})}
    changed_settings = {
        key: (settings_a.get(key), settings_b.get(key))
        for key in sorted(settings_a.keys() | settings_b.keys())
        if settings_a.get(key) != settings_b.get(key)
    }
    return ManifestDiff(
        added=sorted(files_b.keys() - files_a.keys()),
        removed=sorted(files_a.keys() - files_b.keys()),
        changed=sorted(name for name in files_a.keys() & files_b.keys() if files_a[name] != files_b[name]),
        settings_changed=changed_settings,
    )
