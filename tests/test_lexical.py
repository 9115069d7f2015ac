import numpy as np
import pytest

from icl_retriever.lexical import TemplateStats, answer_match, strip_shared_content, task_text, tokens, word_overlap

STORIES = [
    "Mia left her umbrella on the bus and walked home in the rain.",
    "The baker burned the first loaf, so he opened the shop an hour late.",
    "Tom trained every morning for months and finished his first marathon.",
    "The old bridge was closed after the storm washed part of the road away.",
]


def letter_prompt(story: str) -> str:
    return f"{story}\nAccording to the above context, choose the best option.\nOptions:\nA. yes\nB. no"


def text_prompt(story: str) -> str:
    return f"{story}\nWhy did this happen?\n- None of the above choices ."


def test_tokens_are_lowercased_words_and_punctuation():
    assert tokens("Is it GOOD? Yes, it's good.") == ["is", "it", "good", "?", "yes", ",", "it", "'", "s", "good", "."]


def test_skeleton_keeps_what_many_texts_repeat():
    stats = TemplateStats()
    stats.add([letter_prompt(s) for s in STORIES] + [text_prompt(s) for s in STORIES])
    assert stats.documents == 8 and stats.threshold == 3
    # The story's final full stop starts every template: it is template wording too.
    assert stats.skeleton(letter_prompt("A brand new story about a cat.")) == (
        "... . according to the above context , choose the best option . options : a . yes b . no"
    )
    assert stats.skeleton(text_prompt(STORIES[0])) == "... . why did this happen ? - none of the above choices ."
    # Nothing frequent: the text comes back whole, tokenised.
    assert stats.skeleton("Completely unrelated words here.") == "completely unrelated words here ."


def test_threshold_grows_with_the_pool():
    stats = TemplateStats(min_share=0.01, min_count=3)
    stats.add(["one two three four"] * 1000)
    assert stats.threshold == 10
    assert stats.skeleton("one two three four") == "one two three four"


def test_stats_save_and_load_round_trip(tmp_path):
    stats = TemplateStats()
    stats.add([letter_prompt(s) for s in STORIES])
    stats.save(tmp_path / "stats.npz")
    loaded = TemplateStats.load(tmp_path / "stats.npz")
    assert loaded.documents == 4 and np.array_equal(loaded.counts, stats.counts)
    assert not (tmp_path / "stats.npz.tmp").exists()
    assert TemplateStats.load(tmp_path / "missing.npz").documents == 0


def test_task_text_is_the_instruction_when_the_input_is_separate():
    stats = TemplateStats()
    stats.add([text_prompt(s) for s in STORIES])
    assert task_text("Classify the sentiment.", "Great film!", stats) == "classify the sentiment ."
    # Without pool statistics a whole prompt is its own task wording.
    assert task_text(text_prompt("Any story at all."), "") == "any story at all . why did this happen ? - none of the above choices ."
    assert task_text(text_prompt("Any story at all."), "", stats) == "... . why did this happen ? - none of the above choices ."


def test_strip_shared_content_cuts_the_neighbours_content_not_their_template():
    story = STORIES[1]
    sibling = (letter_prompt(story), "... according to the above context , choose the best option . options : a . yes b . no")
    request = f"{story}\nWhat made this happen? Pick one of the choices below."
    assert strip_shared_content(request, [sibling]) == "... what made this happen ? pick one of the choices below ."
    # The sibling's template wording is not content: a request that repeats it keeps it.
    assert strip_shared_content(letter_prompt(story), [sibling]) == (
        "... according to the above context , choose the best option . options : a . yes b . no"
    )
    # No neighbours, nothing cut.
    assert strip_shared_content("Why did this happen?", []) == "why did this happen ?"


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, [1.0, 2 / 8, 0.0]), (2, [1.0, 0.0, 0.0])],
)
def test_word_overlap_is_jaccard_ignoring_gaps(n, expected):
    query = "answer by more , less"
    candidates = ["... answer by more , less", "a : more ... b : less", "unrelated"]  # no bigram "more b"
    assert word_overlap(query, candidates, n) == pytest.approx(expected)
    assert word_overlap("", [""], 1).tolist() == [0.0]


def test_word_overlap_remembers_candidates_per_text_and_n():
    """Candidates' n-gram sets are remembered: asked again, in another order, with another n or
    against another query, the values stay the exact Jaccard of fresh sets."""
    candidates = ["pick a , b or c", "... pick a , b", "pick a , b or c", "c or d"]

    def jaccard(a, b, n):
        grams = lambda t: {" ".join(w[i : i + n]) for p in t.split("...") for w in [p.split()] for i in range(len(w) - n + 1)}
        union = grams(a) | grams(b)
        return len(grams(a) & grams(b)) / len(union) if union else 0.0

    for query in ("pick a , b", "c or d ... pick", "pick a , b"):
        for n in (1, 2, 1, 3):
            for order in (candidates, candidates[::-1]):
                assert word_overlap(query, order, n).tolist() == [jaccard(query, c, n) for c in order]


@pytest.mark.parametrize(
    ("request_text", "outputs", "expected"),
    [
        # named in the same case, as a whole phrase; punctuation around the output does not count
        ("Reply with one of: more, less or no effect", ["less", "no effect.", "B", "Less"], [1, 1, 0, 0]),
        ('How does it sound? Answer "positive" or "negative".', ["positive", "Positive"], [1, 0]),
        ("Is the sum odd?", ["odd", "oddly"], [1, 0]),  # a whole phrase, not a prefix
        # a yes/no question names yes/no/true/false in any case
        ("Title: Fine\nReview: ok.\nWould you describe the customer feedback above as negative?",
         ["No", "Negative", "true."], [1, 0, 1]),
        # a question that offers alternatives is not a yes/no one; nor is a wh-question
        ("Would you say he was satisfied or dissatisfied?", ["Yes", "satisfied"], [0, 1]),
        ("Why did Riley do this?", ["Yes"], [0]),
        # free text (more than three words) never matches, even when the request quotes it
        ("Is it the case that the cat sat on the mat?", ["the cat sat on the mat"], [0]),
        ("Summarise this.", [], []),
    ],
)
def test_answer_match_names_the_answers_a_request_asks_for(request_text, outputs, expected):
    assert answer_match(request_text, outputs).tolist() == expected
