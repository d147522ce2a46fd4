"""Captioning throughput: batched `caption_batch` beside a naive one-image-at-a-time generate() loop.

Both paths run the same BLIP-architecture model (built from a config, random weights, saved and loaded like
downloaded weights) on the same real photos in the same process, so the ratio is a fair measure of batching.

    python bench/caption.py [--images 64] [--batch-size 16] [--hidden 128] [--layers 2] [--image-size 96]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.tiny_models import BlipSize, build_tiny_blip  # noqa: E402


def real_photos(count: int) -> list:
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


def load_naive(folder: Path) -> tuple[object, object]:
    from transformers import AutoProcessor, BlipForConditionalGeneration

    return AutoProcessor.from_pretrained(folder), BlipForConditionalGeneration.from_pretrained(folder).eval()


def naive_captions(loaded: tuple, images: list, *, max_new_tokens: int) -> list[str]:
    """What a first script does: one processor call and one generate() per picture."""
    import torch

    processor, model = loaded
    captions = []
    with torch.inference_mode():
        for image in images:
            inputs = processor(images=image, return_tensors="pt")
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=1)
            captions.append(processor.decode(output[0], skip_special_tokens=True))
    return captions


def batched_captions(captioner: object, images: list, *, batch_size: int) -> list[str]:
    captions: list[str] = []
    for start in range(0, len(images), batch_size):
        captions.extend(captioner.caption_batch(images[start : start + batch_size]))
    return captions


def timed(label: str, run: object, count: int) -> float:
    started = time.perf_counter()
    captions = run()  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    assert len(captions) == count
    rate = count / elapsed
    print(f"{label:<34} {count:>4} images in {elapsed:6.2f} s = {rate:7.2f} captions/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    args = parser.parse_args()

    import torch

    from loraforge.models.captioners import build_captioner

    if args.threads:
        torch.set_num_threads(args.threads)

    size = BlipSize(
        hidden=args.hidden, layers=args.layers, heads=4, image_size=args.image_size, patch_size=16
    )
    images = real_photos(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_blip(Path(tmp) / "blip", size)
        from safetensors.torch import load_file

        params = sum(tensor.numel() for tensor in load_file(str(folder / "model.safetensors")).values())
        print(f"BLIP from config: hidden {size.hidden}, {size.layers} layers, {size.image_size} px, "
              f"{params / 1e6:.1f} M parameters; torch threads {torch.get_num_threads()}; "
              f"{args.max_new_tokens} new tokens, greedy")
        # Both paths load once and are warmed once, so only captioning is timed.
        loaded = load_naive(folder)
        captioner = build_captioner(
            "blip", model=str(folder), device="cpu", max_new_tokens=args.max_new_tokens, num_beams=1
        )
        captioner.load()
        naive_captions(loaded, images[:2], max_new_tokens=2)
        batched_captions(captioner, images[:2], batch_size=2)
        naive = timed("naive per-image generate()", lambda: naive_captions(
            loaded, images, max_new_tokens=args.max_new_tokens), len(images))
        batched = timed(f"caption_batch, batch {args.batch_size}", lambda: batched_captions(
            captioner, images, batch_size=args.batch_size), len(images))
    print(f"batched / naive = {batched / naive:.2f}x")


if __name__ == "__main__":
    main()
