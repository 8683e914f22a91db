"""What an operator does in the Dagster UI when something is wrong, in the order it happens:
a document fails and its collection shows it; the launchpad refuses a bad config value;
retry_due runs, and resync_documents re-reads the fixed document; verify finds a point
deleted behind vector_sync's back, and repair puts it back.

The tests share one server and build on each other, so they run in file order. The sensors
keep running meanwhile: the watch sensor may sync a vault change before the launched run
does, the retry sensor retries the failed note. So each step asserts what holds whichever
run got there first, and reloads a page until it shows it (never how soon it does)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from vector_sync.core.hashing import point_id
from vector_sync.defs.jobs import (
    FAILED,
    REPAIR_JOB,
    RESYNC_JOB,
    RETRY_JOB,
    SYNC_JOB,
    TAG_DOCUMENTS,
    TAG_TRIGGER,
    VERIFY_CHECKS,
    VERIFY_JOB,
    asset_key,
)
from vector_sync_tests.support import Project
from vector_sync_tests.ui.conftest import (
    Server,
    asset_url,
    metadata_value,
    wait_for_run,
    wait_until_quiet,
)

pytestmark = pytest.mark.ui
Screenshot = Callable[[Page, str], Path]

CONSISTENT = VERIFY_CHECKS[0]
BROKEN = "broken.md"  # a doc id of the markdown source: its path in the vault
BROKEN_TEXT = "---\ntitle: [never closed\n---\n# Broken\n\nText.\n"  # front matter not YAML
FIXED_TEXT = "---\ntitle: Fixed\n---\n# Fixed\n\nText.\n"
DELETED = "cooking/Knife Skills.md"  # a note of the example vault
RELOAD_S = 120  # a deadline against hangs, not a measurement
POLL_MS = 5_000
MENU_TRIES = 5


@pytest.fixture(scope="module")
def source(ui_project: Project) -> str:
    """The markdown source: the tests write its vault."""
    return next(name for name, settings in ui_project.config["sources"].items()
                if settings["kind"] == "markdown")


@pytest.fixture(scope="module")
def collection(ui_project: Project, source: str) -> str:
    """The first collection the markdown source feeds."""
    return ui_project.config["sources"][source]["collections"][0]


@pytest.fixture(scope="module")
def qdrant(collection: str) -> dg.AssetKey:
    return asset_key("qdrant", collection)


def open_launchpad(page: Page, server: Server, job: str, partition: str | None = None,
                   ) -> Locator:
    """Jobs > `job` > its launchpad, with `partition` picked; returns the config editor."""
    page.goto(f"{server.url}/locations/{server.location}/jobs/{job}/playground")
    expect(page.get_by_role("button", name="Launch Run")).to_be_visible()
    if partition:
        # the menu lists what the partition query has returned when it opens (it may also
        # close as the launchpad re-renders): open it until it lists the partition
        item = page.get_by_role("menuitem", name=partition, exact=True)
        for _ in range(MENU_TRIES):
            page.get_by_placeholder("Partition").click()
            with contextlib.suppress(PlaywrightTimeoutError):
                item.click(timeout=POLL_MS)
                break
            page.keyboard.press("Escape")
        # picking a partition loads its run config into the editor: edit only after that
        expect(page.get_by_text(f"partition: {partition}", exact=True)).to_be_visible()
    return page.locator(".CodeMirror")


def set_config(page: Page, editor: Locator, text: str) -> None:
    """Replace the editor's text, as pasted (typing would re-indent each new line)."""
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)
    expect(editor).to_contain_text(text.strip().splitlines()[-1].strip())


def launch(page: Page, server: Server, succeeds: bool = True) -> str:
    """Launch Run: the launchpad opens the run's page. The run's id, once it succeeded (or
    failed, when `succeeds` is False)."""
    page.get_by_role("button", name="Launch Run").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = re.findall(r"/runs/([0-9a-f-]{36})", page.url)[0]
    run = wait_for_run(server, run_id)
    status, shown = (dg.DagsterRunStatus.SUCCESS, "Success") if succeeds else (
        dg.DagsterRunStatus.FAILURE, "Failure")
    assert run.status == status, server.log_tail()
    expect(page.get_by_text(shown, exact=True).first).to_be_visible()
    return run_id


def open_check(page: Page, server: Server, key: dg.AssetKey, check: str) -> Locator:
    """The asset's Checks tab with `check` picked; returns its latest evaluation's result."""
    page.goto(asset_url(server, key, "checks") + f"&checkDetail={check}")
    expect(page.get_by_text("Latest execution")).to_be_visible()
    return page.get_by_text("Evaluation result", exact=True).locator("..")


