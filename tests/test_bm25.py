import shutil

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from icl_retriever.bm25 import BM25Index, content_text, tokens
from icl_retriever.errors import IclRetrieverError
from icl_retriever.selectors import BM25ExampleSelector
from icl_retriever.store import BM25_FOLDER, ExampleStore
from tests.conftest import make_examples

REQUEST = {"instruction": "Translate this sentence into French.", "input": "I like the pasta."}


def test_scores_equal_rank_bm25_where_no_word_is_in_half_the_pool():
    examples = make_examples()
    texts = [content_text(e.instruction, e.input) for e in examples]
    index = BM25Index.build(((e.key, t) for e, t in zip(examples, texts)), "r")
    reference = BM25Okapi([tokens(t) for t in texts])
    query = "French pasta, film wonderful"  # every word in fewer than 3 of the 6 examples
    np.testing.assert_allclose(index.scores(query), reference.get_scores(tokens(query)), rtol=1e-6)
    assert index.ranked(query)[0].tolist() == np.argsort(-reference.get_scores(tokens(query)), kind="stable").tolist()
    # The documented difference: "the" (in 4 of 6) gets idf 0 here, 0.25 x the mean idf there.
    assert index.scores("the").max() == 0 and reference.get_scores(["the"]).max() > 0


def test_selector_reads_the_index_saved_with_the_store(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    assert store.bm25_path == tmp_path / "demo" / BM25_FOLDER and store.bm25_path.is_dir()
    request = {"instruction": "Translate into French.", "input": "I like pasta."}  # no word in half the pool
    demos = BM25ExampleSelector(store=store, k=3).select_examples(request)
    reference = BM25Okapi([tokens(content_text(e.instruction, e.input)) for e in make_examples()])
    scores = dict(zip([e.key for e in make_examples()], reference.get_scores(tokens(content_text(*request.values())))))
    assert [d["id"] for d in demos] == sorted(scores, key=scores.get)[-3:] == ["ex0", "ex3", "ex4"]  # best last
    assert [d["score"] for d in demos] == pytest.approx([scores[d["id"]] for d in demos], rel=1e-6)
    filtered = BM25ExampleSelector(store=store, k=2, where={"topic": "movies"}, exclude_ids={"ex4"})
    assert [d["id"] for d in filtered.select_examples(REQUEST)] == ["ex2", "ex1"]


def test_rebuild_switches_its_own_bm25_index(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    selector = BM25ExampleSelector(store=store, k=1)
    assert selector.select_examples({"instruction": "Spell backwards", "input": "pasta"})[0]["id"] != "new"
    pool = [*make_examples(), make_examples()[0].model_copy(update={"id": "new", "instruction": "Spell the word backwards."})]
    rebuilt, _ = ExampleStore.rebuild(toy, "demo", pool, tmp_path)
    assert rebuilt.bm25_path.name.endswith(f".{BM25_FOLDER}") and rebuilt.bm25_path.is_dir()
    assert not (tmp_path / "demo" / BM25_FOLDER).exists()  # the old index's, dropped with it
    assert selector.select_examples({"instruction": "Spell backwards", "input": "pasta"})[0]["id"] == "new"


def test_missing_bm25_index_says_how_to_build_it(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    shutil.rmtree(store.bm25_path)
    with pytest.raises(IclRetrieverError, match=r"no BM25 index .* `icl-retriever index POOL --name demo`"):
        BM25ExampleSelector(store=store).select_examples(REQUEST)
    store.index(make_examples())  # nothing to embed, but the missing BM25 index is built
    assert BM25ExampleSelector(store=store, k=1).select_examples(REQUEST)[0]["id"] == "ex4"
