"""Shared machinery of the transformers captioners: offline loading, device placement, batched generate()."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from loraforge.errors import ModelError
from loraforge.models.loading import Placement, choose_placement, resolve_model_path

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)


class TransformersCaptioner:
    """A captioner backed by a transformers processor + generative model; subclasses fill in the model."""

    name: ClassVar[str]
    default_model: ClassVar[str]
    default_prompt: ClassVar[str | None] = None
    default_max_new_tokens: ClassVar[int] = 60

    def __init__(
        self,
        *,
        model: str | None = None,
        prompt: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        num_beams: int = 3,
        repetition_penalty: float = 1.0,
        model_dir: Path | None = None,
    ) -> None:
        max_new_tokens = max_new_tokens or self.default_max_new_tokens
        if max_new_tokens < 1 or num_beams < 1:
            raise ModelError("max_new_tokens and num_beams must be at least 1")
        self.model_ref = str(model or self.default_model)
        self.prompt = prompt if prompt is not None else self.default_prompt
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.repetition_penalty = repetition_penalty
        self.model_dir = model_dir
        self._processor: Any = None
        self._model: Any = None
        self._placement: Placement | None = None
        self.validate()

    def validate(self) -> None:
        """Reject options this model cannot use, at build time rather than on the worker."""

    def __getstate__(self) -> dict[str, Any]:
        # Ship configuration only: each Ray worker loads its own copy of the weights in load().
        return {**self.__dict__, "_processor": None, "_model": None, "_placement": None}

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        if self._model is not None:
            return
        path = resolve_model_path(self.model_ref, model_dir=self.model_dir)
        placement = choose_placement(self.device, self.dtype)
        try:
            processor = self._load_processor(path)
            model = self._load_model(path, placement)
            model.to(placement.device)
            model.eval()
        except ModelError:
            raise
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ModelError(f"cannot load {self.name} model {self.model_ref} from {path}: {reason}") from exc
        self._processor, self._model, self._placement = processor, model, placement
        logger.info("loaded %s captioner %s on %s (%s)", self.name, path, placement.device, placement.dtype)

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        if not images:
            return []
        self.load()
        import torch

        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        try:
            with torch.inference_mode():
                texts = self._generate(rgb)
        except ModelError:
            raise
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ModelError(f"{self.name} captioning failed on {len(images)} image(s): {reason}") from exc
        return [" ".join(text.split()) for text in texts]

    def _generate_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams}
        if self.repetition_penalty != 1.0:
            options["repetition_penalty"] = self.repetition_penalty
        return options

    def _to_device(self, inputs: Any) -> dict[str, Any]:
        """Move processor outputs to the model's device; only floating tensors (pixels) take its dtype."""
        assert self._placement is not None
        moved: dict[str, Any] = {}
        for key, value in dict(inputs).items():
            if hasattr(value, "to"):
                if value.is_floating_point():
                    value = value.to(self._placement.device, dtype=self._placement.torch_dtype)
                else:
                    value = value.to(self._placement.device)
            moved[key] = value
        return moved

    def _load_processor(self, path: Path) -> Any:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path)

    def _load_model(self, path: Path, placement: Placement) -> Any:
        raise NotImplementedError

    def _generate(self, images: list[Image.Image]) -> list[str]:
        raise NotImplementedError
