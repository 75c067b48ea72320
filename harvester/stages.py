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

if TYPE_CHECKING:
    from harvester.classify.learn import RelevanceModel


def drop_reason(exc: BaseException) -> str:
    """A dropped record's reason as the run's stats count it: the error's first line, bounded."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def warm_up() -> None:
    """Load what the CPU stages otherwise load on their first item: langdetect's profiles, pycountry's
    tables, and every vocabulary and country-name matcher."""
    from langdetect.detector_factory import init_factory

    from harvester.classify import countries
    from harvester.classify.vocab import available_languages, vocabulary

    init_factory()
    normalise_lang_tag("eng")
    countries.resolve("France")  # pycountry's tables and the structured-name table
    for language in available_languages():
        vocabulary(language)
        countries.matcher(language)


def apply_language(item: CandidateItem, seed: int) -> LanguageGuess:
    declared = item.extra.pop("language", None)
    if isinstance(declared, list):
        declared = declared[0] if declared else None
    fallback = item.page_lang or (declared if isinstance(declared, str) else None)
    sample = "\n".join(p for p in (item.title, item.summary, item.text) if p)
    guess = detect_language(sample, seed=seed, fallback=normalise_lang_tag(fallback))
    item.language, item.language_prob = guess.code, guess.probability
    return guess


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
    """Rules criteria (a)-(d) with evidence and tags; with a learned ``model`` the score is the
    model's relevance probability and ``classifier_version`` its version, else the rules' score."""
    from harvester.classify import ClassifierInput, classify

    result = classify(ClassifierInput(
        title=item.title, summary=item.summary, text=item.text, language=item.language,
        keywords=item.keywords, organisations=item.organisations, countries=item.countries,
        regions=item.regions, start_date=item.start_date, end_date=item.end_date, published=item.published,
        extra=item.extra,
    ))
    item.criteria = {name: CriterionResult(s.score, s.as_dict()["evidence"]) for name, s in result.criteria.items()}
    item.score = round(result.score, 4)
    item.tags = {**result.tags, "supportTypes": result.support_types, "topics": result.topics}
    item.classifier_version = result.version
    if model is not None:
        from harvester.classify.learn import Doc, model_text, rule_scores

        doc = Doc(model_text(item.title, item.summary, item.text, item.keywords, item.organisations),
                  rule_scores(result))
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


def run_cpu_stages(item: CandidateItem, spec: SourceSpec, seed: int,
                   model: RelevanceModel | None = None) -> StagesOutcome:
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
    apply_hashes(item)
    classify_item(item, model)
    return StagesOutcome(item, language_source=guess.source)
