"""SQLAlchemy 2 models of the catalog (docs/architecture.md); the single source of truth for metadata."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


IdColumn = String(32)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="workspace")


class User(Base):
    """A person (or script) using the API with their own token; only the token's SHA-256 is stored."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Membership(Base):
    """A user's role in a workspace: viewer (reads), editor (also changes), owner (also grants, deletes)."""

    __tablename__ = "memberships"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_dataset_name"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    trigger_word: Mapped[str | None] = mapped_column(String(200))
    class_word: Mapped[str | None] = mapped_column(String(200))
    target_model: Mapped[str] = mapped_column(String(16), default="sdxl")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    workspace: Mapped[Workspace] = relationship(back_populates="datasets")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset_id", "sha256", name="uq_image_sha256"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(200))
    original_filename: Mapped[str] = mapped_column(Text)
    source_kind: Mapped[str] = mapped_column(String(16))
    source_uri: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    phash: Mapped[str | None] = mapped_column(String(64))
    thumbnail_key: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_of: Mapped[str | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImageMetadata(Base):
    __tablename__ = "image_metadata"

    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Caption(Base):
    __tablename__ = "captions"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    source_model: Mapped[str | None] = mapped_column(String(300))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Face(Base):
    __tablename__ = "faces"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    detector: Mapped[str] = mapped_column(String(50))
    bbox: Mapped[list[Any]] = mapped_column(JSON)
    score: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[list[Any] | None] = mapped_column(JSON)


class Derivative(Base):
    __tablename__ = "derivatives"
    __table_args__ = (UniqueConstraint("image_id", "kind", "params_hash", name="uq_derivative"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    target: Mapped[str | None] = mapped_column(String(50))
    object_key: Mapped[str] = mapped_column(String(300))
    box: Mapped[list[Any] | None] = mapped_column(JSON)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    params_hash: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


ACTIVE_TOP_LEVEL = "parent_id IS NULL AND status IN ('PENDING', 'RUNNING')"


class Task(Base):
    __tablename__ = "tasks"
    # One writing run per dataset at a time (loraforge.tasks): sub-runs of a build have a parent.
    __table_args__ = (
        Index(
            "uq_tasks_one_active_run",
            "dataset_id",
            unique=True,
            sqlite_where=sql_text(ACTIVE_TOP_LEVEL),
            postgresql_where=sql_text(ACTIVE_TOP_LEVEL),
        ),
    )

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    orchestrator_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner: Mapped[str | None] = mapped_column(String(300))
    """host:pid of the process running the task, so the same host can tell at once that it died."""


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    object_key: Mapped[str | None] = mapped_column(String(300))
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Training(Base):
    __tablename__ = "trainings"

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(50), default="replicate")
    trainer_version: Mapped[str | None] = mapped_column(String(200))
    destination: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    remote_id: Mapped[str | None] = mapped_column(String(100), index=True)
    output_version: Mapped[str | None] = mapped_column(String(300))
    weights_url: Mapped[str | None] = mapped_column(Text)
    logs_tail: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    """Why the provider says the training failed; kept with the logs."""
    weights_key: Mapped[str | None] = mapped_column(String(300))
    """Object key of the trained weights once they are copied into the store."""
    task_id: Mapped[str | None] = mapped_column(String(32))
    """The `train` run that started it."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SearchQuery(Base):
    """An image search saved with its dataset (loraforge.sources.search): run again, it resumes."""

    __tablename__ = "search_queries"
    __table_args__ = (UniqueConstraint("dataset_id", "text", name="uq_search_query_text"),)

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(500))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The last run's providers, licences, ratings, limit and minimum side: what a scheduled re-run uses."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SearchCursor(Base):
    """Where a saved query stopped at one provider; `exhausted` once the provider has nothing more."""

    __tablename__ = "search_cursors"

    query_id: Mapped[str] = mapped_column(
        ForeignKey("search_queries.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(50), primary_key=True)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SearchCandidate(Base):
    """A picture a provider offered for a saved query: refused, previewed, downloaded or added."""

    __tablename__ = "search_candidates"
    __table_args__ = (
        UniqueConstraint("query_id", "provider", "provider_id", name="uq_search_candidate"),
        Index("ix_search_candidates_query_url", "query_id", "file_url_hash"),
    )

    id: Mapped[str] = mapped_column(IdColumn, primary_key=True, default=new_id)
    query_id: Mapped[str] = mapped_column(ForeignKey("search_queries.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    provider_id: Mapped[str] = mapped_column(String(200))
    file_url_hash: Mapped[str] = mapped_column(String(64))
    """sha256 of the file URL: the same picture under another id is still seen."""
    status: Mapped[str] = mapped_column(String(16), default="found")
    reason: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SearchPace(Base):
    """When the next call to a provider may start, shared by every process of the deployment (API
    workers, flow runs, the CLI): each call takes the next slot (loraforge.sources.search.pacing)."""

    __tablename__ = "search_pacing"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    """`<provider>:api` or `<provider>:download`."""
    next_at: Mapped[float] = mapped_column(Float, default=0.0)
    """Unix time (seconds) before which no further call may start."""
