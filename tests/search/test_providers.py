"""Each provider against its fake: paging, quirks, licences and ratings read right, Retry-After honoured."""

from __future__ import annotations

import time

import pytest

from loraforge.errors import InvalidInput
from loraforge.sources.enumerate import SourceLimits
from loraforge.sources.search import get_provider
from loraforge.sources.search.base import Rating, SearchTerms
from loraforge.sources.search.http import ApiClient, ProviderError, RateLimited, user_agent
from tests.support.fake_providers import FakeProvider, running

LIMITS = SourceLimits(
    max_file_bytes=10_000_000,
    max_zip_ratio=100,
    max_zip_total_bytes=10**9,
    url_timeout_s=2,
    allow_private_urls=True,
    url_deadline_s=3,
)


def client(
    fake: FakeProvider, *, key: str | None = None, limits: SourceLimits = LIMITS, **kw: object
) -> ApiClient:
    return ApiClient(
        provider=fake.kind,
        base_url=fake.url,
        limits=limits,
        user_agent=user_agent("ops@example.org"),
        min_interval_s=0,
        api_key=key,
        **kw,  # type: ignore[arg-type]
    )


def all_pages(fake: FakeProvider, terms: SearchTerms, **kw: object) -> list[list[str]]:
    provider = get_provider(fake.kind)
    api = client(fake, **kw)  # type: ignore[arg-type]
    cursor = None
    pages = []
    for _ in range(20):
        page = provider.page(api, terms, cursor)
        pages.append([c.provider_id for c in page.candidates])
        cursor = page.next_cursor
        if cursor is None:
            break
    return pages


def test_openverse_pages_by_20_anonymously_and_reads_licences() -> None:
    with running("openverse", total=45) as fake:
        pages = all_pages(fake, SearchTerms("grace hopper", page_size=100))
        assert [len(p) for p in pages] == [20, 20, 5]
        assert {r.query["page_size"] for r in fake.api_requests()} == {"20"}
        assert all(
            "loraforge" in r.headers["user-agent"] and "ops@example.org" in r.headers["user-agent"]
            for r in fake.api_requests()
        )
        page = get_provider("openverse").page(client(fake), SearchTerms("q"), None)
    first = {c.provider_id: c for c in page.candidates}
    assert first["ov-0004"].licence == "cc0"
    assert first["ov-0001"].licence == "cc-by" and first["ov-0001"].licence_version == "4.0"
    assert first["ov-0002"].licence == "cc-by-sa"
    assert first["ov-0003"].licence == "cc-by-nc"
    assert first["ov-0001"].creator == "Photographer 1"
    assert first["ov-0001"].page_url == "https://www.flickr.com/photos/1"


def test_openverse_fake_refuses_big_anonymous_pages_as_the_real_one_does() -> None:
    with running("openverse") as fake:
        api = client(fake)
        with pytest.raises(ProviderError, match="401"):
            api.get_json("/v1/images/", {"q": "x", "page_size": 50})


def test_openverse_passes_the_licence_filter_along() -> None:
    with running("openverse", total=40) as fake:
        page = get_provider("openverse").page(
            client(fake), SearchTerms("q", licences=frozenset({"cc0"})), None
        )
        assert fake.api_requests()[-1].query["license"] == "cc0"
    assert page.candidates and {c.licence for c in page.candidates} == {"cc0"}


def test_wikimedia_merges_continue_into_the_next_request() -> None:
    with running("wikimedia", total=25) as fake:
        pages = all_pages(fake, SearchTerms("grace hopper", page_size=10))
        sent = fake.api_requests()
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sent[1].query["gsroffset"] == "10" and sent[1].query["continue"] == "gsroffset||"
    assert pages[0][0] == "1001"  # sorted by search rank ("index"), not the page-id order sent


def test_wikimedia_reads_extmetadata_licences() -> None:
    with running("wikimedia", total=5) as fake:
        page = get_provider("wikimedia").page(client(fake), SearchTerms("q", page_size=10), None)
    by_id = {c.provider_id: c for c in page.candidates}
    assert (by_id["1001"].licence, by_id["1001"].licence_version) == ("cc0", "1.0")
    assert (by_id["1005"].licence, by_id["1005"].licence_version) == ("cc-by-sa", "4.0")
    assert by_id["1002"].licence == "pdm"
    assert (by_id["1003"].licence, by_id["1003"].licence_version) == ("cc-by", "2.0")
    assert by_id["1004"].licence == "unknown"  # "All rights reserved"
    assert by_id["1005"].creator == "U5"  # the Artist HTML reduced to its text
    assert by_id["1005"].attribution and "CC BY-SA 4.0" in by_id["1005"].attribution


def test_wikimedia_error_answer_is_a_provider_error() -> None:
    with running("wikimedia") as fake:
        provider = get_provider("wikimedia")
        with pytest.raises(ProviderError, match="badcontinue"):
            provider.page(client(fake), SearchTerms("q"), {"gsroffset": 10})


def test_danbooru_pages_by_id_and_reads_ratings() -> None:
    with running("danbooru", total=45) as fake:
        pages = all_pages(fake, SearchTerms("1girl solo", page_size=20))
        assert [r.query["page"] for r in fake.api_requests()] == ["1", "b26", "b6", "b1"]
        page = get_provider("danbooru").page(client(fake), SearchTerms("q", page_size=4), None)
    assert [len(p) for p in pages] == [20, 20, 5, 0]
    ratings = {c.provider_id: c.rating for c in page.candidates}
    assert ratings == {
        "45": Rating.SENSITIVE,
        "44": Rating.GENERAL,
        "43": Rating.EXPLICIT,
        "42": Rating.QUESTIONABLE,
    }
    assert all(c.licence == "unknown" for c in page.candidates)
    assert page.candidates[0].creator == "artist_45"


