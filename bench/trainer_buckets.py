"""How many exported pictures each trainer takes as they are, before and after buckets followed its own rule.

Pictures: the real photos of tests/support/aspect_photos.py cut to 11 aspect ratios from 1:4 to 4:1 (about
1.3 MP each). For every format and model the trainer supports, on an embedded catalog in a temporary folder:

- before: the bucket stage run on the model's grid as it stood for every trainer (kohya's generator, step
  64 for SD 1.5 and SDXL, 32 for Flux), then exported; the trainer's rule is the one the export's old settings
  gave (the same rule for all but kohya, whose Flux config said bucket_reso_steps = 32, which
  flux_train_network.py refuses: no picture trains);
- after: the bucket stage run for the trainer (`loraforge bucket --trainer X`), then exported.

Every exported file is opened; its size is a fixed point when the trainer's rule (ported from its code,
loraforge/exporters/formats, checked in tests/unit/test_trainer_rules.py) maps it to itself, so the trainer
neither resizes nor crops it. Columns: pictures; fixed points before and after; bucket sizes the pictures
landed in; size of the bucket set the stage chose from.

    python bench/trainer_buckets.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if TYPE_CHECKING:
    from loraforge.imaging.buckets import BucketRule

FORMATS = ("kohya", "ai-toolkit", "onetrainer", "simpletuner", "hf", "replicate")
MODELS = ("sd15", "sdxl", "flux")
OLD_STEP = {"sd15": 64, "sdxl": 64, "flux": 32}
"""The generic grid's step before trainer rules (loraforge.targets), which the kohya config wrote."""


@dataclass
class Row:
    fmt: str
    model: str
    pictures: int
    fixed_before: int | None
    """None: the trainer refused the old config."""
    fixed_after: int
    used_before: int
    used_after: int
    set_before: int
    set_after: int


def supported(fmt: str, model: str) -> bool:
    return fmt != "replicate" or model == "flux"  # Replicate's flux-dev-lora-trainer trains Flux only


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lf-trainer-buckets-") as tmp:
        run(Path(tmp))


def run(home: Path) -> None:
    os.environ["LORAFORGE_HOME"] = str(home / "home")
    for key in [k for k in os.environ if k.startswith("LORAFORGE_") and k != "LORAFORGE_HOME"]:
        del os.environ[key]  # the embedded catalog and store, whatever the shell says

    from loraforge.errors import InvalidInput
    from loraforge.exporters import ExportSpec
    from loraforge.exporters.buckets import rule_for, trainer_rule
    from loraforge.imaging.buckets import bucket_set
    from loraforge.stages.bucket import BucketConfig
    from loraforge.stages.context import open_context
    from tests.support.aspect_photos import ASPECTS
    from tests.support.trainer_exports import add_dataset, bucket, export, exported_sizes

    ctx = open_context()

    def exported(dataset_id: str, fmt: str, folder: Path) -> list[tuple[int, int]]:
        """Export into `folder`; the sizes of the picture files written there."""
        export(ctx, dataset_id, fmt, folder)
        return exported_sizes(folder)

    started = time.perf_counter()
    rows = []
    for model in MODELS:
        dataset_id = add_dataset(ctx, model)
        formats = [fmt for fmt in FORMATS if supported(fmt, model)]
        bucket(ctx, dataset_id, BucketConfig(target=model, step=OLD_STEP[model]))
        before = {fmt: exported(dataset_id, fmt, home / f"before-{model}-{fmt}") for fmt in formats}
        old_set = len(bucket_set(model, step=OLD_STEP[model]).buckets)
        for fmt in formats:
            bucket(ctx, dataset_id, BucketConfig(target=model, trainer=fmt))
            after = exported(dataset_id, fmt, home / f"after-{model}-{fmt}")
            rule = trainer_rule(fmt, model)
            old_rule: BucketRule | None
            try:
                old_rule = rule_for(ExportSpec(format=fmt, target_model=model, bucket_step=OLD_STEP[model]))
            except InvalidInput:
                old_rule = None  # sd-scripts refuses to start
            rows.append(
                Row(
                    fmt,
                    model,
                    len(after),
                    None if old_rule is None else fixed(old_rule, before[fmt]),
                    fixed(rule, after),
                    len(set(before[fmt])),
                    len(set(after)),
                    old_set,
                    len(rule.buckets().buckets),
                )
            )
            assert len(after) == len(ASPECTS)
    print_table(rows)
    print(f"\n{len(ASPECTS)} pictures per dataset (1:4 to 4:1), {time.perf_counter() - started:.0f} s")


def fixed(rule: BucketRule, found: list[tuple[int, int]]) -> int:
    return sum(1 for size in found if rule.place(*size).keeps(*size))


def print_table(rows: list[Row]) -> None:
    print(
        "| format | model | pictures | fixed points before | fixed points after | "
        "buckets used before | after | bucket set before | after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        before = "refused (step 32)" if r.fixed_before is None else f"{r.fixed_before}/{r.pictures}"
        print(
            f"| {r.fmt} | {r.model} | {r.pictures} | {before} | {r.fixed_after}/{r.pictures} | "
            f"{r.used_before} | {r.used_after} | {r.set_before} | {r.set_after} |"
        )


if __name__ == "__main__":
    main()
