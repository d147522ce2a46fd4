"""The Captioner protocol, its registry, and batch captioning that turns per-image failures into outcomes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from loraforge.errors import InvalidInput, ModelError

if TYPE_CHECKING:
    from PIL import Image


@runtime_checkable
class Captioner(Protocol):
    """Turns pictures into raw captions. Built cheaply (picklable), `load()` once per worker, then batches."""

    name: str
    model_ref: str

    def load(self) -> None:
        """Load weights or open clients; calling it again does nothing."""

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        """One raw caption per image, in order; raises ModelError when the batch cannot be captioned."""
        ...


@dataclass(frozen=True)
class CaptionOutcome:
    """The caption of one image, or the one-line reason it has none."""

    text: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


C = TypeVar("C")
_REGISTRY: dict[str, Callable[..., Captioner]] = {}


def register_captioner(name: str) -> Callable[[C], C]:
    """Class decorator: make a captioner buildable by `build_captioner(name, ...)`."""

    def decorate(cls: C) -> C:
        if name in _REGISTRY:
            raise ValueError(f"captioner {name!r} is registered twice")
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def captioner_kinds() -> list[str]:
    """Names accepted by build_captioner."""
    return sorted(_REGISTRY)


def build_captioner(
    kind: str,
    *,
    model: str | None = None,
    prompt: str | None = None,
    device: str | None = None,
    **options: Any,
) -> Captioner:
    """An unloaded captioner of `kind` (blip, git, florence2, openai, template); nothing heavy happens."""
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        known = ", ".join(captioner_kinds())
        raise InvalidInput(f"unknown captioner {kind!r}; choose one of {known}") from None
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidInput(f"captioner {kind} does not take option(s) {', '.join(unknown)}")
    return factory(model=model, prompt=prompt, device=device, **options)


def caption_images(captioner: Captioner, images: list[Image.Image]) -> list[CaptionOutcome]:
    """Caption a batch; if the batch fails, caption its images one by one so one bad image costs one caption.

    A captioner with its own `caption_each` (an endpoint that answers per image) is asked directly. Errors
    that concern every image (an endpoint that cannot be reached) still raise ModelError.
    """
    if not images:
        return []
    each = getattr(captioner, "caption_each", None)
    if callable(each):
        return list(each(images))
    try:
        return [CaptionOutcome(text=text) for text in captioner.caption_batch(images)]
    except ModelError as exc:
        if len(images) == 1:
            return [CaptionOutcome(error=_one_line(exc))]
    outcomes = []
    for image in images:
        try:
            outcomes.append(CaptionOutcome(text=captioner.caption_batch([image])[0]))
        except ModelError as exc:
            outcomes.append(CaptionOutcome(error=_one_line(exc)))
    return outcomes


def _one_line(exc: BaseException, limit: int = 300) -> str:
    flat = " ".join(str(exc).split()) or type(exc).__name__
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
