"""Each registered check flags its defect and passes a clean photo; thresholds override by name."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from loraforge.curation import CheckContext, all_checks, evaluate, measure
from loraforge.curation.registry import Check, register_check
from loraforge.errors import InvalidInput

from .curation_factories import blurred, encode, flat, gain, photo

SD15 = CheckContext(target_resolution=512)


def flags(image: Image.Image, context: CheckContext = SD15) -> set[str]:
    features = measure(encode(image, "JPEG", quality=92), max_pixels=10**8)
    return {o.name for o in evaluate(features, context) if o.flagged}


def clean() -> Image.Image:
    return photo((400, 400))


def test_every_documented_check_is_registered() -> None:
    expected = {
        "blurry",
        "dark",
        "light",
        "low_information",
        "low_resolution",
        "odd_aspect_ratio",
        "grayscale",
    }
    assert expected <= set(all_checks())


def test_a_clean_photo_passes_every_check() -> None:
    assert flags(clean()) == set()


@pytest.mark.parametrize(
    ("defect", "make"),
    [
        ("blurry", lambda: blurred(clean(), 5)),
        ("dark", lambda: gain(clean(), 0.2)),
        ("low_information", lambda: flat((400, 400), noise=4.0)),
        ("low_resolution", lambda: clean().resize((120, 120))),
        ("odd_aspect_ratio", lambda: clean().crop((0, 150, 400, 230))),
        ("grayscale", lambda: clean().convert("L").convert("RGB")),
    ],
)
def test_each_check_flags_its_defect(defect: str, make) -> None:
    assert defect in flags(make())


def test_light_flags_a_burnt_out_picture() -> None:
    assert "light" in flags(gain(clean(), 3.0))


def test_low_resolution_depends_on_the_target_model() -> None:
    image = clean().resize((400, 400))
    assert "low_resolution" not in flags(image, CheckContext.for_model("sd15"))
    assert "low_resolution" in flags(image.resize((300, 300)), CheckContext.for_model("sdxl"))


def test_scores_are_in_range_and_higher_means_worse() -> None:
    features = measure(encode(clean()), max_pixels=10**8)
    worse = measure(encode(blurred(clean(), 5)), max_pixels=10**8)
    score = {o.name: o.score for o in evaluate(features, SD15)}
    worse_score = {o.name: o.score for o in evaluate(worse, SD15)}
    assert all(0.0 <= v <= 1.0 for v in score.values())
    assert worse_score["blurry"] > score["blurry"]


def test_threshold_overrides_by_name() -> None:
    features = measure(encode(clean()), max_pixels=10**8)
    context = CheckContext(target_resolution=512, thresholds={"grayscale": 0.0})
    outcome = next(o for o in evaluate(features, context) if o.name == "grayscale")
    assert outcome.flagged and outcome.threshold == 0.0


def test_unknown_threshold_names_are_refused() -> None:
    features = measure(encode(clean()), max_pixels=10**8)
    with pytest.raises(InvalidInput):
        evaluate(features, CheckContext(thresholds={"blury": 0.3}))
    with pytest.raises(InvalidInput):
        CheckContext.for_model("sd3")


def test_a_new_check_is_one_decorated_class() -> None:
    @register_check("test_always")
    class Always(Check):
        def score(self, features, *, context):  # type: ignore[no-untyped-def]
            return 2.0

    try:
        features = measure(encode(clean()), max_pixels=10**8)
        outcome = next(o for o in evaluate(features, SD15) if o.name == "test_always")
        assert outcome.score == 1.0 and outcome.flagged
    finally:
        from loraforge.curation import registry

        registry._CHECKS.pop("test_always")


def test_features_dataclass_is_frozen() -> None:
    features = measure(encode(clean()), max_pixels=10**8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        features.width = 1  # type: ignore[misc]
