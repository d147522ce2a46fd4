"""The catalog: SQLAlchemy models, sessions, migrations and queries."""

from loraforge.catalog.db import Catalog

__all__ = ["Catalog"]
