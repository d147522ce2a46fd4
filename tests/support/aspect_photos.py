"""Real photos cut to aspect ratios from 1:4 to 4:1: what the trainers' bucket rules are checked on.

Each picture is the largest centred cut of that aspect ratio from one of the real photos that ship inside
installed packages, enlarged to about 1.3 megapixels so that no SD 1.5, SDXL or Flux bucket needs to enlarge
it again (the photos themselves are 300-640 px).
"""

from __future__ import annotations

import io
import math

from PIL import Image

from tests.support.images import real_photo

ASPECTS: tuple[tuple[int, int], ...] = (
    (1, 4), (1, 3), (1, 2), (2, 3), (3, 4), (1, 1), (4, 3), (3, 2), (2, 1), (3, 1), (4, 1),
)  # fmt: skip
"""(width, height) ratios, tallest to widest."""
PHOTOS = ("grace_hopper", "rocket", "china", "astronaut", "flower", "coffee", "chelsea")
AREA = 1_300_000


def aspect_photo(photo: str, ratio: tuple[int, int], area: int = AREA) -> Image.Image:
    source = real_photo(photo)
    width, height = source.size
    scale = min(width / ratio[0], height / ratio[1])
    cut_w, cut_h = round(ratio[0] * scale), round(ratio[1] * scale)
    left, top = (width - cut_w) // 2, (height - cut_h) // 2
    cut = source.crop((left, top, left + cut_w, top + cut_h))
    grow = math.sqrt(area / (cut_w * cut_h))
    return cut.resize((round(cut_w * grow), round(cut_h * grow)), Image.Resampling.LANCZOS)


def aspect_photos(area: int = AREA) -> dict[str, bytes]:
    """File name -> JPEG bytes, one picture per aspect ratio of ASPECTS, the photos taken in turn."""
    out = {}
    for index, ratio in enumerate(ASPECTS):
        photo = PHOTOS[index % len(PHOTOS)]
        buffer = io.BytesIO()
        aspect_photo(photo, ratio, area).save(buffer, format="JPEG", quality=92)
        out[f"{photo}-{ratio[0]}x{ratio[1]}.jpg"] = buffer.getvalue()
    return out
