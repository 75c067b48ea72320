"""Scrapy item pipelines, one stage each: extract -> language -> dedupe -> classify -> store."""
