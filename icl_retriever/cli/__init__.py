"""Command-line interface: `icl-retriever index | select | info | ask | tasks | sample | label | train | bench`."""

from icl_retriever.cli import ask, bench, index, label, tasks, train  # noqa: F401  (registers the commands)
from icl_retriever.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
