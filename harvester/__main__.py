"""``python -m harvester`` = the ``harvester`` command."""

from harvester.cli import main

main()
