"""A curation test corpus with known answers, built from the real photos that ship inside installed packages.

Sources: colour photos from scikit-image (astronaut, chelsea, coffee, ihc, motorcycle_left, retina, rocket),
scikit-learn (china, flower) and matplotlib (grace_hopper), and scikit-image's grey photos. The photos are
cut into non-overlapping halves, thirds or (retina) interior quadrants, so no two originals share pixels;
this yields 26 distinct clean originals of 200-600 px (their pixel-area side is 280-480 px).

Two pools, so that the duplicate answers stay unambiguous:

- pool "dedup": each original plus its near-duplicate variants (re-encoded JPEG, resized, 90% and 95%
  crops, brighter/darker by 20%, mild blur, text overlay, grey copy, mirrored copy) and a few exact copies
  (same bytes; same pixels with other metadata). Every image has `cluster` = its original's index.
- pool "checks": one defective copy of every original per check (heavy blur, dark, overexposed, flattened,
  tiny, extreme aspect ratio strip, grey-as-RGB), plus the grey photos saved as RGB; `defect` names the
  check that should flag it. Hard negatives sit beside them with no defect: a "bokeh" copy of every
  original (sharp centre, background blurred as by a wide aperture), which the blur check must pass. The
  pool shares content with pool "dedup" on purpose and is never mixed into the duplicate evaluation.

A grey copy is both a near duplicate (same picture) and a grayscale defect: it sits in pool "dedup" with
`defect="grayscale"`, so it counts for duplicate recall and for grayscale recall, never as a clean image.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps, PngImagePlugin

NEAR_DUPLICATE_KINDS = (
    "reencoded",
    "resized",
    "crop90",
    "crop95",
    "brightness",
    "mild_blur",
    "overlay",
    "grey",
    "mirrored",
)
EXACT_KINDS = ("same_bytes", "same_pixels")
DEFECT_KINDS = (
    "blurry",
    "dark",
    "light",
    "low_information",
    "low_resolution",
    "odd_aspect_ratio",
    "grayscale",
)
TARGET_RESOLUTION = 512
"""The corpus is sized for an SD 1.5 dataset: originals are above half of 512 px, tiny defects far below."""


@dataclass(frozen=True)
class CorpusImage:
    id: str
    data: bytes
    pool: str
    """"dedup" or "checks"."""
    cluster: int | None
    """Index of the original this picture shows (pool "dedup" only); None in pool "checks"."""
    kind: str
    """"original", a near-duplicate kind, an exact kind, or a defect kind."""
    defect: str | None
    """The check that should flag this picture; None for a clean one."""

    @property
    def is_clean(self) -> bool:
        return self.defect is None


def _package_file(package: str, *parts: str) -> Path:
    import importlib

    module = importlib.import_module(package)
    return Path(module.__file__).parent.joinpath(*parts)  # type: ignore[arg-type]


def _photos() -> dict[str, Image.Image]:
    files = {
        "astronaut": ("skimage", "data", "astronaut.png"),
        "chelsea": ("skimage", "data", "chelsea.png"),
        "coffee": ("skimage", "data", "coffee.png"),
        "ihc": ("skimage", "data", "ihc.png"),
        "motorcycle": ("skimage", "data", "motorcycle_left.png"),
        "retina": ("skimage", "data", "retina.jpg"),
        "rocket": ("skimage", "data", "rocket.jpg"),
        "china": ("sklearn", "datasets", "images", "china.jpg"),
        "flower": ("sklearn", "datasets", "images", "flower.jpg"),
        "grace_hopper": ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    }
    return {name: Image.open(_package_file(*where)).convert("RGB") for name, where in files.items()}


def _grey_photos() -> list[Image.Image]:
    names = ("camera", "moon", "coins", "cell", "grass", "gravel", "brick", "page")
    return [Image.open(_package_file("skimage", "data", f"{n}.png")).convert("RGB") for n in names]


def _originals() -> list[Image.Image]:
    """Disjoint pieces of the photos: halves of the square-ish ones, thirds of the wide ones."""
    pieces: list[Image.Image] = []
    for name, photo in _photos().items():
        w, h = photo.size
        if name == "retina":
            pieces += [photo.crop((x, y, x + 480, y + 480)) for y in (230, 710) for x in (230, 710)]
        elif name == "chelsea":
            pieces.append(photo)
        elif w >= 640 and w > h:
            third = w // 3
            pieces += [photo.crop((i * third, 0, (i + 1) * third, h)) for i in range(3)]
        else:
            half = w // 2
            pieces += [photo.crop((0, 0, half, h)), photo.crop((half, 0, 2 * half, h))]
    return pieces


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _png(image: Image.Image, note: str | None = None) -> bytes:
    out = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    if note:
        info.add_text("Comment", note)
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _with_comment(data: bytes, note: str) -> bytes:
    """The same picture with other metadata: a JPEG COM segment or a PNG text chunk, pixels untouched."""
    if data[:2] == b"\xff\xd8":
        payload = note.encode()
        return data[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]
    return _png(Image.open(io.BytesIO(data)), note=note)


def _crop(image: Image.Image, fraction: float, rng: random.Random) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((x, y, x + cw, y + ch))


def _scale(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.LANCZOS)


def _gain(image: Image.Image, factor: float) -> Image.Image:
    arr = np.asarray(image, dtype=np.float32) * factor
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _luma_percentile(image: Image.Image, percentile: float) -> float:
    return float(np.percentile(np.asarray(image.convert("L")), percentile))


def _underexpose(image: Image.Image, highlight: float) -> Image.Image:
    """Darken until the 95th luminance percentile sits at `highlight`, and by at least 1.5 stops.

    A fixed number of stops alone would leave a bright scene looking normal, so the outcome sets it too.
    """
    return _gain(image, min(0.6, highlight / max(1.0, _luma_percentile(image, 95))))


def _gamma(image: Image.Image, gamma: float) -> Image.Image:
    """Brighten (gamma < 1) the midtones without burning out the highlights, as photo editors do."""
    arr = (np.asarray(image, dtype=np.float32) / 255.0) ** gamma
    return Image.fromarray((arr * 255.0).round().astype(np.uint8))


def _overexpose(image: Image.Image, median: float) -> Image.Image:
    """Brighten in linear light and clip, as a camera does: median luma to `median`, by 1.5 stops at least."""
    linear = (np.asarray(image, dtype=np.float32) / 255.0) ** 2.2
    current = max(1.0, _luma_percentile(image, 50)) / 255.0
    gain = max(2.0**1.5, (median / 255.0) ** 2.2 / current**2.2)
    return Image.fromarray((np.clip(linear * gain, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8))


def _flatten(image: Image.Image, rng: random.Random) -> Image.Image:
    """A nearly blank frame: 5% of the picture's contrast plus sensor noise (entropy stays high)."""
    arr = np.asarray(image, dtype=np.float32)
    mean = arr.mean(axis=(0, 1))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 3.0, arr.shape)
    return Image.fromarray(np.clip(mean + 0.05 * (arr - mean) + noise, 0, 255).astype(np.uint8))


