"""``harvester classify retrain|rescore|dedupe|eval|models``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harvester.charts.curves import chart_path
from harvester.cli.output import json_option, print_json, print_table


def _user_errors() -> tuple[type[Exception], ...]:
    from harvester.classify.evaluate import LabelledSetError
    from harvester.classify.routing import ThresholdError
    from storage.model_store import ModelUnavailable, NotEnoughDecisions

    return (NotEnoughDecisions, ModelUnavailable, LabelledSetError, ThresholdError)


def one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Known user errors of these commands: one line on stderr and exit code 2, as HarvesterGroup does."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total}", err=True, nl=done >= total)

    return show


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@click.group()
def classify() -> None:
    """Learned re-ranking from curator decisions, near-duplicate clusters, evaluation."""


@classify.command()
@click.option(
    "--min-decisions",
    type=click.IntRange(2),
    default=20,
    show_default=True,
    help="Refuse to train with fewer accept/reject decisions.",
)
@json_option
@one_line_errors
def retrain(min_decisions: int, as_json: bool) -> None:
    """Train a model on every accepted/rejected candidate and store it as a new version.

    Rejects with reason `duplicate` are left out (they say nothing about relevance). The stored
    version carries cross-validated figures of the model and of the rules on the same decisions.
    """
    from storage.model_store import retrain as train

    row = train(min_decisions=min_decisions)
    data = {
        "version": row.version,
        "kind": row.kind,
        "n_train": row.n_train,
        "metrics": row.metrics,
        "library": row.library_version,
    }
    if as_json:
        print_json(data)
        return
    m = data["metrics"]
    click.echo(
        f"model {data['version']} trained on {data['n_train']} decisions "
        f"({m['n_accepted']} accepted, {m['n_rejected']} rejected; {m['cv_folds']}-fold cross-validation):"
    )
    _figures_table({"model": {"all": m["model"]}, "rules": {"all": m["rules"]}})
    click.echo("run `harvester classify rescore` to re-rank the queue with it; new crawls use it already")


@classify.command()
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Pending at or above this score, filtered below [default: derived for HARVESTER_RECALL_TARGET].",
)
@json_option
@one_line_errors
def rescore(threshold: float | None, as_json: bool) -> None:
    """Re-score pending and filtered candidates with the current model (the rules when none).

    Candidates move between pending and filtered by the threshold unless a curator decided on them;
    accepted, rejected and deferred candidates are never touched.
    """
    from harvester.classify.routing import pending_threshold
    from storage.model_store import rescore as run

    threshold = pending_threshold() if threshold is None else threshold
    report = run(threshold=threshold, progress=_progress("rescoring"))
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(
        f"rescored {report.scored} candidates with {report.version} (threshold {report.threshold}): "
        f"{report.to_pending} moved to pending, {report.to_filtered} to filtered, "
        f"{report.kept_by_curator} kept where a curator put them"
    )
    print_table(["status", "candidates"], sorted(report.by_status.items()))


@classify.command()
@click.option("--source", "source_id", default=None, help="Only this source's candidates.")
@click.option(
    "--recall-target",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Show the triage thresholds for this recall target [default: HARVESTER_RECALL_TARGET].",
)
@json_option
@one_line_errors
def audit(source_id: str | None, recall_target: float | None, as_json: bool) -> None:
    """The recall audit and the triage thresholds: how the queue's score is formed, what it excludes,
    and how much relevant material the exclusion may have lost (exact binomial bound)."""
    from harvester.classify import zero_shot
    from harvester.classify.routing import thresholds
    from storage.audit import recall_audit
    from storage.db import session_factory

    with session_factory()() as session:
        report = recall_audit(session, source_id)
    data = {"score": zero_shot.describe(), "triage": thresholds(recall_target).as_dict(), "audit": report.as_dict()}
    if as_json:
        print_json(data)
        return
    t = data["triage"]
    click.echo(f"score: {data['score']['formula']}")
    click.echo(
        f"triage for recall {t['recall_target']:.0%} ({t['source']}): include at {t['include_from']:.2f} or "
        f"more, postpone from {t['exclude_below']:.4f}, exclude below"
    )
    click.echo(report.sentence())


@classify.command()
@json_option
@one_line_errors
def dedupe(as_json: bool) -> None:
    """Recompute near-duplicate clusters over the whole database (nothing is deleted)."""
    from storage.clusters import recompute_clusters

    report = recompute_clusters(progress=_progress("fingerprinting"))
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(
        f"{report.candidates} candidates: {report.clustered} in {report.clusters} near-duplicate clusters "
        f"({report.cross_source} across sources, largest {report.largest}); "
        f"{report.changed} cluster assignments changed"
    )


@classify.command()
@json_option
def models(as_json: bool) -> None:
    """List stored model versions, newest (current) first, with their cross-validated figures."""
    from storage.db import session_factory
    from storage.model_store import list_models

    with session_factory()() as session:
        data = [
            {
                "version": r.version,
                "created_at": r.created_at,
                "n_train": r.n_train,
                "kind": r.kind,
                "library": r.library_version,
                "metrics": r.metrics,
            }
            for r in list_models(session)
        ]
    if as_json:
        print_json(data)
        return
    print_table(
        ["version", "created", "n_train", "cv ROC AUC", "cv WSS@95", "rules ROC AUC"],
        [
            [
                d["version"],
                str(d["created_at"])[:19],
                d["n_train"],
                _fmt(d["metrics"]["model"]["roc_auc"]),
                _fmt(d["metrics"]["model"]["wss_95"]),
                _fmt(d["metrics"]["rules"]["roc_auc"]),
            ]
            for d in data
        ],
    )


@classify.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option(
    "--criteria",
    "criteria_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Instead: per criterion, precision, recall and ROC AUC of its score against the labels in this "
    "JSON Lines file (python -m bench.build_criteria_set builds one from the UNFCCC CIP file).",
)
@click.option(
    "--budget", type=click.IntRange(1), default=None, help="Review budget N for recall@N [default: 10% of the records]."
)
@click.option(
    "--simulate", is_flag=True, help="Also replay active learning (ASReview-style) and report its recall curve."
)
@click.option(
    "--step",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Simulation: retrain after this many decisions.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for folds and the simulation's start.")
@click.option(
    "--seeds",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="With --simulate: replay from this many seeded starts; report the median and range of WSS@95.",
)
@click.option("--folds", type=click.IntRange(2), default=5, show_default=True, help="Cross-validation folds.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=chart_path,
    help="With --simulate: draw the recall curve and the random-screening line into this .svg or .png.",
)
@json_option
@one_line_errors
def eval_cmd(
    file: Path | None,
    criteria_file: Path | None,
    budget: int | None,
    simulate: bool,
    step: int,
    seed: int,
    seeds: int,
    folds: int,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Score the zero-shot score, the rules and the learned model on a labelled JSON Lines FILE.

    Each line: {"id", "title", "text", "url"?, "label": 0|1, "lang"?}. Prints ROC AUC, average
    precision, recall at the review budget and WSS@95, overall and per language; zero_shot is the
    queue's score before any decision, the model is cross-validated (every record scored by a model
    trained without it). Ties are broken in a seeded random order.
    """
    from harvester.classify.evaluate import evaluate, read_labelled, scored_docs, simulate_seeds

    if criteria_file is not None:
        if file is not None:
            raise click.UsageError("give either FILE or --criteria FILE")
        criteria_report(criteria_file, as_json)
        return
    if file is None:
        raise click.UsageError("missing FILE (or --criteria FILE)")
    if plot is not None and not simulate:
        raise click.UsageError("--plot draws the simulated recall curve: add --simulate")
    records = read_labelled(file)
    scored = scored_docs(records)
    result = evaluate(records, budget=budget, folds=folds, seed=seed, scored=scored)
    if simulate:
        result["simulation"] = simulate_seeds(
            records, seeds=seeds, step=step, seed=seed, docs=scored[0], progress=_progress("simulating")
        )
        if plot is not None:
            from harvester.charts.curves import simulation_chart, write_chart

            size = write_chart(simulation_chart(result["simulation"]), plot)
            click.echo(f"wrote {plot} ({size} bytes)", err=True)
    if as_json:
        print_json(result)
        return
    langs = ", ".join(f"{lang} {n}" for lang, n in result["languages"].items())
    click.echo(
        f"{file}: {result['n']} records, {result['n_relevant']} relevant "
        f"({result['n_relevant'] / result['n']:.1%}); languages: {langs}"
    )
    _figures_table(result["rankers"])
    if "model_skipped" in result:
        click.echo(f"model not evaluated: {result['model_skipped']}")
    if simulate:
        _simulation_table(result["simulation"])


