"""API test fixtures: a TestClient on the real app, over Postgres and the S3 server of `stack_env`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from loraforge.stages.context import Context, open_context


@pytest.fixture
def ctx(stack_env: dict[str, str]) -> Context:
    context = open_context()
    context.catalog.ensure_schema()
    return context


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    from services.api.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client
