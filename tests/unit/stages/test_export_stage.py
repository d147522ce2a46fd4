"""The export stage inline on the embedded catalog: what goes out, versions, failures, and the exports CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy import select
from typer.testing import CliRunner

from loraforge.catalog import queries
from loraforge.catalog.models import Caption, Dataset, Derivative, Export, Face, Image
from loraforge.errors import Conflict, InvalidInput, NotFound, StorageError
from loraforge.exporters import canonical_json, diff_manifests, validate
from loraforge.stages.context import Context, open_context
from loraforge.stages.export import (
    OUT_MARKER,
    ZIP_MARKER,
    ExportRequest,
    check_out,
    find_export,
    list_exports,
    local_outputs,
    plan_export,
    preview_export,
    write_export,
)
from loraforge.storage.keys import derived_key, original_key
from tests.support.images import encode, real_photo

PHOTOS = {"astronaut.png": "astronaut", "coffee.png": "coffee", "nested/Chelsea Cat.png": "chelsea"}


def add_image(
    ctx: Context,
    dataset_id: str,
    filename: str,
    data: bytes,
    *,
    status: str = "pending",
    caption: str | None = None,
) -> str:
    sha = hashlib.sha256(data).hexdigest()
    ctx.store.put(original_key(sha), data)
    with PILImage.open(io.BytesIO(data)) as img:
        width, height, fmt = img.width, img.height, (img.format or "png").lower()
    with ctx.catalog.session() as session:
        image = Image(
            dataset_id=dataset_id, sha256=sha, object_key=original_key(sha), original_filename=filename,
            source_kind="file", source_uri=filename, width=width, height=height, format=fmt, bytes=len(data),
            status=status,
        )  # fmt: skip
        session.add(image)
        session.flush()
        if caption is not None:
            session.add(Caption(image_id=image.id, variant="old", text="stale caption", is_active=False))
            session.add(Caption(image_id=image.id, variant="manual", text=caption, is_active=True))
        return image.id


def make_dataset(
    ctx: Context, *, statuses: dict[str, str] | None = None, captions: bool = True, name: str = "alice"
) -> tuple[str, dict[str, str]]:
    """A dataset of three real photos with captions holding the trigger word; returns (id, filename -> id)."""
    with ctx.catalog.session() as session:
        dataset = queries.get_or_create_dataset(session, name, trigger_word="ohwx", class_word="cat",
                                                target_model="sd15")  # fmt: skip
        dataset_id = dataset.id
    ids = {}
    for filename, photo in PHOTOS.items():
        data = encode(real_photo(photo), "PNG")
        caption = f"ohwx cat, a photo of {photo}" if captions else None
        status = (statuses or {}).get(filename, "pending")
        ids[filename] = add_image(ctx, dataset_id, filename, data, status=status, caption=caption)
    return dataset_id, ids


def plan(ctx: Context, dataset_id: str, fmt: str = "kohya", **request: Any):  # noqa: ANN201
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        return plan_export(session, dataset, ExportRequest(format=fmt, **request), ctx.store)


@pytest.fixture
def ctx(embedded_env: Path) -> Context:
    return open_context()


def test_never_curated_dataset_exports_pending_images_with_their_active_caption(ctx: Context) -> None:
    dataset_id, ids = make_dataset(ctx)
    export_plan = plan(ctx, dataset_id)
    by_id = {item.image_id: item for item in export_plan.items}
    assert set(by_id) == set(ids.values())
    chelsea = by_id[ids["nested/Chelsea Cat.png"]]
    assert chelsea.caption == "ohwx cat, a photo of chelsea"
    assert chelsea.stem.startswith("chelsea-cat_") and chelsea.bucket is None
    assert chelsea.read() == encode(real_photo("chelsea"), "PNG")
    assert (export_plan.spec.trigger_word, export_plan.spec.target_model) == ("ohwx", "sd15")


def test_curated_dataset_exports_kept_only_unless_rejected_are_asked_for(ctx: Context) -> None:
    statuses = {"astronaut.png": "kept", "coffee.png": "rejected", "nested/Chelsea Cat.png": "pending"}
    dataset_id, ids = make_dataset(ctx, statuses=statuses)
    assert [item.image_id for item in plan(ctx, dataset_id).items] == [ids["astronaut.png"]]
    with_rejected = plan(ctx, dataset_id, include_rejected=True)
    assert {item.image_id for item in with_rejected.items} == {ids["astronaut.png"], ids["coffee.png"]}
    report = validate(with_rejected.items, with_rejected.spec)
    assert [p.image_id for p in report.by_check("excluded_image")] == [ids["coffee.png"]]


def test_bucket_derivatives_of_the_current_params_replace_originals(ctx: Context) -> None:
    dataset_id, ids = make_dataset(ctx)
    astronaut = ids["astronaut.png"]
    crop = encode(real_photo("astronaut").crop((0, 64, 512, 448)).resize((512, 384)), "JPEG")
    key = derived_key(dataset_id, astronaut, "bucket", "cur", "jpg")
    ctx.store.put(key, crop)
    with ctx.catalog.session() as session:
        session.add_all([
            Derivative(image_id=astronaut, kind="bucket", object_key=key, box=[0, 64, 512, 448], width=512,
                       height=384, params_hash="cur"),
            Derivative(image_id=astronaut, kind="bucket", object_key="derived/stale.png", width=64, height=64,
                       params_hash="old"),
            Face(image_id=astronaut, detector="test", bbox=[100, 100, 300, 300], score=0.9),
        ])  # fmt: skip
        session.get(Dataset, dataset_id).settings = {"bucket_params_hash": "cur"}  # type: ignore[union-attr]
    items = {item.image_id: item for item in plan(ctx, dataset_id).items}
    item = items[astronaut]
    assert (item.bucket, item.width, item.height, item.source_format) == ((512, 384), 512, 384, "jpg")
    assert item.read() == crop and item.content_sha256 is None
    assert item.faces == [(100.0, 36.0, 300.0, 236.0)]  # shifted up by the crop's 64 px
    assert items[ids["coffee.png"]].bucket is None  # no derivative: the original goes out


def test_export_stores_zip_and_manifest_and_writes_folder_and_zip_copies(
    ctx: Context, tmp_path: Path
) -> None:
    dataset_id, _ = make_dataset(ctx)
    out_dir, zip_path = local_outputs(tmp_path / "alice-kohya", zip=True)
    assert zip_path == tmp_path / "alice-kohya.zip"
    outcome = write_export(ctx, plan(ctx, dataset_id, repeats=3), out_dir=out_dir, zip_path=zip_path)
    with ctx.catalog.session() as session:
        row = session.get(Export, outcome.export_id)
        assert row is not None and row.status == "COMPLETED" and row.object_key == outcome.object_key
        assert (row.image_count, row.bytes) == (3, ctx.store.stat(outcome.object_key).size)
        manifest = row.manifest
    assert manifest is not None
    assert ctx.store.get(outcome.manifest_key).decode() == canonical_json(manifest)
    stored = ctx.store.get(outcome.object_key)
    assert zip_path.read_bytes() == stored
    # Its comment tells the next export to this path that LoRA Forge wrote it, so it may be replaced.
    assert zipfile.ZipFile(zip_path).comment == ZIP_MARKER
    members = zipfile.ZipFile(io.BytesIO(stored)).namelist()
    on_disk = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert sorted([*members, OUT_MARKER]) == on_disk
    assert sorted(members) == sorted(f["name"] for f in manifest["files"])
    assert json.loads((out_dir / OUT_MARKER).read_text()) == manifest
    images = [name for name in members if name.endswith(".png")]
    assert len(images) == 3 and all(name.startswith("img/3_ohwx cat/") for name in images)
    for name in images:
        assert "ohwx" in (out_dir / name).with_suffix(".txt").read_text()
    config = tomllib.loads((out_dir / "dataset_config.toml").read_text())
    assert config["datasets"][0]["subsets"][0]["num_repeats"] == 3
    assert {s["caption_id"] is not None for s in manifest["sources"]} == {True}
    assert not list(tmp_path.glob(".*partial*"))


def test_exporting_twice_yields_identical_versions_apart_from_ids_and_times(ctx: Context) -> None:
    dataset_id, _ = make_dataset(ctx)
    first = write_export(ctx, plan(ctx, dataset_id, fmt="replicate"))
    second = write_export(ctx, plan(ctx, dataset_id, fmt="replicate"))
    assert first.export_id != second.export_id
    assert ctx.store.get(first.object_key) == ctx.store.get(second.object_key)
    with ctx.catalog.session() as session:
        a, b = (find_export(session, dataset_id, e.export_id) for e in (first, second))
        assert diff_manifests(a.manifest or {}, b.manifest or {}).identical
        strip = ("export_id", "created_at")
        assert {k: v for k, v in (a.manifest or {}).items() if k not in strip} == {
            k: v for k, v in (b.manifest or {}).items() if k not in strip
        }
        assert [row.id for row in list_exports(session, dataset_id)] == [first.export_id, second.export_id]


def test_strict_export_with_a_missing_caption_refuses_and_creates_nothing(
    ctx: Context, tmp_path: Path
) -> None:
    dataset_id, ids = make_dataset(ctx, captions=True)
    with ctx.catalog.session() as session:
        for caption in session.scalars(select(Caption).where(Caption.image_id == ids["coffee.png"])):
            session.delete(caption)
    strict_plan = plan(ctx, dataset_id, fmt="replicate", options={"bucket_no_upscale": True})
    with pytest.raises(InvalidInput, match="missing_caption"):
        write_export(ctx, strict_plan, strict=True, out_dir=tmp_path / "out")
    with ctx.catalog.session() as session:
        assert session.scalars(select(Export)).all() == []
        with pytest.raises(InvalidInput, match="missing_caption"):
            preview_export(session, session.get(Dataset, dataset_id), ExportRequest("replicate"), ctx.store,
                           strict=True)  # fmt: skip
    assert list(ctx.store.list("exports/")) == [] and not (tmp_path / "out").exists()


def test_strict_export_of_a_clean_dataset_goes_ahead(ctx: Context) -> None:
    dataset_id, _ = make_dataset(ctx)
    outcome = write_export(ctx, plan(ctx, dataset_id, options={"bucket_no_upscale": True}), strict=True)
    assert outcome.image_count == 3 and "no problems" not in outcome.validation  # pending images: info only
    assert all(line.startswith("  info:") for line in outcome.validation.splitlines()[1:])


class ManifestUploadFails:
    """A store whose JSON uploads fail: the archive is already stored when the export breaks."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def put(self, key: str, data: Any, **kwargs: Any) -> Any:
        if key.endswith(".json"):
            raise StorageError("simulated outage")
        return self.inner.put(key, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_failure_after_the_archive_is_stored_leaves_no_visible_version(ctx: Context, tmp_path: Path) -> None:
    dataset_id, _ = make_dataset(ctx)
    broken = dataclasses.replace(ctx, store=ManifestUploadFails(ctx.store))
    export_plan = plan(ctx, dataset_id)
    with pytest.raises(StorageError):
        write_export(broken, export_plan, out_dir=tmp_path / "out", zip_path=tmp_path / "out.zip")
    with ctx.catalog.session() as session:
        assert list_exports(session, dataset_id) == []
        [failed] = list_exports(session, dataset_id, include_all=True)
        assert (failed.status, failed.object_key, failed.manifest) == ("FAILED", None, None)
    assert list(ctx.store.list("exports/")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_non_empty_out_folder_is_refused_before_any_version_exists(ctx: Context, tmp_path: Path) -> None:
    dataset_id, _ = make_dataset(ctx)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("stale")
    with pytest.raises(Conflict):
        write_export(ctx, plan(ctx, dataset_id), out_dir=tmp_path / "out")
    with ctx.catalog.session() as session:
        assert session.scalars(select(Export)).all() == []


def test_an_earlier_export_at_out_is_replaced_by_the_new_version(ctx: Context, tmp_path: Path) -> None:
    dataset_id, _ = make_dataset(ctx)
    out_dir, zip_path = local_outputs(tmp_path / "alice", zip=True)
    first = write_export(ctx, plan(ctx, dataset_id), out_dir=out_dir, zip_path=zip_path)
    (out_dir / "img" / "10_ohwx cat" / "left_over.png").write_bytes(b"from the first version")
    check_out(tmp_path / "alice", zip=True)  # the run's early check lets an earlier export through
    second = write_export(ctx, plan(ctx, dataset_id, repeats=2), out_dir=out_dir, zip_path=zip_path)
    assert second.export_id != first.export_id
    assert json.loads((out_dir / OUT_MARKER).read_text())["export_id"] == second.export_id
    assert zip_path.read_bytes() == ctx.store.get(second.object_key)
    assert sorted(p.name for p in (out_dir / "img").iterdir()) == ["2_ohwx cat"]  # nothing of the first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice", "alice.zip", "home"]


def test_out_holding_other_files_is_refused_unless_overwrite(ctx: Context, tmp_path: Path) -> None:
    dataset_id, _ = make_dataset(ctx)
    mine, archive, a_file = tmp_path / "mine", tmp_path / "mine.zip", tmp_path / "notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own notes")
    with zipfile.ZipFile(archive, "w") as other:
        other.writestr("holiday.jpg", b"not LoRA Forge's")
    a_file.write_text("a file")
    with pytest.raises(Conflict, match=r"--out .*mine holds files LoRA Forge did not write.*--overwrite"):
        check_out(mine)
    with pytest.raises(Conflict, match=r"--out .*mine.zip is a file LoRA Forge did not write"):
        check_out(archive)
    (tmp_path / "fresh.zip").write_bytes(archive.read_bytes())
    with pytest.raises(Conflict, match=r"--out .*fresh.zip is a file LoRA Forge did not write"):
        check_out(tmp_path / "fresh", zip=True)  # the zip beside the folder is checked too
    with pytest.raises(Conflict, match=r"--out .*notes is a file, not a folder"):
        check_out(a_file, overwrite=True)
    with pytest.raises(Conflict, match="did not write"):
        write_export(ctx, plan(ctx, dataset_id), zip_path=archive)
    with ctx.catalog.session() as session:
        assert session.scalars(select(Export)).all() == []
    assert (mine / "notes.txt").read_text() == "my own notes"

    check_out(mine, zip=True, overwrite=True)
    outcome = write_export(ctx, plan(ctx, dataset_id), out_dir=mine, zip_path=archive, overwrite=True)
    assert not (mine / "notes.txt").exists() and (mine / "dataset_config.toml").is_file()
    assert archive.read_bytes() == ctx.store.get(outcome.object_key)


def test_a_dataset_with_nothing_to_export_is_refused(ctx: Context) -> None:
    statuses = dict.fromkeys(PHOTOS, "rejected")
    dataset_id, _ = make_dataset(ctx, statuses=statuses)
    expected = (
        r"all 3 pictures of dataset 'alice' were rejected, are duplicates or need more than --max-upscale"
    )
    with pytest.raises(InvalidInput, match=expected):
        write_export(ctx, plan(ctx, dataset_id))
    with ctx.catalog.session() as session:
        assert session.scalars(select(Export)).all() == []


def test_find_export_takes_a_prefix_within_its_own_dataset(ctx: Context) -> None:
    dataset_id, _ = make_dataset(ctx)
    other_id, _ = make_dataset(ctx, name="bob")
    outcome = write_export(ctx, plan(ctx, dataset_id, fmt="replicate"))
    with ctx.catalog.session() as session:
        assert find_export(session, dataset_id, outcome.export_id[:6]).id == outcome.export_id
        with pytest.raises(NotFound):
            find_export(session, other_id, outcome.export_id)


def test_spec_options_set_fields_and_keep_extras() -> None:
    from loraforge.stages.export import _spec

    dataset = Dataset(
        name="Alice's set!", trigger_word="ohwx", class_word=None, target_model="flux", settings={}
    )
    spec = _spec(dataset, ExportRequest("kohya", repeats=4, options={"batch_size": 2, "relative_paths": True,
                                                                     "extra": "x"}))  # fmt: skip
    assert (spec.repeats, spec.batch_size, spec.relative_paths, spec.name) == (4, 2, True, "Alice-s-set")
    assert dict(spec.options) == {"extra": "x"} and spec.resolution == 1024


def test_local_outputs_tell_zip_from_folder(tmp_path: Path) -> None:
    assert local_outputs(None) == (None, None)
    assert local_outputs(tmp_path / "a.ZIP", zip=True) == (None, tmp_path / "a.ZIP")
    assert local_outputs(tmp_path / "a") == (tmp_path / "a", None)


def test_bucket_no_upscale_silences_the_upscale_warning() -> None:
    from tests.unit.exporters.exporter_factories import make_item, make_spec

    items = [make_item(0, size=(300, 300))]
    assert validate(items, make_spec("kohya")).by_check("upscaled")
    assert validate(items, make_spec("kohya", bucket_no_upscale=True)).by_check("upscaled") == []


def test_exports_cli_lists_downloads_and_diffs(ctx: Context, tmp_path: Path) -> None:
    from services.cli.main import app

    dataset_id, _ = make_dataset(ctx)
    first = write_export(ctx, plan(ctx, dataset_id, fmt="replicate"))
    second = write_export(ctx, plan(ctx, dataset_id, fmt="replicate", options={"caption_dropout_rate": 0.1}))
    runner = CliRunner()
    listed = runner.invoke(app, ["exports", "--dataset", "alice", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [row["id"] for row in json.loads(listed.stdout)] == [first.export_id, second.export_id]
    listed_all = runner.invoke(app, ["exports", "list", "--dataset", "alice", "--all", "--json"])
    assert [row["status"] for row in json.loads(listed_all.stdout)] == ["COMPLETED", "COMPLETED"]
    got = runner.invoke(app, ["exports", "get", "--dataset", "alice", first.export_id[:8], "--out",
                              str(tmp_path / "got.zip")])  # fmt: skip
    assert got.exit_code == 0, got.output
    assert (tmp_path / "got.zip").read_bytes() == ctx.store.get(first.object_key)
    same = runner.invoke(app, ["exports", "diff", "--dataset", "alice", first.export_id, first.export_id])
    assert "identical" in same.stdout
    changed = runner.invoke(app, ["exports", "diff", "--dataset", "alice", first.export_id, second.export_id,
                                  "--json"])  # fmt: skip
    payload = json.loads(changed.stdout)
    assert payload["identical"] is False and payload["settings_changed"] == {
        "caption_dropout_rate": [0.0, 0.1]
    }
    missing = runner.invoke(app, ["exports", "get", "--dataset", "alice", "ffffffff", "--out", "x.zip"])
    assert missing.exit_code == 1 and "no completed export" in missing.output


def test_the_folder_copy_names_its_absolute_path_and_the_stored_version_stays_portable(
    ctx: Context, tmp_path: Path
) -> None:
    dataset_id, _ = make_dataset(ctx)
    out_dir = tmp_path / "alice-kohya"
    outcome = write_export(ctx, plan(ctx, dataset_id), out_dir=out_dir)
    stored = zipfile.ZipFile(io.BytesIO(ctx.store.get(outcome.object_key)))
    folder_toml = tomllib.loads((out_dir / "dataset_config.toml").read_text())
    stored_toml = tomllib.loads(stored.read("dataset_config.toml").decode())
    image_dir = folder_toml["datasets"][0]["subsets"][0]["image_dir"]
    assert image_dir == str(out_dir.resolve() / "img" / "10_ohwx cat") and Path(image_dir).is_dir()
    assert stored_toml["datasets"][0]["subsets"][0]["image_dir"] == "img/10_ohwx cat"
    assert (
        f'--dataset_config "{out_dir.resolve()}/dataset_config.toml"'
        in (out_dir / "dataset_config.toml").read_text()
    )
    assert "cd" in stored.read("dataset_config.toml").decode().split("accelerate")[0]
    for name in stored.namelist():
        if name != "dataset_config.toml":
            assert (out_dir / name).read_bytes() == stored.read(name), name

    portable = tmp_path / "portable"
    again = write_export(ctx, plan(ctx, dataset_id, options={"relative_paths": True}), out_dir=portable)
    stored_again = zipfile.ZipFile(io.BytesIO(ctx.store.get(again.object_key)))
    assert (portable / "dataset_config.toml").read_bytes() == stored_again.read("dataset_config.toml")


def test_a_picture_over_max_upscale_is_left_out_and_named_when_a_limit_is_asked(ctx: Context) -> None:
    dataset_id, ids = make_dataset(ctx)
    tiny = add_image(ctx, dataset_id, "tiny.png", encode(real_photo("coffee").resize((100, 100)), "PNG"),
                     caption="ohwx cat, a tiny photo")  # fmt: skip
    big = encode(real_photo("coffee").resize((1024, 1024)), "JPEG")
    key = derived_key(dataset_id, tiny, "bucket", "cur", "jpg")
    ctx.store.put(key, big)
    with ctx.catalog.session() as session:
        session.add(Derivative(image_id=tiny, kind="bucket", object_key=key, box=[0, 0, 100, 100], width=1024,
                               height=1024, params_hash="cur"))  # fmt: skip
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        dataset.settings = {"bucket_params_hash": "cur"}
    refused = plan(ctx, dataset_id, max_upscale=1.5)
    assert tiny not in {item.image_id for item in refused.items} and len(refused.items) == 3
    reason = "needs upscale 10.24, over --max-upscale 1.5 (--allow-upscale exports it)"
    assert refused.upscaled == [{"filename": "tiny.png", "reason": reason}]
    outcome = write_export(ctx, refused)
    assert outcome.image_count == 3 and outcome.to_dict()["left_out"] == refused.upscaled

    allowed = plan(ctx, dataset_id)  # no limit asked (`run --allow-upscale`, the API's default)
    assert tiny in {item.image_id for item in allowed.items} and allowed.upscaled == []
    assert ids["astronaut.png"] in {item.image_id for item in allowed.items}
