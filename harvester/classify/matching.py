"""Compile a group of vocabulary terms into one linear-time matcher and find them in text.

A group's terms are folded (see ``folding``) and put in a prefix tree, which becomes one regular
expression of nested literal alternatives: no nested quantifiers, so matching costs at most
(text length x longest term) steps and untrusted text cannot trigger catastrophic backtracking.

Term syntax (vocabulary files):

- plain text, matched case- and accent-insensitively;
- ``*`` matches the rest of a word (``workshop*`` -> workshops; ``оценк* потребностей``);
- ``~`` matches up to three more word characters (inflected names: ``Кени~`` -> Кении, Кенией);
- ``{year}`` matches a four-digit year (``since {year}``).

Terms in spaced scripts (Latin, Cyrillic, Greek, ...) must start and end on word boundaries; the
side of a term written in Arabic or CJK script is matched without a boundary (those scripts are
matched as substrings), and ``*`` is ignored there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from harvester.classify.folding import fold, fold_char, fold_term, is_unspaced_script, original_span

MAX_FIELD_CHARS = 200_000  # text beyond this is not scanned (keeps the cost bounded)
_MEMO_SIZE = 20_000  # wildcard lookups remembered per matcher

_STAR = "\x00*"
_TILDE = "\x00~"
_YEAR = "\x00y"
_TOKEN_RE = {_STAR: r"\w*", _TILDE: r"\w{0,3}", _YEAR: r"[12][0-9]{3}"}
_TOKEN_TEXT = {_STAR: "*", _TILDE: "~", _YEAR: "{year}"}


@dataclass(frozen=True)
class Term:
    """One distinct folded term and every (label, weight) sense the vocabulary gives it.

    A term listed under several labels (``marine protected area*`` under marine and protected
    areas) is matched once and counts for each label.
    """

    raw: str
    folded: str
    senses: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Match:
    term: Term
    start: int  # offsets into the original field text
    end: int


def _tokens(folded: str) -> list[str]:
    toks: list[str] = []
    i = 0
    while i < len(folded):
        if folded.startswith("{year}", i):
            toks.append(_YEAR)
            i += len("{year}")
        elif folded[i] == "*":
            toks.append(_STAR)
            i += 1
        elif folded[i] == "~":
            toks.append(_TILDE)
            i += 1
        else:
            toks.append(folded[i])
            i += 1
    return toks


def _is_wordish(tok: str) -> bool:
    return tok in _TOKEN_RE or bool(re.match(r"\w", tok))


def _needs_boundary(tok: str) -> bool:
    return _is_wordish(tok) and not (tok not in _TOKEN_RE and is_unspaced_script(tok))


def _trie_regex(node: dict) -> str:
    literal = sorted(k for k in node if k != "" and k not in _TOKEN_RE)
    special = [k for k in (_YEAR, _TILDE, _STAR) if k in node]
    branches = [re.escape(k) + _trie_regex(node[k]) for k in literal]
    branches += [_TOKEN_RE[k] + _trie_regex(node[k]) for k in special]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 and "" not in node else "(?:" + "|".join(branches) + ")"
    return body + "?" if "" in node else body


def _build_trie(token_lists: Iterable[list[str]]) -> dict:
    root: dict = {}
    for toks in token_lists:
        node = root
        for t in toks:
            node = node.setdefault(t, {})
        node[""] = {}
    return root


class Matcher:
    """All terms of one group of labels compiled into one pattern.

    ``entries`` are ``(raw term, label, weight)``; entries that fold to the same term merge into
    one ``Term`` with several senses (the first weight given for a label wins).
    """

    def __init__(self, entries: Iterable[tuple[str, str, float]]) -> None:
        merged: dict[str, tuple[str, list[str], dict[str, float]]] = {}
        for raw, label, weight in entries:
            folded = fold_term(raw)
            toks = _tokens(folded)
            if any(t not in _TOKEN_RE and is_unspaced_script(t) for t in toks):
                toks = [t for t in toks if t not in (_STAR, _TILDE)]  # substring scripts: no stems
            if not toks:
                continue
            key = "".join(_TOKEN_TEXT.get(t, t) for t in toks)
            slot = merged.setdefault(key, (raw, toks, {}))
            slot[2].setdefault(label, float(weight))
        self.exact: dict[str, Term] = {}
        self.wild: list[tuple[re.Pattern[str], Term]] = []
        classes: dict[tuple[bool, bool], list[list[str]]] = {}
        for key, (raw, toks, senses) in merged.items():
            term = Term(raw=raw, folded=key, senses=tuple(senses.items()))
            if any(t in _TOKEN_RE for t in toks):
                self.wild.append((re.compile(_plain_regex(toks)), term))
            else:
                self.exact[key] = term
            left, right = _needs_boundary(toks[0]), _needs_boundary(toks[-1])
            classes.setdefault((left, right), []).append(toks)
        # the most specific wildcard term (most literal characters) wins a fullmatch tie
        self.wild.sort(key=lambda pt: -len(pt[1].folded.replace("*", "").replace("~", "")))
        parts = []
        for (left, right), lists in sorted(classes.items(), reverse=True):
            body = "(?:" + _trie_regex(_build_trie(lists)) + ")"
            parts.append(("(?<!\\w)" if left else "") + body + ("(?!\\w)" if right else ""))
        self.pattern = re.compile("|".join(parts)) if parts else None
        self._memo: dict[str, Term | None] = {}

    def __len__(self) -> int:
        return len(self.exact) + len(self.wild)

    def _lookup(self, found: str) -> Term | None:
        term = self.exact.get(found)
        if term is not None or not self.wild:
            return term
        if found in self._memo:
            return self._memo[found]
        term = next((t for pat, t in self.wild if pat.fullmatch(found)), None)
        if len(self._memo) < _MEMO_SIZE:
            self._memo[found] = term
        return term

    def find_folded(self, folded: str) -> Iterator[tuple[int, int, Term]]:
        if self.pattern is None:
            return
        for m in self.pattern.finditer(folded):
            if m.end() == m.start():
                continue
            term = self._lookup(m.group())
            if term is not None:
                yield m.start(), m.end(), term


def _plain_regex(toks: list[str]) -> str:
    return "".join(_TOKEN_RE.get(t, re.escape(t)) for t in toks)


class FoldedText:
    """A field's text folded once, shared by every matcher run over it."""

    __slots__ = ("folded", "index", "text")

    def __init__(self, text: str) -> None:
        self.text = text[:MAX_FIELD_CHARS]
        self.folded, self.index = fold(self.text)

    def find(self, matcher: Matcher) -> Iterator[Match]:
        for start, end, term in matcher.find_folded(self.folded):
            s, e = original_span(self.index, start, end)
            while e < len(self.text) and not fold_char(self.text[e]):
                e += 1  # keep trailing combining marks (accents, harakat) inside the span
            yield Match(term, s, e)