def _overlay(image: Image.Image, rng: random.Random) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    x, y = rng.randint(4, max(5, w // 3)), rng.randint(h - h // 6, h - 14)
    draw.rectangle((x - 3, y - 2, x + w // 3, y + 12), fill=(20, 20, 20))
    draw.text((x, y), "(c) stockphoto 2024", fill=(255, 255, 255))
    return out


def _bokeh(image: Image.Image) -> Image.Image:
    """Sharp subject in the middle (an ellipse of 40% x 50%), background blurred as by a wide aperture."""
    w, h = image.size
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((w * 0.3, h * 0.25, w * 0.7, h * 0.75), fill=255)
    background = image.filter(ImageFilter.GaussianBlur(max(image.size) * 0.012))
    return Image.composite(image, background, mask.filter(ImageFilter.GaussianBlur(5)))


def _strip(image: Image.Image, ratio: float) -> Image.Image:
    w, h = image.size
    if w >= h:
        sh = max(8, round(w / ratio))
        return image.crop((0, (h - sh) // 2, w, (h - sh) // 2 + sh))
    sw = max(8, round(h / ratio))
    return image.crop(((w - sw) // 2, 0, (w - sw) // 2 + sw, h))


def _near_duplicates(image: Image.Image, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    yield "reencoded", _jpeg(image, quality=rng.randint(45, 65))
    side = (image.size[0] * image.size[1]) ** 0.5
    yield "resized", _jpeg(_scale(image, max(rng.uniform(0.8, 1.25), 300 / side)))
    yield "crop90", _jpeg(_crop(image, 0.90, rng))
    yield "crop95", _jpeg(_crop(image, 0.95, rng))
    yield "brightness", _jpeg(_gain(image, 0.8) if rng.random() < 0.5 else _gamma(image, 0.8))
    yield "mild_blur", _jpeg(image.filter(ImageFilter.GaussianBlur(1.0)))
    yield "overlay", _jpeg(_overlay(image, rng))
    yield "grey", _jpeg(ImageOps.grayscale(image).convert("RGB"))
    yield "mirrored", _jpeg(ImageOps.mirror(image))


def _defects(image: Image.Image, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    long_side = max(image.size)
    yield "blurry", _jpeg(image.filter(ImageFilter.GaussianBlur(long_side * rng.uniform(0.008, 0.015))))
    yield "dark", _jpeg(_underexpose(image, rng.uniform(25.0, 70.0)))
    yield "light", _jpeg(_overexpose(image, rng.uniform(225.0, 245.0)))
    yield "low_information", _jpeg(_flatten(image, rng))
    yield "low_resolution", _jpeg(_scale(image, rng.uniform(80, 160) / long_side))
    yield "odd_aspect_ratio", _jpeg(_strip(image, rng.uniform(4.0, 6.0)))
    yield "grayscale", _jpeg(ImageOps.grayscale(image).convert("RGB"))


def build_corpus(*, seed: int = 0) -> list[CorpusImage]:
    """Every corpus image with its ground truth; deterministic for a seed; takes a few seconds."""
    rng = random.Random(seed)
    corpus: list[CorpusImage] = []
    for index, original in enumerate(_originals()):
        prefix = f"o{index:02d}"
        data = _png(original) if index % 3 == 0 else _jpeg(original)
        corpus.append(CorpusImage(f"{prefix}-original", data, "dedup", index, "original", None))
        for kind, variant in _near_duplicates(original, rng):
            defect = "grayscale" if kind == "grey" else None
            corpus.append(CorpusImage(f"{prefix}-{kind}", variant, "dedup", index, kind, defect))
        if index % 4 == 0:
            corpus.append(CorpusImage(f"{prefix}-same_bytes", data, "dedup", index, "same_bytes", None))
        if index % 4 == 1:
            copy = _with_comment(data, f"copy {index}")
            corpus.append(CorpusImage(f"{prefix}-same_pixels", copy, "dedup", index, "same_pixels", None))
        for kind, variant in _defects(original, rng):
            corpus.append(CorpusImage(f"{prefix}-defect-{kind}", variant, "checks", None, kind, kind))
        corpus.append(CorpusImage(f"{prefix}-bokeh", _jpeg(_bokeh(original)), "checks", None, "bokeh", None))
    for index, grey in enumerate(_grey_photos()):
        corpus.append(
            CorpusImage(f"g{index:02d}-grey-photo", _jpeg(grey), "checks", None, "grey_photo", "grayscale")
        )
    return corpus
