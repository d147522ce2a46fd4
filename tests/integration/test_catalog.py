"""The catalog on both backends: migrations from scratch, constraints, idempotent upgrade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from loraforge.catalog import Catalog
from loraforge.catalog.db import current_revision, upgrade
from loraforge.catalog.models import Image
from loraforge.catalog.queries import find_dataset, get_or_create_dataset
from loraforge.errors import CatalogError, InvalidInput, NotFound


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    catalog = Catalog(url)
    yield catalog
    if request.param == "postgres":
        from loraforge.catalog.models import Base

        Base.metadata.drop_all(catalog.engine)
        with catalog.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    catalog.dispose()


def _image(dataset_id: str, sha: str) -> Image:
    return Image(
        dataset_id=dataset_id,
        sha256=sha,
        object_key=f"originals/{sha[:2]}/{sha}",
        original_filename="a.jpg",
        source_kind="folder",
        source_uri="/x",
        width=1,
        height=1,
        format="jpeg",
        bytes=1,
    )


def test_migrations_create_every_table(catalog: Catalog) -> None:
    catalog.ensure_schema()
    tables = set(inspect(catalog.engine).get_table_names())
    assert {
        "workspaces",
        "datasets",
        "images",
        "image_metadata",
        "captions",
        "faces",
        "derivatives",
        "tasks",
        "exports",
        "trainings",
        "alembic_version",
    } <= tables
    assert current_revision(catalog.engine) == "0006_search_pacing"
    upgrade(catalog.engine)  # a second upgrade is a no-op
    assert current_revision(catalog.engine) == "0006_search_pacing"


def test_same_bytes_enter_a_dataset_once(catalog: Catalog) -> None:
    with catalog.session() as session:
        dataset_id = get_or_create_dataset(session, "alice", trigger_word="ohwx").id
        session.add(_image(dataset_id, "ab" * 32))
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.add(_image(dataset_id, "ab" * 32))
    with catalog.session() as session:
        other = get_or_create_dataset(session, "bob").id
        session.add(_image(other, "ab" * 32))  # another dataset may hold the same bytes


def test_dataset_lookup_and_validation(catalog: Catalog) -> None:
    with catalog.session() as session:
        get_or_create_dataset(session, "alice", target_model="flux")
    with catalog.session() as session:
        assert find_dataset(session, "alice").target_model == "flux"
        with pytest.raises(NotFound):
            find_dataset(session, "nobody")
        with pytest.raises(InvalidInput):
            get_or_create_dataset(session, "x", target_model="sd3")


def test_unreachable_database_is_a_clear_error() -> None:
    catalog = Catalog("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    with pytest.raises(CatalogError, match="cannot reach the catalog"):
        catalog.ensure_schema()
