"""Load on the API's list endpoints at rising concurrency, from loopback, in bounded rounds.

    python bench/api_load.py                       # levels 10, 50, 100, 200; --workers 2
    python bench/api_load.py --levels 100 --rounds 5

A fresh Postgres database (the machine's, like the tests) holds one workspace with a 200-picture dataset;
`loraforge serve` runs against it in its own processes. At each level, that many connections each send
`--rounds` requests, round-robin over the list endpoints (workspaces, datasets, images, tasks, stats).

For each level it prints requests/s, p50, p99, transport errors and 5xx. The baseline, measured in the
same run, is this server with the pool settings it had before they were sized together: SQLAlchemy's
default pool (5 + 10 overflow, 30 s timeout), one process. (The code before ReleasingRoute, services/api/
deps.py, stalled completely at 100 connections under those settings: every request timed out.) The goal on
the 2-core machine: zero errors and zero 5xx at every level, and p99 under 1 s at 100 connections. The load
generator shares the machine's two cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("LORAFORGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-token"
OLD_SETTINGS = {
    "LORAFORGE_CATALOG_POOL_SIZE": "5",
    "LORAFORGE_CATALOG_MAX_OVERFLOW": "10",
    "LORAFORGE_CATALOG_POOL_TIMEOUT_S": "30",
}


@dataclass
class Level:
    connections: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    def row(self) -> str:
        done = len(self.latencies)
        ordered = sorted(self.latencies) or [0.0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        fivexx = sum(n for status, n in self.statuses.items() if status >= 500)
        errors = sum(self.errors.values())
        return (
            f"{self.connections:>5} {done:>6} {done / self.wall_s:>8.1f}"
            f" {statistics.median(ordered) * 1000:>8.0f} {p99 * 1000:>8.0f} {errors:>6} {fivexx:>5}"
            + (f"  {dict(self.errors)}" if errors else "")
            + (f"  {dict(self.statuses)}" if fivexx else "")
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_database() -> tuple[str, str]:
    name = f"loraforge_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(url: str, pictures: int) -> tuple[str, str]:
    """One workspace, one dataset of `pictures` catalog rows (list endpoints read rows, not bytes)."""
    from loraforge.catalog import Catalog
    from loraforge.catalog.models import Dataset, Image, Workspace

    catalog = Catalog(url)
    with catalog.session() as session:
        workspace = Workspace(name="bench")
        session.add(workspace)
        session.flush()
        dataset = Dataset(workspace_id=workspace.id, name="two-hundred", target_model="sdxl", settings={})
        session.add(dataset)
        session.flush()
        for index in range(pictures):
            sha = f"{index:064x}"
            session.add(
                Image(
                    dataset_id=dataset.id,
                    sha256=sha,
                    object_key=f"originals/{sha[:2]}/{sha}",
                    original_filename=f"photo{index:03d}.jpg",
                    source_kind="file",
                    source_uri=f"photo{index:03d}.jpg",
                    width=1024,
                    height=768,
                    format="jpeg",
                    bytes=200_000,
                    status=("kept", "rejected", "duplicate", "pending")[index % 4],
                )
            )
        ids = (workspace.id, dataset.id)
    catalog.dispose()
    return ids


def start_server(
    url: str, home: Path, *, workers: int, extra: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = shutil.which("loraforge", path=str(Path(sys.executable).parent)) or "loraforge"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAFORGE_")}
    env |= {
        "LORAFORGE_CATALOG_URL": url,
        "LORAFORGE_HOME": str(home),
        "LORAFORGE_API_TOKEN": TOKEN,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    } | extra
    server = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    for _ in range(240):
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit("the API did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


async def run_level(base: str, paths: list[str], connections: int, rounds: int, timeout_s: float) -> Level:
    """`connections` keep-alive connections, each sending `rounds` GETs one after another.

    The client is a minimal HTTP/1.1 one on asyncio streams: it shares the two cores with the server, and
    httpx's own per-request cost (about a millisecond of CPU) would be measured as server latency.
    """
    level = Level(connections)
    url = httpx.URL(base)
    host, port, prefix = url.host, url.port or 80, url.path.rstrip("/")

    async def one_connection(offset: int) -> None:
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for index in range(rounds):
            path = paths[(offset + index) % len(paths)]
            request = (
                f"GET {prefix}{path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            try:
                if stream is None:
                    stream = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
                status, close = await asyncio.wait_for(_exchange(*stream, request), timeout_s)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ValueError,
            ) as exc:
                level.errors[type(exc).__name__] += 1
                stream = _closed(stream)
                continue
            level.latencies.append(time.perf_counter() - began)
            level.statuses[status] += 1
            if close:
                stream = _closed(stream)
        _closed(stream)

    began = time.perf_counter()
    await asyncio.gather(*(one_connection(offset) for offset in range(connections)))
    level.wall_s = time.perf_counter() - began
    return level


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one request and read its whole response; (status, whether the server closes the connection)."""
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head[9:12])
    length = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name == "content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without content-length")
    await reader.readexactly(length)
    return status, "connection: close" in head


def _closed(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if stream is not None:
        stream[1].close()
    return None


def measure(
    title: str, base: str, paths: list[str], levels: list[int], rounds: int, timeout_s: float
) -> None:
    print(f"\n{title}")
    print(f"{'conns':>5} {'reqs':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'5xx':>5}")
    for connections in levels:
        level = asyncio.run(run_level(base, paths, connections, rounds, timeout_s))
        print(level.row(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--rounds", type=int, default=10, help="Requests per connection per level.")
    parser.add_argument("--workers", type=int, default=2, help="API processes (loraforge serve --workers).")
    parser.add_argument("--threads", type=int, default=None, help="LORAFORGE_API_THREADS of the current run.")
    parser.add_argument("--pictures", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0, help="Client timeout per request (s).")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    name, url = make_database()
    home = Path(tempfile.mkdtemp(prefix="lf-bench-api-"))
    try:
        workspace_id, dataset_id = seed(url, args.pictures)
        paths = [
            "/workspaces",
            f"/workspaces/{workspace_id}/datasets",
            f"/datasets/{dataset_id}/images?limit=100",
            f"/datasets/{dataset_id}/images?status=kept&limit=50",
            f"/datasets/{dataset_id}/tasks",
            f"/datasets/{dataset_id}/stats",
        ]
        print(f"{args.pictures} pictures, {len(paths)} list endpoints, {args.rounds} requests per connection")
        runs = (
            []
            if args.no_baseline
            else [("baseline: default pool (5 + 10, 30 s), 1 process", 1, OLD_SETTINGS)]
        )
        current = {"LORAFORGE_API_THREADS": str(args.threads)} if args.threads else {}
        runs.append((f"now: pool sized to the threads, {args.workers} processes", args.workers, current))
        for title, workers, extra in runs:
            server, base = start_server(url, home, workers=workers, extra=extra)
            try:
                measure(title, base, paths, args.levels, args.rounds, args.timeout)
            finally:
                stop_server(server)
    finally:
        drop_database(name)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
