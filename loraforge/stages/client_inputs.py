"""What a remote client (the REST API, the dashboard) may ask of a run: no server path, no endpoint, no key.

Sources must be http(s) URLs or lie inside a folder the operator lists in LORAFORGE_IMPORT_ROOTS; model
references must be names (a hub id, or a folder name under the model directory), never file-system paths.
Endpoints and keys are not part of any options model at all: they come from server settings.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from loraforge.config import Settings
from loraforge.errors import Forbidden, InvalidInput
from loraforge.stages.options import BuildOptions, IngestOptions, StageOptions


def check_client_options(options: StageOptions, settings: Settings) -> StageOptions:
    """The options a remote client may run (sources resolved inside the import roots); Forbidden or
    InvalidInput otherwise."""
    for field in type(options).model_refs():
        value = getattr(options, field)
        if value is not None:
            check_model_ref(field, str(value))
    if isinstance(options, IngestOptions | BuildOptions) and options.sources:
        roots = [Path(os.path.realpath(root)) for root in settings.import_roots]
        # Relative paths are relative to the first import root: the run gets them resolved, as checked.
        resolved = [str(check_source(source, roots) or source) for source in options.sources]
        return options.model_copy(update={"sources": resolved})
    return options


def check_source(source: str, roots: list[Path]) -> Path | None:
    """A URL is fetched by workers with the URL safety checks; a path must be inside an import root."""
    if source.startswith(("http://", "https://")):
        return None
    if "://" in source:
        raise InvalidInput(
            f"unsupported source {source!r}: give an http(s) URL or a path under an import root"
        )
    if not roots:
        raise Forbidden(
            "server-side imports are disabled: upload the files instead, or ask the operator to list the "
            "folder in LORAFORGE_IMPORT_ROOTS"
        )
    candidate = Path(source)
    resolved = Path(os.path.realpath(candidate if candidate.is_absolute() else roots[0] / candidate))
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    raise Forbidden(f"{source!r} is outside the import roots the operator allows")


def check_model_ref(field: str, value: str) -> None:
    """Hub ids ("Salesforce/blip-image-captioning-base") and model folder names pass; paths do not."""
    weights = value.split(":", 1)[-1]
    for part in (value, weights):
        path = PurePosixPath(part.replace("\\", "/"))
        if part.startswith(("/", "~", ".")) or ".." in path.parts or (len(part) > 1 and part[1] == ":"):
            raise Forbidden(
                f"{field} must name a model (hub id or a folder in the model directory), not a path"
            )
