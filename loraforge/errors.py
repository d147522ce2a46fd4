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


class StorageUnavailable(StorageError):
    """The object store could not be reached, or kept failing, through all its retries.

    Unlike other storage errors this says nothing about the object asked for: the same call may succeed
    later, so the work is worth retrying (a shard is run again) rather than recording a failure.
    """


class ModelError(LoraForgeError):
    """A model could not be loaded or failed on its input."""


class CatalogError(LoraForgeError):
    """The catalog database cannot be reached or migrated."""


class CatalogBusy(CatalogError):
    """Every catalog connection stayed in use for the pool timeout: try again shortly."""


class Forbidden(LoraForgeError):
    """The caller may not do this here (a server path outside the import roots, a setting only the
    operator may choose)."""


class IncompleteRun(LoraForgeError):
    """A run ended with items it could not finish for a reason outside the items themselves (the object
    store unavailable or refusing writes). The message names them; running it again does what is missing."""

    def __init__(self, message: str, items: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)  # the message alone: logs show it, not every item's reason again
        self.message = message
        self.items = items or []
        """One {"name", "reason"} per item not done."""

    def __reduce__(self) -> tuple[type[IncompleteRun], tuple[str, list[dict[str, str]]]]:
        return (type(self), (self.message, self.items))