def reload_until(page: Page, check: Callable[[], None]) -> None:
    """check() (assertions with a short timeout) once it passes, reloading the page between
    tries: a run the test did not launch may show before the one it waits for."""
    deadline = time.monotonic() + RELOAD_S
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def test_a_failed_document_shows_on_its_collection(
        page: Page, dagster_server: Server, ui_project: Project, source: str,
        qdrant: dg.AssetKey, screenshot: Screenshot) -> None:
    """Sync now from the launchpad: the run is green (a failed document is a warning, the
    rest is applied), and the collection lists the document with its error."""
    ui_project.note(BROKEN, BROKEN_TEXT)
    open_launchpad(page, dagster_server, SYNC_JOB, source)
    launch(page, dagster_server)

    page.goto(asset_url(dagster_server, qdrant, "events"))
    reload_until(page, lambda: expect(metadata_value(page, "documents_failed")).to_have_text(
        "1", timeout=POLL_MS))
    failed = metadata_value(page, "failed_documents")
    row = failed.get_by_role("row").filter(has=page.get_by_role("cell", name=BROKEN,
                                                                 exact=True))
    expect(row.get_by_role("cell", name="bad_frontmatter", exact=True)).to_be_visible()
    page.get_by_text("Hide navigation").click()  # room for the table's columns
    failed.scroll_into_view_if_needed()
    screenshot(page, "collection-failed-documents")

    result = open_check(page, dagster_server, qdrant, FAILED)
    expect(page.get_by_text("1 document(s) failed")).to_be_visible()
    expect(result).to_contain_text("Failed")
    expect(result.get_by_role("img", name=re.compile("warning"))).to_be_visible()  # WARN
    screenshot(page, "check-failed-documents")


def test_the_launchpad_refuses_a_bad_config_value(page: Page, dagster_server: Server,
                                                  source: str) -> None:
    """A value of the wrong type is named, with its path, before anything runs."""
    editor = open_launchpad(page, dagster_server, RESYNC_JOB, source)
    launch_button = page.get_by_role("button", name="Launch Run")
    expect(launch_button).to_be_enabled()
    set_config(page, editor, "ops:\n  source_snapshot:\n    config:\n      doc_ids: 5\n")
    expect(page.get_by_text(
        "Value at path root:ops:source_snapshot:config:doc_ids must be list")).to_be_visible()
    expect(launch_button).to_be_disabled()
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_retry_due_then_resync_the_fixed_document(
        page: Page, dagster_server: Server, ui_project: Project, source: str,
        qdrant: dg.AssetKey, screenshot: Screenshot) -> None:
    open_launchpad(page, dagster_server, RETRY_JOB, source)
    launch(page, dagster_server)
    expect(page.get_by_text(f"partition: {source}")).to_be_visible()
    expect(page.get_by_role("link", name=RETRY_JOB, exact=True)).to_be_visible()  # "Run of"

    # the note fixed, its id named in the run config the scaffold shows
    ui_project.note(BROKEN, FIXED_TEXT)
    editor = open_launchpad(page, dagster_server, RESYNC_JOB, source)
    expect(editor).to_contain_text("doc_ids: []")
    set_config(page, editor, f"ops:\n  source_snapshot:\n    config:\n      doc_ids: [{BROKEN}]\n")
    expect(page.get_by_text("No errors")).to_be_visible()
    expect(page.get_by_role("button", name="Launch Run")).to_be_enabled()
    screenshot(page, "launchpad-resync")
    launch(page, dagster_server)

    page.get_by_role("button", name="View tags and config").click()
    tags = page.get_by_role("dialog")
    expect(tags).to_contain_text(f"{TAG_TRIGGER}: operator")
    expect(tags).to_contain_text(f"{TAG_DOCUMENTS}: {BROKEN}")
    tags.get_by_role("button", name="OK").click()

    page.goto(asset_url(dagster_server, qdrant, "events"))
    reload_until(page, lambda: expect(metadata_value(page, "documents_failed")).to_have_text(
        "0", timeout=POLL_MS))
    expect(metadata_value(page, "failed_documents").get_by_role(
        "cell", name=BROKEN, exact=True)).to_have_count(0)
    result = open_check(page, dagster_server, qdrant, FAILED)
    expect(result).to_contain_text("Passed")


def test_verify_finds_a_deleted_point_and_repair_restores_it(
        page: Page, dagster_server: Server, ui_project: Project, source: str,
        collection: str, qdrant: dg.AssetKey, screenshot: Screenshot) -> None:
    # embedded Qdrant admits one process at a time, and the check result read below must
    # be verify's: wait until no run is in flight and no watch sensor is about to start one
    # (nothing is failed any more, so the retry sensor requests nothing)
    wait_until_quiet(dagster_server, [f"watch_{name}" for name in ui_project.config["sources"]])
    assert (ui_project.vault / DELETED).is_file()
    with ui_project.qdrant() as store:
        store.delete(collection, [point_id(source, DELETED, 0)])

    editor = open_launchpad(page, dagster_server, VERIFY_JOB)  # not partitioned
    expect(editor).to_contain_text("sources: []")  # every source
    launch(page, dagster_server, succeeds=False)  # red: there is something to repair
    result = open_check(page, dagster_server, qdrant, CONSISTENT)
    expect(result).to_contain_text("Failed")
    expect(page.get_by_text("Qdrant differs from the source")).to_be_visible()
    expect(metadata_value(page, "sampled")).to_have_text("no: every document")
    offenders = metadata_value(page, "offenders")
    missing = offenders.get_by_role("row").filter(has=page.get_by_role("cell", name="missing",
                                                                       exact=True))
    expect(missing.get_by_role("cell", name=DELETED, exact=True)).to_be_visible()
    screenshot(page, "check-offenders")

    # repair: its first step, prepare_repair, rewrites the ledger from Qdrant, then the same
    # run's sync writes the point again
    editor = open_launchpad(page, dagster_server, REPAIR_JOB, source)
    expect(editor).to_contain_text("prepare_repair")
    expect(editor).to_contain_text("prune: false")
    launch(page, dagster_server)
    result = open_check(page, dagster_server, qdrant, CONSISTENT)
    reload_until(page, lambda: expect(result).to_contain_text("Passed", timeout=POLL_MS))
    expect(metadata_value(page, "missing")).to_have_text("0")
