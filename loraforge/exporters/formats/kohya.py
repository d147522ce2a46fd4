"""kohya sd-scripts / kohya_ss: `img/<repeats>_<trigger> <class>/` folders plus a dataset_config.toml.

Buckets: sd-scripts' own (`KohyaBuckets`): `make_bucket_resolutions` on the model's grid with a
`bucket_reso_steps` that the model's training script accepts, written into the TOML with the resolution and
the side limits, so sd-scripts builds exactly the set the bucket stage rendered and takes every image as it
is (an image whose size is one of its buckets is neither resized nor cropped).

Paths: relative to the export in the stored version (launch from the export's folder); the --out folder copy
names its absolute path (launch from anywhere); spec.dataset_root names another place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from loraforge.captioning.policy import trigger_phrase
from loraforge.errors import InvalidInput
from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.registry import register_exporter
from loraforge.exporters.writer import ExportWriter
from loraforge.imaging.buckets import Bucket, BucketSet, Placement, kohya_buckets

CONFIG_NAME = "dataset_config.toml"

SCRIPTS: dict[str, tuple[str, int]] = {
    "sd15": ("train_network.py", 64),
    "sdxl": ("sdxl_train_network.py", 32),
    "flux": ("flux_train_network.py", 64),
}
"""Model -> (sd-scripts LoRA script, the step its `verify_bucket_reso_steps` demands a multiple of):
train_network.py NetworkTrainer.assert_extra_args checks 64; sdxl_train_network.py's override checks 32
only; flux_train_network.py FluxNetworkTrainer.assert_extra_args calls the base check (64), then 32."""


@dataclass(frozen=True)
class KohyaBuckets:
    """sd-scripts' bucketing with `enable_bucket` (kohya-ss/sd-scripts, library/train_util.py, BucketManager:
    make_buckets builds model_util.make_bucket_resolutions((resolution, resolution), min, max, steps);
    select_bucket places each image)."""

    resolution: int
    min_reso: int
    max_reso: int
    step: int
    no_upscale: bool = False
    name: str = "kohya sd-scripts"
    resos: tuple[tuple[int, int], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # BaseDataset.adjust_min_max_bucket_reso_by_steps: sd-scripts moves limits off the step grid and
        # refuses a resolution outside them; the rule here refuses both, so the config is taken unchanged.
        if self.min_reso % self.step or self.max_reso % self.step:
            raise InvalidInput(
                f"bucket limits {self.min_reso}/{self.max_reso} are not multiples of {self.step}"
            )
        if not self.min_reso <= self.resolution <= self.max_reso:
            raise InvalidInput(
                f"resolution {self.resolution} is outside the bucket limits {self.min_reso}-{self.max_reso}"
            )
        resos = kohya_buckets(self.resolution, self.min_reso, self.max_reso, self.step)
        object.__setattr__(self, "resos", tuple((b.width, b.height) for b in resos))

    def buckets(self) -> BucketSet:
        return BucketSet(self.name, tuple(Bucket(w, h) for w, h in self.resos), self.step)

    def place(self, width: int, height: int) -> Placement:
        """BucketManager.select_bucket: a size among the buckets is its own bucket; otherwise the bucket of
        the closest aspect ratio (first of the sorted list on ties), scaled to cover it, then cropped. With
        bucket_no_upscale the bucket is cut from the image at most resolution² pixels large instead."""
        aspect = width / height
        if not self.no_upscale:
            reso = (width, height)
            if reso not in self.resos:
                errors = [abs(w / h - aspect) for w, h in self.resos]
                reso = self.resos[errors.index(min(errors))]
            if aspect > reso[0] / reso[1]:
                scale = reso[1] / height
            else:
                scale = reso[0] / width
            return Placement(reso, (int(width * scale + 0.5), int(height * scale + 0.5)))
        max_area = self.resolution * self.resolution
        resized = (width, height)
        if width * height > max_area:
            resized_width = (max_area * aspect) ** 0.5
            resized_height = max_area / resized_width
            b_width_rounded = self._round_to_steps(resized_width)
            b_height_in_wr = self._round_to_steps(b_width_rounded / aspect)
            ar_width_rounded = b_width_rounded / b_height_in_wr
            b_height_rounded = self._round_to_steps(resized_height)
            b_width_in_hr = self._round_to_steps(b_height_rounded * aspect)
            ar_height_rounded = b_width_in_hr / b_height_rounded
            if abs(ar_width_rounded - aspect) < abs(ar_height_rounded - aspect):
                resized = (b_width_rounded, int(b_width_rounded / aspect + 0.5))
            else:
                resized = (int(b_height_rounded * aspect + 0.5), b_height_rounded)
        bucket = (resized[0] - resized[0] % self.step, resized[1] - resized[1] % self.step)
        return Placement(bucket, resized)

    def _round_to_steps(self, value: float) -> int:
        rounded = int(value + 0.5)
        return rounded - rounded % self.step


def instance_folder(repeats: int, trigger: str | None, class_word: str | None) -> str:
    """kohya's folder name: the repeat count before the first "_", then the instance and class tokens."""
    tokens = trigger_phrase(trigger, class_word) or class_word or "images"
    return f"{repeats}_{tokens}"


