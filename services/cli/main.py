"""The typer application, its global options, and one error format for every command."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import IO, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as usage  # typer's own click: its usage errors

from loraforge.errors import LoraForgeError


class LoraForgeTyper(typer.Typer):
    """The `loraforge` command: a wrong flag or value is one line and exit 1, like every other input error.

    Typer's own usage errors (an unknown flag, a number that is not one) would print a box and exit 2; the
    values the options models check already exit 1 through `handle_errors`, so both read the same."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", False)
        try:
            code = super().__call__(*args, **kwargs)
        except usage.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except usage.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "loraforge"
            err_console.print(
                f"[red]error:[/red] {escape(_one_line(exc.format_message()))} (see `{command} --help`)",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        except usage.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("[red]aborted[/red]")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = LoraForgeTyper(
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
_json_out: IO[str] | None = None
"""Where `--json` output goes: the real stdout, once `keep_stdout_for_json` moved everything else off it."""
_verbose = False
"""`--verbose`: an error also shows where it came from (its traceback)."""


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        out_console.print(f"loraforge {version('loraforge')}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show orchestration logs."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
    ),
) -> None:
    global _verbose
    _verbose = verbose
    if "--json" in sys.argv[1:]:
        keep_stdout_for_json()
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Prefect and Ray are chatty; a user of the CLI wants the progress bar and the summary.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def keep_stdout_for_json() -> None:
    """Send everything written to stdout to stderr, keeping the real stdout for `emit_json` alone.

    The redirect is at the file-descriptor level, so it also holds for what Ray, Prefect, native
    libraries and child processes write: a script piping `--json` output gets JSON and nothing else.
    """
    global _json_out
    if _json_out is not None:
        return
    sys.stdout.flush()
    _json_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)


def emit_json(data: Any) -> None:
    """Print a command's `--json` result: indented JSON on the real stdout, and only that."""
    text = json.dumps(data, indent=2, default=str)
    if _json_out is None:
        print(text, flush=True)
        return
    _json_out.write(text + "\n")
    _json_out.flush()


def handle_errors(command: F) -> F:
    """Exit non-zero with a one-line reason on any failure instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except LoraForgeError as exc:
            if _verbose:
                err_console.print_exception()
            err_console.print(
                f"[red]error:[/red] {escape(_one_line(str(exc)))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/red]")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the CLI boundary: say what failed in one line
            if os.environ.get("LORAFORGE_DEBUG"):
                raise
            if _verbose:
                err_console.print_exception()
            err_console.print(
                f"[red]error:[/red] {exc.__class__.__name__}: {escape(_one_line(str(exc)))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def register_commands() -> None:
    from services.cli import db, ingest, report  # noqa: F401 - importing registers the commands

    for module in (
        "curate",
        "caption",
        "bucket",
        "export",
        "run",
        "serve",
        "tasks",
        "maintenance",
        "users",
        "train",
        "search",
    ):
        try:
            __import__(f"services.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.cli.{module}":
                raise
    # The main job first in --help; the others in the order they were registered.
    app.registered_commands.sort(key=lambda command: command.name != "run")


register_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
