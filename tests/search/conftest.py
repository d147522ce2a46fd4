"""Search tests: the catalog on Postgres, objects on the S3 server, providers faked on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_providers import FakeProvider, provider_env, running


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeProvider]]:
    """One running fake per provider; Brave wants the key "brave-key"."""
    with (
        running("openverse", total=45, small_every=9) as openverse,
        running("wikimedia", total=25) as wikimedia,
        running("danbooru", total=30) as danbooru,
        running("gelbooru", total=12) as gelbooru,
        running("safebooru", total=10) as safebooru,
        running("brave", total=6, key="brave-key") as brave,
    ):
        yield {f.kind: f for f in (openverse, wikimedia, danbooru, gelbooru, safebooru, brave)}


@pytest.fixture
def search_env(
    stack_env: dict[str, str], fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    from loraforge.config import get_settings
    from loraforge.stages.context import reset_contexts

    env = {
        **stack_env,
        **provider_env(*fakes.values()),
        "LORAFORGE_EXECUTOR": "inline",
        "LORAFORGE_URL_TIMEOUT_S": "4",  # a provider that does not answer fails in seconds
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_contexts()
    return env
