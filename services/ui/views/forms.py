"""Forms generated from an options model's JSON schema (read from the API's OpenAPI document): one widget
per field, so the dashboard's run and training forms follow the models without a copy of their fields."""

from __future__ import annotations

from typing import Any

import streamlit as st


def option_widgets(
    schema: dict[str, Any], *, key: str, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One widget per field; answers only the fields the user set, so the model's defaults apply to the rest.

    `defaults` pre-fill fields (the dataset's trigger word, say) without changing the model's defaults.
    """
    chosen: dict[str, Any] = {}
    prefill = {name: value for name, value in (defaults or {}).items() if value not in (None, "")}
    columns = st.columns(2)
    for index, (name, field) in enumerate(schema.get("properties", {}).items()):
        if name == "upload_batch":
            continue  # set by the upload, not typed by a user
        label = name.replace("_", " ")
        help_text = field.get("description")
        kinds = _kinds(field)
        default = field.get("default")
        start = prefill.get(name, default)
        widget_key = f"{key}_{name}"
        column = columns[index % 2]
        if "enum" in kinds:
            values = kinds["enum"]
            choices = values if default in values else ["(default)", *values]
            picked = column.selectbox(
                label,
                choices,
                index=choices.index(start) if start in choices else 0,
                help=help_text,
                key=widget_key,
            )
            if picked != "(default)" and picked != default:
                chosen[name] = picked
        elif "boolean" in kinds:
            if column.checkbox(label, value=bool(start), help=help_text, key=widget_key) != bool(default):
                chosen[name] = not bool(default)
        elif "array" in kinds:
            text = column.text_area(
                label, help=(help_text or "") + " One per line.", key=widget_key, height=80
            )
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                chosen[name] = lines
        elif "object" in kinds:
            text = column.text_area(
                label, help=(help_text or "") + " One KEY=VALUE per line.", key=widget_key
            )
            pairs = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            if pairs:
                chosen[name] = {k.strip(): _number_or_text(v.strip()) for k, v in pairs.items()}
        else:
            hint = "" if default is None else f" (default {default})"
            value = "" if name not in prefill else str(prefill[name])
            text = column.text_input(label + hint, value=value, help=help_text, key=widget_key).strip()
            if text:
                chosen[name] = _number_or_text(text) if kinds.keys() & {"integer", "number"} else text
    return chosen


def _kinds(field: dict[str, Any]) -> dict[str, Any]:
    """The JSON types a field accepts (anyOf flattened), with its enum values under "enum"."""
    kinds: dict[str, Any] = {}
    for option in field.get("anyOf", [field]):
        if "enum" in option:
            kinds["enum"] = option["enum"]
        elif "type" in option and option["type"] != "null":
            kinds[option["type"]] = option
    return kinds


def _number_or_text(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)
