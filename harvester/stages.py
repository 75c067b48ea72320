"""The per-item logic of each pipeline stage, as plain functions shared by the Scrapy pipelines and
the offline ``harvester extract`` / ``sources test`` path, so both produce the same candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harvester.dedupe import canonical_url, record_hash, text_hash
from harvester.extraction.item import extract_item
from harvester.items import CandidateItem, CriterionResult
from harvester.language import LanguageGuess, detect_language, normalise_lang_tag
from harvester.registry import SourceSpec

UNSURE_LANGUAGE = 0.7

if TYPE_CHECKING:
    from harvester.classify.learn import RelevanceModel


def drop_reason(exc: BaseException) -> str:
    """A dropped record's reason as the run's stats count it: the error's first line, bounded."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def warm_up() -> None:
    """Load what the CPU stages otherwise load on their first item: langdetect's profiles, pycountry's
    tables, and every vocabulary, country-name and city-name matcher."""
    from langdetect.detector_factory import init_factory

    from harvester.classify import countries, places
    from harvester.classify.vocab import available_languages, vocabulary

    init_factory()
    normalise_lang_tag("eng")
    countries.resolve("France")  # pycountry's tables and the structured-name table
    for language in available_languages():
        vocabulary(language)
        countries.matcher(language)
    for script in ("latin", "ru", "ar", "zh"):
        places.city_matcher(script)
    from harvester.classify import zero_shot

    zero_shot.exemplars()  # loads the encoder and embeds the exemplars once per worker
    zero_shot.calibration()


def apply_language(item: CandidateItem, seed: int) -> LanguageGuess:
    """Detected from the text; the page's ``lang`` (or the record's declared language) when the text is too
    short, or when detection is unsure (below ``UNSURE_LANGUAGE``) and disagrees with it."""
    declared = item.extra.pop("language", None)
    if isinstance(declared, list):
        declared = declared[0] if declared else None
    fallback = normalise_lang_tag(item.page_lang or (declared if isinstance(declared, str) else None))
    sample = "\n".join(p for p in (item.title, item.summary, item.text) if p)
    guess = detect_language(sample, seed=seed, fallback=fallback)
    if (
        guess.source == "detected"
        and fallback
        and guess.code != fallback
        and (guess.probability or 0) < UNSURE_LANGUAGE
    ):
        guess = LanguageGuess(fallback, None, "fallback")
        item.flag("language", "language-overridden-by-page-lang")
    elif guess.source == "fallback":
        item.flag("language", "language-from-page-lang")
    elif fallback and guess.code != fallback:
        item.flag("language", "page-lang-disagrees")  # detection is sure and wins; the page said otherwise
    item.language, item.language_prob = guess.code, guess.probability
    if guess.code:
        item.provenance["language"] = "langdetect" if guess.source == "detected" else "html:lang"
    return guess


def apply_text_countries(item: CandidateItem) -> None:
    """A web page without countries of its own gets the countries its title and text name, most salient
    first, flagged as inferred, with the names that support each in ``extra["country_names"]``. A partner's
    structured record (export row, API or OAI record) keeps the countries it states, none included."""
    from harvester.classify.places import countries_in_text

    if item.countries or item.gone or item.raw is not None:
        return
    found = countries_in_text(item.title, item.text or item.summary, item.language)
    if not found:
        return
    item.countries = [c.code for c in found]
    item.extra["country_names"] = {c.code: c.names for c in found}
    item.provenance["countries"] = "inferred:text"
    item.flag("countries", "country-inferred-from-text")


def apply_hashes(item: CandidateItem) -> None:
    keyed = bool(item.record_key) and item.url.endswith(f"#{item.record_key}")
    item.canonical_url = canonical_url(item.url, keep_fragment=keyed)
    if not item.gone:
        item.text_hash = text_hash(item.text or item.summary or item.title)
        item.record_hash = record_hash(item.harvested_fields())


