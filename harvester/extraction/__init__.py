"""Extraction: partner records and pages to normalised candidate fields."""
