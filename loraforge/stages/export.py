"""Export: turn a dataset's catalog state into an immutable, stored, manifest-carrying version (driver side).

`plan_export` (in `export_records`, re-exported here) reads what goes out (images, active captions, bucket
derivatives) from the catalog; `write_export` validates, writes the trainer layout into a temporary zip (and
optionally a folder), stores the zip and its manifest, and only then marks the `exports` row COMPLETED.
Any failure marks the row FAILED and removes what was stored or placed, so no half-written version is ever
visible.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraforge.catalog.models import Export, utcnow
from loraforge.errors import Conflict, InvalidInput
from loraforge.exporters import (
    DirectorySink,
    ExportSpec,
    ZipSink,
    build_manifest,
    canonical_json,
    get_exporter,
    validate,
)
from loraforge.exporters import export_dataset as write_dataset
from loraforge.exporters.sinks import Sink
from loraforge.stages.context import Context
from loraforge.stages.export_records import (
    COMPLETED,
    CURATED_STATUSES,
    EXCLUDED_STATUSES,
    FAILED,
    PENDING,
    ExportPlan,
    ExportRequest,
    find_export,
    list_exports,
    plan_export,
    preview_export,
)
from loraforge.stages.export_records import _spec as _spec
from loraforge.storage.keys import export_key

log = logging.getLogger(__name__)

__all__ = [
    "COMPLETED",
    "CURATED_STATUSES",
    "EXCLUDED_STATUSES",
    "FAILED",
    "PENDING",
    "ExportOutcome",
    "ExportPlan",
    "ExportRequest",
    "OUT_MARKER",
    "ZIP_MARKER",
    "check_out",
    "check_out_dir",
    "find_export",
    "list_exports",
    "local_outputs",
    "plan_export",
    "preview_export",
    "write_export",
]


@dataclass(frozen=True)
class ExportOutcome:
    """A stored version and where its local copies went."""

    export_id: str
    object_key: str
    manifest_key: str
    image_count: int
    file_count: int
    bytes: int
    warnings: list[str]
    validation: str
    out_dir: str | None = None
    zip_path: str | None = None
    left_out: list[dict[str, str]] = dataclasses.field(default_factory=list)
    """{"filename", "reason"} of pictures left out for needing more than --max-upscale."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "object_key": self.object_key,
            "manifest_key": self.manifest_key,
            "images": self.image_count,
            "files": self.file_count,
            "bytes": self.bytes,
            "warnings": self.warnings,
            "validation": self.validation,
            "out": self.out_dir or self.zip_path,
            "out_dir": self.out_dir,
            "zip_path": self.zip_path,
            "left_out": self.left_out,
        }


class _TeeSink:
    """Writes every member to several sinks (the stored zip and the user's folder) in one pass."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)

    def write(self, name: str, data: bytes, *, compress: bool) -> None:
        for sink in self.sinks:
            sink.write(name, data, compress=compress)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def local_outputs(out: str | Path | None, *, zip: bool = False) -> tuple[Path | None, Path | None]:
    """(folder, zip file) for `--out`: a path ending in .zip is the zip alone; any other path is the folder
    form, plus `<folder>.zip` beside it when `zip` is set."""
    if out is None:
        return None, None
    path = Path(out).expanduser()
    if path.suffix.lower() == ".zip":
        return None, path
    return path, (path.with_name(path.name + ".zip") if zip else None)


OUT_MARKER = ".loraforge-export.json"
"""The manifest of the version an `--out` folder holds: it tells a folder LoRA Forge wrote (replaced by the
next version) from one it did not (refused unless overwrite)."""
ZIP_MARKER = b"LoRA Forge export"
"""The archive comment of every export zip (stored, downloaded, `--out`): it tells a zip LoRA Forge wrote."""


def check_out(out: str | Path | None, *, zip: bool = False, overwrite: bool = False) -> None:
    """Refuse, before any work, an `--out` (and its `--zip` companion) that holds what LoRA Forge did not
    write; an earlier export there is replaced by the new version, and `overwrite` replaces anything."""
    out_dir, zip_path = local_outputs(out, zip=zip)
    if out_dir is not None:
        check_out_dir(out_dir, overwrite=overwrite)
    if zip_path is not None:
        check_out_zip(zip_path, overwrite=overwrite)


def check_out_dir(out_dir: Path, *, overwrite: bool = False) -> None:
    """A folder `--out` must be missing, empty, an earlier export, or given up with `overwrite`."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise Conflict(f"--out {out_dir} is a file, not a folder; give a folder, or a path ending in .zip")
    if overwrite or not any(out_dir.iterdir()) or (out_dir / OUT_MARKER).is_file():
        return
    raise Conflict(
        f"--out {out_dir} holds files LoRA Forge did not write; give a new or empty folder, or add "
        "--overwrite to replace it"
    )


def check_out_zip(zip_path: Path, *, overwrite: bool = False) -> None:
    """A zip `--out` must be missing, an earlier export's zip, or given up with `overwrite`."""
    if not zip_path.exists():
        return
    if zip_path.is_dir():
        raise Conflict(f"--out {zip_path} is a folder; a .zip --out names the archive file")
    if overwrite or _written_here(zip_path):
        return
    raise Conflict(
        f"--out {zip_path} is a file LoRA Forge did not write; give a new path, or add --overwrite to "
        "replace it"
    )


def _written_here(zip_path: Path) -> bool:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return archive.comment == ZIP_MARKER
    except (zipfile.BadZipFile, OSError):
        return False


