"""The typer application, its global options, and one error format for every command."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from loraforge.errors import LoraForgeError

app = typer.Typer(
    name="loraforge",
    help="Build LoRA training datasets: ingest, curate, caption, bucket and export pictures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Catalog database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err_console = Console(stderr=True)
out_console = Console()
F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show orchestration logs.")) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Prefect and Ray are chatty; a user of the CLI wants the progress bar and the summary.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def handle_errors(command: F) -> F:
    """Exit non-zero with a one-line reason on any failure instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except LoraForgeError as exc:
            err_console.print(f"[red]error:[/red] {_one_line(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/red]")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the CLI boundary: say what failed in one line
            if os.environ.get("LORAFORGE_DEBUG"):
                raise
            err_console.print(
                f"[red]error:[/red] {exc.__class__.__name__}: {_one_line(str(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def register_commands() -> None:
    from services.cli import db, ingest, report  # noqa: F401 - importing registers the commands

    for module in ("curate", "caption", "bucket", "export", "run", "serve", "tasks"):
        try:
            __import__(f"services.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.cli.{module}":
                raise


register_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