def mark_same_text(item: CandidateItem, seen_text: dict[int, int]) -> bool:
    """True when an earlier page of this crawl had ``item``'s text under another URL. ``seen_text`` maps
    64-bit prefixes of the text hashes seen to their first URL's hash: a crawl's worth of entries stays small.
    Which records are near-duplicates is kept in the database (``storage.clusters``); this only counts."""
    if not (item.text_hash and item.canonical_url):
        return False
    url = hash(item.canonical_url)
    return seen_text.setdefault(int(item.text_hash[:16], 16), url) != url


def classify_item(item: CandidateItem, model: RelevanceModel | None = None) -> CandidateItem:
    """Rules criteria (a)-(d) with evidence and tags, and the multilingual embedding (computed here,
    once per page, stored with the candidate); with a learned ``model`` the score is the model's
    relevance probability and ``classifier_version`` its version, else the calibrated zero-shot
    probability (``harvester.classify.zero_shot``)."""
    from harvester.classify import ClassifierInput, classify, zero_shot
    from harvester.classify.embedding import embed, embedding_text, to_bytes

    result = classify(
        ClassifierInput(
            title=item.title,
            summary=item.summary,
            text=item.text,
            language=item.language,
            keywords=item.keywords,
            organisations=item.organisations,
            countries=item.countries,
            regions=item.regions,
            start_date=item.start_date,
            end_date=item.end_date,
            published=item.published,
            extra=item.extra,
        )
    )
    item.criteria = {name: CriterionResult(s.score, s.as_dict()["evidence"]) for name, s in result.criteria.items()}
    item.tags = {**result.tags, "supportTypes": result.support_types, "topics": result.topics}
    vector = embed([embedding_text(item.title, item.summary, item.text, item.keywords)])[0]
    item.embedding = to_bytes(vector) if vector.any() else None
    item.score = round(float(zero_shot.score(vector, [result.criteria["cbd_relevance"].score])[0]), 4)
    item.classifier_version = zero_shot.VERSION
    if model is not None:
        from harvester.classify.learn import Doc, model_text, rule_scores

        doc = Doc(
            model_text(item.title, item.summary, item.text, item.keywords, item.organisations),
            rule_scores(result),
            vector if vector.any() else None,
        )
        item.score = round(float(model.predict([doc])[0]), 4)
        item.classifier_version = model.version
    return item


def process_offline(item: CandidateItem, spec: SourceSpec, seed: int = 0) -> CandidateItem:
    """extract -> language -> hashes -> classify, without a crawler or a database."""
    if item.gone:
        apply_hashes(item)
        return item
    try:
        extract_item(item, spec)
    finally:
        item.body = None
    apply_language(item, seed)
    apply_text_countries(item)
    apply_hashes(item)
    return classify_item(item)


@dataclass
class StagesOutcome:
    """What ``run_cpu_stages`` did to one item, for the crawl's stats: the extraction error (the
    item is then dropped) or the language guess's source."""

    item: CandidateItem
    error: str | None = None
    reason: str | None = None  # the error without the item's URL: what the run's stats count drops by
    language_source: str | None = None


def run_cpu_stages(
    item: CandidateItem, spec: SourceSpec, seed: int, model: RelevanceModel | None = None
) -> StagesOutcome:
    """extract -> language -> hashes -> classify: the CPU-heavy stages of a crawl as one pure call
    (item in, item out), so a process pool can run them next to the crawl's reactor thread."""
    from harvester.extraction.html import ExtractionError
    from harvester.extraction.structured import StructuredBodyError

    if item.gone:
        return StagesOutcome(item)
    try:
        extract_item(item, spec)
    except (ExtractionError, StructuredBodyError) as exc:
        return StagesOutcome(item, error=f"extraction failed for {item.url}: {exc}", reason=drop_reason(exc))
    finally:
        item.body = None
    guess = apply_language(item, seed)
    apply_text_countries(item)
    apply_hashes(item)
    classify_item(item, model)
    return StagesOutcome(item, language_source=guess.source)