@pytest.mark.parametrize("total, expected", [(0, 0), (1, 1), (3, 3)])
def test_gelbooru_post_missing_single_or_list(total: int, expected: int) -> None:
    with running("gelbooru", total=total) as fake:
        page = get_provider("gelbooru").page(client(fake), SearchTerms("q"), None)
    assert len(page.candidates) == expected
    assert page.next_cursor is None


def test_gelbooru_pages_with_pid() -> None:
    with running("gelbooru", total=25) as fake:
        pages = all_pages(fake, SearchTerms("q", page_size=10))
    assert [len(p) for p in pages] == [10, 10, 5]


def test_safebooru_empty_body_means_no_results() -> None:
    with running("safebooru", total=0) as fake:
        page = get_provider("safebooru").page(client(fake), SearchTerms("nothing"), None)
    assert page.candidates == [] and page.next_cursor is None


def test_safebooru_builds_file_urls_and_maps_safe_to_general() -> None:
    with running("safebooru", total=12) as fake:
        pages = all_pages(fake, SearchTerms("q", page_size=5))
        page = get_provider("safebooru").page(client(fake), SearchTerms("q", page_size=5), None)
        assert page.candidates[0].file_url == f"{fake.url}/images/files/1.jpg"
    assert [len(p) for p in pages] == [5, 5, 2]
    assert page.candidates[0].rating == Rating.GENERAL and page.candidates[2].rating == Rating.QUESTIONABLE


def test_brave_sends_its_key_and_refuses_without_one() -> None:
    with running("brave", key="secret-token", total=5) as fake:
        page = get_provider("brave").page(client(fake, key="secret-token"), SearchTerms("q"), None)
        assert fake.api_requests()[-1].headers["x-subscription-token"] == "secret-token"
        with pytest.raises(ProviderError, match="422"):
            get_provider("brave").page(client(fake, key="wrong"), SearchTerms("q"), None)
    assert len(page.candidates) == 5 and page.next_cursor is None
    assert all(c.licence == "unknown" for c in page.candidates)


@pytest.mark.parametrize("kind", ["openverse", "wikimedia", "danbooru", "gelbooru", "safebooru", "brave"])
def test_429_waits_for_retry_after_then_goes_on(kind: str) -> None:
    key = "k" if kind == "brave" else None
    with running(kind, throttle=2, retry_after="1", key=key, total=3) as fake:
        api = client(fake, key=key)
        started = time.monotonic()
        page = get_provider(kind).page(api, SearchTerms("q"), None)
        elapsed = time.monotonic() - started
        assert len(fake.api_requests()) == 3
    assert page.candidates
    assert elapsed >= 2.0 and api.waited_s >= 2.0


def test_retry_after_longer_than_allowed_fails_the_provider() -> None:
    with running("danbooru", throttle=1, retry_after="3600") as fake:
        with pytest.raises(RateLimited, match="3600"):
            get_provider("danbooru").page(client(fake, max_wait_s=60), SearchTerms("q"), None)


def test_a_provider_that_keeps_answering_429_gives_up() -> None:
    with running("gelbooru", throttle=10, retry_after="0") as fake:
        with pytest.raises(RateLimited, match="after 2 retries"):
            get_provider("gelbooru").page(client(fake, max_retries=2), SearchTerms("q"), None)
        assert len(fake.api_requests()) == 3


def test_a_provider_that_times_out_is_a_provider_error() -> None:
    with running("openverse", delay_s=3) as fake:
        started = time.monotonic()
        with pytest.raises(ProviderError, match="did not answer|cannot reach"):
            get_provider("openverse").page(client(fake), SearchTerms("q"), None)
        assert time.monotonic() - started < 3


def test_loopback_is_refused_unless_allowed() -> None:
    strict = SourceLimits(max_file_bytes=10**7, max_zip_ratio=100, max_zip_total_bytes=10**9)
    with running("openverse") as fake:
        with pytest.raises(ProviderError, match="loopback"):
            get_provider("openverse").page(client(fake, limits=strict), SearchTerms("q"), None)
        assert fake.requests == []


def test_downloads_carry_no_key() -> None:
    with running("brave", key="secret-token", total=2) as fake:
        api = client(fake, key="secret-token")
        page = get_provider("brave").page(api, SearchTerms("q"), None)
        data = api.download(page.candidates[0].file_url)
        files = fake.file_requests()
    assert data[:2] == b"\xff\xd8"
    assert files and all(
        "x-subscription-token" not in r.headers and "authorization" not in r.headers for r in files
    )


def test_a_picture_url_naming_a_private_address_is_refused() -> None:
    """A provider's answer names the file: a name resolving to a private address is never fetched."""
    strict = SourceLimits(max_file_bytes=10**7, max_zip_ratio=100, max_zip_total_bytes=10**9, url_timeout_s=2)
    with running("danbooru") as fake:
        api = client(fake, limits=strict, resolver=lambda host, port, *_: [(2, 1, 6, "", ("10.0.0.7", port))])
        with pytest.raises(InvalidInput, match="non-public address 10.0.0.7"):
            api.download("http://cdn.example/files/1.jpg")
