"""Command-line interface: `icl-retriever index | select | info | ask | label | train | bench`."""

from icl_retriever.cli import bench, index  # noqa: F401  (registers the commands)
from icl_retriever.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
