"""icl-retriever: pick in-context demonstrations by task, and answer with them."""

from icl_retriever.embedders import Embedder, PIEEmbedder, SemanticEmbedder, load_embedder
from icl_retriever.errors import (
    BackendNotInstalledError,
    EmbedderMismatchError,
    IclRetrieverError,
    ModelNotFoundError,
    PoolFormatError,
    StoreNotFoundError,
)
from icl_retriever.example import Example
from icl_retriever.pool import load_pool
from icl_retriever.selectors import (
    BM25ExampleSelector,
    RandomExampleSelector,
    SemanticExampleSelector,
    TaskExampleSelector,
)
from icl_retriever.store import ExampleStore

__all__ = [
    "BM25ExampleSelector",
    "BackendNotInstalledError",
    "Embedder",
    "EmbedderMismatchError",
    "Example",
    "ExampleStore",
    "IclRetrieverError",
    "ModelNotFoundError",
    "PIEEmbedder",
    "PoolFormatError",
    "RandomExampleSelector",
    "SemanticEmbedder",
    "StoreNotFoundError",
    "TaskExampleSelector",
    "load_embedder",
    "load_pool",
]
