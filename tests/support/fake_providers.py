"""Fake image-search providers: real HTTP servers on loopback speaking each provider's protocol, quirks
included, and serving the pictures their answers point to.

- Openverse refuses a page_size over 20 from an anonymous client with 401, as its serializer does.
- Wikimedia answers a `continue` object; a next request that does not carry all of it back gets MediaWiki's
  `badcontinue` error.
- Gelbooru's `post` is missing for no result, a single object for one, a list for more.
- Safebooru answers an empty body (200, no bytes) when nothing matches.
- Brave refuses a request without the right X-Subscription-Token.
- Every one answers 429 with Retry-After for the next `throttle` API calls when a test asks it to.

Each server records every request (path, query, headers), so tests can check what was sent where.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

OPENVERSE_LICENCES = [("cc0", "1.0"), ("by", "4.0"), ("by-sa", "4.0"), ("by-nc", "2.0")]
KINDS = ["openverse", "wikimedia", "danbooru", "gelbooru", "safebooru", "brave"]
DANBOORU_RATINGS = ["g", "s", "q", "e"]
WIKIMEDIA_LICENCES = ["CC BY-SA 4.0", "CC0", "Public domain", "CC BY 2.0", "All rights reserved"]


def picture(index: int, width: int = 640, height: int = 480) -> bytes:
    """A distinct JPEG per index (its own colours, stripes and, bit by bit, the index itself)."""
    image = Image.new("RGB", (width, height), ((index * 53) % 256, (index * 97) % 256, (index * 31) % 256))
    pixels = image.load()
    assert pixels is not None
    for x in range(0, width, 7 + index % 5):
        for y in range(height):
            pixels[x, y] = (255 - (index * 13) % 256, (y * 3) % 256, (x * 5) % 256)
    for bit in range(24):  # the index itself, in the top row: no two indexes give the same bytes
        pixels[bit, 0] = (255, 255, 255) if index >> bit & 1 else (0, 0, 0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeProvider:
    """One provider's API and its picture host on one loopback port."""

    kind: str
    total: int = 30
    """How many results the query has."""
    key: str | None = None
    """The key the API wants (Brave); None: anonymous is fine."""
    throttle: int = 0
    """Answer the next `throttle` API calls with 429."""
    retry_after: str = "1"
    delay_s: float = 0.0
    """Wait this long before answering an API call (a provider that times out)."""
    fail_after: int | None = None
    """Answer 500 to every API call after this many."""
    small_every: int = 0
    """Every n-th result declares 100x80 pixels (refused for size)."""
    requests: list[Recorded] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if "/files/" not in r.path]

    def file_requests(self) -> list[Recorded]:
        return [r for r in self.requests if "/files/" in r.path]

    # ------------------------------------------------------------------ answers

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict, bytes]:
        if "/files/" in path:  # /files/<n>.jpg, or Safebooru's /images/<directory>/<image>
            index = int(path.rsplit("/", 1)[-1].split(".")[0])
            # Each provider's pictures differ from every other's: the same index is another picture.
            return 200, {"Content-Type": "image/jpeg"}, picture(index + 100_000 * KINDS.index(self.kind))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_after is not None and len(self.api_requests()) > self.fail_after:
            return 500, {"Content-Type": "text/html"}, b"<h1>Internal Server Error</h1>"
        if self.throttle > 0:
            self.throttle -= 1
            return 429, {"Retry-After": self.retry_after, "Content-Type": "application/json"}, b"{}"
        handler = getattr(self, f"_{self.kind}")
        status, body = handler(path, query, headers)
        if body is None:
            return status, {"Content-Type": "application/json"}, b""
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _file(self, index: int) -> str:
        return f"{self.url}/files/{index}.jpg"

    def _size(self, index: int) -> tuple[int, int]:
        if self.small_every and index % self.small_every == 0:
            return 100, 80
        return 640, 480

    def _openverse(self, path: str, q: dict[str, str], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/v1/images/":
            return 404, {"detail": "Not found."}
        size = int(q.get("page_size", 20))
        if size > 20 and "authorization" not in h:
            return 401, {"detail": "Authentication credentials were not provided."}
        wanted = set(q["license"].split(",")) if q.get("license") else None
        rows = []
        for i in range(1, self.total + 1):
            licence, version = OPENVERSE_LICENCES[i % len(OPENVERSE_LICENCES)]
            if wanted is None or licence in wanted:
                rows.append((i, licence, version))
        page = int(q.get("page", 1))
        chunk = rows[(page - 1) * size : page * size]
        results = []
        for i, licence, version in chunk:
            width, height = self._size(i)
            results.append(
                {
                    "id": f"ov-{i:04d}",
                    "title": f"Grace Hopper {i}",
                    "foreign_landing_url": f"https://www.flickr.com/photos/{i}",
                    "url": self._file(i),
                    "creator": f"Photographer {i}",
                    "license": licence,
                    "license_version": version,
                    "license_url": f"https://creativecommons.org/licenses/{licence}/{version}/",
                    "attribution": f'"Grace Hopper {i}" by Photographer {i} is licensed under CC {licence}',
                    "thumbnail": f"{self.url}/v1/images/ov-{i:04d}/thumb/",
                    "width": width,
                    "height": height,
                    "filesize": 50_000,
                    "tags": [{"name": "portrait"}],
                    "mature": False,
                }
            )
        page_count = max(1, -(-len(rows) // size))
        return 200, {
            "result_count": len(rows),
            "page_count": page_count,
            "page_size": size,
            "page": page,
            "results": results,
        }

    def _wikimedia(self, path: str, q: dict[str, str], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/w/api.php" or q.get("generator") != "search" or q.get("gsrnamespace") != "6":
            return 200, {"error": {"code": "badparams", "info": "expected a file search"}}
        offset = int(q.get("gsroffset", 0))
        if "gsroffset" in q and q.get("continue") != "gsroffset||":
            return 200, {
                "error": {
                    "code": "badcontinue",
                    "info": "Invalid continue param. You should pass the original value returned by the "
                    "previous query.",
                }
            }
        limit = int(q.get("gsrlimit", 10))
        pages = []
        for n, i in enumerate(range(offset + 1, min(self.total, offset + limit) + 1)):
            width, height = self._size(i)
            licence = WIKIMEDIA_LICENCES[i % len(WIKIMEDIA_LICENCES)]
            pages.append(
                {
                    "pageid": 1000 + i,
                    "ns": 6,
                    "title": f"File:Grace Hopper {i}.jpg",
                    "index": offset + n + 1,
                    "imageinfo": [
                        {
                            "size": 50_000,
                            "width": width,
                            "height": height,
                            "thumburl": f"{self.url}/thumb/{i}.jpg",
                            "url": self._file(i),
                            "descriptionurl": f"https://commons.wikimedia.org/wiki/File:Grace_Hopper_{i}.jpg",
                            "mime": "image/jpeg",
                            "extmetadata": {
                                "LicenseShortName": {"value": licence, "source": "commons-desc-page"},
                                "LicenseUrl": {"value": "https://creativecommons.org/licenses/by-sa/4.0"}
                                if licence == "CC BY-SA 4.0"
                                else {},
                                "Artist": {"value": f'<a href="/wiki/User:U{i}">U{i}</a>'},
                            },
                        }
                    ],
                }
            )
        # MediaWiki sends pages in page-id order, not by rank: clients sort on "index".
        answer: dict[str, Any] = {"batchcomplete": True, "query": {"pages": pages[::-1]}}
        if offset + limit < self.total:
            answer["continue"] = {"gsroffset": offset + limit, "continue": "gsroffset||"}
        return 200, answer

    def _danbooru(self, path: str, q: dict[str, str], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/posts.json":
            return 404, {"success": False, "message": "not found"}
        limit = int(q.get("limit", 20))
        page = q.get("page", "1")
        ids = list(range(self.total, 0, -1))  # newest first
        if page.startswith("b"):
            ids = [i for i in ids if i < int(page[1:])][:limit]
        else:
            ids = ids[(int(page) - 1) * limit : int(page) * limit]
        posts = []
        for i in ids:
            width, height = self._size(i)
            posts.append(
                {
                    "id": i,
                    "rating": DANBOORU_RATINGS[i % 4],
                    "file_url": self._file(i),
                    "preview_file_url": f"{self.url}/preview/{i}.jpg",
                    "tag_string": "1girl solo smile",
                    "tag_string_artist": f"artist_{i}",
                    "image_width": width,
                    "image_height": height,
                    "file_size": 50_000,
                }
            )
        return 200, posts

    def _gelbooru(self, path: str, q: dict[str, str], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/index.php" or q.get("page") != "dapi" or q.get("json") != "1":
            return 404, None
        pid, limit = int(q.get("pid", 0)), int(q.get("limit", 100))
        ids = list(range(pid * limit + 1, min(self.total, (pid + 1) * limit) + 1))
        posts = [self._dapi_post(i, "general" if i % 2 else "explicit") for i in ids]
        answer: dict[str, Any] = {"@attributes": {"limit": limit, "offset": pid * limit, "count": self.total}}
        if len(posts) == 1:
            answer["post"] = posts[0]
        elif posts:
            answer["post"] = posts
        return 200, answer

    def _safebooru(self, path: str, q: dict[str, str], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/index.php" or q.get("page") != "dapi":
            return 404, None
        pid, limit = int(q.get("pid", 0)), int(q.get("limit", 100))
        ids = list(range(pid * limit + 1, min(self.total, (pid + 1) * limit) + 1))
        if not ids:
            return 200, None  # Safebooru's "no results": an empty body
        posts = []
        for i in ids:
            post = self._dapi_post(i, "safe" if i % 3 else "questionable")
            del post["file_url"]  # Safebooru gives directory + image instead
            posts.append(post)
        return 200, posts

    def _dapi_post(self, i: int, rating: str) -> dict[str, Any]:
        width, height = self._size(i)
        return {
            "id": i,
            "file_url": self._file(i),
            "directory": "files",
            "image": f"{i}.jpg",
            "hash": f"{i:032x}",
            "preview_url": f"{self.url}/thumbnails/{i}.jpg",
            "rating": rating,
            "tags": "1girl solo",
            "owner": "uploader",
            "width": width,
            "height": height,
        }

    def _brave(self, path: str, q: dict[str, str], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/res/v1/images/search":
            return 404, {"type": "ErrorResponse"}
        if h.get("x-subscription-token") != self.key:
            return 422, {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}}
        count = int(q.get("count", 50))
        results = [
            {
                "type": "image_result",
                "title": f"Picture {i}",
                "url": f"https://example.org/page/{i}",
                "source": "example.org",
                "thumbnail": {"src": f"{self.url}/thumb/{i}.jpg"},
                "properties": {"url": self._file(i)},
            }
            for i in range(1, min(self.total, count) + 1)
        ]
        return 200, {"type": "images", "query": {"original": q.get("q")}, "results": results}


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append(Recorded(parts.path, query, headers))
            status, extra, body = fake.answer(parts.path, query, headers)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running(kind: str, **options: Any) -> Iterator[FakeProvider]:
    fake = FakeProvider(kind, **options)
    fake.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.server.daemon_threads = True
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def provider_env(*fakes: FakeProvider) -> dict[str, str]:
    """Settings pointing LoRA Forge at the fakes (loopback allowed, no politeness pauses)."""
    env = {"LORAFORGE_ALLOW_PRIVATE_URLS": "true", "LORAFORGE_SEARCH_MIN_INTERVAL_S": "0"}
    for fake in fakes:
        env[f"LORAFORGE_{fake.kind.upper()}_URL"] = fake.url
        if fake.key:
            env[f"LORAFORGE_{fake.kind.upper()}_API_KEY"] = fake.key
    return env
