import json
from typing import Any

import pytest
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.prompts import FewShotPromptTemplate
from typer.testing import CliRunner

from icl_retriever.generators import TransformersGenerator
from icl_retriever.langchain_llm import GeneratorLLM, few_shot_chain
from icl_retriever.pipeline import Answer, ICLPipeline, Request
from icl_retriever.prompt import build_messages, build_prompt, few_shot_prompt
from tests.conftest import BUILTIN_POOL

POOL = [
    {"id": "s1", "task": "sentiment", "instruction": "Classify the sentiment of this review as positive or negative.",
     "input": "The acting was superb and the ending left me in tears.", "output": "positive"},
    {"id": "s2", "task": "sentiment", "instruction": "Classify the sentiment of this review as positive or negative.",
     "input": "It drags on for three hours and the plot makes no sense.", "output": "negative"},
    {"id": "t1", "task": "translate", "instruction": "Translate to French.", "input": "Good morning.", "output": "Bonjour."},
]


class FixedSelector(BaseExampleSelector):
    """The pool's examples whose instruction shares the request's first word, most similar last."""

    def __init__(self, k: int = 2) -> None:
        self.k = k
        self.calls: list[dict[str, Any]] = []

    def add_example(self, example: dict[str, str]) -> None:
        raise NotImplementedError

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        self.calls.append(input_variables)
        word = input_variables["instruction"].split()[0]
        chosen = [e for e in POOL if e["instruction"].startswith(word)][: self.k]
        return [{**e, "score": 0.5 + i / 10} for i, e in enumerate(chosen)]


class CountingGenerator:
    """Wraps a real generator and records each generate call's batch."""

    def __init__(self, inner) -> None:
        self.inner, self.model, self.backend, self.batches = inner, inner.model, inner.backend, []

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def generate(self, prompts, max_tokens, stop=None, temperature=0.0):
        self.batches.append(list(prompts))
        return self.inner.generate(prompts, max_tokens, stop, temperature)


@pytest.fixture(scope="module")
def generator() -> CountingGenerator:
    return CountingGenerator(TransformersGenerator())


SENT = "Classify the sentiment of this review as positive or negative."


# ------------------------------------------------------------------------------ prompt format


def test_plain_prompt_format_and_empty_instruction():
    demos = [POOL[0], {"instruction": "", "input": "Is this positive?\nAnswer:", "output": "Yes"}]
    assert build_prompt(demos, SENT, "Dull.") == (
        f"Instruction: {SENT}\nInput: The acting was superb and the ending left me in tears.\nOutput: positive\n\n"
        "Input: Is this positive?\nAnswer:\nOutput: Yes\n\n"
        f"Instruction: {SENT}\nInput: Dull.\nOutput:"
    )
    assert build_prompt([], "", "Is {this} positive?") == "Input: Is {this} positive?\nOutput:"
    assert build_prompt([], "Name a colour.") == "Instruction: Name a colour.\nOutput:"
    with pytest.raises(ValueError, match="needs an instruction or an input"):
        build_prompt(POOL, " ", "")


