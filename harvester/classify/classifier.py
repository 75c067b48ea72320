"""``classify``: run the vocabularies over a candidate's fields and score criteria (a)-(d).

Languages: the candidate's language plus English (names, acronyms and English boilerplate are
common on pages in any language); all vocabularies when the language is unknown or has no file.
Pure logic: no I/O besides the cached vocabulary files, never raises on odd input.
"""

from __future__ import annotations

from datetime import date

from harvester.classify import countries as country_names
from harvester.classify import criteria
from harvester.classify.evidence import Hit
from harvester.classify.fields import Field, collect_fields, unresolved_country_field
from harvester.classify.matching import FoldedText
from harvester.classify.model import Classification, ClassifierInput, CriterionScore
from harvester.classify.tags import chm_tags
from harvester.classify.vocab import IGNORE, available_languages, vocabulary

VERSION = "rules-1"
_GROUPS = ("support_type", "cbd_relevance", "active", "international", "organisations")
ORG_MENTION_FACTOR = 0.5  # an organisation named in the text counts a third of one listed as a partner


def languages_for(language: str | None) -> tuple[str, ...]:
    available = available_languages()
    code = ""
    if isinstance(language, str):
        code = language.strip().lower().replace("_", "-").split("-")[0]
    if code == "en":
        return ("en",)
    if code in available:
        return (code, "en")
    return ("en", *(lang for lang in available if lang != "en"))


def _scan(fields: list[Field], languages: tuple[str, ...]) -> tuple[dict[str, list[Hit]], list[Hit]]:
    hits: dict[str, list[Hit]] = {g: [] for g in _GROUPS}
    found_countries: list[Hit] = []
    vocabs = [vocabulary(lang) for lang in languages]
    for order, f in enumerate(fields):
        ft = FoldedText(f.text)
        for group in f.groups:
            factor = f.factor
            if group == "organisations" and not f.name.startswith("organisations["):
                factor = ORG_MENTION_FACTOR
            seen: dict[tuple[int, int, str], int] = {}
            for vocab in vocabs:
                for m in ft.find(getattr(vocab, group)):
                    for label, weight in m.term.senses:
                        if label == IGNORE:
                            continue
                        key = (m.start, m.end, label)
                        hit = Hit(label, m.term.folded, weight, f.name, factor, m.start, m.end, ft.text, order)
                        if key in seen:  # the same span matched in two languages: keep the stronger
                            i = seen[key]
                            if weight > hits[group][i].weight:
                                hits[group][i] = hit
                            continue
                        seen[key] = len(hits[group])
                        hits[group].append(hit)
        if f.find_countries:
            for m in country_names.find_countries(ft, languages):
                code = m.term.senses[0][0]
                found_countries.append(Hit(code, code, 1.0, f.name, f.factor, m.start, m.end, ft.text, order))
    return hits, found_countries


def _given_countries(doc: ClassifierInput, order0: int) -> tuple[list[Hit], list[Field]]:
    given: list[Hit] = []
    scopes: list[Field] = []
    values = doc.countries if isinstance(doc.countries, list | tuple) else []
    for i, value in enumerate(values[:200]):
        if not isinstance(value, str) or not value.strip():
            continue
        code = country_names.resolve(value)
        if code:
            given.append(Hit(code, code, 1.0, f"countries[{i}]", 2.0, 0, len(value), value, order0 + i))
        else:
            scopes.append(unresolved_country_field(i, value))
    return given, scopes


def classify(doc: ClassifierInput, today: date | None = None) -> Classification:
    """Score ``doc`` against CBD criteria (a)-(d) with evidence; see ``criteria`` for the formulas."""
    today = today or date.today()
    languages = languages_for(doc.language)
    fields = collect_fields(doc)
    given, scope_fields = _given_countries(doc, len(fields))
    hits, found = _scan(fields + scope_fields, languages)

    codes: list[str] = []
    for h in given + found:
        if h.label not in codes:
            codes.append(h.label)

    support, support_types = criteria.support_type(hits["support_type"])
    relevance = criteria.cbd_relevance(hits["cbd_relevance"])
    active = criteria.active(hits["active"], _str(doc.start_date), _str(doc.end_date), _str(doc.published), today)
    international = criteria.international(hits["international"], hits["organisations"], given + found, len(codes))

    scores: dict[str, CriterionScore] = {
        "support_type": support,
        "cbd_relevance": relevance.score,
        "active": active,
        "international": international,
    }
    return Classification(
        criteria=scores,
        score=criteria.overall({k: v.score for k, v in scores.items()}),
        support_types=support_types,
        topics=relevance.topics,
        countries=sorted(codes),
        tags=chm_tags(support_types, relevance.topics, relevance.technology_transfer, sorted(codes)),
        version=VERSION,
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
