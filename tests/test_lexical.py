import numpy as np
import pytest

from icl_retriever.lexical import ContentIndex, TemplateVocabulary, word_ngrams

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


def test_word_ngrams_are_lowercased_and_distinct():
    assert word_ngrams("A b, A b, a B", 2) == word_ngrams("a b , a", 2)
    assert len(word_ngrams("one two three", 2)) == 2
    assert word_ngrams("one", 2) == frozenset()


def test_template_wording_is_what_many_texts_repeat():
    pool = [letter_prompt(s) for s in STORIES] + [text_prompt(s) for s in STORIES]
    vocabulary = TemplateVocabulary(pool)
    assert vocabulary.min_count == 3  # the floor: 0.3 % of 8 texts is less than one
    # A story's words occur in two texts (one per template): never template wording.
    assert not word_ngrams(STORIES[0], 4) & vocabulary.grams
    query = letter_prompt("A dog barked all night long.")
    overlap = vocabulary.overlap(query, [letter_prompt(STORIES[1]), text_prompt(STORIES[1]), STORIES[1]])
    assert overlap[0] == pytest.approx(1.0)  # same template, other story
    assert overlap[1] < 0.2 and overlap[2] == 0.0
    assert TemplateVocabulary(pool, min_share=0.5).min_count == 4


def test_template_overlap_of_text_without_template_is_zero():
    vocabulary = TemplateVocabulary([letter_prompt(s) for s in STORIES])
    assert vocabulary.overlap("nothing in common here at all", ["also nothing in common"]).tolist() == [0.0]
    assert TemplateVocabulary([]).overlap("a b c d e", ["a b c d e"]).tolist() == [0.0]


def test_content_similarity_follows_rare_words():
    index = ContentIndex([letter_prompt(s) for s in STORIES] + [text_prompt(s) for s in STORIES])
    query = "Mia forgot her umbrella on the bus."
    scores = index.similarity(query, [text_prompt(STORIES[0]), text_prompt(STORIES[1]), letter_prompt(STORIES[1])])
    assert scores[0] > 0.3 > scores[1]
    assert np.all((scores >= 0) & (scores <= 1))
    assert ContentIndex(["", "..."]).similarity("anything", ["x"]).tolist() == [0.0]
    assert index.similarity(query, []).shape == (0,)


def test_pool_texts_are_looked_up_and_others_computed_alike():
    pool = [letter_prompt(s) for s in STORIES] + [text_prompt(s) for s in STORIES]
    vocabulary, index = TemplateVocabulary(pool), ContentIndex(pool)
    query, outsider = "Mia forgot her umbrella.", letter_prompt("A new story about Mia and her umbrella.")
    assert vocabulary.template_of(pool[0]) == word_ngrams(pool[0], 4) & vocabulary.grams
    looked_up = index.similarity(query, pool[:2])
    mixed = index.similarity(query, [*pool[:2], outsider])
    assert mixed[:2] == pytest.approx(looked_up)
    assert mixed[2] > 0
