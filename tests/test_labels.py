"""Verb-noun task labels: concrete instructions, gold-key matching, and the `label` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icl_retriever.labels import TaskLabel, TaskLabeler, agreement, clean_instruction, label_matches


@pytest.fixture(scope="module")
def labeler() -> TaskLabeler:
    return TaskLabeler()


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("Write a short poem about cats.", "write|poem"),
        ("Please rewrite this sentence in passive voice.", "rewrite|sentence"),
        # The tagger reads a sentence-initial "List"/"Name" as a noun; the labeler must not.
        ("List three benefits of exercise.", "list|benefit"),
        ("Name five countries in Europe.", "name|country"),
        # "Given ..., do X" labels X; "it"/"them" point back to the given noun.
        ("Given a list of words, sort them alphabetically.", "sort|word"),
        ("Given a string, reverse it.", "reverse|string"),
        ("Given two strings, find whether they are anagrams.", "find|anagram"),
        # Questions: a task when the verb has an object, knowledge otherwise.
        ("How can I save money on groceries?", "save|money"),
        ("How does photosynthesis work?", "how|knowledge"),
        ("Why is the sky blue?", "why|knowledge"),
        ("Can you recommend a good book for a long flight?", "recommend|book"),
        ("Does this review contain a complaint?", "contain|complaint"),
        ("What would be the output of this code?", "be|output"),
        # Headings, numbered steps, wishes and role-play set-ups.
        ("Task: Summarize the following article.", "summarize|article"),
        ("1. Read the paragraph. 2. Count the verbs.", "read|paragraph"),
        ("I want to learn a new language. Any tips?", "learn|language"),
        ("Imagine you are a travel agent. Plan a trip to Japan.", "plan|trip"),
        ("Imagine you are a travel agent.\nPlan a trip to Japan.", "plan|trip"),
        ("Explain how you would implement a stack in Python.", "implement|stack"),
        # Objects: compounds give their head, persons become "someone", destinations are no object.
        ("Write a cover letter for a nurse.", "write|letter"),
        ("Help me write a cover letter.", "help|someone"),
        ("Translate to French.", "translate|none"),
        ("Re-arrange the letters to form a word.", "rearrange|letter"),
        # No verb at all.
        ("Sentiment analysis of tweets.", "none|analysis"),
        ("", "none|none"),
    ],
)
def test_label(labeler: TaskLabeler, instruction: str, expected: str) -> None:
    assert labeler.label(instruction).key == expected


def test_label_many_keeps_order(labeler: TaskLabeler) -> None:
    keys = [label.key for label in labeler.label_many(["Write a poem.", "Sort the numbers.", "Write a poem."])]
    assert keys == ["write|poem", "sort|number", "write|poem"]


def test_clean_instruction_keeps_the_task_line() -> None:
    assert clean_instruction("Task: Classify the tweet.\nI love it!") == "Classify the tweet."
    assert clean_instruction("  Step 1: Read   the text\n") == "Read the text"
    assert clean_instruction("\n\n") == ""


def test_label_matches_gold_synonyms() -> None:
    gold = "decide|statement##determine|statement"
    assert label_matches("determine|statement", gold) == (True, True)
    assert label_matches("determine|sentence", gold) == (False, True)
    assert label_matches("write|statement", gold) == (False, False)
    assert TaskLabel.parse("translate").key == "translate|none"


def test_agreement() -> None:
    scores = agreement(["write|poem", "write|story", "sort|word"], ["write|poem", "write|poem", "rank|city"])
    assert scores == {"exact": pytest.approx(1 / 3), "verb": pytest.approx(2 / 3), "n": 3.0}


def test_label_command(tmp_path: Path) -> None:
    from icl_retriever.cli import app
    from icl_retriever.cli import label as _label  # noqa: F401  (registers the command)

    pool = tmp_path / "pool.jsonl"
    rows = [
        {"instruction": "Write a poem about the sea.", "output": "..."},
        {"instruction": "Write a poem about dogs.", "output": "...", "task": "custom|task"},
        {"instruction": "Sort the numbers.", "input": "3 1 2", "output": "1 2 3"},
    ]
    pool.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "labeled.jsonl"
    result = CliRunner().invoke(app, ["label", str(pool), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["task"] for row in data["examples"]] == ["write|poem", "custom|task", "sort|number"]
    assert data["counts"] == {"write|poem": 1, "custom|task": 1, "sort|number": 1}
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["task"] for row in written] == ["write|poem", "custom|task", "sort|number"]

    result = CliRunner().invoke(app, ["label", str(pool), "--overwrite"])
    assert result.exit_code == 0
    assert "2  write|poem" in result.stdout


def test_label_command_bad_pool(tmp_path: Path) -> None:
    from icl_retriever.cli import app
    from icl_retriever.cli import label as _label  # noqa: F401

    pool = tmp_path / "bad.jsonl"
    pool.write_text('{"instruction": "x"}\n')
    result = CliRunner().invoke(app, ["label", str(pool)])
    assert result.exit_code == 1
