"""How many trials one Tune run holds: the setting and its refusal (the split itself runs
end to end in test_submit_e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.submit import TRIALS_PER_RUN, trials_per_run
from tests.conftest import free_port, run_cli
from trainers.errors import ConfigError

VAR = "LESSDATA_TRIALS_PER_RUN"


def test_default_and_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    assert trials_per_run() == TRIALS_PER_RUN
    monkeypatch.setenv(VAR, " 7 ")
    assert trials_per_run() == 7


@pytest.mark.parametrize("raw", ["0", "-3", "2.5", "many"])
def test_a_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ConfigError, match=f"{VAR}='{raw}': must be a whole number >= 1"):
        trials_per_run()


def test_the_cli_refuses_it_before_writing_or_connecting(tmp_path: Path) -> None:
    """One line, exit 2, nothing written: not the storage, not the tracking store; the
    cluster address leads nowhere, so a check made after connecting would fail otherwise."""
    work = tmp_path / "work"
    work.mkdir()
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"name": "per-run", "dataset": "digits", "epochs": 1,
                                    "seeds": 1, "experiments": ["Benchmark"]}))
    out = run_cli("submit", str(grid), "--address", f"127.0.0.1:{free_port()}",
                  "--tracking-uri", f"sqlite:///{work}/mlflow.db", "--storage",
                  str(work / "store"), cwd=work, env={VAR: "0"}, timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and f"{VAR}='0'" in lines[0], lines
    assert list(work.iterdir()) == []
