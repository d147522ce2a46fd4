"""A trainer's inputs, checked against its version's OpenAPI schema before anything is sent.

Cog describes a trainer's inputs as `components.schemas.TrainingInput`: one property per input with its
type, bounds and default; choices are a separate schema the property points to through
`allOf: [{"$ref": "#/components/schemas/<name>"}]`. Values are coerced to the type the schema gives (a
`--input steps=1000` typed on the command line arrives as text or a JSON number), then checked; every
problem is reported at once, and an unknown input is refused with the list of inputs the trainer takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from loraforge.errors import InvalidInput

_INTEGER = re.compile(r"^[+-]?\d+$")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class _Refused(ValueError):
    """One input's value does not fit its schema; the message says why."""


@dataclass(frozen=True)
class InputSchema:
    """The TrainingInput of one trainer version: each input's schema (references resolved), the required."""

    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    trainer: str = "the trainer"
    """Named in messages."""

    @classmethod
    def from_openapi(cls, openapi_schema: Mapping[str, Any], trainer: str = "the trainer") -> InputSchema:
        components = (openapi_schema.get("components") or {}).get("schemas") or {}
        training = components.get("TrainingInput")
        if not isinstance(training, Mapping):
            raise InvalidInput(f"{trainer} has no TrainingInput in its schema: it is not a trainer")
        properties = {
            name: _resolve(prop, components) for name, prop in (training.get("properties") or {}).items()
        }
        return cls(properties, tuple(training.get("required") or ()), trainer)

    def check(self, inputs: Mapping[str, Any], *, supplied_later: Iterable[str] = ()) -> dict[str, Any]:
        """The inputs coerced to their schema types; InvalidInput naming every problem otherwise.

        `supplied_later` are inputs added after the check (the uploaded zip's URL): they count as given.
        """
        problems: list[str] = []
        checked: dict[str, Any] = {}
        unknown = sorted(key for key in inputs if key not in self.properties)
        if unknown:
            problems.append(
                f"unknown input{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"({self.trainer} takes: {', '.join(sorted(self.properties))})"
            )
        for key, value in inputs.items():
            if key not in self.properties or value is None:
                continue
            if self.is_secret(key):
                # A value given here would be kept in the run's parameters and the training row.
                problems.append(f"{key}: a secret input; LoRA Forge does not pass secrets to a trainer")
                continue
            try:
                checked[key] = _check_value(value, self.properties[key])
            except _Refused as exc:
                problems.append(f"{key}: {exc} (got {value!r})")
        later = set(supplied_later)
        missing = [key for key in self.required if key not in checked and key not in later]
        if missing:
            problems.append(f"missing required input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if problems:
            raise InvalidInput(f"{self.trainer} refuses these inputs: " + "; ".join(problems))
        return checked

    def is_secret(self, key: str) -> bool:
        """Cog's Secret inputs (a Hugging Face token, say)."""
        prop = self.properties.get(key) or {}
        return bool(prop.get("x-cog-secret")) or prop.get("format") == "password"


def _resolve(prop: Mapping[str, Any], components: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A property with its `$ref` / `allOf: [{$ref}]` target merged in (the property's own keys win)."""
    if depth > 10:
        return dict(prop)
    resolved: dict[str, Any] = {}
    refs = [prop] if "$ref" in prop else []
    refs += [part for part in prop.get("allOf") or () if isinstance(part, Mapping)]
    for part in refs:
        ref = part.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            target = components.get(ref.rsplit("/", 1)[-1]) or {}
            resolved.update(_resolve(target, components, depth + 1))
        else:
            resolved.update({k: v for k, v in part.items() if k != "$ref"})
    resolved.update({k: v for k, v in prop.items() if k not in ("$ref", "allOf")})
    return resolved


def _check_value(value: Any, prop: Mapping[str, Any]) -> Any:
    kind = prop.get("type")
    if kind == "integer":
        value = _integer(value)
    elif kind == "number":
        value = _number(value)
    elif kind == "boolean":
        value = _boolean(value)
    elif kind == "string":
        value = _string(value, prop)
    elif kind == "array":
        if not isinstance(value, list):
            raise _Refused("must be a list")
        value = [_check_value(item, prop.get("items") or {}) for item in value]
    if "enum" in prop and value not in prop["enum"]:
        raise _Refused(f"must be one of {', '.join(repr(choice) for choice in prop['enum'])}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        _check_bounds(value, prop)
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise _Refused("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    raise _Refused("must be a whole number")


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise _Refused("must be a number")
    if isinstance(value, int | float):
        number: float | int = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Refused("must be a number") from None
    else:
        raise _Refused("must be a number")
    if isinstance(number, float) and not math.isfinite(number):
        raise _Refused("must be a finite number")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Refused("must be true or false")


def _string(value: Any, prop: Mapping[str, Any]) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Refused("must be text")
    text = value if isinstance(value, str) else str(value)
    if prop.get("format") == "uri":
        parsed = urlparse(text)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise _Refused("must be an http(s) URL")
    if "minLength" in prop and len(text) < prop["minLength"]:
        raise _Refused(f"must be at least {prop['minLength']} characters")
    if "maxLength" in prop and len(text) > prop["maxLength"]:
        raise _Refused(f"must be at most {prop['maxLength']} characters")
    return text


def _check_bounds(value: float, prop: Mapping[str, Any]) -> None:
    if "minimum" in prop and value < prop["minimum"]:
        raise _Refused(f"must be at least {prop['minimum']}")
    if "maximum" in prop and value > prop["maximum"]:
        raise _Refused(f"must be at most {prop['maximum']}")
    # OpenAPI 3.0 writes exclusive bounds as booleans beside minimum/maximum, 3.1 as numbers.
    low, high = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    if isinstance(low, int | float) and not isinstance(low, bool) and value <= low:
        raise _Refused(f"must be more than {low}")
    if isinstance(high, int | float) and not isinstance(high, bool) and value >= high:
        raise _Refused(f"must be less than {high}")
    if low is True and "minimum" in prop and value <= prop["minimum"]:
        raise _Refused(f"must be more than {prop['minimum']}")
    if high is True and "maximum" in prop and value >= prop["maximum"]:
        raise _Refused(f"must be less than {prop['maximum']}")
