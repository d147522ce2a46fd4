"""The exception tree of LoRA Forge; third-party errors are translated into these at the boundary."""

from __future__ import annotations


class LoraForgeError(Exception):
    """Base of every error LoRA Forge raises on purpose."""


class ConfigError(LoraForgeError):
    """A setting is missing or wrong; the message names the variable."""


class NotFound(LoraForgeError):
    """A workspace, dataset, image, export or object does not exist."""


class Conflict(LoraForgeError):
    """The request collides with existing state (a name taken, a version already written)."""


class InvalidInput(LoraForgeError):
    """Input the user gave cannot be used: a corrupt image, a bad zip, a wrong parameter."""


class StorageError(LoraForgeError):
    """The object store failed to read or write."""


class ModelError(LoraForgeError):
    """A model could not be loaded or failed on its input."""


class CatalogError(LoraForgeError):
    """The catalog database cannot be reached or migrated."""


class Forbidden(LoraForgeError):
    """The caller may not do this here (a server path outside the import roots, a setting only the
    operator may choose)."""
