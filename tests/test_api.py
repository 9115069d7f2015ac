import icl_retriever


def test_public_api_is_pinned():
    assert sorted(icl_retriever.__all__) == [
        "Answer", "BM25ExampleSelector", "BackendNotInstalledError", "DamagedIndexError", "Embedder", "EmbedderMismatchError",
        "Example", "ExampleStore", "ExampleVectorStore", "Generator", "GeneratorLLM", "Hit", "ICLPipeline",
        "IclRetrieverError", "IndexReport", "ModelNotFoundError", "PIEEmbedder", "PoolFormatError", "PoolLoad",
        "RandomExampleSelector", "SemanticEmbedder", "SemanticExampleSelector", "Settings", "StoreNotFoundError",
        "TaskEmbedder", "TaskExampleSelector", "build_prompt", "few_shot_chain", "load_embedder", "load_pool",
        "make_generator",
    ]
    assert all(hasattr(icl_retriever, name) for name in icl_retriever.__all__)
