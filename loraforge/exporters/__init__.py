"""Trainer-ready dataset exports: one registered exporter per format, into a folder or a streamed zip."""

from __future__ import annotations

from loraforge.exporters.base import ExportItem, ExportResult, ExportSpec, ManifestEntry, safe_stem
from loraforge.exporters.manifest import (
    DatasetInfo,
    ManifestDiff,
    build_manifest,
    canonical_json,
    diff_manifests,
)
from loraforge.exporters.registry import available_formats, get_exporter, register_exporter
from loraforge.exporters.sinks import DirectorySink, ZipSink
from loraforge.exporters.validate import Problem, ValidationReport, validate
from loraforge.exporters.writer import ExportWriter, export_dataset

__all__ = [
    "DatasetInfo",
    "DirectorySink",
    "ExportItem",
    "ExportResult",
    "ExportSpec",
    "ExportWriter",
    "ManifestDiff",
    "ManifestEntry",
    "Problem",
    "ValidationReport",
    "ZipSink",
    "available_formats",
    "build_manifest",
    "canonical_json",
    "diff_manifests",
    "export_dataset",
    "get_exporter",
    "register_exporter",
    "safe_stem",
    "validate",
]
