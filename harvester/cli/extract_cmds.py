"""``harvester extract``: the pipeline's stages on saved responses, no database (the project's ``scrapy parse``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harvester.cli.output import json_option, print_json
from harvester.extraction.provenance import field_origins
from harvester.items import CandidateItem
from harvester.registry import get_source


def candidate_dict(item: CandidateItem) -> dict[str, Any]:
    """Same field names as ``queue --json``, plus the text and per-field provenance."""
    return {
        "url": item.canonical_url or item.url,
        "record_key": item.record_key,
        "title": item.title,
        "source": item.source_id,
        "language": item.language,
        "language_probability": item.language_prob,
        "score": item.score,
        "organisations": item.organisations,
        "countries": item.countries,
        "regions": item.regions,
        "keywords": item.keywords,
        "start_date": item.start_date,
        "end_date": item.end_date,
        "published": item.published,
        "summary": item.summary,
        "text": item.text,
        "extra": item.extra,
        "gone_at_source": item.gone,
        "criteria": {k: v.as_dict() for k, v in item.criteria.items()},
        "tags": item.tags,
        "provenance": item.provenance,
        "flags": item.flags,
        "origins": {name: origin.kind for name, origin in field_origins(item.provenance).items()},
    }


@click.command()
@click.option("--source", "source_id", required=True, help="Registry id whose spider and selectors to use.")
@click.option("--url", help="Original URL of a bare body (relative links and URL rules need it).")
@json_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def extract(source_id: str, url: str | None, as_json: bool, files: tuple[Path, ...]) -> None:
    """Print the candidates the pipeline would make of saved responses (bodies or WARC files)."""
    from harvester.crawl.offline import SavedResponseError, candidates_from_response, read_saved

    spec = get_source(source_id)
    out: list[dict[str, Any]] = []
    for path in files:
        try:
            responses = read_saved(path, url)
            for recorded in responses:
                result = candidates_from_response(spec, recorded)
                out += [candidate_dict(i) for i in result.items]
                for failed_url, error in result.failures:
                    click.echo(f"warning: {failed_url}: {error}", err=True)
        except SavedResponseError as exc:
            raise click.ClickException(str(exc)) from None
        except ValueError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
    if not out:
        raise click.ClickException(f"no candidate in {', '.join(map(str, files))} for source {source_id}")
    if as_json:
        print_json(out)
        return
    for c in out:
        score = f"{c['score']:.2f}" if c["score"] is not None else "-"
        click.echo(f"{score}  {c['language'] or '??'}  {c['url']}\n      {c['title']}")
        click.echo(
            f"      countries={','.join(c['countries'])} organisations={'; '.join(c['organisations'][:3])}"
            f" published={c['published']}"
        )
