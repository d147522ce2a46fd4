"""Caption setup in the driver: the user's request, choosing and checking the captioner, building a stage."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loraforge.captioning import CaptionPolicy
from loraforge.config import Settings
from loraforge.errors import InvalidInput, ModelError
from loraforge.models.captioners import Captioner, build_captioner
from loraforge.models.captioners.hf import TransformersCaptioner
from loraforge.models.extras import MODELS_EXTRA, installed, require_models
from loraforge.models.loading import resolve_model_path
from loraforge.stages.options import CaptionOptions
from loraforge.storage import StoreConfig

if TYPE_CHECKING:
    from loraforge.stages.caption import CaptionStage

DEFAULT_INPUT_SIDE = 768
DEFAULT_BATCH_SIZE = {"template": 64}
FALLBACK_BATCH_SIZE = 8
# Local models tried, best first, when the user names none; found only offline (model dir or HF cache).
LOCAL_MODEL_CANDIDATES = (
    ("florence2", "florence-community/Florence-2-large"),
    ("florence2", "florence-community/Florence-2-base"),
    ("blip", "Salesforce/blip-image-captioning-large"),
    ("blip", "Salesforce/blip-image-captioning-base"),
)
TEMPLATE_FALLBACK_REASON = "no captioning model found locally; using the template captioner"
NO_TRIGGER_WARNING = "no trigger word: the captions hold no word to call this LoRA by"
NO_TRIGGER_HINT = 'give one with --trigger, e.g. --trigger "ohwx woman" (a rare token, then the class word)'


@dataclass(frozen=True)
class Resize:
    """How a picture is shrunk before captioning.

    "cover" keeps both sides at least `side` (what a processor resizing to a fixed size needs);
    "contain" keeps the longer side at most `side` (what an endpoint wants).
    """

    side: int
    mode: Literal["cover", "contain"] = "cover"

    def target(self, width: int, height: int) -> tuple[int, int]:
        short, long = min(width, height), max(width, height)
        scale = self.side / short if self.mode == "cover" else self.side / long
        if scale >= 1:
            return width, height
        return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class CaptionRequest:
    """What the user asked for, as plain values (flows, the CLI and the API build one)."""

    kind: str = "template"
    model: str | None = None
    prompt: str | None = None
    template: str | None = None
    endpoint: str | None = None
    api_key: str | None = None
    variant: str | None = None
    prefix: str = ""
    suffix: str = ""
    placement: str = "front"
    batch_size: int | None = None
    num_gpus: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Extra captioner options (max_new_tokens, num_beams, ...), passed to build_captioner."""

    @property
    def variant_name(self) -> str:
        name = (self.variant or self.kind).strip()
        if not name or len(name) > 100:
            raise InvalidInput("the caption variant name must have 1 to 100 characters")
        return name


