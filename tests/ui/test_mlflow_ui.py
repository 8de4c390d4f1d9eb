"""The MLflow UI on a finished grid, in a real headless Chromium: what a researcher sees.

The grid runs through the real CLI on a local Ray into a real MLflow server; the page is
opened by the link lessdata prints (the experiment's saved view: the metric columns show
without a click), then driven through the UI's own "Group by" control, and read back
from its table.
Installs nothing: without Chromium (`make browser` installs Debian's) or the playwright
package (the dev extra) it is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Experiment, Run

from orchestrator.record import Kind, Tag, runs_url
from tests.conftest import REPO, MlflowServer, RayCluster, run_cli


def chromium_path() -> str | None:
    """Debian's Chromium (`make browser`), if this machine has it."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


CHROMIUM = chromium_path()
# Checked at collection, so a machine without a browser starts no Ray and no grid.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: "
                       "`make browser` installs Debian's (as root)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright package is not installed (the dev extra)"),
]

# The MLflow layout the page is checked against (orchestrator/record.py, written by
# orchestrator/tracking.py).
KIND_TAG = Tag.KIND
PARENT_KIND, TRIAL_KIND = Kind.EXPERIMENT, Kind.TRIAL
CHILD_KEY = "best_top1"  # a trial's best top-1
MEAN_KEY = "best_top1"  # its mean over the seeds, under the same key on the parent run
STD_KEY = "best_top1_std"  # its std over the seeds, on the parent run
SEEDS_KEY = "n_seeds"  # how many seeds the parent's mean is over
GROUP_TAG = Tag.EXPERIMENT  # "group by experiment" in the runs table
PARENTS_CARRY_GROUP_TAG = False  # the parents have their own tag: they group apart

SCREENSHOT = REPO / "docs" / "mlflow-ui.png"
SEEDS, EXPERIMENTS = 2, ["Benchmark", "E3"]
NAME = "ui-browser"
GRID = {
    "name": NAME,
    "dataset": "digits",
    "epochs": 2,
    "batch_size": 60,
    "seeds": SEEDS,
    "experiments": EXPERIMENTS,
    "model": {"width": 0.125},
    "training": {"train_subset": 240, "test_subset": 120, "threads": 1},
    "emissions": {"measure_power_secs": 1},
}
TIMEOUT_MS = 60_000  # first paint of the UI's bundle on 2 busy cores
WIDTH, HEIGHT = 1840, 900  # wide enough that the metric columns show


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer,
         local_ray: RayCluster) -> Experiment:
    """A finished grid, submitted through the real CLI; its MLflow experiment."""
    work = tmp_path_factory.mktemp("ui")
    path = work / "grid.yaml"
    path.write_text(yaml.safe_dump(GRID))
    out = run_cli("submit", str(path), "--tracking-uri", mlflow_server.uri, "--address",
                  local_ray.address, "--storage", str(work / "store"), "--json", cwd=work)
    assert out.returncode == 0, out.stderr[-3000:]
    experiment = MlflowClient(mlflow_server.uri).get_experiment_by_name(NAME)
    assert experiment is not None
    return experiment


@dataclass
class Seen:
    """What the runs table showed: row id -> column id -> cell text, before and after
    grouping (a run's row id is its run id, or `<group row id>.<run id>` in a group)."""

    plain: dict[str, dict[str, str]]
    grouped: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def seen(grid: Experiment, mlflow_server: MlflowServer) -> Seen:
    """Use the UI as a researcher would: open the link lessdata prints (its metric columns
    show without a click), group by experiment; screenshot the grouped view into the docs."""
    with chromium_page() as page:
        open_runs(page, runs_url(mlflow_server.uri, grid.experiment_id))
        for key in (CHILD_KEY, MEAN_KEY, STD_KEY, SEEDS_KEY):
            page.locator(f".ag-header-cell[col-id='{column(key)}']").wait_for()
        plain = read_table(page)
        group_by_tag(page, GROUP_TAG)
        grouped = read_table(page)
        page.mouse.move(0, 0)  # no hover highlight in the picture
        page.screenshot(path=str(SCREENSHOT))
    return Seen(plain, grouped)


@dataclass
class Runs:
    parents: dict[str, Run]  # run id -> the experiment's parent run
    trials: dict[str, list[Run]]  # parent run id -> its trial runs


