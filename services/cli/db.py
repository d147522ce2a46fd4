"""`loraforge db`: apply catalog migrations."""

from __future__ import annotations

from services.cli.main import db_app, handle_errors, out_console


@db_app.command("upgrade")
@handle_errors
def upgrade() -> None:
    """Bring the catalog schema up to date (also done automatically on first use)."""
    from loraforge.catalog.db import current_revision
    from loraforge.config import get_settings
    from loraforge.stages.context import open_context

    ctx = open_context(get_settings())
    ctx.catalog.ensure_schema()
    out_console.print(f"catalog at revision {current_revision(ctx.catalog.engine)}")