def write_export(
    ctx: Context,
    plan: ExportPlan,
    *,
    strict: bool = False,
    out_dir: Path | None = None,
    zip_path: Path | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    read_ahead: int = 4,
) -> ExportOutcome:
    """Validate, write, store, then commit the version; on any failure nothing stays visible.

    The stored version (and its .zip copies) is portable: config paths are relative to its root, unless
    spec.dataset_root names another. The folder copy's config files name the folder's absolute path instead
    (`_locate_configs`), so the trainer finds the pictures from wherever it is launched (mostly its own
    checkout); spec.relative_paths keeps them relative there too. An earlier export at `out_dir` or
    `zip_path` is replaced by this one in a rename once it is complete (`check_out` says what may be)."""
    if not plan.items:
        name = plan.dataset.name
        if plan.left_out:
            raise InvalidInput(
                f"no images to export: all {plan.left_out} pictures of dataset {name!r} were rejected, "
                f"are duplicates or need more than --max-upscale: see `loraforge report --dataset {name}` "
                "(--include-rejected and --allow-upscale export them anyway)"
            )
        raise InvalidInput(f"no images to export: dataset {name!r} holds no pictures")
    report = validate(plan.items, plan.spec, strict=strict)  # strict refuses here, before any row exists
    if out_dir is not None:
        check_out_dir(out_dir, overwrite=overwrite)
    if zip_path is not None:
        check_out_zip(zip_path, overwrite=overwrite)
    created_at = utcnow()
    with ctx.catalog.session() as session:
        row = Export(
            dataset_id=plan.dataset.dataset_id, format=plan.spec.format, status=PENDING, created_at=created_at
        )
        session.add(row)
        session.flush()
        export_id = row.id
    object_key = export_key(plan.dataset.dataset_id, export_id, "zip")
    manifest_key = export_key(plan.dataset.dataset_id, export_id, "json")
    placed: list[Path] = []
    try:
        with tempfile.TemporaryDirectory(prefix="loraforge-export-") as tmp:
            archive = Path(tmp) / "export.zip"
            staging = None if out_dir is None else _sibling(out_dir, export_id)
            with archive.open("wb") as handle:
                sinks: list[Sink] = [ZipSink(handle, comment=ZIP_MARKER)]
                sinks += [DirectorySink(staging)] if staging else []
                placed += [staging] if staging else []
                result = write_dataset(
                    plan.items,
                    plan.spec,
                    sink=_TeeSink(sinks),
                    strict=strict,
                    progress=progress,
                    read_ahead=read_ahead,
                )
            manifest = build_manifest(export_id, plan.dataset, plan.spec, result.files, created_at)
            manifest["sources"] = plan.sources
            manifest["warnings"] = result.warnings
            stored = ctx.store.put_file(object_key, archive, content_type="application/zip")
            ctx.store.put(
                manifest_key, canonical_json(manifest).encode("utf-8"), content_type="application/json"
            )
            if zip_path is not None:
                partial = _sibling(zip_path, export_id)
                placed.append(partial)
                shutil.copyfile(archive, partial)
                os.replace(partial, zip_path)
                placed[-1] = zip_path
            if staging is not None and out_dir is not None:
                _locate_configs(plan.spec, staging, out_dir)
                (staging / OUT_MARKER).write_bytes(canonical_json(manifest).encode("utf-8"))
                _replace_dir(staging, out_dir, export_id)
                placed[placed.index(staging)] = out_dir
        with ctx.catalog.session() as session:
            saved = session.get(Export, export_id)
            assert saved is not None
            saved.status, saved.object_key, saved.manifest = COMPLETED, object_key, manifest
            saved.image_count, saved.bytes = result.image_count, stored.size
    except BaseException:
        _discard(ctx, export_id, (object_key, manifest_key), placed)
        raise
    log.info("export %s of %s stored at %s", export_id, plan.dataset.name, object_key)
    return ExportOutcome(
        export_id,
        object_key,
        manifest_key,
        result.image_count,
        len(result.files),
        stored.size,
        result.warnings,
        report.summary(),
        str(out_dir) if out_dir else None,
        str(zip_path) if zip_path else None,
        plan.upscaled,
    )


def _locate_configs(spec: ExportSpec, staging: Path, out_dir: Path) -> None:
    """Rewrite the folder copy's config files to name the folder's absolute path; every other file stays
    byte for byte the stored version's."""
    if spec.relative_paths or spec.dataset_root is not None:
        return
    located = dataclasses.replace(spec, dataset_root=str(out_dir.expanduser().resolve()))
    for name, text in get_exporter(spec.format).configs(located).items():
        (staging / name).write_bytes(text.encode("utf-8"))


def _replace_dir(staging: Path, out_dir: Path, export_id: str) -> None:
    """Put the finished folder at `out_dir`: whatever was there is moved aside, then removed once the new
    folder is in place (put back if the move fails), so `out_dir` never holds a mix of two versions."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{export_id[:12]}"
    os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sibling(target: Path, export_id: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.partial-{export_id[:12]}"


def _discard(ctx: Context, export_id: str, keys: Iterable[str], placed: Iterable[Path]) -> None:
    """Undo a failed export as far as possible; each step is independent so one failure skips none."""
    for key in keys:
        try:
            ctx.store.delete(key)
        except Exception:  # noqa: BLE001 - the original failure is what the caller must see
            log.exception("could not delete %s after a failed export", key)
    for path in placed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    try:
        with ctx.catalog.session() as session:
            row = session.get(Export, export_id)
            if row is not None:
                row.status, row.object_key, row.manifest = FAILED, None, None
    except Exception:  # noqa: BLE001
        log.exception("could not mark export %s failed", export_id)
