import asyncio
import json

import pytest
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

from icl_retriever.embedders import load_embedder
from icl_retriever.errors import IclRetrieverError
from icl_retriever.example import Example
from icl_retriever.selectors import (
    BM25ExampleSelector,
    RandomExampleSelector,
    SemanticExampleSelector,
    SimilarityExampleSelector,
    TaskExampleSelector,
    selector_for_store,
)
from icl_retriever.store import ExampleStore
from tests.conftest import BUILTIN_POOL, ROOT, make_examples

REQUEST = {"instruction": "Translate this sentence into French.", "input": "I like the pasta."}


@pytest.fixture()
def toy_store(tmp_path, toy):
    store = ExampleStore(toy, "demo", tmp_path)
    store.index(make_examples())
    return store


def test_k_order_and_output_keys(toy_store):
    demos = SimilarityExampleSelector(store=toy_store, k=3).select_examples(REQUEST)
    assert len(demos) == 3
    assert set(demos[0]) == {"id", "instruction", "input", "output", "task", "score"}
    scores = [d["score"] for d in demos]
    assert scores == sorted(scores), "most similar must come last"
    assert demos[-1]["task"] == "trans"


def test_where_and_exclusion(toy_store):
    selector = SimilarityExampleSelector(store=toy_store, k=2, where={"topic": "movies"}, exclude_ids={"ex4"})
    demos = selector.select_examples(REQUEST)
    assert {d["id"] for d in demos} == {"ex1", "ex2"}
    hits = SimilarityExampleSelector(store=toy_store, k=1).select_hits(REQUEST, exclude_ids=["ex3", "ex4"])
    assert hits[0].example.key == "ex0"  # next nearest once both translations of the same words are excluded


def test_mmr_returns_distinct_demonstrations(tmp_path, toy):
    store = ExampleStore(toy, "dups", tmp_path)
    base = make_examples()
    near_copies = [e.model_copy(update={"id": f"{e.id}-copy", "output": e.output + "!"}) for e in base]
    store.index(base + near_copies)
    plain = SimilarityExampleSelector(store=store, k=2).select_examples(REQUEST)
    diverse = SimilarityExampleSelector(store=store, k=2, mmr=True, lambda_mult=0.3).select_examples(REQUEST)
    texts = lambda demos: {(d["instruction"], d["input"]) for d in demos}  # noqa: E731
    assert len(texts(plain)) == 1  # both nearest are copies of one example
    assert len(texts(diverse)) == 2


def test_token_budget_skips_long_demonstrations(toy_store):
    unbounded = SimilarityExampleSelector(store=toy_store, k=2).select_examples(REQUEST)
    assert [d["id"] for d in unbounded] == ["ex3", "ex4"]  # 13 + 12 words
    bounded = SimilarityExampleSelector(store=toy_store, k=2, token_budget=14).select_examples(REQUEST)
    assert [d["id"] for d in bounded] == ["ex4"]  # the nearest fits; nothing else fits beside it


def test_async_and_add_example(toy_store):
    selector = SimilarityExampleSelector(store=toy_store, k=1)
    asyncio.run(selector.aadd_example({"instruction": "Count the words.", "input": "a b", "output": "2", "id": "cw"}))
    demos = asyncio.run(selector.aselect_examples({"instruction": "Count the words.", "input": "x y z"}))
    assert demos[0]["id"] == "cw"
    assert selector.select_examples({"instruction": "Count the words.", "input": "x y z"}) == demos


def test_empty_request_is_an_error(toy_store):
    with pytest.raises(IclRetrieverError, match="The request has no text"):
        SimilarityExampleSelector(store=toy_store).select_examples({"question": "hi"})


def test_random_is_seeded_and_bm25_is_lexical(toy_store):
    first = RandomExampleSelector(store=toy_store, k=2, seed=1).select_examples(REQUEST)
    assert first == RandomExampleSelector(store=toy_store, k=2, seed=1).select_examples(REQUEST)
    assert all(d["score"] is None for d in first)
    draws = {tuple(d["id"] for d in RandomExampleSelector(store=toy_store, k=2, seed=s).select_examples(REQUEST)) for s in range(10)}
    assert len(draws) > 1
    bm25 = BM25ExampleSelector(store=toy_store, k=2).select_examples(REQUEST)
    assert bm25[-1]["id"] in {"ex3", "ex4"} and bm25[-1]["score"] >= bm25[0]["score"]


def test_selector_kind_must_match_the_embedder(toy_store):
    with pytest.raises(IclRetrieverError, match="TaskExampleSelector needs a store built with the pie embedder.*--embedder pie"):
        TaskExampleSelector(store=toy_store)
    with pytest.raises(IclRetrieverError, match="semantic embedder"):
        SemanticExampleSelector(store=toy_store)


def test_inside_few_shot_prompt_template(toy_store):
    prompt = FewShotPromptTemplate(
        example_selector=SimilarityExampleSelector(store=toy_store, k=2),
        example_prompt=PromptTemplate.from_template("Instruction: {instruction}\nInput: {input}\nOutput: {output}"),
        suffix="Instruction: {instruction}\nInput: {input}\nOutput:",
        input_variables=["instruction", "input"],
    )
    text = prompt.format(**REQUEST)
    assert text.count("Instruction:") == 3
    assert text.endswith("Instruction: Translate this sentence into French.\nInput: I like the pasta.\nOutput:")
    assert "Output: J'aime le film." in text


