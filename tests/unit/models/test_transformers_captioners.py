"""BLIP, GIT and Florence-2 captioners load tiny saved models the way users' weights load, and caption."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from loraforge.errors import InvalidInput, ModelError
from loraforge.models.captioners import build_captioner, caption_images, captioner_kinds
from tests.support.tiny_models import WORDS, build_tiny_blip, build_tiny_florence2, build_tiny_git

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "blip": build_tiny_blip,
    "git": build_tiny_git,
    "florence2": build_tiny_florence2,
}


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-captioners")
    return {kind: build(root / kind) for kind, build in BUILDERS.items()}


def pictures() -> list[Image.Image]:
    return [
        Image.new("RGB", (64, 48), (200, 30, 30)),
        Image.new("RGBA", (20, 90), (10, 200, 30, 128)),
        Image.new("L", (33, 33), 128),
    ]


def test_every_kind_is_registered() -> None:
    assert set(captioner_kinds()) >= {"blip", "git", "florence2", "openai", "template"}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_caption_batch_returns_one_string_per_image(kind: str, model_folders: dict[str, Path]) -> None:
    captioner = build_captioner(kind, model=str(model_folders[kind]), device="cpu", max_new_tokens=6)
    assert captioner.model_ref == str(model_folders[kind])
    captions = captioner.caption_batch(pictures())
    assert len(captions) == 3
    assert all(isinstance(text, str) for text in captions)
    assert captioner.caption_batch([]) == []


@pytest.mark.parametrize("kind", ["blip", "git"])
def test_word_models_speak_their_vocabulary(kind: str, model_folders: dict[str, Path]) -> None:
    captioner = build_captioner(kind, model=str(model_folders[kind]), max_new_tokens=6, num_beams=2)
    for caption in captioner.caption_batch(pictures()):
        assert caption.split(), "a random tiny model still emits words"
        assert set(caption.split()) <= set(WORDS)


def test_blip_prompt_is_continued_and_cut_off(model_folders: dict[str, Path]) -> None:
    captioner = build_captioner(
        "blip", model=str(model_folders["blip"]), prompt="a photo of", max_new_tokens=5, num_beams=1
    )
    images = pictures()
    captions = captioner.caption_batch(images)
    processor, model = captioner._processor, captioner._model  # type: ignore[attr-defined]
    rgb = [i.convert("RGB") for i in images]
    inputs = processor(images=rgb, text=["a photo of"] * 3, return_tensors="pt")
    full = processor.batch_decode(model.generate(**inputs, max_new_tokens=5), skip_special_tokens=True)
    assert full == [" ".join(f"a photo of {caption}".split()) for caption in captions]


def test_git_prompt_is_continued_and_cut_off(model_folders: dict[str, Path]) -> None:
    import torch

    captioner = build_captioner(
        "git", model=str(model_folders["git"]), prompt="a photo of", max_new_tokens=5, num_beams=1
    )
    images = pictures()
    captions = captioner.caption_batch(images)
    processor, model = captioner._processor, captioner._model  # type: ignore[attr-defined]
    pixels = processor(images=[i.convert("RGB") for i in images], return_tensors="pt")["pixel_values"]
    prompt_ids = processor(text="a photo of", add_special_tokens=False)["input_ids"]
    start = [processor.tokenizer.cls_token_id, *prompt_ids]
    output = model.generate(pixel_values=pixels, input_ids=torch.tensor([start] * 3), max_new_tokens=5)
    full = processor.batch_decode(output, skip_special_tokens=True)
    assert full == [" ".join(f"a photo of {caption}".split()) for caption in captions]


def test_batched_and_single_captions_agree(model_folders: dict[str, Path]) -> None:
    captioner = build_captioner("blip", model=str(model_folders["blip"]), max_new_tokens=6, num_beams=1)
    images = pictures()
    assert captioner.caption_batch(images) == [captioner.caption_batch([image])[0] for image in images]


def test_florence2_accepts_caption_tasks_only(model_folders: dict[str, Path]) -> None:
    folder = str(model_folders["florence2"])
    for task in ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"):
        captions = build_captioner("florence2", model=folder, prompt=task, max_new_tokens=4).caption_batch(
            pictures()[:1]
        )
        assert len(captions) == 1 and "<" not in captions[0]
    with pytest.raises(InvalidInput, match="caption task"):
        build_captioner("florence2", model=folder, prompt="<OD>")


def test_unknown_kind_and_option_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown captioner 'llava'.*blip"):
        build_captioner("llava")
    with pytest.raises(InvalidInput, match="does not take option.*temperature"):
        build_captioner("blip", temperature=0.3)


def test_missing_model_names_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    captioner = build_captioner("blip", model="someone/missing-blip", model_dir=tmp_path)
    with pytest.raises(ModelError, match="someone/missing-blip") as raised:
        captioner.caption_batch(pictures())
    assert str(tmp_path / "someone" / "missing-blip") in str(raised.value)


def test_model_found_under_model_dir_by_hub_id(tmp_path: Path, model_folders: dict[str, Path]) -> None:
    import shutil

    shutil.copytree(model_folders["git"], tmp_path / "microsoft" / "git-large-coco")
    captioner = build_captioner("git", model_dir=tmp_path, max_new_tokens=3)
    assert captioner.model_ref == "microsoft/git-large-coco"
    assert len(captioner.caption_batch(pictures()[:2])) == 2


def test_broken_model_folder_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot load blip model"):
        build_captioner("blip", model=str(tmp_path)).load()


def test_captioner_pickles_without_weights(model_folders: dict[str, Path]) -> None:
    captioner = build_captioner("blip", model=str(model_folders["blip"]), max_new_tokens=3, num_beams=1)
    captioner.load()
    payload = pickle.dumps(captioner)
    clone = pickle.loads(payload)
    assert not clone.loaded
    assert clone.caption_batch(pictures()[:1]) == captioner.caption_batch(pictures()[:1])
    assert len(payload) < 10_000


def test_caption_images_isolates_a_failing_image(model_folders: dict[str, Path]) -> None:
    class Fussy:
        name = "fussy"
        model_ref = "fussy"

        def load(self) -> None:
            pass

        def caption_batch(self, images: list[Image.Image]) -> list[str]:
            if any(image.width == 20 for image in images):
                raise ModelError("cannot caption a 20 px wide picture")
            return [f"w{image.width}" for image in images]

    outcomes = caption_images(Fussy(), pictures())
    assert [o.text for o in outcomes] == ["w64", None, "w33"]
    assert outcomes[1].error == "cannot caption a 20 px wide picture"


def test_cuda_request_without_gpu_is_clear(
    model_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="no CUDA GPU"):
        build_captioner("blip", model=str(model_folders["blip"]), device="cuda").load()
