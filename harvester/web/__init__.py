"""The curators' review web app (FastAPI + Jinja2) and its JSON API."""
