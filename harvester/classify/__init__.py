"""Rules classifier: scores a candidate against the CBD relevance criteria (decision X/16) with
evidence, and suggests CHM thesaurus tags. Pure logic (no Scrapy, no database).

    from harvester.classify import ClassifierInput, classify
    result = classify(ClassifierInput(title=..., text=..., language="fr"))
    result.criteria["cbd_relevance"].as_dict()  # {"score": 0.81, "evidence": [...]}

Modules: ``folding`` (case/accent folding with offsets), ``matching`` (term syntax, linear-time
matchers), ``vocab`` (per-language YAML vocabularies), ``countries`` (country names -> ISO2),
``dates``, ``fields`` (input -> named fields), ``evidence`` (hits, weights, evidence lists),
``criteria`` (the score formulas), ``tags`` (CHM tags), ``classifier`` (``classify``).

Beside the rules, also pure logic: ``learn`` (the re-ranker trained on curator decisions, ranking
figures, active-learning simulation), ``evaluate`` (``harvester classify eval``), ``duplicates``
(near-duplicate fingerprints and clusters), ``routing`` (pending threshold). Their database side
is ``storage.model_store``.
"""

from harvester.classify.classifier import VERSION, classify, languages_for
from harvester.classify.fields import field_text
from harvester.classify.model import CRITERIA, Classification, ClassifierInput, CriterionScore, Evidence
from harvester.classify.vocab import SUPPORT_TYPES, available_languages, topic_ids

__all__ = [
    "CRITERIA",
    "SUPPORT_TYPES",
    "VERSION",
    "Classification",
    "ClassifierInput",
    "CriterionScore",
    "Evidence",
    "available_languages",
    "classify",
    "field_text",
    "languages_for",
    "topic_ids",
]
