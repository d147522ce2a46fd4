"""BLIP image captioning (BlipForConditionalGeneration), optionally continuing a text prompt."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.models.captioners.base import register_captioner
from loraforge.models.captioners.hf import TransformersCaptioner
from loraforge.models.loading import Placement

if TYPE_CHECKING:
    from PIL import Image


@register_captioner("blip")
class BlipCaptioner(TransformersCaptioner):
    """BLIP; with a prompt ("a photography of") the caption continues it and the prompt is cut off."""

    name = "blip"
    default_model = "Salesforce/blip-image-captioning-large"

    def _load_model(self, path: Path, placement: Placement) -> Any:
        from transformers import BlipForConditionalGeneration

        return BlipForConditionalGeneration.from_pretrained(path, dtype=placement.torch_dtype)

    def _generate(self, images: list[Image.Image]) -> list[str]:
        processor = self._processor
        if self.prompt:
            inputs = processor(images=images, text=[self.prompt] * len(images), return_tensors="pt")
            # BLIP swaps [CLS] for its decoder start token and drops the closing [SEP]; what follows the
            # prompt's own tokens is the caption.
            skip = 1 + int(inputs["input_ids"].shape[1]) - 2
        else:
            inputs = processor(images=images, return_tensors="pt")
            skip = 0
        output = self._model.generate(**self._to_device(inputs), **self._generate_options())
        return list(processor.batch_decode(output[:, skip:], skip_special_tokens=True))
