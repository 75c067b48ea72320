"""Source health: checks after each run, alerts and their delivery, over-harvest quarantine."""