def criteria_report(path: Path, as_json: bool) -> None:
    """``eval --criteria``: each criterion's score against the file's labels."""
    from harvester.classify.criteria_eval import evaluate_criteria, read_criteria_set

    result = evaluate_criteria(read_criteria_set(path))
    if as_json:
        print_json(result)
        return
    click.echo(f"{path}: {result['n']} records; a criterion is met at a score of {result['threshold']} or more")
    print_table(
        ["criterion", "labelled", "positive", "met", "precision", "recall", "ROC AUC"],
        [
            [name, f["n"], f["n_positive"], f["n_met"], _fmt(f["precision"]), _fmt(f["recall"]), _fmt(f["roc_auc"])]
            for name, f in result["criteria"].items()
        ],
    )
    if result["unlabelled"]:
        click.echo(f"no labels for: {', '.join(result['unlabelled'])}")


def _figures_table(rankers: dict[str, dict[str, Any]]) -> None:
    rows = []
    scopes = [("all", "all")]
    for part, prefix in (("by_language", "lang "), ("by_group", "group ")):
        scopes += [(part, prefix + key) for key in sorted({k for r in rankers.values() for k in r.get(part, {})})]
    for part, scope in scopes:
        for name, ranker in rankers.items():
            f = ranker["all"] if part == "all" else ranker.get(part, {}).get(scope.split(" ", 1)[1])
            if f is None:
                continue
            rows.append(
                [
                    name,
                    scope,
                    f["n"],
                    f["n_relevant"],
                    _fmt(f["roc_auc"]),
                    _fmt(f["average_precision"]),
                    f"{_fmt(f['recall_at_budget'])} @{f['budget']}",
                    _fmt(f["wss_95"]),
                    _fmt(f["screened_for_95"]),
                ]
            )
    print_table(
        ["ranker", "subset", "n", "relevant", "ROC AUC", "avg prec", "recall@budget", "WSS@95", "read for 95%"], rows
    )


