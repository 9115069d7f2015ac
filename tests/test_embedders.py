import json

import numpy as np
import pytest

from icl_retriever import embedders
from icl_retriever.embedders import PIE_TEMPLATE, PIEEmbedder, SemanticEmbedder, load_embedder
from icl_retriever.errors import IclRetrieverError, ModelNotFoundError
from icl_retriever.models import minilm_path
from tests.conftest import read_back, record_passes

TEXTS = ["Classify the sentiment of this review.", "Translate the sentence into French, please.", "Sum."]


@pytest.mark.parametrize("slack", [embedders.PADDING_SLACK, 100.0])
def test_vectors_are_normalised_float32_and_batch_invariant(pie_untrained, monkeypatch, slack):
    monkeypatch.setattr(embedders, "PADDING_SLACK", slack)  # 100: the three texts padded in one batch
    batch = pie_untrained.embed_documents(TEXTS)
    assert batch.dtype == np.float32 and batch.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([pie_untrained.embed_query(t) for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)  # padding must not leak into pooling
    assert pie_untrained.embed_documents([]).shape == (0, 384)


def test_batches_hold_texts_of_similar_length_shortest_first():
    lengths = [10, 100, 11, 12, 95, 30, 10]
    batches = embedders.padding_bounded_batches
    assert batches(lengths, 32, 1.2, 0) == [[0, 6, 2, 3], [5], [4, 1]]
    assert batches(lengths, 2, 1.2, 0) == [[0, 6], [2, 3], [5], [4, 1]]
    assert batches(lengths, 32, 100.0, 0) == [[0, 6, 2, 3, 5, 4, 1]]
    # spare tokens: short texts share a pass (30 joins the four short ones: 150 <= 1.2 x 73 + 64)
    assert batches(lengths, 32, 1.2, 64) == [[0, 6, 2, 3, 5], [4, 1]]
    # a request's long content and short task wording: apart, however many spare tokens a pass costs
    assert batches([200, 20], 32, 1.2, 32) == [[1], [0]]
    assert batches([], 32, 1.2, 32) == []


@pytest.mark.parametrize("name", ["semantic", "pie_untrained"])
def test_batches_are_padded_as_the_tokenizer_pads_them(name, request):
    """Texts are tokenized once and padded by hand: the tensors equal the tokenizer's own padding
    (`padding=True`), truncated texts included."""
    embedder = request.getfixturevalue(name)
    prompts = [embedder._fill_template(text) for text in ["Sum.", "Is it good? " + "word " * 400, "Hello, World!"]]
    encoding = embedder.tokenizer(prompts, truncation=True, max_length=embedder.max_length)
    expected = embedder.tokenizer(prompts, padding=True, truncation=True, max_length=embedder.max_length, return_tensors="pt")
    for index in ([0, 1, 2], [2, 0]):
        got = embedder._padded(encoding, index)
        assert set(got) == set(expected)
        for field, tensor in expected.items():
            want = tensor[index][:, : max(len(encoding["input_ids"][i]) for i in index)]
            assert got[field].dtype == want.dtype and got[field].equal(want), field


def test_texts_that_tokenize_alike_are_encoded_once(semantic, monkeypatch):
    passes = record_passes(semantic, monkeypatch)
    vectors = semantic.embed_documents(["Hello, World!", "Goodbye.", "hello , world !"])
    assert sorted(prompt for batch in passes for prompt in batch) == [read_back(semantic, "Goodbye."), read_back(semantic, "Hello, World!")]
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert vectors[0] @ vectors[1] < 0.9


def test_what_each_embedder_looks_at(pie_untrained, semantic):
    assert pie_untrained.text_for("Classify it.", "Great film") == "Classify it."
    assert pie_untrained.text_for("", "Is this review positive? Great film") == "Is this review positive? Great film"
    assert semantic.text_for("Classify it.", "Great film") == "Classify it.\nGreat film"
    assert pie_untrained._fill_template("Sum.") == PIE_TEMPLATE.replace("{instruction}", "Sum.")


def test_long_prompts_lose_their_middle_not_the_task_question(pie_untrained):
    long_text = "Is this review positive? " + "word " * 2000 + "Answer yes or no."
    prompt = pie_untrained._fill_template(long_text)
    assert prompt.endswith("Answer yes or no.\nthe task of the given instruction is:")
    assert prompt.count("Is this review positive?") == 1
    assert len(pie_untrained.tokenizer(prompt)["input_ids"]) <= pie_untrained.max_length


def test_fingerprint_names_weights_and_settings(pie_untrained, semantic):
    assert pie_untrained.fingerprint == PIEEmbedder().fingerprint
    assert pie_untrained.fingerprint.startswith("PIEEmbedder:model:mean:")
    assert len({pie_untrained.fingerprint, semantic.fingerprint, PIEEmbedder(pooling="cls").fingerprint}) == 3


def test_mask_and_cls_pooling(pie_untrained):
    masked = PIEEmbedder(pooling="mask")
    assert masked.template.endswith(" {mask}")
    assert masked._fill_template("Sum.").endswith("is: [MASK]")
    vectors = masked.embed_documents(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors, pie_untrained.embed_documents(TEXTS), atol=1e-3)
    cls = PIEEmbedder(pooling="cls").embed_documents(TEXTS)
    assert not np.allclose(cls, vectors, atol=1e-3)


def test_bad_settings_and_missing_models(tmp_path):
    with pytest.raises(IclRetrieverError, match=r"must contain an \{instruction\} slot"):
        PIEEmbedder(template="no slot")
    with pytest.raises(ModelNotFoundError, match="No transformers checkpoint at .*config.json is missing"):
        SemanticEmbedder(tmp_path)
    with pytest.raises(ModelNotFoundError, match="pie_config.json is missing.*icl-retriever train"):
        load_embedder("trained", tmp_path)
    with pytest.raises(IclRetrieverError, match="Unknown embedder kind 'bm25'"):
        load_embedder("bm25")  # type: ignore[arg-type]


def test_full_finetune_folder_round_trips(tmp_path, pie_untrained):
    """A trained folder without an adapter holds full weights; the template and pooling travel with it."""
    import shutil

    folder = tmp_path / "trained"
    shutil.copytree(minilm_path(), folder)
    (folder / "pie_config.json").write_text(json.dumps(
        {"base_model": str(folder), "template": PIE_TEMPLATE, "pooling": "mean", "max_length": 256, "adapter": False}
    ))
    loaded = load_embedder("trained", folder)
    assert loaded.spec == {"kind": "trained", "model": str(folder.resolve())}
    np.testing.assert_allclose(loaded.embed_documents(TEXTS), pie_untrained.embed_documents(TEXTS), atol=1e-5)


@pytest.fixture(scope="module")
def pie_decoder() -> PIEEmbedder:
    return load_embedder("pie-decoder")


def test_decoder_pie_reads_the_pie_prompt_and_pools_the_last_token(pie_decoder):
    from icl_retriever.models import resolve_generator_model

    assert pie_decoder.model_path == resolve_generator_model(None)
    assert type(pie_decoder.model).__name__ == "LlamaModel"  # AutoModel: the decoder without its LM head
    assert pie_decoder.pooling == "last" and pie_decoder.max_length == 128
    assert pie_decoder.spec == {"kind": "pie-decoder", "model": None}
    assert load_embedder(**pie_decoder.spec).fingerprint == pie_decoder.fingerprint
    assert pie_decoder.fingerprint != PIEEmbedder().fingerprint
    prompt = pie_decoder._fill_template("Sum.")
    assert prompt == PIE_TEMPLATE.replace("{instruction}", "Sum.")
    assert prompt.startswith("The essence of an instruction is its task intention.")
    assert prompt.endswith("Sum.\nthe task of the given instruction is:")
    ids = pie_decoder.tokenizer([prompt])["input_ids"][0]
    assert pie_decoder.tokenizer.decode(ids) == prompt  # no BOS/EOS added: the last token is the prompt's ':'


def test_decoder_pie_vectors_are_unit_float32_and_padding_free(pie_decoder):
    assert pie_decoder.dimension == 576  # SmolLM2-135M hidden size
    batch = pie_decoder.embed_documents(TEXTS)
    assert batch.dtype == np.float32 and batch.shape == (3, 576)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # Right padding + causal attention: the last real token's state must not see the padding.
    one_by_one = np.stack([pie_decoder.embed_query(t) for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-4)
    assert pie_decoder.embed_documents([]).shape == (0, 576)


def test_decoder_pie_groups_instructions_by_task(pie_decoder):
    first, paraphrase, poem = pie_decoder.embed_documents(
        [
            "Classify the sentiment of this review.",
            "Decide whether the movie review is positive or negative.",
            "Write a poem about the sea.",
        ]
    )
    assert float(first @ paraphrase) > max(float(first @ poem), float(paraphrase @ poem))


def test_task_embedder_embeds_request_views_in_one_call_as_it_would_apart(task_embedder):
    contents = ["Classify the sentiment.\nThe soup was cold.", "Translate to French.\nGood morning, everyone."]
    tasks = ["classify the sentiment ."]
    content_views, task_views = task_embedder.embed_queries(contents, tasks)
    assert content_views.shape == (2, 384) and task_views.shape == (1, 384)
    assert content_views == pytest.approx(task_embedder.content.embed_documents(contents), abs=1e-5)
    assert task_views[0] == pytest.approx(task_embedder.task.embed_query(tasks[0]), abs=1e-5)
    assert task_embedder.embed_documents([]).shape == task_embedder.embed_views([], [], {}).shape == (0, 768)


def test_onnx_runtime_gives_torch_vectors_and_exports_once(tmp_path, monkeypatch, pie_untrained):
    """ONNX Runtime runs the exported encoder: the same vectors as torch, batched (padding) and one
    by one, for a different text length than the export traced; a second embedder reuses the export
    without loading the torch weights."""
    from icl_retriever import onnx_encoder

    monkeypatch.setenv("ICL_RETRIEVER_CACHE", str(tmp_path))
    monkeypatch.setenv("ICL_RETRIEVER_ENCODER", "onnx")
    texts = [*TEXTS, "A much longer request: " + "list every prime below one hundred, " * 12]
    onnx = PIEEmbedder()
    assert onnx.runtime == "onnx" and onnx.fingerprint == pie_untrained.fingerprint
    exported = list(tmp_path.glob("onnx/*/model.onnx"))
    assert len(exported) == 1 and not list(tmp_path.glob("onnx/*/*.tmp"))
    np.testing.assert_allclose(onnx.embed_documents(texts), pie_untrained.embed_documents(texts), atol=1e-5)
    np.testing.assert_allclose(onnx.embed_query(texts[0]), pie_untrained.embed_query(texts[0]), atol=1e-5)

    monkeypatch.setattr(onnx_encoder, "export", lambda *a: pytest.fail("exported again"))
    again = SemanticEmbedder()
    assert again.model is None and again.dimension == 384  # the torch weights are never loaded
    np.testing.assert_allclose(again.embed_documents(TEXTS), SemanticEmbedder(runtime="torch").embed_documents(TEXTS), atol=1e-5)


def test_encoder_runtime_setting_is_checked(monkeypatch):
    from icl_retriever.models import encoder_runtime

    monkeypatch.delenv("ICL_RETRIEVER_ENCODER", raising=False)
    assert encoder_runtime() == "torch"
    monkeypatch.setenv("ICL_RETRIEVER_ENCODER", "tensorrt")
    with pytest.raises(IclRetrieverError, match="ICL_RETRIEVER_ENCODER must be torch or onnx, got 'tensorrt'"):
        encoder_runtime()


def test_onnx_runtime_refuses_decoders_and_unidentified_weights(pie_untrained):
    with pytest.raises(IclRetrieverError, match="onnx runtime runs encoder models; a decoder"):
        PIEEmbedder(pooling="last", runtime="onnx")
    with pytest.raises(IclRetrieverError, match="keys its export by weights: pass weights_id= with model="):
        SemanticEmbedder(model=pie_untrained.model, runtime="onnx")
