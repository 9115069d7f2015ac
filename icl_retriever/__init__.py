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
from icl_retriever.generators import Generator, make_generator
from icl_retriever.langchain_llm import GeneratorLLM, few_shot_chain
from icl_retriever.pipeline import Answer, ICLPipeline
from icl_retriever.prompt import build_prompt
from icl_retriever.pool import load_pool
from icl_retriever.selectors import (
    BM25ExampleSelector,
    RandomExampleSelector,
    SemanticExampleSelector,
    TaskExampleSelector,
)
from icl_retriever.store import ExampleStore

__all__ = [
    "Answer",
    "Generator",
    "GeneratorLLM",
    "ICLPipeline",
    "build_prompt",
    "few_shot_chain",
    "make_generator",
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
    "SemanticExampleSelector",
    "StoreNotFoundError",
    "TaskExampleSelector",
    "load_embedder",
    "load_pool",
]
