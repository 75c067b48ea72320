"""The ``harvester`` command line."""

from harvester.cli.main import cli, main

__all__ = ["cli", "main"]
