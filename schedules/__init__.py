"""Scheduled work: per-source crawls on their registry cron (with an adaptive recrawl interval), a
daily source-health check and, when the command exists, a weekly classifier retrain.

- ``schedules.adaptive``: the pure recrawl-interval logic;
- ``schedules.jobs``: the job functions APScheduler runs (referenced by text, args plain strings);
- ``schedules.scheduler``: builds the APScheduler 3 scheduler on the harvester database and keeps
  its jobs in step with the source registry (``harvester schedule run|list``).
"""
