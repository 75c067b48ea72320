"""The review app in a real browser: Debian's Chromium driven by Playwright against ``harvester serve``.

Covers what TestClient cannot: the keyboard shortcuts of static/app.js, the browser's own form encoding
and validation, the CSP as the browser enforces it, and harvested markup that must never run. The app runs
as a child process on 127.0.0.1 (a free port) over a temporary SQLite database holding the recorded GCF
API capture plus one hostile record; every step is checked in the database.

Chromium is Debian's (``apt-get install chromium``); Playwright's own browser download is never used.
Screenshots go to ``tests/artifacts/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from harvester.crawl.offline import candidates_from_response
from harvester.items import CandidateItem
from harvester.recordings.fixtures import load_capture
from harvester.recordings.warc import RecordedResponse
from harvester.registry import load_registry
from harvester.settings import PROJECT_ROOT
from harvester.stages import apply_hashes
from harvester.web.auth import add_user
from pipelines.store import candidate_values
from storage.db import make_engine, transaction, upgrade
from storage.models import Candidate, Decision
from storage.queue import upsert_candidate
from storage.runs import ensure_source

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("HARVESTER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CURATOR, PASSWORD = "ada", "curator-pass-1"
SECOND_CURATOR, SECOND_PASSWORD = "bob", "curator-pass-2"
ADMIN, ADMIN_PASSWORD = "root", "admin-pass-12"
HOSTILE_SOURCE = "hostile_site"

# Each payload, if it ever ran, would set window.__xss to its number and (where it can) open a dialog.
XSS_PAYLOADS = [
    "<script>window.__xss=1;alert(1)</script>",
    '<img src=x onerror="window.__xss=2;alert(2)">',
    '<svg onload="window.__xss=3;alert(3)"></svg>',
    '"><script>window.__xss=4;alert(4)</script>',
    "'><img src=x onerror='window.__xss=5;alert(5)'>",
    '" autofocus onfocus="window.__xss=6;alert(6)" x="',
    "</textarea><script>window.__xss=7;alert(7)</script>",
    '<a id="xss-link" href="javascript:window.__xss=8;alert(8)">click me</a>',
    '<iframe src="javascript:parent.__xss=9;parent.alert(9)"></iframe>',
    '<details open ontoggle="window.__xss=10;alert(10)"><summary>x</summary></details>',
    '<b onmouseover="window.__xss=11;alert(11)">hover me</b>',
    '{{ 7*7 }} ${7*7} <body onload="window.__xss=12;alert(12)">',
]
HOSTILE_JOINED = " ".join(XSS_PAYLOADS)
HOSTILE_URL = "javascript:window.__xss=13;alert(13)"
HOSTILE_FIELDS = ("title", "summary", "text", "organisations")

T = TypeVar("T")


# ---------------------------------------------------------------------------- environment


def _unavailable(reason: str) -> None:
    """A developer without Chromium skips; CI (CI=true) must have it and fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it in .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_api() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        _unavailable(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed: pip install -e '.[test]'")
    with sync_playwright() as api:
        yield api


@pytest.fixture(scope="module")
def browser(playwright_api: Any) -> Iterator[Any]:
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


# ---------------------------------------------------------------------------- data and server


@dataclass
class ReviewDb:
    url: str
    engine: Engine
    hostile_id: int


def _store(engine: Engine, items: list[CandidateItem]) -> None:
    with transaction(engine) as session:
        for item in items:
            ensure_source(session, item.source_id, item.source_id, "api", True, True, "h")
            values = candidate_values(item)
            if item.source_id == HOSTILE_SOURCE:
                values["criteria"] = _hostile_criteria(item)
            upsert_candidate(
                session,
                source_id=item.source_id,
                url=item.canonical_url or item.url,
                record_hash=item.record_hash or "h",
                run_id=None,
                initial_status="pending",
                values=values,
            )


def _hostile_criteria(item: CandidateItem) -> dict[str, Any]:
    """Evidence whose highlighted spans, labels and details are payloads too (they land in title="...")."""
    evidence = []
    for name in ("title", "summary", "text"):
        text = getattr(item, name)
        start = text.index(XSS_PAYLOADS[3])
        evidence.append(
            {
                "field": name,
                "start": start,
                "end": start + len(XSS_PAYLOADS[3]),
                "text": XSS_PAYLOADS[1],
                "label": XSS_PAYLOADS[5],
                "detail": XSS_PAYLOADS[4],
            }
        )
    return {"support_type": {"score": 0.9, "evidence": evidence}, "cbd_relevance": {"score": 0.5, "evidence": []}}


def _hostile_item() -> CandidateItem:
    item = CandidateItem(
        HOSTILE_SOURCE,
        HOSTILE_URL,
        "https://example.org/list",
        title=HOSTILE_JOINED,
        summary=HOSTILE_JOINED,
        text=f"Training on {HOSTILE_JOINED} protected areas",
        organisations=list(XSS_PAYLOADS),
        keywords=list(XSS_PAYLOADS[:3]),
        countries=["KE"],
    )
    apply_hashes(item)
    item.canonical_url = HOSTILE_URL
    return item


@pytest.fixture(scope="module")
def review_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewDb]:
    path = tmp_path_factory.mktemp("browser") / "review.sqlite3"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    items = []
    for source in ("gcf_projects", "adaptecca_cases"):  # GCF API records; feed records with multi-line summaries
        spec = load_registry()[source]
        capture = load_capture(spec.replay[0].fixture)
        items += candidates_from_response(
            spec, RecordedResponse(capture.url, 200, capture.headers(), capture.body)
        ).items
    assert len(items) > 250
    _store(engine, [*items, _hostile_item()])
    with transaction(engine) as session:
        add_user(session, CURATOR, "curator", PASSWORD)
        add_user(session, SECOND_CURATOR, "curator", SECOND_PASSWORD)
        add_user(session, ADMIN, "admin", ADMIN_PASSWORD)
        hostile_id = session.scalar(select(Candidate.id).where(Candidate.source_id == HOSTILE_SOURCE))
    yield ReviewDb(url, engine, hostile_id)
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(review_db: ReviewDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``harvester serve`` (uvicorn) in a child process, as a curator would run it."""
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("serve")
    log_path = data_dir / "serve.log"
    env = {**os.environ, "HARVESTER_DATABASE_URL": review_db.url, "HARVESTER_DATA_DIR": str(data_dir)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harvester", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"harvester serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"harvester serve did not answer in 30 s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------------------- what the browser saw

CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportCsp({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample,
                      page: document.location.href});
});
"""


@dataclass
class Watch:
    """Everything a page did that it should not: dialogs, CSP violations, script errors, failed loads."""

    dialogs: list[str] = field(default_factory=list)
    csp: list[dict[str, Any]] = field(default_factory=list)
    console_csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not (self.dialogs or self.csp or self.console_csp or self.errors or self.bad_responses)


@pytest.fixture
def watched(browser: Any, server: str) -> Iterator[tuple[Any, Watch]]:
    """A fresh browser context (no cookie) and page with every listener in place before the first load."""
    watch = Watch()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    context.expose_binding("__reportCsp", lambda _source, report: watch.csp.append(report))
    context.add_init_script(CSP_REPORTER)
    page = context.new_page()
    page.set_default_timeout(10_000)

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            watch.console_csp.append(message.text)

    def on_response(response: Any) -> None:
        if response.status >= 400:
            watch.bad_responses.append(f"{response.status} {response.url}")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("response", on_response)
    yield page, watch
    context.close()


def eventually(check: Callable[[], T], timeout: float = 5.0) -> T:
    """The server commits as it answers; poll the database briefly instead of racing it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def login(page: Any, path: str, name: str = CURATOR, password: str = PASSWORD) -> None:
    page.goto(path)
    assert urlsplit(page.url).path == "/login"
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def path_of(url: str) -> str:
    return urlsplit(url).path


def queue_ids(page: Any) -> list[int]:
    hrefs = page.eval_on_selector_all("table.queue tbody tr[data-href]", "rows => rows.map(r => r.dataset.href)")
    return [int(path_of(h).rsplit("/", 1)[1]) for h in hrefs]


def selected_row(page: Any) -> int:
    return page.eval_on_selector_all(
        "table.queue tbody tr[data-href]", "rows => rows.findIndex(r => r.classList.contains('selected'))"
    )


def pending_ids(engine: Engine, country: str, source: str = "gcf_projects") -> list[int]:
    """The expected queue, computed in Python (not with the app's SQL): ranked by score, then id."""
    with Session(engine) as session:
        rows = session.execute(
            select(Candidate.id, Candidate.score, Candidate.countries).where(
                Candidate.status == "pending", Candidate.source_id == source
            )
        ).all()
    return [
        r.id
        for r in sorted(rows, key=lambda r: (-(r.score if r.score is not None else -1), r.id))
        if country in (r.countries or [])
    ]


def _assert_equal(got: Any, expected: Any) -> None:
    assert got == expected


def candidate(engine: Engine, cid: int) -> Candidate:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Candidate, cid)


def decisions(engine: Engine, cid: int) -> list[Decision]:
    with Session(engine) as session:
        return list(session.scalars(select(Decision).where(Decision.candidate_id == cid).order_by(Decision.id)))


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# ---------------------------------------------------------------------------- the review loop


def test_review_loop_by_keyboard(watched: tuple[Any, Watch], review_db: ReviewDb) -> None:
    page, watch = watched
    engine = review_db.engine

    # Log in from a deep link: the filters survive the detour through the login page.
    login(page, "/queue?status=pending&source=gcf_projects&country=KE")
    assert path_of(page.url) == "/queue"
    assert query_of(page.url) == {"status": "pending", "source": "gcf_projects", "country": "KE"}
    expected = pending_ids(engine, "KE")
    assert len(expected) >= 3
    assert queue_ids(page) == expected
    assert page.inner_text("h1 small") == f"{len(expected)} candidates"
    assert page.input_value("form.filters select[name=status]") == "pending"
    assert page.input_value("form.filters select[name=source]") == "gcf_projects"
    assert page.input_value("form.filters input[name=country]") == "KE"

    # The filter form puts status + source + country (+ min score) into the URL.
    page.fill("form.filters input[name=country]", "BD")
    page.fill("form.filters input[name=min_score]", "0.4")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    params = {k: v for k, v in query_of(page.url).items() if v}
    assert params == {"status": "pending", "source": "gcf_projects", "country": "BD", "min_score": "0.4"}
    with Session(engine) as session:
        scores = {cid: score for cid, score in session.execute(select(Candidate.id, Candidate.score))}
    assert queue_ids(page) == [i for i in pending_ids(engine, "BD") if scores[i] >= 0.4]
    # Back shows the filter the list was made with, not the one typed before leaving (browser form restore).
    page.go_back()
    assert queue_ids(page) == expected
    assert page.input_value("form.filters input[name=country]") == "KE"
    assert page.input_value("form.filters input[name=min_score]") == ""

    # Keyboard on the queue: j / k move the selection, ? toggles the help, o opens the selected row.
    page.keyboard.press("j")
    assert selected_row(page) == 0
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert selected_row(page) == 1
    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("Escape")
    assert page.is_hidden("#help")
    shot(page, "queue.png")
    page.keyboard.press("k")
    assert selected_row(page) == 0
    with page.expect_navigation():
        page.keyboard.press("o")
    first = expected[0]
    assert path_of(page.url) == f"/candidates/{first}"
    original = candidate(engine, first)
    assert page.inner_text("h1") == original.title

    # j / k on the candidate page walk the ranked queue and come back.
    after_first = int(path_of(page.get_attribute("#next", "href")).rsplit("/", 1)[1])
    with page.expect_navigation():
        page.keyboard.press("j")
    assert path_of(page.url) == f"/candidates/{after_first}"
    with page.expect_navigation():
        page.keyboard.press("k")
    assert path_of(page.url) == f"/candidates/{first}"
    shot(page, "candidate.png")

    # Accept with an edited title: type in the form, leave the field, press a.
    edited = f"{original.title} (edited in the browser)"
    page.fill("#decision-form input[name=title]", edited)
    page.click("h1")
    with page.expect_navigation():
        page.keyboard.press("a")
    # The accept re-ranked the queue at once (issue 22): the next candidate comes from the top of the pending
    # queue as ranked now, not from the old neighbour.
    shown = int(path_of(page.url).rsplit("/", 1)[1])
    assert shown != first and candidate(engine, shown).status == "pending"

    def accepted() -> None:
        row = candidate(engine, first)
        assert (row.status, row.title) == ("accepted", edited)
        (decision,) = decisions(engine, first)
        assert (decision.actor, decision.from_status, decision.to_status) == (CURATOR, "pending", "accepted")
        # Only the field the curator changed is an edit: the untouched summary, organisations, countries
        # and date the browser sent back (CRLF line ends, list joins) must not show up as edits.
        assert decision.field_diff == {"title": {"from": original.title, "to": edited}}
        assert row.summary == original.summary and row.organisations == original.organisations
        assert row.countries == original.countries and row.published == original.published

    eventually(accepted)

    # Reject the candidate now shown: r focuses the reason list, arrow keys choose, Enter rejects.
    second = shown
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reason"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    assert path_of(page.url) == f"/candidates/{second}", "choosing a reason with the arrows must not reject yet"
    assert page.input_value("#reason") == "not_cbd_relevant"
    assert candidate(engine, second).status == "pending"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert path_of(page.url) != f"/candidates/{second}"

    def rejected() -> None:
        row = candidate(engine, second)
        assert row.status == "rejected"
        (decision,) = decisions(engine, second)
        assert (decision.reason_code, decision.to_status, decision.field_diff) == ("not_cbd_relevant", "rejected", {})

    eventually(rejected)

    # The next page says what was done; u undoes it and goes back to the candidate to decide again.
    third = int(path_of(page.url).rsplit("/", 1)[1])
    assert " ".join(page.inner_text("#done .what").split()).startswith(f"Rejected #{second} ")
    assert page.inner_text("#done .what").endswith("as not_cbd_relevant.")
    with page.expect_navigation():
        page.keyboard.press("u")
    assert path_of(page.url) == f"/candidates/{second}"
    assert page.inner_text(".meta .status") == "pending"
    assert " ".join(page.inner_text("#done .what").split()).startswith(f"Undid the last decision on #{second} ")

    def undone() -> None:
        row = candidate(engine, second)
        assert row.status == "pending"
        assert [(d.from_status, d.to_status, d.reason_code) for d in decisions(engine, second)] == [
            ("pending", "rejected", "not_cbd_relevant"),
            ("rejected", "pending", "undo"),
        ]

    eventually(undone)

    # u on a candidate without any decision says so on the page (not a bare error document).
    page.goto(f"/candidates/{third}")
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.is_visible("p.error[role=alert]")
    assert "no curator decision to undo" in page.inner_text("p.error[role=alert]")
    watch.bad_responses.clear()

    # With the mouse, picking a reason decides nothing; the Reject button does.
    page.goto(f"/candidates/{second}")
    page.select_option("#reason", "duplicate")
    page.wait_for_timeout(300)
    assert path_of(page.url) == f"/candidates/{second}" and candidate(engine, second).status == "pending"
    with page.expect_navigation():
        page.click("#reject")
    eventually(
        lambda: _assert_equal(
            [(d.to_status, d.reason_code) for d in decisions(engine, second)][-1], ("rejected", "duplicate")
        )
    )

    # Bulk defer over a filter: the first submit only asks to confirm the exact count, the second decides.
    page.goto("/queue")
    page.select_option("form.filters select[name=source]", "gcf_projects")
    page.fill("form.filters input[name=country]", "BD")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    targets = pending_ids(engine, "BD")
    assert targets and queue_ids(page) == targets
    others_before = {i: candidate(engine, i).status for i in pending_ids(engine, "KE") if i not in targets}
    page.click("details.bulk summary")
    page.select_option("details.bulk select[name=action]", "defer")
    with page.expect_navigation():
        page.click("details.bulk button[type=submit]")
    noun = "candidate" if len(targets) == 1 else "candidates"
    assert page.inner_text("#bulk-confirm-title") == f"Defer {len(targets)} {noun}?"
    assert all(candidate(engine, i).status == "pending" for i in targets), "asking to confirm decides nothing"
    with page.expect_navigation():
        page.click("#bulk-confirm")
    assert {k: v for k, v in query_of(page.url).items() if k not in ("message", "sig")} == {
        "status": "pending",
        "source": "gcf_projects",
        "country": "BD",
    }
    assert page.inner_text("p.notice") == f"defer: {len(targets)} {noun} decided"
    assert queue_ids(page) == []
    assert page.inner_text("h1 small") == "0 candidates"

    def deferred() -> None:
        for cid in targets:
            assert candidate(engine, cid).status == "deferred"
            last = decisions(engine, cid)[-1]
            assert (last.actor, last.to_status, last.note) == (CURATOR, "deferred", "bulk action")
        assert {i: candidate(engine, i).status for i in others_before} == others_before

    eventually(deferred)
    page.wait_for_timeout(200)  # let late events (CSP reports, errors) reach the listeners
    assert watch.clean(), watch


def test_accepting_without_edits_records_no_edit(watched: tuple[Any, Watch], review_db: ReviewDb) -> None:
    """The browser sends the whole form back (a textarea with CRLF line ends): untouched fields are no edit."""
    page, watch = watched
    engine = review_db.engine
    with Session(engine) as session:
        cid, original = session.execute(
            select(Candidate.id, Candidate.summary)
            .where(
                Candidate.source_id == "adaptecca_cases",
                Candidate.status == "pending",
                Candidate.summary.contains("\n"),
            )
            .order_by(Candidate.id)
        ).first()
    login(page, f"/candidates/{cid}")
    assert page.input_value("#decision-form textarea[name=summary]") == original
    with page.expect_navigation():
        page.keyboard.press("a")

    def accepted() -> None:
        row = candidate(engine, cid)
        assert (row.status, row.summary, row.curator_edits) == ("accepted", original, {})
        assert [d.field_diff for d in decisions(engine, cid)] == [{}]

    eventually(accepted)
    page.wait_for_timeout(200)
    assert watch.clean(), watch


def pending_of(engine: Engine, source: str, index: int) -> int:
    """A pending candidate no other test decides: counted from the end of the source's ids."""
    with Session(engine) as session:
        return list(
            session.scalars(
                select(Candidate.id)
                .where(Candidate.source_id == source, Candidate.status == "pending")
                .order_by(Candidate.id.desc())
            )
        )[index]


def test_enter_in_a_field_and_choosing_a_reason_decide_nothing(
    watched: tuple[Any, Watch], review_db: ReviewDb, browser: Any, server: str
) -> None:
    page, watch = watched
    engine = review_db.engine
    cid = pending_of(engine, "adaptecca_cases", 0)
    login(page, f"/candidates/{cid}")
    # Enter in every one-line field of the decision form: nothing is submitted.
    page.fill("#decision-form input[name=note]", "checked the partner page")
    for name in ("note", "title", "organisations", "countries", "published", "start_date"):
        page.press(f"#decision-form input[name={name}]", "Enter")
    page.select_option("#reason", "inactive")  # a choice with the mouse: still nothing decided
    page.wait_for_timeout(400)
    assert path_of(page.url) == f"/candidates/{cid}"
    assert candidate(engine, cid).status == "pending" and decisions(engine, cid) == []

    # The deliberate action decides, with the note typed; the next page says so and offers the undo.
    with page.expect_navigation():
        page.click("#reject")

    def rejected() -> None:
        (decision,) = decisions(engine, cid)
        assert (decision.to_status, decision.reason_code, decision.note) == (
            "rejected",
            "inactive",
            "checked the partner page",
        )

    eventually(rejected)
    assert path_of(page.url) != f"/candidates/{cid}"
    what = " ".join(page.inner_text("#done .what").split())
    assert what.startswith(f"Rejected #{cid} ") and what.endswith("as inactive.")
    shot(page, "decision-done.png")
    with page.expect_navigation():
        page.click("#undo-done")
    assert path_of(page.url) == f"/candidates/{cid}"
    eventually(lambda: _assert_equal([d.to_status for d in decisions(engine, cid)], ["rejected", "pending"]))

    # Without script, Enter still cannot decide: the form's first button is a disabled one.
    plain = browser.new_context(java_script_enabled=False, base_url=server)
    try:
        bare = plain.new_page()
        login(bare, f"/candidates/{cid}")
        bare.fill("#decision-form input[name=note]", "Enter without script")
        bare.press("#decision-form input[name=note]", "Enter")
        bare.wait_for_timeout(400)
        assert path_of(bare.url) == f"/candidates/{cid}"
        assert len(decisions(engine, cid)) == 2
    finally:
        plain.close()
    page.wait_for_timeout(200)
    assert watch.clean(), watch


def test_a_stale_undo_gets_the_conflict_a_decision_gets(browser: Any, server: str, review_db: ReviewDb) -> None:
    """Ada accepts, Bob then rejects the same candidate; Ada's Undo (made for her version) must not revert Bob."""
    engine = review_db.engine
    cid = pending_of(engine, "adaptecca_cases", 1)
    contexts = [browser.new_context(base_url=server) for _ in range(2)]
    try:
        ada, bob = (c.new_page() for c in contexts)
        login(ada, f"/candidates/{cid}")
        with ada.expect_navigation():
            ada.click("#accept")
        assert ada.is_visible("#undo-done")
        login(bob, f"/candidates/{cid}", SECOND_CURATOR, SECOND_PASSWORD)
        bob.select_option("#reason", "other")
        with bob.expect_navigation():
            bob.click("#reject")
        eventually(lambda: _assert_equal(candidate(engine, cid).status, "rejected"))
        with ada.expect_navigation():
            ada.click("#undo-done")
        assert path_of(ada.url) == f"/candidates/{cid}"
        alert = ada.inner_text("p.error[role=alert]")
        assert "was changed by someone else" in alert and "nothing was changed" in alert
        assert ada.inner_text(".meta .status") == "rejected"
        assert [(d.actor, d.to_status) for d in decisions(engine, cid)] == [
            (CURATOR, "accepted"),
            (SECOND_CURATOR, "rejected"),
        ]
        shot(ada, "stale-undo.png")
    finally:
        for context in contexts:
            context.close()


def test_two_curators_reviewing_in_parallel_never_meet_unknowingly(
    browser: Any, server: str, review_db: ReviewDb
) -> None:
    """Both press "review next" on the same filter: each gets a different candidate; opening the other's shows
    who has it open, and deciding continues past the candidates the other holds."""
    engine = review_db.engine
    query = "status=pending&source=adaptecca_cases"
    contexts = [browser.new_context(base_url=server) for _ in range(2)]
    try:
        ada, bob = (c.new_page() for c in contexts)
        login(ada, f"/queue?{query}")
        login(bob, f"/queue?{query}", SECOND_CURATOR, SECOND_PASSWORD)
        with ada.expect_navigation():
            ada.click("#review-next")
        ada_first = int(path_of(ada.url).rsplit("/", 1)[1])
        with bob.expect_navigation():
            bob.click("#review-next")
        bob_first = int(path_of(bob.url).rsplit("/", 1)[1])
        assert bob_first != ada_first
        assert not ada.is_visible("#claimed") and not bob.is_visible("#claimed")
        bob.goto(f"/queue?{query}")
        assert (
            bob.inner_text(f"table.queue tr[data-href^='/candidates/{ada_first}?'] .claimed")
            == f"{CURATOR} is reviewing"
        )
        bob.goto(f"/candidates/{ada_first}?{query}")
        assert bob.inner_text("#claimed").startswith(f"{CURATOR} is reviewing this candidate")
        shot(bob, "claimed.png")
        # Bob defers his; the next page is neither Ada's candidate nor the one he just left.
        bob.goto(f"/candidates/{bob_first}?{query}")
        decided_before = int(bob.inner_text("#progress .today").split()[0])
        with bob.expect_navigation():
            bob.click("#defer")
        bob_next = int(path_of(bob.url).rsplit("/", 1)[1])
        assert bob_next not in (ada_first, bob_first)
        assert " ".join(bob.inner_text("#done .what").split()).startswith(f"Deferred #{bob_first} ")
        assert candidate(engine, bob_first).status == "deferred"
        assert bob.inner_text("#progress .today") == f"{decided_before + 1} decided by you today"
        # His history lists it with an undo; the undo brings the candidate back to decide again.
        with bob.expect_navigation():
            bob.click("#progress a")
        assert path_of(bob.url) == "/history"
        row = bob.locator("table.mine tbody tr").first
        assert row.locator("td").nth(2).inner_text() == "pending → deferred"
        with bob.expect_navigation():
            row.locator("button.undo").click()
        assert path_of(bob.url) == f"/candidates/{bob_first}"
        assert bob.inner_text(".meta .status") == "pending"
        eventually(lambda: _assert_equal(candidate(engine, bob_first).status, "pending"))
    finally:
        for context in contexts:
            context.close()


def test_a_cluster_is_decided_once_from_the_browser(watched: tuple[Any, Watch], review_db: ReviewDb) -> None:
    page, watch = watched
    engine = review_db.engine
    main, *members = (pending_of(engine, "gcf_projects", i) for i in range(3))
    with Session(engine) as session, session.begin():
        for cid in (main, *members):
            session.get(Candidate, cid).duplicate_cluster = f"dup-{min(main, *members)}"
    login(page, f"/candidates/{main}")
    assert page.is_visible("#cluster-too")
    page.check("#cluster-too")
    page.select_option("#reason", "not_support_type")
    with page.expect_navigation():
        page.click("#reject")
    listed = ", ".join(f"#{i}" for i in sorted(members))
    assert f"The same for 2 near-duplicates: {listed}" in " ".join(page.inner_text("#done").split())

    def all_rejected() -> None:
        for cid in (main, *members):
            (decision,) = decisions(engine, cid)
            assert (decision.actor, decision.to_status, decision.reason_code) == (
                CURATOR,
                "rejected",
                "not_support_type",
            )
        assert decisions(engine, members[0])[0].note == f"cluster decision with #{main}"

    eventually(all_rejected)
    page.wait_for_timeout(200)
    assert watch.clean(), watch


def test_odd_ids_give_an_html_error_page(watched: tuple[Any, Watch]) -> None:
    page, watch = watched
    login(page, "/queue")
    for path, status, title in [
        (f"/candidates/{2**63}", 422, "Not a valid request"),
        (f"/candidates/{2**31 - 1}", 404, "Not found"),
    ]:
        response = page.goto(path)
        assert response.status == status
        assert response.headers["content-type"].startswith("text/html")
        assert page.inner_text("h1").startswith(title)
    page.goto("/queue?message=Your+account+is+locked%3A+call+%2B1+555+0100")
    assert "555 0100" not in page.inner_text("main")
    assert watch.dialogs == [] and watch.errors == []


def test_a_blind_second_review_of_a_sample_shows_agreement(browser: Any, server: str, review_db: ReviewDb) -> None:
    from storage.models import SecondReview, User

    contexts = [browser.new_context(base_url=server) for _ in range(2)]
    try:
        root, bob = (c.new_page() for c in contexts)
        login(root, "/admin/second-review", ADMIN, ADMIN_PASSWORD)
        root.fill("input[name=percent]", "100")
        with root.expect_navigation():
            root.click("#sample")
        sampled = int(root.inner_text("p.notice").split()[0])
        assert sampled >= 3  # Ada's and Bob's accepts and rejects from the tests above
        login(bob, "/second-review", SECOND_CURATOR, SECOND_PASSWORD)
        review = int(bob.get_attribute("#blind", "data-review"))
        with Session(review_db.engine) as session:
            first = session.get(SecondReview, review)
            assert first is not None and first.first_user_id == session.scalar(
                select(User.id).where(User.name == CURATOR)
            )  # never his own decision
            cid, first_status = first.candidate_id, first.first_status
        blind = bob.inner_text("#blind")
        assert candidate(review_db.engine, cid).title in blind
        assert first_status not in blind and CURATOR not in blind
        opposite = "second-reject" if first_status == "accepted" else "second-accept"
        with bob.expect_navigation():
            bob.click(f"#{opposite}")
        assert bob.inner_text("p.notice") == "Second review recorded; here is the next one."
        root.reload()
        row = "table.agreement tr[data-curator=ada]"
        assert root.inner_text(f"{row} td:nth-child(2)") == "1"  # one pair, and it disagrees
        assert root.inner_text(f"{row} td:nth-child(3)") == "0"
        assert root.inner_text("table.disagreements tbody tr td:first-child") == f"#{cid}"
    finally:
        for context in contexts:
            context.close()


def test_an_admin_deactivates_a_curator_who_is_out_at_once(browser: Any, server: str) -> None:
    contexts = [browser.new_context(base_url=server) for _ in range(2)]
    try:
        bob, root = (c.new_page() for c in contexts)
        login(bob, "/queue", SECOND_CURATOR, SECOND_PASSWORD)
        login(root, "/admin/users", ADMIN, ADMIN_PASSWORD)
        row = f"tr[data-name={SECOND_CURATOR}]"
        assert root.inner_text(f"{row} .sessions") != "0"
        with root.expect_navigation():
            root.click(f"{row} button.deactivate")
        assert root.inner_text("p.notice") == "bob deactivated: cannot log in, every session ended"
        assert (root.inner_text(f"{row} .active"), root.inner_text(f"{row} .sessions")) == ("no", "0")
        assert "deactivated" in root.inner_text("table.account-events")
        bob.reload()
        assert path_of(bob.url) == "/login"
        with root.expect_navigation():
            root.click(f"{row} button.activate")
        assert root.inner_text(f"{row} .active") == "yes"
    finally:
        for context in contexts:
            context.close()


# ---------------------------------------------------------------------------- hostile harvested markup


def _no_injected_markup(page: Any) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    injected = page.evaluate("""() => [...document.querySelectorAll('*')].filter(el =>
        [...el.attributes].some(a => a.name.startsWith('on') || a.value.trim().toLowerCase().startsWith('javascript:'))
      ).map(el => el.outerHTML.slice(0, 120))""")
    assert injected == []
    assert (
        page.evaluate(
            "document.querySelectorAll('main script, main iframe, main svg, main img, "
            "main details:not(.bulk), main b, #xss-link').length"
        )
        == 0
    )


def test_harvested_payloads_never_run(watched: tuple[Any, Watch], review_db: ReviewDb) -> None:
    page, watch = watched
    login(page, f"/queue?status=pending&source={HOSTILE_SOURCE}")
    assert queue_ids(page) == [review_db.hostile_id]
    title_link = page.locator(f"table.queue a[href^='/candidates/{review_db.hostile_id}?']")
    assert title_link.inner_text() == HOSTILE_JOINED
    title_link.hover()
    _no_injected_markup(page)
    shot(page, "queue-hostile.png")

    page.goto(f"/candidates/{review_db.hostile_id}")
    # Every payload is shown as the text it is, in every field.
    assert page.inner_text("h1") == HOSTILE_JOINED
    assert page.title().startswith(HOSTILE_JOINED)
    assert page.input_value("#decision-form input[name=title]") == HOSTILE_JOINED
    assert page.input_value("#decision-form textarea[name=summary]") == HOSTILE_JOINED
    assert page.input_value("#decision-form input[name=organisations]") == "; ".join(XSS_PAYLOADS)
    body = page.inner_text("main")
    for payload in XSS_PAYLOADS:
        assert body.count(payload) >= 4, payload  # title, summary, text, organisations (and more)
    assert page.get_attribute("mark.support_type", "title") == f"(a) Support type (X/16): {XSS_PAYLOADS[5]}"
    assert page.get_attribute(f"a[rel~=noopener]:has-text('{HOSTILE_URL}')", "href") == "#"
    # Hover and focus everything a payload would have hooked, then press the review keys that only read.
    for selector in ("h1", "mark.support_type", "section.fields td", "p.text", "div.text"):
        page.hover(selector)
    page.focus("#decision-form input[name=title]")
    page.click("h1")
    page.keyboard.press("?")
    page.keyboard.press("Escape")
    _no_injected_markup(page)
    shot(page, "candidate-hostile.png")

    # The API hands the payloads back as data, untouched.
    api = page.request.get(f"/api/v1/candidates/{review_db.hostile_id}").json()
    assert api["title"] == HOSTILE_JOINED and api["organisations"] == XSS_PAYLOADS

    page.wait_for_timeout(200)
    assert watch.dialogs == [] and watch.errors == []
    assert watch.csp == [] and watch.console_csp == [], "escaping, not only the CSP, must stop the payloads"
    assert watch.bad_responses == []


def test_the_watchers_see_what_they_watch_for(watched: tuple[Any, Watch]) -> None:
    """Control: an inline script is refused by the CSP and reported, and a real dialog is seen."""
    page, watch = watched
    page.goto("/login")
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.__xss = 99'; document.body.appendChild(s); }""")
    # Unescaped markup with a handler, as a template bug would put it in the page: the CSP blocks it and
    # the reporter sees it, so zero reports on the hostile pages means escaping did the work.
    page.evaluate(f"() => {{ document.querySelector('main').innerHTML = {XSS_PAYLOADS[1]!r}; }}")
    page.wait_for_timeout(300)  # Playwright hands over events only while it is called: not time.sleep
    assert sorted(r["directive"] for r in watch.csp) == ["script-src-attr", "script-src-elem"]
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.evaluate("() => alert('control')")
    assert watch.dialogs == ["alert: control"]