def _requests():
    return [json.loads(line) for line in (ROOT / "tests" / "data" / "retrieval_requests.jsonl").read_text().splitlines() if line]


def _task_accuracy(selector, depth):
    """Share of requests whose `depth` most similar demonstrations all come from the request's task."""
    hits = 0
    for request in _requests():
        demos = selector.select_examples(request)[-depth:]  # most similar last
        hits += all(d["task"] == request["task"] for d in demos)
    return hits / len(_requests())


def test_task_retrieval_on_the_builtin_pool(tmp_path, pie_untrained, semantic, builtin_examples):
    """Requests phrased unlike any pool instruction, on topics that belong to other tasks.

    Untrained PIE nearest neighbours get every request's top-2 from the request's task (the
    requests were written while checking against it, so this is its best case); the topic
    baseline is pulled to other tasks on the same topic. The trained default separates synonymous
    phrasings more; its re-scoring (template overlap + content similarity) brings most of the
    second demonstrations back to the request's task.
    """
    assert len({e.task for e in builtin_examples}) >= 12 and len(builtin_examples) >= 60
    cosine_only = {"template_weight": 0.0, "content_weight": 0.0}
    accuracy = {}
    for name, embedder, options in (
        ("pie-untrained", pie_untrained, cosine_only),
        ("semantic", semantic, {}),
        ("pie-cosine", load_embedder("pie"), cosine_only),
        ("pie", load_embedder("pie"), {}),
    ):
        store = ExampleStore(embedder, name, tmp_path)
        store.index(builtin_examples)
        selector = selector_for_store(store, k=2, **options)
        accuracy[name] = (_task_accuracy(selector, 1), _task_accuracy(selector, 2))
    assert accuracy["pie-untrained"] == (1.0, 1.0)
    assert accuracy["semantic"][1] < 0.75
    assert accuracy["pie"][0] >= 15 / 17 and accuracy["pie"][1] >= 12 / 17  # measured: 15/17 and 12/17
    assert accuracy["pie"][1] > accuracy["pie-cosine"][1]  # re-scoring helps: 8/17 without it


def test_task_selector_scores_template_and_content(tmp_path, pie_untrained):
    """Sibling tasks asked about the same stories: the template term keeps the request's task."""
    from tests.test_lexical import STORIES, letter_prompt, text_prompt

    pool = [
        Example(instruction=make(story), output=answer, id=f"{task}{n}", task=task)
        for task, make, answer in (("letter", letter_prompt, "A"), ("text", text_prompt, "None of the above choices ."))
        for n, story in enumerate(STORIES)
    ]
    store = ExampleStore(pie_untrained, "siblings", tmp_path)
    store.index(pool)
    request = {"instruction": letter_prompt("Mia left her umbrella on the train and walked home in the rain.")}
    cosine = TaskExampleSelector(store=store, k=8, template_weight=0.0, content_weight=0.0).select_hits(request)
    rescored = TaskExampleSelector(store=store, k=8).select_hits(request)
    # Most similar last. PIE alone ranks the other task's prompt about the same story second, in
    # front of the request's own task; with the template overlap the top four are the request's task.
    assert [hit.example.id for hit in cosine[-2:]] == ["text0", "letter0"]
    assert {hit.example.task for hit in rescored[-4:]} == {"letter"}
    assert rescored[-1].example.id == "letter0"  # same task and a similar story
    # The score is the documented sum, computed here from its parts.
    selector = TaskExampleSelector(store=store, k=8)
    templates, contents = selector._lexicons()
    by_id = {hit.example.id: hit.score for hit in cosine}
    for hit in rescored:
        text = hit.example.instruction
        expected = (
            by_id[hit.example.id]
            + templates.overlap(request["instruction"], [text])[0]
            + 0.3 * contents.similarity(request["instruction"] + "\n", [text + "\n"])[0]
        )
        assert hit.score == pytest.approx(expected, abs=1e-6)


def test_task_selector_lexicons_follow_the_store(tmp_path, pie_untrained):
    """The template vocabulary is rebuilt when the store grows.

    With two prompts of one template nothing is template wording (the floor is three texts); a
    third, added through the selector, makes it so.
    """
    from tests.test_lexical import STORIES, letter_prompt

    store = ExampleStore(pie_untrained, "growing", tmp_path)
    store.index([Example(instruction=letter_prompt(s), output="A", id=f"l{n}") for n, s in enumerate(STORIES[:2])])
    selector = TaskExampleSelector(store=store, k=1)
    request = {"instruction": letter_prompt(STORIES[3])}
    before = selector.select_hits(request)[0].score
    assert not selector._lexicons()[0].grams  # two texts: below the floor of three
    selector.add_example({"instruction": letter_prompt(STORIES[2]), "output": "B", "id": "l2"})
    assert selector._lexicons()[0].grams
    hits = selector.select_hits(request, exclude_ids=["l2"])
    assert hits[0].score > before + 0.5  # the shared template now counts (overlap 1.0 with l0/l1)
