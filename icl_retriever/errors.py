"""Exceptions for conditions a caller can act on; the CLI maps them to exit code 1."""


class IclRetrieverError(Exception):
    """Base class: the message is meant for the user, in full sentences."""


class PoolFormatError(IclRetrieverError):
    """A pool file has records that do not match the Example schema."""


class EmbedderMismatchError(IclRetrieverError):
    """A store was built with another embedder than the one used to open it."""


class StoreNotFoundError(IclRetrieverError):
    """The named index does not exist yet."""


class DamagedIndexError(IclRetrieverError):
    """Chroma cannot load an index's vectors (e.g. after a process was killed mid-write)."""


class ModelNotFoundError(IclRetrieverError):
    """Model weights are missing or unreadable."""


class BackendNotInstalledError(IclRetrieverError):
    """An optional backend (vLLM, ...) is not installed."""
