"""The exporter registry: each format module registers itself with @register_exporter("name")."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from loraforge.errors import InvalidInput

if TYPE_CHECKING:
    from loraforge.exporters.base import ExportItem, ExportSpec
    from loraforge.exporters.writer import ExportWriter
    from loraforge.imaging.buckets import BucketRule


class Exporter(Protocol):
    """Lays out one trainer's dataset through an ExportWriter, and declares the trainer's bucket rule."""

    name: str
    default_repeats: int

    def write(self, items: Sequence[ExportItem], spec: ExportSpec, out: ExportWriter) -> None: ...

    def bucket_rule(self, spec: ExportSpec) -> BucketRule:
        """The trainer's own bucketing under the settings `write` puts in its config."""
        ...

    def configs(self, spec: ExportSpec) -> dict[str, str]:
        """The config files naming where the pictures lie (file name -> text), exactly as `write` writes
        them: an export rewrites them in its local folder to name that folder's absolute path."""
        ...


E = TypeVar("E", bound=type)

_REGISTRY: dict[str, type] = {}
_FORMATS_PACKAGE = "loraforge.exporters.formats"


def register_exporter(name: str) -> Callable[[E], E]:
    """Class decorator: make an exporter class available under `name`."""

    def decorate(cls: E) -> E:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"exporter {name!r} registered twice")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin_formats() -> None:
    # Importing every module of the formats package is what registers them: no list to keep in sync.
    package = importlib.import_module(_FORMATS_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{_FORMATS_PACKAGE}.{module.name}")


def available_formats() -> list[str]:
    _load_builtin_formats()
    return sorted(_REGISTRY)


def get_exporter(name: str) -> Exporter:
    """A fresh exporter for `name`; InvalidInput names the known formats when it is unknown."""
    if name not in _REGISTRY:
        _load_builtin_formats()
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise InvalidInput(f"unknown export format {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    exporter: Exporter = cls()
    return exporter