@pytest.fixture(scope="module")
def runs(grid: Experiment, mlflow_server: MlflowServer) -> Runs:
    """The same runs through MLflow's API, to say what the page should show."""
    client = MlflowClient(mlflow_server.uri)
    found = client.search_runs([grid.experiment_id], max_results=1000)
    parents = {r.info.run_id: r for r in found if r.data.tags[KIND_TAG] == PARENT_KIND}
    trials = [r for r in found if r.data.tags[KIND_TAG] == TRIAL_KIND]
    assert len(parents) == len(EXPERIMENTS) and len(trials) == SEEDS * len(EXPERIMENTS)
    return Runs(parents, {p: [t for t in trials if t.data.tags["mlflow.parentRunId"] == p]
                          for p in parents})


def test_parents_show_the_mean_and_std_over_seeds(seen: Seen, runs: Runs) -> None:
    # Top level: one row per parent, its trials nested under it.
    assert set(seen.plain) == set(runs.parents)
    for run_id, parent in runs.parents.items():
        row = seen.plain[run_id]
        assert parent.info.run_name in row[NAME_COLUMN]
        top1 = [t.data.metrics[CHILD_KEY] for t in runs.trials[run_id]]
        assert len(top1) == SEEDS
        assert number(row[column(MEAN_KEY)]) == pytest.approx(statistics.fmean(top1))
        assert number(row[column(STD_KEY)]) == pytest.approx(statistics.stdev(top1))
        assert number(row[column(SEEDS_KEY)]) == SEEDS


def test_runs_group_by_experiment(seen: Seen, runs: Runs) -> None:
    groups = {row[NAME_COLUMN].splitlines()[-2]: (row_id, row)
              for row_id, row in seen.grouped.items() if is_group(row)}
    labels = {f"Group: {e}" for e in EXPERIMENTS}
    assert set(groups) == (labels if PARENTS_CARRY_GROUP_TAG else labels | {UNGROUPED})
    if not PARENTS_CARRY_GROUP_TAG:  # the parents, without the tag, apart in one group
        assert group_count(groups[UNGROUPED][1]) == len(runs.parents)
    for parent_id, trials in runs.trials.items():
        group_id, row = groups[f"Group: {trials[0].data.tags[GROUP_TAG]}"]
        members = {t.info.run_id for t in trials}
        if PARENTS_CARRY_GROUP_TAG:
            members.add(parent_id)
        assert group_count(row) == len(members)
        shown = {row_id.removeprefix(f"{group_id}.") for row_id in seen.grouped
                 if row_id.startswith(f"{group_id}.")}
        assert shown == members
        # MLflow's own average over the group's trials is the parent's mean.
        top1 = [t.data.metrics[CHILD_KEY] for t in trials]
        assert row[column(CHILD_KEY)].endswith("(average)")
        assert number(row[column(CHILD_KEY)]) == pytest.approx(statistics.fmean(top1))
    assert SCREENSHOT.stat().st_size > 10_000


# -- the page ------------------------------------------------------------------------------

NAME_COLUMN = "attributes.`Run Name`"
UNGROUPED = "Additional runs"  # MLflow's group of the runs without the tag


def column(metric: str) -> str:
    """The runs table's column id of a metric."""
    return f"metrics.`{metric}`"


def number(cell: str) -> float:
    return float(cell.removesuffix("(average)").strip())


def group_count(row: dict[str, str]) -> int:
    """The count MLflow shows beside a group's name."""
    return int(row[NAME_COLUMN].splitlines()[-1])


def is_group(row: dict[str, str]) -> bool:
    name = row[NAME_COLUMN].splitlines()
    return len(name) >= 2 and (name[-2].startswith("Group: ") or name[-2] == UNGROUPED)


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A fresh headless Chromium page driven by playwright: no browser download."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def open_runs(page: Any, url: str) -> None:
    """The page at ``url`` once its runs table shows."""
    page.goto(url)
    page.locator(".ag-row").first.wait_for()
    close = page.get_by_role("button", name="Close")  # the assistant panel, for room
    if close.count() == 1:
        close.click()


def group_by_tag(page: Any, tag: str) -> None:
    page.get_by_role("button", name="Group by").click()
    page.get_by_placeholder("Search").fill(tag)
    page.get_by_role("menuitemcheckbox", name=tag, exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name=f"Group by: {tag}").wait_for()
    page.locator(f".ag-row[row-id^='tag.{tag}']").first.wait_for()


READ_TABLE = """() => {
  const rows = {};
  for (const cell of document.querySelectorAll('.ag-row [col-id]')) {
    const row = cell.closest('.ag-row').getAttribute('row-id');
    (rows[row] ??= {})[cell.getAttribute('col-id')] = cell.innerText.trim();
  }
  return rows;
}"""


def read_table(page: Any) -> dict[str, dict[str, str]]:
    """The runs table as shown: row id -> column id -> the cell's text."""
    return dict(page.evaluate(READ_TABLE))
