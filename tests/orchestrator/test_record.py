"""The MLflow record's one search and filter builder against a real server: hostile tag
values (quotes, backslashes, LIKE wildcards) are found exactly, never by accident."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator import record
from orchestrator.record import EXPERIMENT_KIND, VIEW_KEY, Tag

HOSTILE = ["it's", 'say "hi"', "back\\slash\\", "a%b_c", "axb_c", "plain", "IT'S"]


def test_search_finds_each_hostile_value_exactly(mlflow_server) -> None:
    client = record.client(mlflow_server.uri)
    experiment = record.experiment_id(client, "record-hostile", create=True)
    assert experiment is not None
    ids = {value: client.create_run(experiment, tags={Tag.GRID: value}).info.run_id
           for value in HOSTILE}
    for value in HOSTILE:
        found = record.search(client, experiment, {Tag.GRID: value})
        assert [r.info.run_id for r in found] == [ids[value]], value


def test_new_experiments_are_marked_as_model_training(mlflow_server) -> None:
    client = record.client(mlflow_server.uri)
    experiment = record.experiment_id(client, "record-kind", create=True)
    assert experiment is not None
    assert client.get_experiment(experiment).tags[Tag.EXPERIMENT_KIND] == EXPERIMENT_KIND
    assert record.experiment_id(client, "record-absent") is None


def test_experiments_carry_the_view_the_links_open(mlflow_server) -> None:
    client = record.client(mlflow_server.uri)
    old = client.create_experiment("record-view")  # made before the view existed
    assert record.experiment_id(client, "record-view", create=True) == old
    view = json.loads(client.get_experiment(old).tags[f"mlflow.sharedViewState.{VIEW_KEY}"])
    assert "metrics.`best_top1_std`" in view["selectedColumns"]
    url = record.runs_url(mlflow_server.uri, old)
    assert url == f"{mlflow_server.uri}/#/experiments/{old}/runs?viewStateShareKey={VIEW_KEY}"


def test_run_filter_quotes_only_what_it_can() -> None:
    assert record.run_filter({"a": "x"}) == "tags.`a` = 'x'"
    assert record.run_filter({"a": "it's"}) == "tags.`a` LIKE 'it_s'"


@pytest.mark.parametrize(("values", "mean", "std"), [
    ([0.5], 0.5, 0.0),
    ([0.5, 0.7], 0.6, math.sqrt(0.02)),
    ([1.0, 2.0, 3.0], 2.0, 1.0),
])
def test_mean_std_is_the_sample_std(values: list[float], mean: float, std: float) -> None:
    got = record.mean_std(values)
    assert got == pytest.approx((mean, std))


def test_mean_std_of_nothing_is_nan() -> None:
    assert all(math.isnan(v) for v in record.mean_std([]))


def test_flatten_leaves_out_none() -> None:
    assert record.flatten({"a": None, "b": {"c": 1, "d": None}}) == {"b.c": "1"}


def test_last_epoch_of_a_finished_run_comes_from_its_final_metrics(mlflow_server) -> None:
    """A finished run's last epoch is its ``epochs_trained`` (no history read); an
    unfinished one's is its history's last step; a run with no epoch yet is at 0."""
    from mlflow.entities import Metric

    from orchestrator.record import State

    client = record.client(mlflow_server.uri)
    experiment = client.create_experiment("last-epoch")
    runs = {}
    for name, state, steps, trained in [("done", State.FINISHED, [1], 3),
                                        ("running", State.RUNNING, [1, 2], None),
                                        ("new", State.RUNNING, [], None)]:
        run_id = client.create_run(experiment, tags={Tag.STATE: state}).info.run_id
        metrics = [Metric("evaluations", 10.0 * s, 0, s) for s in steps]
        if trained is not None:  # its history holds step 1 only: the answer shows the source
            metrics.append(Metric("epochs_trained", float(trained), 0, trained))
        if metrics:
            client.log_batch(run_id, metrics=metrics)
        runs[name] = client.get_run(run_id)
    assert {n: record.last_epoch(client, r) for n, r in runs.items()} == {
        "done": 3, "running": 2, "new": 0}
