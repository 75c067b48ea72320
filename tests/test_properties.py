"""Property-based tests (hypothesis) for URL canonicalisation, text normalisation and the HTML
extractor: invariants that must hold for any input, not only the recorded pages."""

from __future__ import annotations

import unicodedata
from urllib.parse import parse_qsl, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from harvester.dedupe import canonical_url, normalise_for_hash, text_hash
from harvester.extraction.html import ExtractionError, decode_html, extract_html
from harvester.extraction.normalise import clean_list, clean_text
from harvester.extraction.structured import StructuredBodyError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hosts = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?(\.[a-zA-Z]{2,6}){1,2}", fullmatch=True)
segments = st.lists(
    st.text(st.characters(codec="ascii", categories=["L", "N"]) | st.sampled_from("-._~%"), max_size=8), max_size=4
)
params = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
        st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=6),
    ),
    max_size=5,
)


@st.composite
def http_urls(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]]]:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "HttpS"]))
    host = draw(hosts)
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = "/" + "/".join(draw(segments))
    query = draw(params)
    fragment = draw(st.sampled_from(["", "#top", "#x=1"]))
    qs = "&".join(f"{k}={v}" for k, v in query)
    return f"{scheme}://{host}{port}{path}{'?' + qs if qs else ''}{fragment}", host, query


@FAST
@given(http_urls())
def test_canonical_url_is_idempotent_lowercases_the_host_and_drops_the_fragment(case) -> None:
    url, host, _ = case
    canon = canonical_url(url)
    assert canonical_url(canon) == canon
    parts = urlsplit(canon)
    assert parts.scheme in ("http", "https")
    assert parts.hostname == host.lower()
    assert parts.fragment == ""
    assert parts.port not in (80, 443) or (parts.scheme, parts.port) not in (("http", 80), ("https", 443))


@FAST
@given(http_urls(), st.randoms(use_true_random=False))
def test_canonical_url_ignores_query_order_and_tracking_parameters(case, rnd) -> None:
    url, _, query = case
    if not query:
        return
    base = url.split("?", 1)[0]
    shuffled = list(query)
    rnd.shuffle(shuffled)
    tracked = [*shuffled, ("utm_source", "news"), ("utm_campaign", "x")]
    other = base + "?" + "&".join(f"{k}={v}" for k, v in tracked)
    assert canonical_url(other) == canonical_url(base + "?" + "&".join(f"{k}={v}" for k, v in query))
    assert not any(k.startswith("utm_") for k, _ in parse_qsl(urlsplit(canonical_url(other)).query))


@FAST
@given(urls())
def test_canonical_url_never_raises_on_valid_urls(url: str) -> None:
    canon = canonical_url(url)
    assert canonical_url(canon) == canon


@FAST
@given(st.text(max_size=400))
def test_clean_text_is_idempotent_and_leaves_no_control_characters_or_edge_spaces(value: str) -> None:
    cleaned = clean_text(value)
    if cleaned is None:
        return
    assert clean_text(cleaned) == cleaned
    assert cleaned == cleaned.strip()
    assert "\n\n\n" not in cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert not any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in cleaned)


@FAST
@given(st.lists(st.text(max_size=40), max_size=10))
def test_clean_list_has_no_empties_and_no_case_insensitive_repeats(values: list[str]) -> None:
    out = clean_list(values)
    assert all(out)
    assert len({v.casefold() for v in out}) == len(out)


@FAST
@given(st.text(max_size=200))
def test_text_hash_is_the_same_however_the_text_is_spaced_or_cased(value: str) -> None:
    if not value.strip():
        assert text_hash(value) is None
        return
    assert normalise_for_hash(normalise_for_hash(value)) == normalise_for_hash(value)
    assert text_hash(f"  {value}\n\t ") == text_hash(value)
    spaced = value.replace(" ", "  \n ")
    assert text_hash(spaced) == text_hash(value)
    if value.isascii():
        assert text_hash(value.swapcase()) == text_hash(value)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=3000)
    | st.text(max_size=1500).map(lambda t: f"<html><body><p>{t}</p></body></html>".encode("utf-8", "surrogatepass"))
)
def test_any_body_gives_text_or_the_declared_error(body: bytes) -> None:
    try:
        found = extract_html(body, "https://example.org/p", {"title": "h1::text"})
    except (ExtractionError, StructuredBodyError):
        return
    text = str(found.values.get("text") or found.values.get("summary"))
    assert text.strip() and "\x00" not in text


@FAST
@given(st.text(min_size=1, max_size=300), st.sampled_from(["utf-8", "utf-16", "cp1252", "latin-1"]))
def test_decoding_round_trips_declared_encodings(value: str, encoding: str) -> None:
    try:
        body = f"<html><body><p>{value}</p></body></html>".encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        decoded = decode_html(body, encoding)
    except ExtractionError:  # NUL bytes: refused as binary
        assert b"\x00" in body[:2048]
        return
    assert value.replace("\r", "") in decoded.replace("\r", "") or "\x00" in value
