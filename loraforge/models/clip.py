"""open_clip image embeddings (L2-normalised float32) and a zero-shot tagger over a fixed vocabulary."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.errors import ModelError
from loraforge.models.loading import Placement, choose_placement

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

logger = logging.getLogger(__name__)

_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


class ClipEmbedder:
    """Embeds pictures with an open_clip model; weights from a local checkpoint, an open_clip tag, or none."""

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        *,
        pretrained: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 64,
        model_dir: Path | None = None,
    ) -> None:
        self.model_name = model_name
        self.pretrained = None if pretrained is None else str(pretrained)
        self.device = device
        self.batch_size = max(1, batch_size)
        self.model_dir = model_dir
        self._model: Any = None
        self._preprocess: Any = None
        self._placement: Placement | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None, "_preprocess": None, "_placement": None}

    @property
    def model(self) -> Any:
        self.load()
        return self._model

    def load(self) -> None:
        if self._model is not None:
            return
        from loraforge.models.extras import require_models

        require_models("CLIP embeddings", "torch", "open_clip")
        import open_clip

        placement = choose_placement(self.device)
        weights = self._resolve_weights()
        if weights is None:
            logger.warning("CLIP model %s has random weights: embeddings carry no meaning", self.model_name)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name,
                pretrained=weights,
                device=placement.device,
                precision=_PRECISION[placement.dtype],
            )
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            source = weights or "random weights"
            raise ModelError(f"cannot load CLIP model {self.model_name} ({source}): {reason}") from exc
        model.eval()
        self._model, self._preprocess, self._placement = model, preprocess, placement

    def _resolve_weights(self) -> str | None:
        if self.pretrained is None:
            return None
        direct = Path(self.pretrained).expanduser()
        if direct.is_file():
            return str(direct)
        model_dir = self.model_dir if self.model_dir is not None else _settings_model_dir()
        if model_dir is not None and (Path(model_dir) / self.pretrained).is_file():
            return str(Path(model_dir) / self.pretrained)
        if "/" in self.pretrained or self.pretrained.endswith(_WEIGHT_SUFFIXES):
            raise ModelError(
                f"CLIP weights {self.pretrained} not found: put the checkpoint there or under "
                "LORAFORGE_MODEL_DIR, or pass an open_clip pretrained tag"
            )
        return self.pretrained  # an open_clip tag such as "laion2b_s34b_b79k"

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """An (n, dim) float32 array of unit-length image embeddings, in input order."""
        import numpy as np
        import torch

        self.load()
        assert self._placement is not None
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = [self._preprocess(_rgb(image)) for image in images[start : start + self.batch_size]]
            pixels = torch.stack(batch).to(self._placement.device, dtype=self._placement.torch_dtype)
            with torch.inference_mode():
                features = self._model.encode_image(pixels)
            chunks.append(_normalise(features))
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length text embeddings in the same space as the image embeddings."""
        import open_clip
        import torch

        self.load()
        assert self._placement is not None
        tokenizer = open_clip.get_tokenizer(self.model_name)
        tokens = tokenizer(list(texts)).to(self._placement.device)
        with torch.inference_mode():
            features = self._model.encode_text(tokens)
        return _normalise(features)

    @property
    def dim(self) -> int:
        self.load()
        return int(self._model.visual.output_dim)


class ClipTagger:
    """Zero-shot tags: each picture scored against `prompt_template` filled with every vocabulary word."""

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        *,
        vocabulary: Sequence[str],
        pretrained: str | Path | None = None,
        prompt_template: str = "a photo of {}",
        device: str | None = None,
        model_dir: Path | None = None,
    ) -> None:
        cleaned = [word.strip() for word in vocabulary if word and word.strip()]
        if not cleaned:
            raise ModelError("the CLIP tagger needs a non-empty vocabulary")
        self.vocabulary = list(dict.fromkeys(cleaned))
        self.prompt_template = prompt_template
        self.embedder = ClipEmbedder(model_name, pretrained=pretrained, device=device, model_dir=model_dir)
        self._text_features: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_text_features": None}

    def load(self) -> None:
        if self._text_features is None:
            prompts = [self.prompt_template.format(word) for word in self.vocabulary]
            self._text_features = self.embedder.embed_texts(prompts)

    def tag(
        self, images: Sequence[Image.Image], *, top_k: int = 5, min_score: float = 0.0
    ) -> list[list[tuple[str, float]]]:
        """Per picture, up to `top_k` (tag, probability) pairs at or above `min_score`, best first."""
        return self.tag_embeddings(self.embedder.embed(images), top_k=top_k, min_score=min_score)

    def tag_embeddings(
        self, embeddings: np.ndarray, *, top_k: int = 5, min_score: float = 0.0
    ) -> list[list[tuple[str, float]]]:
        """Tags for embeddings already computed by this tagger's embedder (reuse from curation)."""
        import numpy as np

        self.load()
        assert self._text_features is not None
        scale = float(self.embedder.model.logit_scale.exp().item())
        logits = scale * embeddings @ self._text_features.T
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        results = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[: max(0, top_k)]
            results.append([(self.vocabulary[i], float(row[i])) for i in order if row[i] >= min_score])
        return results


def _normalise(features: Any) -> np.ndarray:
    import numpy as np

    array = features.float().cpu().numpy().astype(np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _settings_model_dir() -> Path | None:
    from loraforge.config import get_settings

    return get_settings().model_dir
