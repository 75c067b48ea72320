"""Signals spiders send about pages; the store pipeline is their one receiver.

``page_parsed(spider, response, record_count, not_modified, complete)``
``page_failed(spider, url, status, error, gone)``
``window_done(spider, window_from, window_until, records)``
"""

page_parsed = object()
page_failed = object()
window_done = object()
