"""Captioning throughput: the caption stage on Ray's actor pool beside a naive per-image generate() loop.

All paths run the same BLIP-architecture model (built from a config, random weights, saved and loaded like
downloaded weights) on the same real photos, read from the same object store, in the same run:

- naive: what a first script does, in this process: read, decode, one processor call and one generate()
  per picture;
- stage: `run_stage(CaptionStage, executor="ray")` exactly as the caption flow's shard task runs it
  (CPU prepare step, actor pool that loads the model once per actor, batched generate, caption policy),
  on an already started (warm) Ray; the time includes starting the pipeline and its actors;
- caption_batch: the model-level batched call in this process, to show what the pipeline itself costs.

The stage pays a fixed start-up per run (actor processes importing torch and loading the model: about 12 s
on 2 cores), so the default is a dataset-sized pass of 320 pictures with a 7.7M-parameter BLIP (hidden 256,
4 layers, 224 px); at 48 pictures the start-up dominates and the stage is slower than the naive loop.

    python bench/caption.py [--images 320] [--batch-size 16] [--pool-size 1] [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.tiny_models import BlipSize, build_tiny_blip  # noqa: E402


def real_photos(count: int) -> list[Any]:
    """Real photographs that ship inside scikit-image, cycled (and mirrored) up to `count`."""
    import skimage
    from PIL import Image, ImageOps

    folder = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
    base = [Image.open(folder / name).convert("RGB") for name in names if (folder / name).exists()]
    photos = []
    for index in range(count):
        photo = base[index % len(base)]
        photos.append(ImageOps.mirror(photo) if (index // len(base)) % 2 else photo)
    return photos


def store_photos(store: Any, photos: list[Any]) -> list[dict[str, Any]]:
    """Put each photo in the store as a JPEG; items as the caption flow selects them."""
    items = []
    for index, photo in enumerate(photos):
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=92)
        key = f"originals/bench/{index:04d}.jpg"
        store.put(key, buffer.getvalue(), content_type="image/jpeg")
        items.append({"image_id": f"img{index:04d}", "filename": f"{index:04d}.jpg", "object_key": key})
    return items


def naive_captions(
    folder: Path, store: Any, items: list[dict[str, Any]], *, max_new_tokens: int
) -> list[str]:
    """Read, decode, process and generate one picture at a time (the model is loaded beforehand)."""
    import torch
    from PIL import Image

    processor, model = _naive_model(folder)
    captions = []
    with torch.inference_mode():
        for item in items:
            image = Image.open(io.BytesIO(store.get(item["object_key"]))).convert("RGB")
            inputs = processor(images=image, return_tensors="pt")
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=1)
            captions.append(processor.decode(output[0], skip_special_tokens=True))
    return captions


_NAIVE: dict[Path, tuple[Any, Any]] = {}


def _naive_model(folder: Path) -> tuple[Any, Any]:
    if folder not in _NAIVE:
        from transformers import AutoProcessor, BlipForConditionalGeneration

        _NAIVE[folder] = (
            AutoProcessor.from_pretrained(folder),
            BlipForConditionalGeneration.from_pretrained(folder).eval(),
        )
    return _NAIVE[folder]


def timed(label: str, run: Callable[[], list[Any]], count: int) -> float:
    started = time.perf_counter()
    outputs = run()
    elapsed = time.perf_counter() - started
    assert len(outputs) == count, (len(outputs), count)
    failures = [o for o in outputs if isinstance(o, dict) and o.get("error")]
    assert not failures, failures[:3]
    rate = count / elapsed
    print(f"{label:<44} {count:>4} images in {elapsed:7.2f} s = {rate:7.2f} captions/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pool-size", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()

    import torch

    from loraforge.captioning import max_tokens_for
    from loraforge.config import load_settings
    from loraforge.models.captioners import build_captioner
    from loraforge.stages.caption import CaptionRequest, build_caption_stage
    from loraforge.storage import StoreConfig, open_store
    from ray_tasks import ensure_ray, run_stage

    size = BlipSize(
        hidden=args.hidden, layers=args.layers, heads=4, image_size=args.image_size, patch_size=16
    )
    options = {"max_new_tokens": args.max_new_tokens, "num_beams": 1}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_blip(Path(tmp) / "blip", size)
        store_config = StoreConfig(url=f"file://{tmp}/objects")
        store = open_store(store_config)
        items = store_photos(store, real_photos(args.images))
        settings = load_settings(home=Path(tmp) / "home", executor="ray")
        request = CaptionRequest(kind="blip", model=str(folder), batch_size=args.batch_size, options=options)
        stage = build_caption_stage(
            request,
            settings=settings,
            store_config=store_config,
            trigger="ohwx",
            class_word="woman",
            max_tokens=max_tokens_for("sdxl"),
            pool_size=args.pool_size,
        )
        print(
            f"BLIP from config: hidden {size.hidden}, {size.layers} layers, {size.image_size} px; "
            f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()} here, "
            f"{stage.cpu_threads} per actor; {args.max_new_tokens} new tokens, greedy",
            flush=True,
        )
        ensure_ray(num_cpus=os.cpu_count())
        # Warm-up: Ray's workers started and imports cached; both paths' first calls are not timed.
        run_stage(stage, items[:2], executor="ray", pool_size=args.pool_size)
        naive_captions(folder, store, items[:2], max_new_tokens=2)

        naive = timed(
            "naive per-image generate() (this process)",
            lambda: naive_captions(folder, store, items, max_new_tokens=args.max_new_tokens),
            len(items),
        )
        staged = timed(
            f"caption stage on Ray, batch {args.batch_size}, pool {args.pool_size}",
            lambda: run_stage(stage, items, executor="ray", pool_size=args.pool_size),
            len(items),
        )
        captioner = build_captioner("blip", model=str(folder), device="cpu", **options)
        captioner.load()
        captioner.caption_batch(real_photos(2))
        photos = real_photos(args.images)
        batched = timed(
            f"caption_batch, batch {args.batch_size} (this process)",
            lambda: [
                text
                for start in range(0, len(photos), args.batch_size)
                for text in captioner.caption_batch(photos[start : start + args.batch_size])
            ],
            len(photos),
        )
    print(f"stage on Ray / naive = {staged / naive:.2f}x (target >= 2x)")
    print(f"caption_batch / naive = {batched / naive:.2f}x (model-level batching alone)")


if __name__ == "__main__":
    main()
