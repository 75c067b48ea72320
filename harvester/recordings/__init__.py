"""Recorded responses: WARC files, raw snapshots, the replay build and the shared fixtures."""
