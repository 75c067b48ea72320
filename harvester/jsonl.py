"""JSON Lines splitting: records end at ``\\n`` (``\\r\\n`` too) and nowhere else.

``str.splitlines()`` also splits at U+2028, U+2029, U+0085, form feeds and more, all of which JSON
allows unescaped inside a string, so it cut valid records in two.
"""

from __future__ import annotations

from collections.abc import Iterator


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for every line of ``text``, line endings removed."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line.removesuffix("\r")
