"""The caption stage run inline on the embedded catalog: trigger policy, variants, edits, resume, failures."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from loraforge.captioning import max_tokens_for
from loraforge.catalog import queries
from loraforge.catalog.models import Caption, Dataset, Image, ImageMetadata
from loraforge.config import get_settings
from loraforge.errors import InvalidInput, ModelError, NotFound
from loraforge.sources.staging import stage_sources
from loraforge.stages.caption import (
    WARNINGS_KEY,
    CaptionRecord,
    CaptionRequest,
    CaptionStage,
    Resize,
    build_caption_stage,
    default_captioner,
    find_image,
    model_input_side,
    record_captions,
    replace_in_captions,
    select_caption_work,
    set_caption,
)
from loraforge.stages.context import open_context
from loraforge.stages.ingest import IngestStage, record_ingest
from loraforge.stages.report import dataset_report
from loraforge.stages.runner import run_inline
from tests.support.fake_openai import FakeOpenAI, closed_port, running_fake_openai
from tests.support.images import corrupt_jpeg, jpeg_bytes, real_photo_paths
from tests.support.tiny_models import build_tiny_blip

FAST_OPENAI = {"retries": 0, "backoff_s": 0.0}


@pytest.fixture
def env(embedded_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORAFORGE_EXECUTOR", "inline")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_settings.cache_clear()
    open_context().catalog.ensure_schema()
    return embedded_env


@pytest.fixture(scope="module")
def blip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("models") / "tiny-blip")


def make_dataset(
    root: Path, count: int = 5, *, trigger: str | None = "ohwx woman", name: str = "alice"
) -> str:
    """A dataset of `count` pictures ingested inline (two real photos, the rest textured JPEGs)."""
    folder = root / f"photos-{name}"
    folder.mkdir(parents=True)
    photos = real_photo_paths()
    (folder / "astronaut.png").write_bytes(photos["astronaut"].read_bytes())
    for index in range(count - 1):
        (folder / f"shot_{index:02d}.jpg").write_bytes(jpeg_bytes(96 + index, 80, seed=index))
    ctx = open_context()
    items = stage_sources([str(folder)], ctx.source_limits, ctx.store, dataset_id="test", batch="b")
    stage = IngestStage(store_config=ctx.store_config, limits=ctx.source_limits, max_pixels=10_000_000)
    results = run_inline(stage, items)
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, name, trigger_word=trigger)
        assert not record_ingest(session, results, dataset_id=dataset.id).failed
        return dataset.id


def run_caption(
    dataset_id: str, request: CaptionRequest, *, after_batch: Callable[[CaptionStage], None] | None = None
) -> CaptionRecord:
    """What the flow does per shard, inline: build (and check) the stage, caption, record each batch."""
    ctx = open_context()
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        trigger, class_word, target = dataset.trigger_word, dataset.class_word, dataset.target_model
    stage = build_caption_stage(
        request,
        settings=ctx.settings,
        store_config=ctx.store_config,
        trigger=trigger,
        class_word=class_word,
        max_tokens=max_tokens_for(target),
    )
    with ctx.catalog.session() as session:
        items, skipped = select_caption_work(session, dataset_id, request.variant_name)
    record = CaptionRecord(already=skipped)

    def on_results(results: list[dict[str, Any]]) -> None:
        with ctx.catalog.session() as session:
            record.merge(
                record_captions(
                    session, results, variant=request.variant_name, source_model=stage.captioner.model_ref
                )
            )
        if after_batch:
            after_batch(stage)

    run_inline(stage, items, on_results=on_results)
    return record


def captions(dataset_id: str, *, active: bool | None = True) -> dict[str, list[Caption]]:
    """filename -> caption rows (oldest first), only active ones by default."""
    with open_context().catalog.session() as session:
        query = select(Caption, Image.original_filename).join(Image, Image.id == Caption.image_id)
        query = query.where(Image.dataset_id == dataset_id)
        if active is not None:
            query = query.where(Caption.is_active.is_(active))
        out: dict[str, list[Caption]] = {}
        for caption, filename in session.execute(query.order_by(Caption.created_at, Caption.id)):
            out.setdefault(filename, []).append(caption)
        return out


def set_status(dataset_id: str, filename: str, status: str) -> None:
    with open_context().catalog.session() as session:
        image = find_image(session, dataset_id, filename)
        image.status = status


def occurrences(text: str, phrase: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE))


def test_template_run_puts_the_trigger_once_in_every_non_rejected_caption(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 6)
    set_status(dataset_id, "shot_00.jpg", "rejected")
    set_status(dataset_id, "shot_01.jpg", "duplicate")
    set_status(dataset_id, "shot_02.jpg", "kept")
    record = run_caption(dataset_id, CaptionRequest(kind="template", template="photo of {trigger}"))
    assert len(record.captioned) == 4 and not record.failed
    active = captions(dataset_id)
    assert set(active) == {"astronaut.png", "shot_02.jpg", "shot_03.jpg", "shot_04.jpg"}
    for rows in active.values():
        assert len(rows) == 1 and rows[0].variant == "template" and not rows[0].edited
        assert rows[0].text == "photo of ohwx woman"
    with open_context().catalog.session() as session:
        report = dataset_report(session, session.get(Dataset, dataset_id))
    by_name = {image["filename"]: image["caption"] for image in report["images"]}
    assert by_name["shot_00.jpg"] is None and by_name["shot_01.jpg"] is None
    assert by_name["astronaut.png"] == "photo of ohwx woman"


@pytest.mark.parametrize(
    ("trigger", "class_word", "request_options", "expected"),
    [
        # The trigger already written by the template is kept where it stands, and only once.
        ("ohwx", "woman", {"template": "{trigger}, portrait of {trigger}"}, "ohwx woman, portrait of"),
        # No placeholder: the trigger phrase goes to the front; the class word follows it.
        ("Zoë-7", "woman", {"template": "a portrait, soft light"}, "Zoë-7 woman, a portrait, soft light"),
        # Placement at the end, with a suffix.
        (
            "ohwx",
            None,
            {"template": "a portrait", "placement": "end", "suffix": "film grain"},
            "a portrait, film grain, ohwx",
        ),
        # A placeholder in the prefix wins over the front placement.
        (
            "c++ (x)",
            None,
            {"template": "close up", "prefix": "style of [trigger]"},
            "style of c++ (x), close up",
        ),
        # Case variants of the trigger in the raw text are recognised as the trigger.
        ("OHWX", None, {"template": "ohwx ohwx by the sea"}, "OHWX by the sea"),
    ],
)
def test_awkward_triggers_and_templates(
    env: Path, trigger: str, class_word: str | None, request_options: dict[str, Any], expected: str
) -> None:
    dataset_id = make_dataset(env.parent, 2, trigger=trigger)
    with open_context().catalog.session() as session:
        session.get(Dataset, dataset_id).class_word = class_word  # type: ignore[union-attr]
    run_caption(dataset_id, CaptionRequest(kind="template", **request_options))
    texts = [rows[0].text for rows in captions(dataset_id).values()]
    assert texts == [expected, expected]
    assert all(occurrences(text, trigger) == 1 for text in texts)


def test_an_unusable_template_or_option_is_refused_before_any_work(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 2)
    with pytest.raises(InvalidInput, match="unknown field"):
        run_caption(dataset_id, CaptionRequest(kind="template", template="photo of {name}"))
    with pytest.raises(InvalidInput, match="unknown captioner"):
        run_caption(dataset_id, CaptionRequest(kind="llava"))
    with pytest.raises(InvalidInput, match="placement"):
        run_caption(dataset_id, CaptionRequest(kind="template", placement="middle"))
    with pytest.raises(InvalidInput, match="template captioner only"):
        run_caption(dataset_id, CaptionRequest(kind="openai", template="x {trigger}"))
    assert captions(dataset_id, active=None) == {}


def test_long_captions_warn_per_picture_and_store_the_warning(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 3)
    long_template = "photo of {trigger}, " + ", ".join(f"detail number {n}" for n in range(40))
    record = run_caption(dataset_id, CaptionRequest(kind="template", template=long_template))
    assert len(record.warnings) == 3
    assert all("over the text encoder's limit of 77" in w["warning"] for w in record.warnings)
    with open_context().catalog.session() as session:
        rows = session.scalars(select(ImageMetadata).where(ImageMetadata.key == WARNINGS_KEY)).all()
        assert len(rows) == 3 and all("tokens" in row.value[0] for row in rows)
    # A shorter variant replaces the warnings of the pictures it captions.
    run_caption(dataset_id, CaptionRequest(kind="template", template="{trigger}", variant="short"))
    with open_context().catalog.session() as session:
        assert not session.scalars(select(ImageMetadata).where(ImageMetadata.key == WARNINGS_KEY)).all()


def test_a_rerun_captions_nothing_and_keeps_the_rows(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 4)
    request = CaptionRequest(kind="template", template="photo of {trigger}")
    first = run_caption(dataset_id, request)
    before = {name: (rows[0].id, rows[0].created_at) for name, rows in captions(dataset_id).items()}
    again = run_caption(dataset_id, request)
    assert len(first.captioned) == 4
    assert again.captioned == [] and again.already == 4
    after = {name: (rows[0].id, rows[0].created_at) for name, rows in captions(dataset_id).items()}
    assert after == before
    # Recording the same batch twice (a retried shard) stores nothing new either.
    with open_context().catalog.session() as session:
        image = find_image(session, dataset_id, "astronaut.png")
        result = {
            "image_id": image.id,
            "filename": "astronaut.png",
            "text": "x",
            "warnings": [],
            "error": None,
        }
        assert record_captions(session, [result], variant="template", source_model=None).already == 1
    assert len(captions(dataset_id, active=None)["astronaut.png"]) == 1


def test_a_manual_edit_survives_a_new_variant_and_stays_active(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 3)
    run_caption(dataset_id, CaptionRequest(kind="template", template="photo of {trigger}"))
    with open_context().catalog.session() as session:
        image = find_image(session, dataset_id, "astronaut.png")
        set_caption(session, image, "  ohwx woman in a  space suit ")
    record = run_caption(
        dataset_id, CaptionRequest(kind="template", template="{trigger} outdoors", variant="v2")
    )
    assert record.kept_manual == ["astronaut.png"] and len(record.captioned) == 3
    active = captions(dataset_id)
    assert active["astronaut.png"][0].text == "ohwx woman in a space suit"
    assert active["astronaut.png"][0].edited and active["astronaut.png"][0].variant == "template"
    assert {rows[0].text for name, rows in active.items() if name != "astronaut.png"} == {
        "ohwx woman outdoors"
    }
    history = captions(dataset_id, active=None)["astronaut.png"]
    assert [(row.variant, row.edited, row.is_active) for row in history] == [
        ("template", False, False),
        ("template", True, True),
        ("v2", False, False),
    ]


def test_replace_makes_new_edited_versions_and_keeps_history(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 3)
    run_caption(dataset_id, CaptionRequest(kind="template", template="photo of {trigger}, studio"))
    with open_context().catalog.session() as session:
        set_caption(session, find_image(session, dataset_id, "shot_00.jpg"), "ohwx woman at home")
        changes = replace_in_captions(session, dataset_id, "studio", "beach")
        with pytest.raises(InvalidInput):
            replace_in_captions(session, dataset_id, "", "x")
    assert sorted(change.filename for change in changes) == ["astronaut.png", "shot_01.jpg"]
    assert all(change.after == "photo of ohwx woman, beach" for change in changes)
    history = captions(dataset_id, active=None)
    assert [(row.text, row.is_active, row.edited) for row in history["astronaut.png"]] == [
        ("photo of ohwx woman, studio", False, False),
        ("photo of ohwx woman, beach", True, True),
    ]
    assert [row.text for row in captions(dataset_id)["shot_00.jpg"]] == ["ohwx woman at home"]


def test_images_are_found_by_filename_or_id_and_bad_edits_are_refused(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 2)
    with open_context().catalog.session() as session:
        image = find_image(session, dataset_id, "astronaut.png")
        assert find_image(session, dataset_id, image.id) is image
        with pytest.raises(NotFound, match="no picture"):
            find_image(session, dataset_id, "nobody.jpg")
        with pytest.raises(InvalidInput, match="empty"):
            set_caption(session, image, "   ")


def test_a_picture_with_corrupt_stored_bytes_fails_alone(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 4)
    ctx = open_context()
    with ctx.catalog.session() as session:
        key = find_image(session, dataset_id, "shot_01.jpg").object_key
    ctx.store.put(key, corrupt_jpeg())
    with running_fake_openai() as fake:
        request = CaptionRequest(kind="openai", endpoint=fake.base_url, batch_size=2, options=FAST_OPENAI)
        record = run_caption(dataset_id, request)
    assert [failure["filename"] for failure in record.failed] == ["shot_01.jpg"]
    assert "corrupt or truncated" in record.failed[0]["reason"]
    assert sorted(captions(dataset_id)) == ["astronaut.png", "shot_00.jpg", "shot_02.jpg"]


def test_openai_endpoint_captions_with_the_trigger_and_a_refused_picture_fails_alone(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 4)
    fake = FakeOpenAI(reject=lambda image: image.width == 97)  # shot_01 is 97 px wide
    with running_fake_openai(fake):
        request = CaptionRequest(kind="openai", endpoint=fake.base_url, model="llava", options=FAST_OPENAI)
        record = run_caption(dataset_id, request)
    assert [failure["filename"] for failure in record.failed] == ["shot_01.jpg"]
    assert "HTTP 400" in record.failed[0]["reason"]
    active = captions(dataset_id)
    assert active["astronaut.png"][0].text == "ohwx woman, a test picture 512 by 512"
    assert active["shot_00.jpg"][0].source_model == "llava" and active["shot_00.jpg"][0].variant == "openai"
    assert {request.model for request in fake.requests} == {"llava"}


def test_an_unreachable_endpoint_fails_early_and_a_lost_one_loses_nothing(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 6)
    unreachable = CaptionRequest(
        kind="openai", endpoint=f"http://127.0.0.1:{closed_port()}/v1", options=FAST_OPENAI
    )
    with pytest.raises(ModelError, match="cannot reach the captioning endpoint"):
        run_caption(dataset_id, unreachable)
    assert captions(dataset_id, active=None) == {}

    # The endpoint goes away after the first batch: that batch stays recorded, the rest fail with the reason.
    def lose_endpoint(stage: CaptionStage) -> None:
        stage.captioner.close()  # type: ignore[attr-defined]
        stage.captioner.base_url = unreachable.endpoint  # type: ignore[attr-defined]

    with running_fake_openai() as fake:
        request = CaptionRequest(kind="openai", endpoint=fake.base_url, batch_size=2, options=FAST_OPENAI)
        record = run_caption(dataset_id, request, after_batch=lose_endpoint)
    assert len(record.captioned) == 2 and len(record.failed) == 4
    assert all("cannot reach the captioning endpoint" in failure["reason"] for failure in record.failed)
    kept = {name: rows[0].id for name, rows in captions(dataset_id).items()}
    assert len(kept) == 2
    with running_fake_openai() as fake:
        request = CaptionRequest(kind="openai", endpoint=fake.base_url, options=FAST_OPENAI)
        resumed = run_caption(dataset_id, request)
    assert len(resumed.captioned) == 4 and resumed.already == 2 and len(fake.requests) == 4
    assert {name: rows[0].id for name, rows in captions(dataset_id).items() if name in kept} == kept


def test_a_tiny_blip_loads_from_a_folder_given_as_model(env: Path, blip_folder: Path) -> None:
    dataset_id = make_dataset(env.parent, 3)
    request = CaptionRequest(
        kind="blip", model=str(blip_folder), batch_size=2, options={"max_new_tokens": 4, "num_beams": 1}
    )
    record = run_caption(dataset_id, request)
    assert len(record.captioned) == 3 and not record.failed
    for rows in captions(dataset_id).values():
        assert rows[0].text.startswith("ohwx woman") and occurrences(rows[0].text, "ohwx woman") == 1
        assert rows[0].variant == "blip" and rows[0].source_model == str(blip_folder)
    assert model_input_side(blip_folder) == 32


def test_a_missing_model_fails_early_with_one_message(env: Path, tmp_path: Path) -> None:
    dataset_id = make_dataset(env.parent, 2)
    with pytest.raises(ModelError, match="does not exist"):
        run_caption(dataset_id, CaptionRequest(kind="blip", model=str(tmp_path / "no-such-model")))
    with pytest.raises(ModelError, match="not available offline"):
        run_caption(dataset_id, CaptionRequest(kind="florence2", model="nobody/no-such-model"))
    assert captions(dataset_id, active=None) == {}


def test_default_captioner_prefers_a_local_model_else_the_template(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blip_folder: Path
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LORAFORGE_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    kind, model, reason = default_captioner(get_settings())
    assert (kind, model) == ("template", None) and "no captioning model found locally" in reason
    local = tmp_path / "models" / "Salesforce" / "blip-image-captioning-base"
    local.parent.mkdir(parents=True)
    local.symlink_to(blip_folder, target_is_directory=True)
    kind, model, reason = default_captioner(get_settings())
    assert (kind, model) == ("blip", "Salesforce/blip-image-captioning-base")


def test_florence2_hub_ids_of_the_remote_code_release_load_the_native_conversion() -> None:
    from loraforge.models.captioners import build_captioner

    assert build_captioner("florence2", model="microsoft/Florence-2-base").model_ref == (
        "florence-community/Florence-2-base"
    )
    assert build_captioner("florence2", model="/models/mine").model_ref == "/models/mine"


def test_resize_covers_for_models_and_contains_for_endpoints() -> None:
    assert Resize(384).target(4000, 3000) == (512, 384)
    assert Resize(384).target(300, 200) == (300, 200)
    assert Resize(1024, "contain").target(4000, 3000) == (1024, 768)


def test_captions_cli_sets_replaces_and_lists(env: Path) -> None:
    from services.cli.main import app

    dataset_id = make_dataset(env.parent, 2)
    run_caption(dataset_id, CaptionRequest(kind="template", template="photo of {trigger}"))
    runner = CliRunner()
    result = runner.invoke(
        app, ["captions", "set", "--dataset", "alice", "shot_00.jpg", "ohwx woman, red hat"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["captions", "replace", "--dataset", "alice", "photo of", "portrait of"])
    assert result.exit_code == 0 and "1 captions changed" in result.output
    result = runner.invoke(app, ["captions", "list", "--dataset", "alice", "--active", "--json"])
    assert result.exit_code == 0, result.output
    texts = sorted(row["text"] for row in json.loads(result.output))
    assert texts == ["ohwx woman, red hat", "portrait of ohwx woman"]
    result = runner.invoke(app, ["captions", "set", "--dataset", "alice", "nobody.jpg", "x"])
    assert result.exit_code == 1 and "no picture" in result.output


def test_caption_cli_without_a_trigger_warns_with_a_hint(env: Path) -> None:
    from services.cli.main import app

    dataset_id = make_dataset(env.parent, 2, trigger=None)
    runner = CliRunner()
    result = runner.invoke(app, ["caption", "--dataset", "alice", "--captioner", "template"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "warning: no trigger word: the captions hold no word to call this LoRA by" in lines
    hint = 'hint: give one with --trigger, e.g. --trigger "ohwx woman" (a rare token, then the class word)'
    assert hint in lines
    texts = [row.text for rows in captions(dataset_id, active=None).values() for row in rows]
    assert texts == ["a photo", "a photo"]  # the default template leaves no dangling "a photo of"

    named = runner.invoke(
        app, ["caption", "--dataset", "alice", "--captioner", "template", "--trigger", "ohwx woman",
              "--class-word", "woman", "--variant", "named"],
    )  # fmt: skip
    assert named.exit_code == 0, named.output
    assert "no trigger word" not in named.output
    rows = [row for rows in captions(dataset_id, active=None).values() for row in rows]
    assert sorted(row.text for row in rows if row.variant == "named") == ["ohwx woman, a photo"] * 2


def test_a_picture_curation_found_black_and_white_is_captioned_so(env: Path) -> None:
    dataset_id = make_dataset(env.parent, 2)
    with open_context().catalog.session() as session:
        grey = session.scalars(
            select(Image).where(Image.dataset_id == dataset_id, Image.original_filename == "shot_00.jpg")
        ).one()
        session.add(ImageMetadata(image_id=grey.id, key="issues", value=["grayscale"]))
    run_caption(dataset_id, CaptionRequest(kind="template"))
    texts = {name: rows[0].text for name, rows in captions(dataset_id).items()}
    assert texts == {
        "astronaut.png": "ohwx woman, a photo",
        "shot_00.jpg": "ohwx woman, a photo, black and white photo",
    }
