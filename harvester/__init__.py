"""CHM Harvester: partner crawls -> candidates -> review queue -> CHM documents."""

__version__ = "0.1.0"
