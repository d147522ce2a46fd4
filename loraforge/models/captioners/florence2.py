"""Florence-2 captioning with the native transformers 5 classes and task prompts (<MORE_DETAILED_CAPTION>)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.errors import InvalidInput
from loraforge.models.captioners.base import register_captioner
from loraforge.models.captioners.hf import TransformersCaptioner
from loraforge.models.loading import Placement

if TYPE_CHECKING:
    from PIL import Image

CAPTION_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OCR>")
# microsoft/Florence-2-* hold remote code and weight names the native transformers class cannot read (it
# would load random weights); florence-community holds the same checkpoints converted, under the same names.
REMOTE_CODE_PREFIX = "microsoft/Florence-2"
NATIVE_ORG = "florence-community"


@register_captioner("florence2")
class Florence2Captioner(TransformersCaptioner):
    """Florence-2; the prompt is a task token, and the processor's post-processing extracts the text."""

    name = "florence2"
    default_model = "florence-community/Florence-2-large"
    default_prompt = "<MORE_DETAILED_CAPTION>"
    default_max_new_tokens = 256

    def validate(self) -> None:
        if self.prompt not in CAPTION_TASKS:
            tasks = ", ".join(CAPTION_TASKS)
            raise InvalidInput(f"florence2 prompt must be a caption task ({tasks}), not {self.prompt!r}")
        if self.model_ref.startswith(REMOTE_CODE_PREFIX):
            self.model_ref = f"{NATIVE_ORG}/{self.model_ref.split('/', 1)[1]}"

    def _load_model(self, path: Path, placement: Placement) -> Any:
        from transformers import Florence2ForConditionalGeneration

        return Florence2ForConditionalGeneration.from_pretrained(path, dtype=placement.torch_dtype)

    def _generate(self, images: list[Image.Image]) -> list[str]:
        processor = self._processor
        task = str(self.prompt)
        inputs = processor(text=[task] * len(images), images=images, return_tensors="pt", padding=True)
        output = self._model.generate(**self._to_device(inputs), **self._generate_options())
        # Location tokens matter to other tasks, so decode with special tokens and let the processor parse.
        decoded = processor.batch_decode(output, skip_special_tokens=False)
        pad = processor.tokenizer.pad_token or ""
        captions = []
        for text, image in zip(decoded, images, strict=True):
            parsed = processor.post_process_generation(text, task=task, image_size=image.size)[task]
            captions.append(str(parsed).replace(pad, " ") if pad else str(parsed))
        return captions
