"""GIT image captioning (AutoModelForCausalLM with a GIT checkpoint), optionally continuing a text prompt."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.models.captioners.base import register_captioner
from loraforge.models.captioners.hf import TransformersCaptioner
from loraforge.models.loading import Placement

if TYPE_CHECKING:
    from PIL import Image


@register_captioner("git")
class GitCaptioner(TransformersCaptioner):
    """Microsoft GIT; a decoder-only model whose text starts with [CLS] and then the optional prompt."""

    name = "git"
    default_model = "microsoft/git-large-coco"

    def _load_model(self, path: Path, placement: Placement) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=placement.torch_dtype)

    def _generate(self, images: list[Image.Image]) -> list[str]:
        import torch

        processor = self._processor
        inputs = self._to_device(processor(images=images, return_tensors="pt"))
        options = self._generate_options()
        skip = 0
        if self.prompt:
            prompt_ids = processor(text=self.prompt, add_special_tokens=False)["input_ids"]
            first = [processor.tokenizer.cls_token_id, *prompt_ids]
            input_ids = torch.tensor([first] * len(images), device=inputs["pixel_values"].device)
            options["input_ids"] = input_ids
            skip = len(first)
        output = self._model.generate(pixel_values=inputs["pixel_values"], **options)
        return list(processor.batch_decode(output[:, skip:], skip_special_tokens=True))
