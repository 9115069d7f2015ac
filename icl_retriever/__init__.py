"""icl-retriever: pick in-context demonstrations by task, and answer with them.

The public names below are imported lazily (PEP 562): `import icl_retriever` is cheap, and
`from icl_retriever import ExampleStore` imports only the submodule that defines it, so the CLI
can parse its arguments before paying for numpy, chromadb, langchain or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icl_retriever.embedders import Embedder, PIEEmbedder, SemanticEmbedder, load_embedder
    from icl_retriever.errors import (
        BackendNotInstalledError,
        DamagedIndexError,
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
    from icl_retriever.pool import PoolLoad, load_pool
    from icl_retriever.prompt import build_prompt
    from icl_retriever.selectors import (
        BM25ExampleSelector,
        RandomExampleSelector,
        SemanticExampleSelector,
        TaskExampleSelector,
    )
    from icl_retriever.settings import Settings
    from icl_retriever.store import ExampleStore
    from icl_retriever.task_embedder import TaskEmbedder
    from icl_retriever.vectorstore import ExampleVectorStore, Hit, IndexReport

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
    "DamagedIndexError",
    "Embedder",
    "EmbedderMismatchError",
    "Example",
    "ExampleStore",
    "ExampleVectorStore",
    "Hit",
    "IclRetrieverError",
    "IndexReport",
    "ModelNotFoundError",
    "PIEEmbedder",
    "PoolFormatError",
    "PoolLoad",
    "RandomExampleSelector",
    "SemanticEmbedder",
    "SemanticExampleSelector",
    "Settings",
    "StoreNotFoundError",
    "TaskEmbedder",
    "TaskExampleSelector",
    "load_embedder",
    "load_pool",
]

#: Public name -> the submodule that defines it.
_SUBMODULE_OF: dict[str, str] = {
    "Embedder": "embedders",
    "PIEEmbedder": "embedders",
    "SemanticEmbedder": "embedders",
    "load_embedder": "embedders",
    "BackendNotInstalledError": "errors",
    "DamagedIndexError": "errors",
    "EmbedderMismatchError": "errors",
    "IclRetrieverError": "errors",
    "ModelNotFoundError": "errors",
    "PoolFormatError": "errors",
    "StoreNotFoundError": "errors",
    "Example": "example",
    "Generator": "generators",
    "make_generator": "generators",
    "GeneratorLLM": "langchain_llm",
    "few_shot_chain": "langchain_llm",
    "Answer": "pipeline",
    "ICLPipeline": "pipeline",
    "PoolLoad": "pool",
    "load_pool": "pool",
    "build_prompt": "prompt",
    "BM25ExampleSelector": "selectors",
    "RandomExampleSelector": "selectors",
    "SemanticExampleSelector": "selectors",
    "TaskExampleSelector": "selectors",
    "ExampleStore": "store",
    "Settings": "settings",
    "TaskEmbedder": "task_embedder",
    "ExampleVectorStore": "vectorstore",
    "Hit": "vectorstore",
    "IndexReport": "vectorstore",
}


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
