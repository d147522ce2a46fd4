"""Providers registered by name: a new provider is one module and one `@register`."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from loraforge.config import Settings
from loraforge.errors import InvalidInput
from loraforge.sources.search.base import Provider

P = TypeVar("P", bound=type)
_PROVIDERS: dict[str, type[Provider]] = {}


def register(cls: P) -> P:
    """Class decorator: the provider becomes available under its `name`."""
    _PROVIDERS[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def _load_all() -> None:
    from loraforge.sources.search import providers

    for module in pkgutil.iter_modules(providers.__path__):
        importlib.import_module(f"{providers.__name__}.{module.name}")


def provider_names() -> list[str]:
    _load_all()
    return sorted(_PROVIDERS)


def get_provider(name: str) -> Provider:
    """A provider by name; InvalidInput naming the known ones otherwise."""
    _load_all()
    cls = _PROVIDERS.get(name.strip().lower())
    if cls is None:
        raise InvalidInput(f"unknown provider {name!r}: known are {', '.join(sorted(_PROVIDERS))}")
    return cls()


@dataclass(frozen=True)
class ProviderStatus:
    """What `search --list-providers` and GET /search/providers show."""

    name: str
    title: str
    configured: bool
    needs_key: bool
    has_key: bool
    gives_licence: bool
    url: str
    note: str


def provider_status(settings: Settings) -> list[ProviderStatus]:
    out = []
    for name in provider_names():
        provider = get_provider(name)
        has_key = api_key(settings, name) is not None
        configured = has_key or not provider.needs_key
        note = "" if configured else f"needs LORAFORGE_{name.upper()}_API_KEY"
        if not provider.gives_licence:
            note = "; ".join(filter(None, [note, 'gives no licence: pictures are "licence unknown"']))
        out.append(
            ProviderStatus(
                name,
                provider.title,
                configured,
                provider.needs_key,
                has_key,
                provider.gives_licence,
                base_url(settings, name),
                note,
            )
        )
    return out


def base_url(settings: Settings, name: str) -> str:
    return str(getattr(settings, f"{name}_url"))


def api_key(settings: Settings, name: str) -> str | None:
    secret = getattr(settings, f"{name}_api_key", None)
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


Factory = Callable[[], Provider]
