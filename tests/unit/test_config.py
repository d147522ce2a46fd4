"""Settings: embedded defaults, overrides, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from loraforge.config import load_settings
from loraforge.errors import ConfigError


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAFORGE_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.resolved_catalog_url == f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    assert settings.resolved_storage_url == f"file://{tmp_path / 'objects'}"
    assert settings.ray_address is None and settings.prefect_api_url is None


def test_plain_postgres_url_uses_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAFORGE_CATALOG_URL", "postgresql://u@h/db")
    assert load_settings().resolved_catalog_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LORAFORGE_SHARD_SIZE", "zero"),
        ("LORAFORGE_SHARD_SIZE", "0"),
        ("LORAFORGE_CATALOG_URL", "mysql://x/y"),
        ("LORAFORGE_STORAGE_URL", "ftp://nowhere"),
        ("LORAFORGE_EXECUTOR", "spark"),
    ],
)
def test_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_s3_storage_requires_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAFORGE_STORAGE_URL", "s3://loraforge")
    with pytest.raises(ConfigError, match="LORAFORGE_S3_ENDPOINT"):
        load_settings()
