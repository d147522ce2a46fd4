"""Each exporter's layout and config files, read back with real parsers (facts: docs/formats.md)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import pytest
import yaml
from exporter_factories import make_item, make_spec, six_items
from PIL import Image

from loraforge.errors import InvalidInput
from loraforge.exporters import DirectorySink, export_dataset


def export_to(tmp_path: Path, fmt: str, **spec_options: object) -> tuple[Path, object]:
    root = tmp_path / fmt
    result = export_dataset(six_items(), make_spec(fmt, **spec_options), sink=DirectorySink(root))
    return root, result


def images_with_captions(folder: Path) -> dict[str, str]:
    """stem -> caption for every image in `folder`; fails if an image lacks its same-stem .txt."""
    found = {}
    for image in sorted(folder.iterdir()):
        if image.suffix in (".jpg", ".png") and not image.stem.endswith("-masklabel"):
            found[image.stem] = (folder / f"{image.stem}.txt").read_text(encoding="utf-8")
    return found


def test_images_are_jpg_or_png_and_jpg_png_pass_through_unchanged(tmp_path: Path) -> None:
    items = six_items()
    root = tmp_path / "out"
    export_dataset(items, make_spec("ai-toolkit"), sink=DirectorySink(root))
    for item in items:
        written = list((root / "dataset").glob(f"{item.stem}.*"))
        image = next(p for p in written if p.suffix != ".txt")
        if item.source_format in ("jpeg", "png"):
            assert image.read_bytes() == item.read()
        else:
            assert image.suffix == ".png"
            with Image.open(image) as img:
                assert img.format == "PNG" and img.size == (item.width, item.height)


def test_kohya_folder_and_toml(tmp_path: Path) -> None:
    reg = [make_item(20 + i, "jpeg", caption="a photo of a person") for i in range(2)]
    root, result = export_to(tmp_path, "kohya", reg_items=reg, batch_size=2)
    train = root / "img" / "10_ohwx person"
    assert len(images_with_captions(train)) == 6
    assert len(images_with_captions(root / "reg" / "1_person")) == 2
    text = (root / "dataset_config.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert "sdxl_train_network.py" in text and "cd" in text.split("accelerate")[0]  # relative: launch here
    assert config["general"]["caption_extension"] == ".txt"
    (dataset,) = config["datasets"]
    assert dataset["resolution"] == 1024 and dataset["batch_size"] == 2 and dataset["enable_bucket"] is True
    bucket_settings = (dataset["min_bucket_reso"], dataset["max_bucket_reso"], dataset["bucket_reso_steps"])
    assert bucket_settings == (256, 2048, 64)  # the grid of the rule the bucket stage cut for (KohyaBuckets)
    assert dataset["bucket_no_upscale"] is False
    train_subset, reg_subset = dataset["subsets"]
    assert train_subset["image_dir"] == "img/10_ohwx person" and (root / train_subset["image_dir"]).is_dir()
    assert train_subset["num_repeats"] == 10 and train_subset["class_tokens"] == "ohwx person"
    assert train_subset["caption_extension"] == ".txt" and train_subset["is_reg"] is False
    assert train_subset["keep_tokens"] == 1
    assert reg_subset["is_reg"] is True and reg_subset["num_repeats"] == 1
    assert reg_subset["class_tokens"] == "person"


def test_kohya_repeats_and_dataset_root(tmp_path: Path) -> None:
    root, _ = export_to(tmp_path, "kohya", repeats=3, dataset_root="/workspace/data", target_model="flux")
    assert (root / "img" / "3_ohwx person").is_dir()
    text = (root / "dataset_config.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert config["datasets"][0]["subsets"][0]["image_dir"] == "/workspace/data/img/3_ohwx person"
    # flux_train_network.py refuses a step that is not a multiple of 64.
    assert config["datasets"][0]["bucket_reso_steps"] == 64
    assert 'flux_train_network.py --dataset_config "/workspace/data/dataset_config.toml"' in text


def test_ai_toolkit_yaml(tmp_path: Path) -> None:
    root, _ = export_to(tmp_path, "ai-toolkit", target_model="flux")
    text = (root / "config.yaml").read_text(encoding="utf-8")
    job = yaml.safe_load(text)
    assert "folder_path is relative" in text  # ai-toolkit would look for it in its own checkout
    (process,) = job["config"]["process"]
    assert process["trigger_word"] == "ohwx" and process["model"]["is_flux"] is True
    (dataset,) = process["datasets"]
    assert dataset["folder_path"] == "dataset" and dataset["caption_ext"] == "txt"
    # One resolution, the one the buckets were cut for: each further one would train a downscaled copy.
    assert dataset["resolution"] == [1024] and dataset["buckets"] is True
    assert dataset["num_repeats"] == 1 and dataset["is_reg"] is False
    assert len(images_with_captions(root / dataset["folder_path"])) == 6


# Every key OneTrainer's ConceptConfig knows (modules/util/config/ConceptConfig.py, default_values, with
# BaseConfig's "__version"); it drops any other key without a word.
ONETRAINER_CONCEPT_KEYS = {
    "__version", "image", "text", "name", "path", "seed", "enabled", "type", "include_subdirectories",
    "image_variations", "text_variations", "balancing", "balancing_strategy", "loss_weight", "concept_stats",
}  # fmt: skip
ONETRAINER_IMAGE_KEYS = {
    "__version", "enable_crop_jitter", "enable_random_flip", "enable_fixed_flip", "enable_random_rotate",
    "enable_fixed_rotate", "random_rotate_max_angle", "enable_random_brightness", "enable_fixed_brightness",
    "random_brightness_max_strength", "enable_random_contrast", "enable_fixed_contrast",
    "random_contrast_max_strength", "enable_random_saturation", "enable_fixed_saturation",
    "random_saturation_max_strength", "enable_random_hue", "enable_fixed_hue", "random_hue_max_strength",
    "enable_resolution_override", "resolution_override", "enable_random_circular_mask_shrink",
    "enable_random_mask_rotate_crop",
}  # fmt: skip
ONETRAINER_TEXT_KEYS = {
    "__version", "prompt_source", "prompt_path", "enable_tag_shuffling", "tag_delimiter", "keep_tags_count",
    "tag_dropout_enable", "tag_dropout_mode", "tag_dropout_probability", "tag_dropout_special_tags_mode",
    "tag_dropout_special_tags", "tag_dropout_special_tags_regex", "caps_randomize_enable",
    "caps_randomize_probability", "caps_randomize_mode", "caps_randomize_lowercase",
}  # fmt: skip


def test_onetrainer_concepts_and_masks(tmp_path: Path) -> None:
    root, result = export_to(tmp_path, "onetrainer", include_masks=True, repeats=2, reg_items=[make_item(30)])
    concepts = json.loads((root / "concepts.json").read_text(encoding="utf-8"))
    for known in concepts:
        assert set(known) <= ONETRAINER_CONCEPT_KEYS
        assert set(known["image"]) <= ONETRAINER_IMAGE_KEYS and set(known["text"]) <= ONETRAINER_TEXT_KEYS
        # The buckets are mgds' set at this resolution, whatever resolution the training config names.
        assert known["image"]["enable_resolution_override"] is True
        assert known["image"]["resolution_override"] == "1024"
    concept, _reg = concepts
    assert concept["type"] == "STANDARD" and concept["enabled"] is True
    assert concept["balancing"] == 2.0 and concept["balancing_strategy"] == "REPEATS"
    assert concept["text"]["prompt_source"] == "sample" and concept["path"] == "images"
    folder = root / concept["path"]
    assert len(images_with_captions(folder)) == 6
    masks = sorted(folder.glob("*-masklabel.png"))
    assert len(masks) == 1  # only item 0 has a face box
    with Image.open(masks[0]) as mask:
        assert mask.mode == "L" and mask.size == (1216, 832)
        assert mask.getpixel((250, 300)) == 255 and mask.getpixel((1100, 800)) == 0


def test_simpletuner_backends(tmp_path: Path) -> None:
    root, _ = export_to(tmp_path, "simpletuner", repeats=1, reg_items=[make_item(30)], target_model="flux")
    backends = json.loads((root / "multidatabackend.json").read_text(encoding="utf-8"))
    images = [b for b in backends if b["dataset_type"] == "image"]
    (text_embeds,) = [b for b in backends if b["dataset_type"] == "text_embeds"]
    assert text_embeds["default"] is True and text_embeds["type"] == "local" and text_embeds["cache_dir"]
    main, reg = images
    assert main["repeats"] == 0  # SimpleTuner counts extra passes: 0 = each image once
    assert main["caption_strategy"] == "textfile" and main["type"] == "local"
    assert (main["resolution_type"], main["resolution"], main["crop"]) == ("pixel_area", 1024, False)
    assert main["cache_dir_vae"]
    assert len(images_with_captions(root / main["instance_data_dir"])) == 6
    assert reg["is_regularisation_data"] is True
    assert len({b["id"] for b in backends}) == len(backends)
    # The bucketing's global arguments live in config.json (alignment and rounding are no backend keys).
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    assert config["data_backend_config"] == "multidatabackend.json" and config["model_family"] == "flux"
    assert (config["resolution"], config["resolution_type"]) == (1024, "pixel_area")
    assert (config["aspect_bucket_alignment"], config["aspect_bucket_rounding"]) == (64, 2)


def test_hf_metadata_jsonl(tmp_path: Path) -> None:
    root, _ = export_to(tmp_path, "hf")
    lines = (root / "train" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    for line in lines:
        row = json.loads(line)
        assert (root / "train" / row["file_name"]).is_file()
        assert row["text"] == row["prompt"] and row["text"].startswith("ohwx")
    assert not list((root / "train").glob("*.txt"))


def test_replicate_directory_is_flat(tmp_path: Path) -> None:
    root, _ = export_to(tmp_path, "replicate")
    assert all(p.is_file() for p in root.iterdir())
    assert len(images_with_captions(root)) == 6


def test_captions_get_trigger_and_one_line(tmp_path: Path) -> None:
    items = [
        make_item(0, caption="a [trigger] on a\nbeach"),
        make_item(1, caption="a man on a beach"),
        make_item(2, caption=None),
    ]
    root = tmp_path / "out"
    export_dataset(items, make_spec("replicate"), sink=DirectorySink(root))
    texts = [(root / f"{item.stem}.txt").read_text(encoding="utf-8") for item in items]
    assert texts == ["a ohwx on a beach", "ohwx, a man on a beach", "ohwx person"]


def test_manifest_entries_match_files(tmp_path: Path) -> None:
    root, result = export_to(tmp_path, "kohya")
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert {e.name for e in result.files} == on_disk
    for entry in result.files:
        data = (root / entry.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256 and len(data) == entry.bytes
    assert result.bytes_written == sum(e.bytes for e in result.files) and result.image_count == 6


def test_a_trigger_ending_in_the_class_word_names_it_once_in_every_format(tmp_path: Path) -> None:
    words = {"trigger_word": "ohwx woman", "class_word": "woman"}
    kohya, _ = export_to(tmp_path / "kohya", "kohya", **words)
    [subset] = tomllib.loads((kohya / "dataset_config.toml").read_text(encoding="utf-8"))["datasets"][0][
        "subsets"
    ]
    assert subset["image_dir"] == "img/10_ohwx woman" and (kohya / subset["image_dir"]).is_dir()
    assert subset["class_tokens"] == "ohwx woman" and subset["keep_tokens"] == 1
    onetrainer, _ = export_to(tmp_path / "onetrainer", "onetrainer", **words)
    [concept] = json.loads((onetrainer / "concepts.json").read_text(encoding="utf-8"))
    assert concept["name"] == "ohwx woman"
    uncaptioned = [make_item(0, caption=None)]
    export_dataset(uncaptioned, make_spec("replicate", **words), sink=DirectorySink(tmp_path / "replicate"))
    assert (tmp_path / "replicate" / f"{uncaptioned[0].stem}.txt").read_text(encoding="utf-8") == "ohwx woman"


def test_the_caption_extension_is_written_and_named_in_the_config(tmp_path: Path) -> None:
    kohya, _ = export_to(tmp_path / "kohya", "kohya", caption_extension=".caption")
    config = tomllib.loads((kohya / "dataset_config.toml").read_text(encoding="utf-8"))
    [subset] = config["datasets"][0]["subsets"]
    assert config["general"]["caption_extension"] == subset["caption_extension"] == ".caption"
    folder = kohya / subset["image_dir"]
    assert len(list(folder.glob("*.caption"))) == 6 and not list(folder.glob("*.txt"))
    toolkit, _ = export_to(tmp_path / "toolkit", "ai-toolkit", caption_extension=".caption")
    job = yaml.safe_load((toolkit / "config.yaml").read_text(encoding="utf-8"))
    [dataset] = job["config"]["process"][0]["datasets"]
    assert dataset["caption_ext"] == "caption"
    assert len(list((toolkit / dataset["folder_path"]).glob("*.caption"))) == 6
    with pytest.raises(InvalidInput, match="replicate reads .txt captions only"):
        make_spec("replicate", caption_extension=".caption")
    with pytest.raises(InvalidInput, match="give one like .txt or .caption"):
        make_spec("kohya", caption_extension="txt")
