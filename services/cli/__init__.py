"""The `loraforge` command. It is the composition root: flows are imported lazily inside commands."""

from services.cli.main import app

__all__ = ["app"]
