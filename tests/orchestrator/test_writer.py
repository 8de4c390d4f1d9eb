"""The writer's lanes: writes of different runs go in parallel, one run's in order, a write
waits for the lanes it comes after, a barrier for everything; waiting batches of one run go
as one request, and a merged request the server refuses is sent again part by part."""

from __future__ import annotations

import threading
import time
from functools import partial

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from orchestrator.writer import Batch, Writer


def _log(done: list[str], name: str) -> None:
    time.sleep(0.01)  # long enough for another thread to overtake if order were lost
    done.append(name)


def test_a_held_lane_does_not_hold_the_others_and_each_lane_keeps_its_order() -> None:
    gate, done = threading.Event(), []
    with Writer("test-lanes", threads=4) as writer:
        writer.put("held", gate.wait, lane="a")
        writer.put("a1", partial(_log, done, "a1"), lane="a")
        for i in range(5):
            writer.put(f"b{i}", partial(_log, done, f"b{i}"), lane="b")
        writer.put("after a", partial(_log, done, "after a"), lane="c", after=["a"])
        writer.put("c1", partial(_log, done, "c1"), lane="c")
        assert not writer.flush(timeout_s=1.0)
        assert done == [f"b{i}" for i in range(5)]  # a and c (behind a) wait, b went on
        assert writer.pending == 4  # held (in flight), a1, after a, c1
        gate.set()
        assert writer.flush(timeout_s=10)
    assert done[5:] == ["a1", "after a", "c1"]


def test_a_barrier_waits_for_every_earlier_write_and_holds_every_later_one() -> None:
    gate, done = threading.Event(), []
    with Writer("test-barrier", threads=4) as writer:
        writer.put("held", gate.wait, lane="a")
        writer.put("barrier", partial(_log, done, "barrier"))
        writer.put("b1", partial(_log, done, "b1"), lane="b")
        assert not writer.flush(timeout_s=0.5)
        assert done == []
        gate.set()
        assert writer.flush(timeout_s=10)
    assert done == ["barrier", "b1"]


def test_waiting_batches_of_one_run_go_as_one_request_in_order(mlflow_server) -> None:
    client = MlflowClient(mlflow_server.uri)
    run_id = client.create_run(client.create_experiment("writer-merge")).info.run_id
    run, gate = partial(str, run_id), threading.Event()
    with Writer("test-merge") as writer:
        writer.put("held", gate.wait, lane="run")
        for step in range(1, 6):
            writer.put(f"epoch {step}", Batch(client, run, (Metric("top1", step / 10, 0, step),)),
                       lane="run")
        gate.set()
        assert writer.flush(timeout_s=60)
    assert writer.rejected == [] and writer.requests == 2  # the gate, then one batch
    history = client.get_metric_history(run_id, "top1")
    assert [(m.step, m.value) for m in history] == [(s, s / 10) for s in range(1, 6)]


def test_a_refused_merge_is_sent_again_part_by_part_and_only_the_bad_part_drops(
        mlflow_server) -> None:
    client = MlflowClient(mlflow_server.uri)
    run_id = client.create_run(client.create_experiment("writer-merge-bad")).info.run_id
    client.log_param(run_id, "p", "1")
    run, gate = partial(str, run_id), threading.Event()
    with Writer("test-merge-bad") as writer:
        writer.put("held", gate.wait, lane="run")
        writer.put("epoch 1", Batch(client, run, (Metric("top1", 0.1, 0, 1),)), lane="run")
        writer.put("changed param", Batch(client, run, params=(Param("p", "2"),)), lane="run")
        writer.put("epoch 2", Batch(client, run, (Metric("top1", 0.2, 0, 2),)), lane="run")
        gate.set()
        assert writer.flush(timeout_s=60)
    assert [(r.what, r.status) for r in writer.rejected] == [("changed param", 400)]
    history = client.get_metric_history(run_id, "top1")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2)]


def test_batches_merge_within_mlflows_limits_and_only_for_one_run() -> None:
    from mlflow.entities import RunTag

    run, other = partial(str, "r1"), partial(str, "r2")
    metrics = tuple(Metric("m", 0.0, 0, s) for s in range(600))
    big = Batch(None, run, metrics, tags=(RunTag("t", "1"),))
    assert big.merged(Batch(None, run, metrics)) is None  # 1,200 metrics > 1,000
    assert big.merged(Batch(None, other, ())) is None  # another run
    assert Batch(None, run, params=(Param("p", "1"),)).merged(
        Batch(None, run, params=(Param("p", "1"),))) is None  # a param twice
    joined = big.merged(Batch(None, run, metrics[:10], tags=(RunTag("t", "2"),)))
    assert joined is not None and len(joined.metrics) == 610
    assert [(t.key, t.value) for t in joined.tags] == [("t", "2")]  # the later value
