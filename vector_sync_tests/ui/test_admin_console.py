"""The Dagster UI of a vector_sync project as an operator uses it: the lineage, a sync
launched from it, the sensors' ticks (test_operator_actions.py: the launchpad's jobs and
the checks). Names come from the definitions, not from here. The screenshots are the ones
docs/ui.md shows."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from vector_sync.defs.jobs import TAG_SOURCE, TAG_TRIGGER, asset_key, group_of
from vector_sync_tests.support import Project
from vector_sync_tests.ui.conftest import Server, asset_url, metadata_value, wait_for_run

pytestmark = pytest.mark.ui
Screenshot = Callable[[Page, str], Path]


def test_lineage_shows_every_asset(page: Page, dagster_server: Server, defs: dg.Definitions,
                                   ui_project: Project, screenshot: Screenshot) -> None:
    graph = defs.resolve_asset_graph()
    groups: dict[str, list[dg.AssetKey]] = defaultdict(list)
    for key in graph.get_all_asset_keys():
        groups[graph.get(key).group_name].append(key)

    # "Lineage" in the navigation: the whole project, a box per group
    page.goto(f"{dagster_server.url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in groups:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()

    # a group's lineage: a box per asset, labelled by the last part of its key; the docs
    # show a collection's chain
    collection = next(iter(ui_project.config["collections"]))
    assert group_of(collection) in groups
    for group, keys in sorted(groups.items()):
        page.goto(f"{dagster_server.url}/locations/{dagster_server.location}"
                  f"/asset-groups/{group}/lineage")
        for key in keys:
            expect(page.get_by_text(key.path[-1], exact=True).first).to_be_visible()
        if group == group_of(collection):
            # the boxes fill in their statuses after the graph is drawn
            expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
            screenshot(page, "asset-graph")


def test_materialize_a_source_from_the_lineage(page: Page, dagster_server: Server,
                                               defs: dg.Definitions, ui_project: Project,
                                               screenshot: Screenshot) -> None:
    """A sync of one source launched by hand: Materialize all, pick the source's
    partition, launch; the run succeeds and the Qdrant asset shows what it did."""
    source, settings = next(iter(ui_project.config["sources"].items()))
    assets = defs.resolve_all_asset_keys()

    page.goto(f"{dagster_server.url}/asset-groups")
    page.get_by_role("button", name="Materialize all…").click()
    # the partition menu is a dialog of its own: name the launch dialog by its title
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog).to_contain_text(f"Launch runs to materialize {len(assets)} assets")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem", name=re.compile(rf"^{re.escape(source)}\b")).click()
    dialog.get_by_text("Launch runs to materialize").click()  # closes the partition menu
    expect(dialog).to_contain_text("1 partition")
    dialog.get_by_role("button", name="Launch 1 run").click()

    view = page.get_by_role("region", name=re.compile("^Notifications")).get_by_role(
        "link", name="View")
    run_id = (view.get_attribute("href") or "").rsplit("/", 1)[-1]
    expect(page.get_by_text(f"Launched run {run_id[:8]}")).to_be_visible()
    view.click()
    expect(page).to_have_url(re.compile(f"/runs/{run_id}"))
    run = wait_for_run(dagster_server, run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, dagster_server.log_tail()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {source}")).to_be_visible()

    # the package tags every run with its source and trigger, whatever launched it
    page.get_by_role("button", name="View tags and config").click()
    tags = page.get_by_role("dialog")
    expect(tags).to_contain_text(f"{TAG_SOURCE}: {source}")
    expect(tags).to_contain_text(f"{TAG_TRIGGER}: ui")
    screenshot(page, "run-tags")
    tags.get_by_role("button", name="OK").click()

    # the sensors synced the vault before: this run found every document unchanged
    for collection in settings["collections"]:
        key = asset_key("qdrant", collection)
        assert key in assets
        documents = len(ui_project.points(collection))
        assert documents > 0
        page.goto(asset_url(dagster_server, key, "events"))
        expect(page.get_by_role("link", name=run_id[:8], exact=True)).to_be_visible()
        expect(metadata_value(page, "added")).to_have_text("0")
        expect(metadata_value(page, "unchanged")).to_have_text(str(documents))
        expect(metadata_value(page, "documents_synced")).to_have_text(str(documents))
        # a table value renders as a nested table: its column headers, then its rows
        failed = metadata_value(page, "failed_documents")
        expect(failed.get_by_role("columnheader", name="doc_id")).to_be_visible()
        expect(failed.get_by_role("columnheader", name="error", exact=True)).to_be_visible()


# what a sensor's tick that requested nothing says: why, in words an operator acts on
SKIP_REASONS = {
    "watch_": re.compile(r"unchanged|queued or running"),
    "retry_failed": re.compile(
        r"^(no failed rows due for retry|failed rows due, but a run is in flight)"),
}


def test_sensors_show_their_ticks(page: Page, dagster_server: Server, defs: dg.Definitions,
                                  ui_project: Project, screenshot: Screenshot) -> None:
    sensors = [sensor.name for sensor in defs.sensors or []]
    assert sensors
    shown = f"watch_{next(iter(ui_project.config['sources']))}"  # the docs show one sensor
    assert shown in sensors

    page.goto(f"{dagster_server.url}/automation")
    for name in sensors:
        link = page.get_by_role("link").filter(has=page.get_by_text(name, exact=True))
        expect(link).to_have_attribute("href", re.compile(f"/sensors/{name}$"))

    for name in sensors:
        reasons = next(pattern for prefix, pattern in SKIP_REASONS.items()
                       if name.startswith(prefix))
        page.goto(f"{dagster_server.url}/locations/{dagster_server.location}/sensors/{name}")
        ticks = page.get_by_role("row").filter(has=page.get_by_role("button", name="View logs"))
        expect(ticks.first).to_be_visible()
        # a tick that requested nothing says why in a tooltip on its status, and in the
        # dialog its result opens; the tick table updates live, so wait for one
        skipped = ticks.filter(has_text="0 runs requested").first
        expect(skipped).to_be_visible(timeout=120_000)
        reason = page.locator(".bp5-tooltip, [role=tooltip]").first
        for _ in range(5):  # a new tick re-renders the row under the pointer: hover again
            skipped.get_by_role("cell").nth(1).get_by_text("0 runs requested").hover()
            try:
                reason.wait_for(state="visible", timeout=10_000)
                break
            except PlaywrightTimeout:
                page.mouse.move(0, 0)
        expect(reason).to_have_text(reasons)
        if name == shown:
            screenshot(page, "sensor-ticks")
        reason_text = reason.inner_text().strip()

        page.mouse.move(0, 0)
        skipped.get_by_role("button", name="0 runs requested").click()
        tick = page.get_by_role("dialog")
        expect(tick).to_contain_text(f"Tick for {name}")
        expect(tick).to_contain_text(f"Skip reason: {reason_text}")
        tick.get_by_role("button", name="Close").click()
