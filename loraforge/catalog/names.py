"""Names the catalog gives things by default, importable without SQLAlchemy (the CLI's start-up)."""

DEFAULT_WORKSPACE = "default"
"""The workspace a dataset lands in when none is named."""
