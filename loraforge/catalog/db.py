"""Engine, sessions and migrations of the catalog; migrations apply automatically on first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from loraforge.errors import CatalogBusy, CatalogError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x4C6F7261466F7267  # "LoraForg": the Postgres advisory lock every upgrade takes first


class Catalog:
    """One database: an engine, a session factory, and the guarantee its schema is current."""

    def __init__(self, url: str, *, pool: PoolSize | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrated = False
        self._lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        self.ensure_schema()
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise CatalogError(f"catalog error: {exc.orig or exc}") from exc
        except PoolTimeout as exc:
            session.rollback()
            raise CatalogBusy("the catalog is busy: no free connection; try again shortly") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ensure_schema(self) -> None:
        with self._lock:
            if not self._migrated:
                upgrade(self.engine)
                self._migrated = True

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class PoolSize:
    """Connection pool of a server database (SQLite needs none)."""

    size: int = 5
    max_overflow: int = 10
    timeout_s: float = 30.0


def make_engine(url: str, pool: PoolSize | None = None) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    pool = pool or PoolSize()
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout_s,
        connect_args={"connect_timeout": 10},
    )


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(engine: Engine) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; a no-op when it is already there.

    Processes that start together on an empty database (API, workers, `loraforge db upgrade`) would each
    create the tables and `alembic_version`, and all but one fail with UniqueViolation. On Postgres the
    upgrade first takes a transaction-scoped advisory lock: the others wait, then find the schema current.
    DDL is transactional there, so the lock is released only with the migration's commit.
    """
    from alembic import command

    config = alembic_config(engine)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            config.attributes["connection"] = connection  # type: ignore[attr-defined]
            command.upgrade(config, revision)  # type: ignore[arg-type]
    except OperationalError as exc:
        raise CatalogError(
            f"cannot reach the catalog at {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig or exc).strip().splitlines()[0]}"
        ) from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