def build_caption_stage(
    request: CaptionRequest,
    *,
    settings: Settings,
    store_config: StoreConfig,
    trigger: str | None,
    class_word: str | None,
    max_tokens: int,
    gpu_available: Callable[[], bool] = lambda: False,
    pool_size: int | None = None,
) -> CaptionStage:
    """Build the stage and check, here in the driver, that its model or endpoint can be used at all.

    Raises ModelError with one message when the model cannot be found or the endpoint cannot be reached,
    before any picture is touched. `gpu_available` is asked only for a local model without --num-gpus.
    """
    from loraforge.stages.caption import CaptionStage  # the worker module re-exports this one

    if request.num_gpus is not None and request.num_gpus < 0:
        raise InvalidInput("--num-gpus must not be negative")
    if request.batch_size is not None and request.batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")
    try:
        policy = CaptionPolicy(
            trigger=trigger or None,
            class_word=class_word or None,
            placement=request.placement,  # type: ignore[arg-type]
            prefix=request.prefix or "",
            suffix=request.suffix or "",
            max_tokens=max_tokens,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    kind = request.kind
    options: dict[str, Any] = dict(request.options)
    if kind == "template":
        options["template"] = request.template
        # The policy places trigger and class word; the template only gets the class word without a trigger.
        options["class_word"] = None if trigger else class_word
    elif request.template:
        raise InvalidInput("--template applies to the template captioner only")
    if kind == "openai":
        options.update(base_url=request.endpoint, api_key=request.api_key)
    elif request.endpoint:
        raise InvalidInput("--endpoint applies to the openai captioner only")
    captioner = build_captioner(kind, model=request.model, prompt=request.prompt, **options)
    num_gpus, cpu_threads = 0.0, None
    if isinstance(captioner, TransformersCaptioner):
        captioner.model_dir = settings.model_dir
    resize = check_captioner(captioner, model_dir=settings.model_dir)
    if isinstance(captioner, TransformersCaptioner):
        num_gpus = request.num_gpus if request.num_gpus is not None else (1.0 if gpu_available() else 0.0)
        # Ray workers see the GPUs even with num_gpus=0, so a CPU actor is told its device explicitly.
        captioner.device = "cuda" if num_gpus > 0 else "cpu"
        if num_gpus == 0:
            cpu_threads = max(1, (os.cpu_count() or 1) // max(1, pool_size or 1))
    return CaptionStage(
        store_config=store_config,
        captioner=captioner,
        policy=policy,
        max_pixels=settings.max_image_pixels,
        resize=resize,
        batch_size=request.batch_size or DEFAULT_BATCH_SIZE.get(kind, FALLBACK_BATCH_SIZE),
        num_gpus=num_gpus,
        cpu_threads=cpu_threads,
        stateful=resize is not None,
    )


def check_captioner(captioner: Captioner, *, model_dir: Path | None) -> Resize | None:
    """Fail early when the captioner cannot work; returns how its pictures should be sized."""
    if isinstance(captioner, TransformersCaptioner):
        require_models(f"the {captioner.name} captioner", "torch", "transformers")
        path = resolve_model_path(captioner.model_ref, model_dir=model_dir)
        return Resize(side=model_input_side(path), mode="cover")
    max_side = getattr(captioner, "max_side", None)
    if max_side is None:
        return None
    # An endpoint: opening the client probes it, and a transport failure raises EndpointUnreachable.
    captioner.load()
    close = getattr(captioner, "close", None)
    if callable(close):
        close()
    return Resize(side=int(max_side), mode="contain")


def model_input_side(folder: Path) -> int:
    """The side a model's image processor works at, read from its saved configuration."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        config = config.get("image_processor", config)
        side = _side_of(config.get("size")) or _side_of(config.get("crop_size"))
        if side:
            return side
    return DEFAULT_INPUT_SIDE


def _side_of(size: Any) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        sides = [int(v) for k, v in size.items() if k in ("height", "width", "shortest_edge") and v]
        return max(sides) if sides else None
    return None


def default_captioner(settings: Settings) -> tuple[str, str | None, str]:
    """(kind, model, reason): a real model whose weights are on this machine, else the template captioner."""
    if not (installed("torch") and installed("transformers")):
        return "template", None, f"{TEMPLATE_FALLBACK_REASON} (model captioners: {MODELS_EXTRA})"
    for kind, ref in LOCAL_MODEL_CANDIDATES:
        try:
            resolve_model_path(ref, model_dir=settings.model_dir, allow_download=False)
        except ModelError:
            continue
        return kind, ref, f"using the {kind} model {ref} found locally"
    return "template", None, TEMPLATE_FALLBACK_REASON


def caption_request(options: CaptionOptions, settings: Settings) -> tuple[CaptionRequest, str | None]:
    """The request the options describe, `auto` resolved, and a note when the choice needs saying.

    The openai captioner's endpoint and key come from the server's settings only, never from options.
    """
    kind: str
    kind, model, note = options.captioner, options.model, None
    if kind == "auto":
        kind, model, note = default_captioner(settings)
        model = options.model or model
    request = CaptionRequest(
        kind=kind,
        model=model,
        prompt=options.prompt,
        template=options.template,
        endpoint=settings.caption_endpoint if kind == "openai" else None,
        variant=options.variant,
        prefix=options.prefix,
        suffix=options.suffix,
        placement=options.placement,
        batch_size=options.batch_size,
        num_gpus=options.num_gpus,
    )
    return request, note
