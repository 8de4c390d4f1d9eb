"""ReleaseCallback against a real Tune run: every callback before it still reads an ended
trial's whole last result; afterwards Tune holds only its own keys and no statistics."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, RayCluster

pytestmark = pytest.mark.slow

# Run in its own driver process (one ray.init per process); prints what it saw as JSON.
SCRIPT = '''
import json, sys
import ray
from ray import tune
from orchestrator.callbacks import RELEASED_KEYS, ReleaseCallback
from orchestrator.results import REPORT_KEY

ray.init(address=sys.argv[1], logging_level="ERROR")


def trainable(config):
    for i in range(3):
        tune.report({REPORT_KEY: "x" * 10_000, "epoch": i + 1})


class Probe(tune.Callback):
    def __init__(self):
        self.at_end, self.trials = {}, []

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.at_end[trial.trial_id] = sorted(trial.last_result)
        self.trials.append(trial)


probe = Probe()
tuner = tune.Tuner(
    tune.with_resources(trainable, {"cpu": 1}),
    param_space={"seed": tune.grid_search([0, 1])},
    run_config=tune.RunConfig(storage_path=sys.argv[2], callbacks=[probe, ReleaseCallback()],
                              verbose=0))
tuner.fit()
print(json.dumps({
    "released": sorted(RELEASED_KEYS),
    "at_end": probe.at_end,
    "after": {t.trial_id: sorted(t.last_result) for t in probe.trials},
    "statistics": {t.trial_id: len(t.run_metadata.metric_analysis) for t in probe.trials},
    "state_json": {t.trial_id: len(t.run_metadata.get_json_state()) for t in probe.trials},
}))
'''


def test_an_ended_trial_keeps_only_tunes_keys(tmp_path: Path, local_ray: RayCluster) -> None:
    out = subprocess.run([str(BIN / "python"), "-c", SCRIPT, local_ray.address,
                          str(tmp_path / "tune")], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["released"] == ["config", "lessdata_report"]
    assert len(seen["at_end"]) == 2
    for trial, keys in seen["at_end"].items():
        # the callbacks before it saw the whole result: the report, the config, Tune's keys
        assert {"lessdata_report", "config", "epoch", "training_iteration"} <= set(keys)
        after = seen["after"][trial]
        assert after == sorted(set(keys) - {"lessdata_report", "config"}), after
        assert seen["statistics"][trial] == 0
        assert seen["state_json"][trial] < 2_000  # the 10 KB report is gone from it too
