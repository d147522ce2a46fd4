"""The large preview: the original picture, scaled for the screen, with the bucket's crop box and the
detected faces drawn on it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import streamlit as st
from PIL import Image, ImageDraw, ImageOps

PREVIEW_PX = 900
CROP_COLOUR = (56, 189, 248)  # sky blue: reads on skin, sky and shadow alike
FACE_COLOUR = (250, 204, 21)  # amber
SAME_PERSON_COLOUR = (74, 222, 128)  # green: the face matching the reference faces
OTHER_PERSON_COLOUR = (248, 113, 113)  # red: the closest face, of someone else
SHADE = (0, 0, 0, 120)


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def annotated_preview(
    data: bytes,
    box: Sequence[float] | None,
    faces: tuple[tuple[float, ...], ...],
    size_px: int = PREVIEW_PX,
    identity: tuple[tuple[float, ...], bool] | None = None,
) -> bytes:
    """JPEG bytes: the picture fitted into `size_px`, outside the crop box shaded, the box and faces drawn,
    and `identity` (the face compared with the reference faces, and whether it matched) drawn over them.

    Boxes are in the original's pixels (as the bucket and face stages record them).
    """
    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    scale = min(1.0, size_px / max(picture.size))
    if scale < 1.0:
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
        )
    line = max(2, round(max(picture.size) / 300))
    if box and len(box) == 4:
        left, top, right, bottom = (round(v * scale) for v in box)
        shade = Image.new("RGBA", picture.size, SHADE)
        ImageDraw.Draw(shade).rectangle((left, top, right, bottom), fill=(0, 0, 0, 0))
        picture = Image.alpha_composite(picture.convert("RGBA"), shade).convert("RGB")
        ImageDraw.Draw(picture).rectangle((left, top, right - 1, bottom - 1), outline=CROP_COLOUR, width=line)
    draw = ImageDraw.Draw(picture)
    for face in faces:
        if len(face) >= 4:
            left, top, right, bottom = (round(v * scale) for v in face[:4])
            draw.rectangle((left, top, right, bottom), outline=FACE_COLOUR, width=line)
    if identity and len(identity[0]) == 4:
        left, top, right, bottom = (round(v * scale) for v in identity[0])
        colour = SAME_PERSON_COLOUR if identity[1] else OTHER_PERSON_COLOUR
        pad = line  # just outside the detector's box, so both show where they coincide
        draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), outline=colour, width=line + 1)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=88)
    return out.getvalue()


def face_boxes(image: dict[str, Any]) -> tuple[tuple[float, ...], ...]:
    return tuple(
        tuple(float(v) for v in face["bbox"]) for face in image.get("faces") or [] if face.get("bbox")
    )
