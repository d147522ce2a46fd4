"""Typer commands whose flags are generated from a stage's options model (loraforge.stages.options).

A field `max_upscale` becomes `--max-upscale` with the field's default, bounds and help; a Literal becomes a
choice; a list becomes a repeatable flag (or the positional arguments); a dict becomes repeatable KEY=VALUE.
A field may name its flag itself with `json_schema_extra={"cli": "--format"}`. The command's own flags
(dataset, workspace, --json, ...) are given as plain typer parameters. Values (choices and bounds included)
are checked by the model, and a bad one exits 1 with one line naming the flag and the value, before anything
runs.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from loraforge.catalog.names import DEFAULT_WORKSPACE
from loraforge.errors import InvalidInput
from services.cli.main import handle_errors

Runner = Callable[..., None]
KW = inspect.Parameter.KEYWORD_ONLY


def dataset_param(help_text: str = "Dataset name.") -> inspect.Parameter:
    return inspect.Parameter(
        "dataset", KW, default=typer.Option(..., "--dataset", "-d", help=help_text), annotation=str
    )


def out_param(help_text: str) -> inspect.Parameter:
    """The CLI's own local copy of an export (the API has none: exports are downloaded from storage)."""
    return inspect.Parameter(
        "out", KW, default=typer.Option(None, "--out", "-o", help=help_text), annotation=str
    )


OVERWRITE = inspect.Parameter(
    "overwrite",
    KW,
    default=typer.Option(
        False,
        "--overwrite",
        help="Replace --out even when it holds files LoRA Forge did not write (an earlier export of LoRA "
        "Forge is always replaced by the new version).",
    ),
    annotation=bool,
)
WORKSPACE = inspect.Parameter(
    "workspace",
    KW,
    default=typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", help="Workspace."),
    annotation=str,
)
AS_JSON = inspect.Parameter(
    "as_json", KW, default=typer.Option(False, "--json", help="Print the result as JSON."), annotation=bool
)


def flags_of(name: str, info: FieldInfo) -> list[str]:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    named = extra.get("cli")
    if named:
        return [str(flag) for flag in (named if isinstance(named, list) else [named])]
    return ["--" + name.replace("_", "-")]


def flag_of(name: str, info: FieldInfo) -> str:
    return flags_of(name, info)[0]


def options_command(
    app: typer.Typer,
    model: type[BaseModel],
    *,
    name: str,
    own: list[inspect.Parameter],
    positional: str | None = None,
    hidden: tuple[str, ...] = (),
) -> Callable[[Runner], Runner]:
    """Register `run(options, **own_values)` as a command whose flags come from `model`."""

    def register(run: Runner) -> Runner:
        fields = {key: info for key, info in model.model_fields.items() if key not in hidden}
        parameters = [_parameter(key, info, positional=key == positional) for key, info in fields.items()]
        parameters.sort(key=lambda p: 0 if isinstance(p.default, typer.models.ArgumentInfo) else 1)

        @functools.wraps(run)
        def command(**values: Any) -> None:
            given = {
                key: _convert(key, fields[key], values.pop(key)) for key in list(values) if key in fields
            }
            given = {key: value for key, value in given.items() if value is not None}
            try:
                options = model(**given)
            except ValidationError as exc:
                raise InvalidInput(describe(exc, fields)) from None
            run(options, **values)

        command.__signature__ = inspect.Signature([*parameters, *own])  # type: ignore[attr-defined]
        app.command(name=name, help=run.__doc__)(handle_errors(command))
        return run

    return register


def describe(exc: ValidationError, fields: dict[str, FieldInfo]) -> str:
    """A validation error as one line that names the flag a user typed and the value given to it."""
    parts = []
    for error in exc.errors():
        loc = error["loc"][0] if error["loc"] else None
        message = error["msg"].removeprefix("Value error, ")
        if loc not in fields:
            parts.append(f"options: {message}")
            continue
        info = fields[str(loc)]
        value = error.get("input")
        choices = _choices(info.annotation)
        if error["type"] == "literal_error" and choices:
            message = f"choose one of {', '.join(choices)}"
        shown = f" {value!r}" if isinstance(value, str | int | float | bool) else ""
        parts.append(f"{flag_of(str(loc), info)}{shown}: {message}")
    return "; ".join(parts)


def _parameter(key: str, info: FieldInfo, *, positional: bool) -> inspect.Parameter:
    annotation = _cli_type(info.annotation)
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if isinstance(default, list | dict) and not default:
        default = None
    help_text = info.description or ""
    choices = _choices(info.annotation)
    if _is_dict(info.annotation):
        help_text += " Repeatable KEY=VALUE."
    if positional:
        spec: Any = typer.Argument(... if info.is_required() else default, help=help_text)
    else:
        number = _number_type(info.annotation)
        metavar = "|".join(choices) if choices else _NUMBER_METAVARS.get(number) if number else None
        spec = typer.Option(
            default,
            *flags_of(key, info),
            help=help_text,
            show_default=default is not None,
            metavar=metavar,
        )
    return inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=spec, annotation=annotation)


def _cli_type(annotation: Any) -> Any:
    """The plain type typer understands (a Literal becomes an Enum of its values: typer's choices)."""
    inner = _unwrap(annotation)
    if typing.get_origin(inner) is Literal:
        return str  # the model checks the choice, so a wrong one exits 1 naming the flag like any bad value
    if typing.get_origin(inner) in (list, dict):
        return list[str]
    base = _base(inner)
    # Numbers come in as text and are read in _convert, so a wrong one is refused naming the flag and value.
    return base if base in (str, bool) else str


_NUMBER_METAVARS: dict[type, str] = {int: "INTEGER", float: "NUMBER"}


def _number_type(annotation: Any) -> type | None:
    base = _base(_unwrap(annotation))
    return base if base in (int, float) else None


def _choices(annotation: Any) -> list[str] | None:
    inner = _unwrap(annotation)
    if typing.get_origin(inner) is Literal:
        return [str(value) for value in typing.get_args(inner)]
    return None


def _unwrap(annotation: Any) -> Any:
    """Drop None from an optional annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _base(annotation: Any) -> Any:
    """The type under Annotated[...]."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_dict(annotation: Any) -> bool:
    return typing.get_origin(_unwrap(annotation)) is dict


def _convert(key: str, info: FieldInfo, value: Any) -> Any:
    """A repeatable KEY=VALUE flag into a dict; empty repeatables into None (the model's default); a number
    flag's text into the number."""
    if isinstance(value, list | tuple) and not value:
        return None
    number = _number_type(info.annotation)
    if number is not None and isinstance(value, str):
        try:
            return number(value)
        except ValueError:
            kind = "a whole number" if number is int else "a number"
            raise InvalidInput(f"{flag_of(key, info)} {value!r}: expected {kind}") from None
    if _is_dict(info.annotation) and value is not None:
        out: dict[str, Any] = {}
        for pair in value:
            key, sep, text = str(pair).partition("=")
            if not sep or not key.strip():
                raise InvalidInput(f"expected KEY=VALUE, not {pair!r}")
            out[key.strip()] = _json_or_text(text)
        return out
    return list(value) if isinstance(value, tuple) else value


def _json_or_text(text: str) -> Any:
    """Numbers, booleans and lists as JSON reads them; anything else as the text typed."""
    try:
        return json.loads(text)
    except ValueError:
        return text
