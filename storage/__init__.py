"""Database models, sessions, queue operations and migrations."""