def _simulation_table(sim: dict[str, Any]) -> None:
    click.echo(
        f"\nactive-learning simulation: start from {len(sim['prior'])} labels (1 relevant + 1 irrelevant, "
        f"seeded), retrain every {sim['step']} decisions, read in ranked order until every relevant "
        "record is found"
    )
    curve, n = sim["recall_curve"], sim["n"]
    marks = sorted({max(1, round(n * p / 100)) for p in (5, 10, 20, 30, 40, 50, 75, 100)})
    rows = []
    for mark in marks:
        reached = [r for read, r in curve if read <= mark]
        if not reached:
            continue
        rows.append([f"{mark} ({mark / n:.0%})", f"{reached[-1]:.3f}"])
        if reached[-1] >= 1.0:
            break
    print_table(["records read", "recall"], rows)
    click.echo(
        f"WSS@95 {_fmt(sim['wss_95'])} (95% recall after reading {sim['screened_for_95']} of {n}); "
        f"WSS@100 {_fmt(sim['wss_100'])} (all {sim['n_relevant']} relevant after {sim['screened_for_100']})"
    )
    if len(sim.get("seeds", ())) > 1:
        low, high = sim["wss_95_range"]
        click.echo(
            f"over {len(sim['seeds'])} seeds: WSS@95 median {_fmt(sim['wss_95'])}, "
            f"range {_fmt(low)}-{_fmt(high)} (curve and counts above: the median replay)"
        )
