"""The catalog: SQLAlchemy models, sessions, migrations and queries.

`Catalog` is imported on first use: the CLI reads `loraforge.catalog.names` at start-up without paying for
SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loraforge.catalog.db import Catalog

__all__ = ["Catalog"]


def __getattr__(name: str) -> Any:
    if name == "Catalog":
        from loraforge.catalog.db import Catalog

        return Catalog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
