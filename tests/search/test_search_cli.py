"""`loraforge search` end to end in-process: pictures found, filtered, downloaded, ingested with provenance,
resumed on a second run, and exported with their licences in the manifest and ATTRIBUTION.md."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from loraforge.catalog.models import Image, ImageMetadata, SearchCandidate, SearchCursor
from loraforge.stages.context import open_context
from services.cli.main import app
from tests.support.fake_providers import FakeProvider

pytestmark = pytest.mark.usefixtures("prefect_harness", "search_env")


def search(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["search", *args])
    return result.exit_code, result.output


def search_json(*args: str) -> dict[str, Any]:
    code, output = search(*args, "--json")
    assert code == 0, output
    value, _ = json.JSONDecoder().raw_decode(output[output.index('{\n  "query_id"') :])
    return value  # type: ignore[no-any-return]


def lines(outcome: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line["provider"]: line for line in outcome["providers"]}


def test_search_adds_pictures_with_licences_and_resumes(fakes: dict[str, FakeProvider]) -> None:
    args = ["grace hopper", "--provider", "openverse,wikimedia", "--licence", "cc0,cc-by,cc-by-sa"]
    first = lines(search_json(*args, "--limit", "8", "--dataset", "hopper"))

    openverse, wikimedia = first["openverse"], first["wikimedia"]
    assert openverse["error"] is None and wikimedia["error"] is None
    assert openverse["added"] == 8 and wikimedia["added"] == 8
    # Openverse was asked for the three licences; Wikimedia's unknown, pdm and other licences are refused.
    assert fakes["openverse"].api_requests()[0].query["license"] == "by,by-sa,cc0"
    assert wikimedia["refused"]["licence"] > 0
    assert openverse["refused"]["size"] > 0  # every 9th Openverse picture declares 100x80
    assert {r.query["page_size"] for r in fakes["openverse"].api_requests()} == {"8"}

    ctx = open_context()
    with ctx.catalog.session() as session:
        images = session.scalars(select(Image)).all()
        assert len(images) == 16
        records = {
            row.image_id: row.value
            for row in session.scalars(select(ImageMetadata).where(ImageMetadata.key == "provenance"))
        }
        cursors = {row.provider: row.cursor for row in session.scalars(select(SearchCursor))}
    assert set(records) == {image.id for image in images}
    wiki = next(r for r in records.values() if r["provider"] == "wikimedia")
    assert wiki["licence"] in ("cc0", "cc-by", "cc-by-sa") and wiki["page_url"].startswith("https://commons")
    assert wiki["file_url"].startswith(fakes["wikimedia"].url) and wiki["creator"].startswith("U")
    assert cursors["wikimedia"] and cursors["wikimedia"]["continue"] == "gsroffset||"

    # Again: the search continues from the cursors, and nothing already taken comes back.
    requests_before = len(fakes["wikimedia"].api_requests())
    second = lines(search_json(*args, "--limit", "8", "--dataset", "hopper"))
    assert second["openverse"]["added"] == 8 and second["wikimedia"]["added"] >= 1
    resumed = fakes["wikimedia"].api_requests()[requests_before]
    assert resumed.query.get("gsroffset") and resumed.query["continue"] == "gsroffset||"
    with ctx.catalog.session() as session:
        total = session.scalar(select(func.count()).select_from(Image))
        distinct = session.scalar(select(func.count(func.distinct(Image.sha256))))
    assert total == distinct == 16 + second["openverse"]["added"] + second["wikimedia"]["added"]


def test_bad_providers_are_refused_and_the_rest_goes_on(
    fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LORAFORGE_BRAVE_API_KEY")
    from loraforge.config import get_settings

    get_settings.cache_clear()
    code, output = search(
        "1girl solo",
        "--provider",
        "safebooru,nosuch,brave,danbooru,openverse",
        "--licence",
        "cc0",
        "--limit",
        "3",
        "--dataset",
        "style",
    )
    assert code == 0, output
    assert "unknown provider 'nosuch'" in output
    assert "brave needs a key: set LORAFORGE_BRAVE_API_KEY" in output
    assert "safebooru gives no licence" in output and "danbooru gives no licence" in output
    assert fakes["safebooru"].requests == [] and fakes["danbooru"].requests == []
    assert fakes["openverse"].file_requests()  # the provider that can pass the filter went on

    outcome = lines(
        search_json("1girl solo", "--provider", "safebooru,nosuch", "--limit", "3", "--dataset", "style")
    )
    assert outcome["safebooru"]["added"] == 3 and "unknown provider" in outcome["nosuch"]["error"]


def test_every_provider_failing_exits_1() -> None:
    code, output = search("x", "--provider", "nosuch", "--dataset", "none")
    assert code == 1 and "unknown provider" in output


def test_bad_licence_code_is_refused_before_anything() -> None:
    code, output = search("x", "--licence", "cc-by,mit", "--dataset", "d")
    assert code == 1 and "unknown licence code(s) mit" in output


def test_ratings_filter_and_booru_quirks(fakes: dict[str, FakeProvider]) -> None:
    outcome = lines(
        search_json(
            "1girl solo", "--provider", "danbooru,gelbooru,safebooru", "--limit", "4", "--dataset", "style"
        )
    )
    assert outcome["danbooru"]["added"] == 4 and outcome["danbooru"]["refused"]["rating"] > 0
    assert outcome["gelbooru"]["added"] == 4 and outcome["gelbooru"]["refused"]["rating"] > 0
    assert outcome["safebooru"]["added"] == 4

    # Safebooru's 10 posts run out: its empty body ends the query, and the line says it is exhausted.
    rest = lines(search_json("1girl solo", "--provider", "safebooru", "--limit", "50", "--dataset", "style"))
    assert rest["safebooru"]["exhausted"] is True and rest["safebooru"]["error"] is None
    assert rest["safebooru"]["added"] == 10 - 3 - 4  # 3 questionable, 4 taken already


def test_rate_limited_provider_is_waited_for(fakes: dict[str, FakeProvider]) -> None:
    fakes["danbooru"].throttle = 1
    outcome = lines(
        search_json("1girl", "--provider", "danbooru", "--rating", "any", "--limit", "2", "--dataset", "d")
    )
    assert outcome["danbooru"]["added"] == 2
    assert [r.query["page"] for r in fakes["danbooru"].api_requests()] == ["1", "1"]


def test_table_and_list_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.cli.main import out_console

    monkeypatch.setattr(out_console, "width", 200)
    code, output = search("grace hopper", "--provider", "openverse", "--limit", "2", "--dataset", "hopper")
    assert code == 0, output
    assert "already" in output and "(licence, rating, size)" in output and "openverse" in output
    code, output = search("--list-providers")
    assert code == 0 and "brave" in output and "wikimedia" in output


def test_export_carries_provenance_and_attribution(tmp_path: Path) -> None:
    search_json("grace hopper", "--provider", "wikimedia,safebooru", "--limit", "3", "--dataset", "mixed")
    result = CliRunner().invoke(
        app,
        ["export", "--dataset", "mixed", "--format", "kohya", "--out", str(tmp_path / "out.zip"), "--json"],
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        names = archive.namelist()
        attribution = archive.read("ATTRIBUTION.md").decode()
    assert "ATTRIBUTION.md" in names
    assert "licence unknown" in attribution and "safebooru" in attribution
    assert "Source page: https://commons.wikimedia.org/wiki/File:Grace_Hopper_1.jpg" in attribution
    ctx = open_context()
    with ctx.catalog.session() as session:
        from loraforge.catalog.models import Export

        manifest = session.scalars(select(Export)).one().manifest
        assert session.scalar(select(func.count()).select_from(SearchCandidate)) > 0
    assert manifest is not None
    provenance = [source["provenance"] for source in manifest["sources"]]
    assert len(provenance) == 6 and all(p and p["provider"] in ("wikimedia", "safebooru") for p in provenance)
    assert any(p["licence"] == "unknown" and p["flags"] for p in provenance)


def test_a_provider_failing_mid_search_keeps_what_it_gave(fakes: dict[str, FakeProvider]) -> None:
    fakes["openverse"].fail_after = 1
    line = lines(
        search_json("grace hopper", "--provider", "openverse", "--limit", "30", "--dataset", "half")
    )["openverse"]
    assert "HTTP 500" in line["error"]
    assert line["found"] == 20 and line["added"] == 20 - line["refused"]["size"] > 0  # page 1 of 20