def test_chat_prompt_uses_turns(generator):
    messages = build_messages(POOL[:1], SENT, "Dull.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "positive"
    assert messages[3]["content"] == f"Instruction: {SENT}\nInput: Dull."
    prompt = build_prompt(POOL[:1], SENT, "Dull.", tokenizer=generator.tokenizer)
    assert prompt.startswith("<|im_start|>system\nAnswer with the output only, on one line.<|im_end|>\n")
    assert prompt.endswith(f"Input: Dull.<|im_end|>\n<|im_start|>assistant\n")


def test_few_shot_prompt_template_matches_build_prompt():
    template = few_shot_prompt(selector=FixedSelector())
    assert isinstance(template, FewShotPromptTemplate)
    demos = FixedSelector().select_examples({"instruction": SENT, "input": "Dull."})
    assert template.format(instruction=SENT, input="Dull.") == build_prompt(demos, SENT, "Dull.")


# ------------------------------------------------------------------------------------ pipeline


def test_answer_reports_demonstrations_prompt_and_model(generator):
    selector = FixedSelector()
    result = ICLPipeline(selector, generator, max_tokens=8).answer(SENT, "A boring, badly written mess.")
    assert isinstance(result, Answer)
    assert result.answer in {"positive", "negative"}
    assert [(d.id, d.task, d.score) for d in result.demonstrations] == [("s1", "sentiment", 0.5), ("s2", "sentiment", 0.6)]
    demos = selector.select_examples({"instruction": SENT, "input": "A boring, badly written mess."})
    assert result.prompt == build_prompt(demos, SENT, "A boring, badly written mess.", tokenizer=generator.tokenizer)
    assert generator.batches[-1] == [result.prompt]
    assert (result.model, result.backend) == (generator.model, "transformers")


def test_answer_many_is_one_generate_call(generator):
    before = len(generator.batches)
    pipe = ICLPipeline(FixedSelector(), generator, k=1, max_tokens=8)
    answers = pipe.answer_many([Request(instruction=SENT, input="Wonderful."), {"instruction": "Translate to French.", "input": "Thank you."}])
    assert len(generator.batches) == before + 1 and len(generator.batches[-1]) == 2
    assert [[d.id for d in a.demonstrations] for a in answers] == [["s1"], ["t1"]]
    assert all("\n" not in a.answer for a in answers)


def test_k_override_copies_pydantic_selector():
    from pydantic import BaseModel

    class PydanticSelector(BaseExampleSelector, BaseModel):
        k: int = 2

        def add_example(self, example):
            raise NotImplementedError

        def select_examples(self, input_variables):
            return POOL[: self.k]

    original = PydanticSelector()
    pipe = ICLPipeline(original, generator=None, k=1)  # type: ignore[arg-type]
    assert (pipe.selector.k, original.k) == (1, 2)


# ------------------------------------------------------------------------------- LangChain LLM


def test_langchain_llm_and_few_shot_chain(generator):
    llm = GeneratorLLM(generator=generator, max_tokens=8)
    assert llm._llm_type == "icl-retriever-transformers"
    assert llm._identifying_params["model"] == generator.model
    chain = few_shot_chain(FixedSelector(), llm)
    answer = chain.invoke({"instruction": SENT, "input": "A boring, badly written mess."})
    demos = FixedSelector().select_examples({"instruction": SENT, "input": ""})
    assert generator.batches[-1] == [build_prompt(demos, SENT, "A boring, badly written mess.")]  # plain format
    assert answer in {"positive", "negative"}
    before = len(generator.batches)
    outputs = chain.batch([{"instruction": SENT, "input": "Wonderful."}, {"instruction": SENT, "input": "Awful."}])
    assert len(outputs) == 2 and all(o in {"positive", "negative"} for o in outputs)
    assert len(generator.batches) > before


def test_langchain_llm_generate_batches_one_call(generator):
    llm = GeneratorLLM(generator=generator, max_tokens=4, chat=True)
    before = len(generator.batches)
    result = llm.generate(["Say yes.", "Say no."])
    assert len(result.generations) == 2 and len(generator.batches) == before + 1
    assert all(p.startswith("<|im_start|>system") for p in generator.batches[-1])


# ------------------------------------------------------------------------------------- slow CLI


@pytest.mark.slow
def test_ask_cli_end_to_end_with_vllm(tmp_path):
    import icl_retriever.cli.ask  # noqa: F401  (registers `ask` should the CLI package not import it)
    from icl_retriever.cli import app

    runner = CliRunner()
    index = runner.invoke(app, ["index", str(BUILTIN_POOL), "--store", str(tmp_path), "--name", "pool",
                                "--embedder", "pie-minilm"])
    assert index.exit_code == 0, index.output
    result = runner.invoke(app, ["ask", "Is this movie review positive or negative? Answer positive or negative.",
                                 "--input", "The jokes never land and the story is a boring mess.",
                                 "--store", str(tmp_path), "-k", "2", "--backend", "vllm", "--max-tokens", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # vLLM's logs went to stderr
    assert set(data) == {"answer", "demonstrations", "prompt", "model", "backend", "note"} and data["note"] is None
    assert data["backend"] == "vllm" and "SmolLM2-135M-Instruct" in data["model"]
    assert data["answer"] in {"positive", "negative"}
    assert [d["task"] for d in data["demonstrations"]] == ["classify|sentiment"] * 2
    assert [set(d) for d in data["demonstrations"]] == [
        {"id", "instruction", "input", "output", "task", "score", "task_score"}
    ] * 2
    assert data["prompt"].endswith("<|im_start|>assistant\n")