@register_exporter("kohya")
class KohyaExporter:
    name = "kohya"
    default_repeats = 10

    def bucket_rule(self, spec: ExportSpec) -> KohyaBuckets:
        script, required = SCRIPTS[spec.target_model]
        assert spec.resolution and spec.min_bucket_reso and spec.max_bucket_reso and spec.bucket_step
        if spec.bucket_step % required:
            raise InvalidInput(
                f"bucket_step {spec.bucket_step}: sd-scripts' {script} refuses to start unless "
                f"bucket_reso_steps is a multiple of {required}"
            )
        return KohyaBuckets(
            spec.resolution,
            spec.min_bucket_reso,
            spec.max_bucket_reso,
            spec.bucket_step,
            spec.bucket_no_upscale,
        )

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None:
        out.write_images(items, self._train_dir(spec))
        if spec.reg_items:
            out.write_images(spec.reg_items, self._reg_dir(spec))
        for name, text in self.configs(spec).items():
            out.write_text(name, text)

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        rule = self.bucket_rule(spec)
        train = self._subset(spec, self._train_dir(spec), spec.repeats_or(self.default_repeats), is_reg=False)
        subsets: list[dict[str, Any]] = [train]
        if spec.reg_items:
            subsets.append(self._subset(spec, self._reg_dir(spec), spec.reg_repeats, is_reg=True))
        return {CONFIG_NAME: _header(spec, rule) + tomli_w.dumps(self._config(spec, rule, subsets))}

    def _train_dir(self, spec: ExportSpec) -> str:
        repeats = spec.repeats_or(self.default_repeats)
        return f"img/{instance_folder(repeats, spec.trigger_word, spec.class_word)}"

    def _reg_dir(self, spec: ExportSpec) -> str:
        return f"reg/{instance_folder(spec.reg_repeats, None, spec.class_word)}"

    def _subset(self, spec: ExportSpec, folder: str, repeats: int, *, is_reg: bool) -> dict[str, Any]:
        phrase = trigger_phrase(spec.trigger_word, spec.class_word)
        tokens = spec.class_word if is_reg else phrase or spec.class_word
        subset: dict[str, Any] = {
            "image_dir": spec.path_in_dataset(folder),
            "num_repeats": repeats,
            "caption_extension": spec.caption_extension,
            "is_reg": is_reg,
            "keep_tokens": 0 if is_reg else spec.effective_keep_tokens,
            "shuffle_caption": spec.shuffle_caption,
            "flip_aug": spec.flip_aug,
            "caption_dropout_rate": 0.0 if is_reg else spec.caption_dropout_rate,
        }
        if tokens:
            subset["class_tokens"] = tokens
        return subset

    def _config(self, spec: ExportSpec, rule: KohyaBuckets, subsets: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "general": {
                "caption_extension": spec.caption_extension,
                "shuffle_caption": spec.shuffle_caption,
                "keep_tokens": spec.effective_keep_tokens,
            },
            "datasets": [
                {
                    "resolution": rule.resolution,
                    "batch_size": spec.batch_size,
                    "enable_bucket": True,
                    "min_bucket_reso": rule.min_reso,
                    "max_bucket_reso": rule.max_reso,
                    "bucket_reso_steps": rule.step,
                    "bucket_no_upscale": rule.no_upscale,
                    "subsets": subsets,
                }
            ],
        }


def _header(spec: ExportSpec, rule: KohyaBuckets) -> str:
    script = SCRIPTS[spec.target_model][0]
    lines = [f"Written by LoRA Forge for sd-scripts' {script} (--dataset_config this file)."]
    if spec.dataset_root is None:
        lines += [
            "image_dir paths are relative: sd-scripts opens them from the folder it is launched in, so cd",
            "into this file's folder first, then:",
            f"  accelerate launch /path/to/sd-scripts/{script} --dataset_config {CONFIG_NAME} ...",
        ]
    else:
        config = f"{spec.dataset_root.rstrip('/')}/{CONFIG_NAME}"
        lines += [
            "image_dir paths are absolute: launch from any folder, e.g.",
            f'  accelerate launch /path/to/sd-scripts/{script} --dataset_config "{config}" ...',
        ]
    lines += [
        f"Buckets: make_bucket_resolutions at {rule.resolution} px, sides {rule.min_reso}-{rule.max_reso},",
        f"step {rule.step}: every image is already one of them, so sd-scripts neither resizes nor crops it.",
    ]
    return "".join(f"# {line}\n" for line in lines)
