"""Experiment grids: YAML data in ``search_spaces/``, validated, expanded into trials.

A grid names a dataset, the model and training settings, the seeds (an explicit axis),
the experiments (E-numbers and/or user-defined ones, each of which may override the
selection strategy and the epochs), the selection strategy, budget-matched baselines to
generate (``orchestrator.baselines``), the resources of one trial and the emissions
settings. Unknown keys are errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.baselines import (
    BaselineKind,
    planned_evaluations,
    short_epochs,
    uniform_schedule,
)
from orchestrator.limits import check_size
from orchestrator.recipe import Placement, Resources, Training, lift_placement
from orchestrator.record import trial_key
from orchestrator.safe_yaml import read_yaml_file
from orchestrator.search_space import Search, is_search_label, search_defaults
from orchestrator.validate import build_train_config, distinct, known_experiment, parse_model
from trainers.config import (
    DatasetChoice,
    EmissionsConfig,
    ModelChoice,
    ModelConfig,
    PluginSpec,
    SelectionName,
    TrainConfig,
)
from trainers.errors import ConfigError
from trainers.experiments import EXPERIMENTS, Source, source_of
from trainers.schedule import Benchmark, Schedule

__all__ = ["ExperimentPlan", "Grid", "Placement", "Resources", "TrialSpec", "load_grid",
           "shipped_grids", "trial_key"]

SeedCount = Annotated[int, Field(ge=1)]  # capped in orchestrator.limits
SeedList = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomExperiment(_Strict):
    """A named experiment: its own schedule (or a registered one's), selection and epochs."""

    name: Annotated[str, Field(pattern=NAME)]
    schedule: Schedule | None = None
    experiment: str | None = None
    """A registered experiment whose schedule this one uses (instead of ``schedule``)."""
    selection: SelectionName | None = None
    """Overrides the grid's selection for this experiment."""
    epochs: Annotated[int, Field(ge=1)] | None = None
    """Overrides the grid's epochs for this experiment."""

    @field_validator("experiment")
    @classmethod
    def _known_experiment(cls, name: str | None) -> str | None:
        return None if name is None else known_experiment(name)

    @model_validator(mode="after")
    def _one_schedule(self) -> CustomExperiment:
        if (self.schedule is None) == (self.experiment is None):
            raise ValueError("give exactly one of 'schedule' and 'experiment'")
        return self

    def resolved_schedule(self) -> Schedule:
        if self.schedule is not None:
            return self.schedule
        assert self.experiment is not None  # _one_schedule
        return EXPERIMENTS[self.experiment]


@dataclass(frozen=True)
class ExperimentPlan:
    """What one experiment of a grid trains: every seed of it shares this."""

    schedule: Schedule
    epochs: int
    selection: str
    twin_of: str | None = None
    """The experiment whose budget a generated baseline matches (None: not a twin)."""
    source: Source = "ours"
    """'paper' only for the paper's experiments declared as such with 'fixed' selection."""


class Grid(_Strict):
    """One experiment grid: every experiment x every seed is one trial."""

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    dataset: DatasetChoice
    """A built-in set's name, or ``{factory: "pkg.module:function", kwargs: {...}}``
    (``orchestrator.plugins``)."""
    epochs: Annotated[int, Field(ge=1)] = 300
    batch_size: Annotated[int, Field(ge=1)] = 120
    seeds: SeedCount | SeedList = 1
    experiments: list[str] = Field(default_factory=list)
    custom: list[CustomExperiment] = Field(default_factory=list)
    selection: SelectionName = "fixed"
    baselines: list[BaselineKind] = Field(default_factory=list)
    """Budget-matched twins to add for every experiment that is not full data:
    ``X-uniform`` (constant fraction) and ``X-short`` (all data, fewer epochs)."""
    model: ModelChoice = Field(default_factory=ModelConfig)
    """The capsule CNN's settings, or ``{factory: ..., kwargs: {...}}``."""
    code: list[Path] = Field(default_factory=list)
    """Folders shipped to every Ray worker (``py_modules``); relative to the grid file."""
    training: Training = Field(default_factory=Training)
    placement: Placement = Field(default_factory=Placement)
    resources: Resources = Field(default_factory=Resources)
    emissions: EmissionsConfig = Field(default_factory=EmissionsConfig)
    checkpoint_every: Annotated[int, Field(ge=1)] = 1
    """Checkpoint the whole trainer state every k epochs (and at the last)."""
    max_failures: Annotated[int, Field(ge=0)] = 2
    """Retries of a failed trial, each from its last checkpoint."""
    order_seed: Annotated[int, Field(ge=0)] = 0
    """Seeds the order trials run in (``orchestrator.order.interleave``): recorded in the
    plan, so a re-run runs in the same order."""
    search: Search | None = None
    """A schedule search run after the experiments (``orchestrator.search``, docs/search.md)."""

    @model_validator(mode="before")
    @classmethod
    def _placement_shorthand(cls, raw: Any) -> Any:
        return lift_placement(raw)

    @model_validator(mode="before")
    @classmethod
    def _search_seeds_and_benchmark(cls, raw: Any) -> Any:
        return search_defaults(raw)

    @field_validator("experiments")
    @classmethod
    def _known_experiments(cls, names: list[str]) -> list[str]:
        return [known_experiment(name) for name in names]

    @field_validator("baselines")
    @classmethod
    def _distinct_baselines(cls, baselines: list[str]) -> list[str]:
        return distinct(baselines, "baselines")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        return distinct(seeds, "seeds") if isinstance(seeds, list) else seeds

    @model_validator(mode="after")
    def _has_experiments(self) -> Grid:
        labels = self.experiments + [c.name for c in self.custom]
        if not labels:
            raise ValueError("a grid needs at least one experiment (experiments: or custom:)")
        if len(set(labels)) != len(labels):
            raise ValueError(f"experiment names must be unique, got {labels}")
        self.plans()  # twins' names must not clash with declared ones
        if self.search is not None:
            if "Benchmark" not in self.experiments:
                raise ValueError("a search needs the Benchmark, its reference "
                                 "(drop --no-benchmark)")
            taken = [name for name in labels if is_search_label(name)]
            if taken:
                raise ValueError(f"names S000, S001 ... are the search's, got {taken}")
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def train_size(self) -> int:
        """N: the training-set size after ``train_subset``."""
        if isinstance(self.dataset, PluginSpec):
            from orchestrator.plugins import plugin_dataset_info

            full = plugin_dataset_info(self.dataset, self.code).train_size
        else:
            from trainers.data import dataset_info

            full = dataset_info(self.dataset).train_size
        return min(full, self.training.train_subset or full)

    def plans(self) -> dict[str, ExperimentPlan]:
        """Experiment label -> what it trains, in grid order; twins after the declared ones."""
        # Only 'fixed' selection is the paper's reading (SELECTION_NOTE); custom: ours.
        declared = {name: ExperimentPlan(EXPERIMENTS[name], self.epochs, self.selection,
                                         source=source_of(name) if self.selection == "fixed"
                                         else "ours")
                    for name in self.experiments}
        declared.update({
            c.name: ExperimentPlan(c.resolved_schedule(), c.epochs or self.epochs,
                                   c.selection or self.selection)
            for c in self.custom
        })
        table = dict(declared)
        if self.baselines:
            n = self.train_size()
            for name, plan in declared.items():
                for kind, twin in self._twins(plan, n).items():
                    label = f"{name}-{kind}"
                    if label in table:
                        raise ValueError(f"the {kind} baseline of {name} would be named "
                                         f"{label!r}, which the grid already uses")
                    table[label] = replace(twin, twin_of=name, source="ours")
        return table

    def _twins(self, plan: ExperimentPlan, n: int) -> dict[str, ExperimentPlan]:
        """``plan``'s budget-matched twins (none for a run on all the data every epoch)."""
        anneal = self.training.anneal
        if anneal is None:
            anneal = TrainConfig.model_fields["anneal"].default
        total = planned_evaluations(plan.schedule, plan.selection, anneal, n, plan.epochs)
        if total >= n * plan.epochs:
            return {}
        twins = {
            "uniform": replace(plan, schedule=uniform_schedule(total, n, plan.epochs,
                                                               plan.selection, anneal)),
            "short": replace(plan, schedule=Benchmark(), epochs=short_epochs(total, n)),
        }
        return {kind: twins[kind] for kind in self.baselines}

    def schedules(self) -> dict[str, Schedule]:
        """Experiment label -> schedule, in grid order."""
        return {name: plan.schedule for name, plan in self.plans().items()}

    def train_config(self, experiment: str, seed: int) -> TrainConfig:
        return self._config(experiment, self.plans()[experiment], seed)

    def _config(self, experiment: str, plan: ExperimentPlan, seed: int) -> TrainConfig:
        overrides = self.training.model_dump(exclude_none=True)
        return build_train_config(
            {
                "dataset": self.dataset,
                **self.placement.model_dump(exclude_none=True),
                "experiment": experiment,
                "schedule": plan.schedule.model_dump(),
                "selection": plan.selection,
                "seed": seed,
                "epochs": plan.epochs,
                "batch_size": self.batch_size,
                "model": self.model.model_dump(),
                "emissions": self.emissions.model_dump(),
                **overrides,
            },
            where=f"grid {self.name}",
        )

    def trials(self, grid_name: str | None = None) -> list[TrialSpec]:
        """Every experiment x seed, experiments outer."""
        name = grid_name or self.name
        plans = self.plans()
        return [
            TrialSpec(
                key=trial_key(name, experiment, seed),
                grid=name,
                experiment=experiment,
                seed=seed,
                config=self._config(experiment, plans[experiment], seed),
                checkpoint_every=self.checkpoint_every,
                source=plans[experiment].source,
            )
            for experiment in plans
            for seed in self.seed_list()
        ]

    def schedule_trials(self, grid_name: str, label: str, plan: ExperimentPlan
                        ) -> list[TrialSpec]:
        """Every seed of an experiment the grid does not declare: a search's schedule."""
        return [TrialSpec(key=trial_key(grid_name, label, seed), grid=grid_name,
                          experiment=label, seed=seed, config=self._config(label, plan, seed),
                          checkpoint_every=self.checkpoint_every, source="ours")
                for seed in self.seed_list()]


class TrialSpec(_Strict):
    """What one Ray Tune trial runs; travels in the trial's param dict."""

    key: str
    grid: str
    experiment: str
    seed: int
    config: TrainConfig
    checkpoint_every: int = 1
    checkpoint_dir: str = ""
    system_metrics_uri: str | None = None
    """Where the trial's worker sends MLflow system metrics (None: it sends none)."""
    source: Source | None = None
    """``lessdata.source``: 'paper' or 'ours' (None, in plans from before the tag:
    ``source_of`` the experiment's name)."""


def shipped_grids() -> dict[str, Path]:
    """Grid name -> path of every YAML shipped in ``search_spaces``."""
    root = resources.files("search_spaces")
    return {
        Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml")
    }


def load_grid(ref: str | Path, sets: Sequence[str] = (), allow_large: bool = False,
              **overrides: Any) -> Grid:
    """A shipped grid's name or a YAML path -> validated Grid (with CLI overrides applied;
    ``sets`` are ``--set KEY=VALUE`` items, written in before the flags). Over a cap of
    ``orchestrator.limits`` it is refused unless ``allow_large``."""
    path = Path(ref)
    shipped = shipped_grids()
    if not path.suffix and str(ref) in shipped:
        path = shipped[str(ref)]
    elif not path.exists():
        raise ConfigError(
            f"no grid {str(ref)!r}: not a file and not a shipped grid "
            f"({', '.join(sorted(shipped))})"
        )
    # Bounded: size, depth, values; no aliases, no duplicate keys (orchestrator.safe_yaml).
    raw = read_yaml_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a grid file must be a YAML mapping, got {type(raw).__name__}")
    if sets:
        from orchestrator.overrides import apply_sets

        raw = apply_sets(raw, sets)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" in overrides:  # the command line's folder wins over the file's
        placement = raw.get("placement")
        placement = placement if isinstance(placement, dict) else {}
        raw["placement"] = {**placement, "data_dir": overrides.pop("data_dir")}
    raw.update(overrides)
    if isinstance(raw.get("code"), list):  # relative to the grid file, not the shell
        raw["code"] = [str((path.parent / c).resolve()) if isinstance(c, str) else c
                       for c in raw["code"]]
    grid = parse_model(Grid, raw, where=str(path) + (" with --set" if sets else ""))
    if not allow_large:
        check_size(grid)
    # Expanding checks every trial's full TrainConfig too, before any compute.
    grid.trials()
    return grid


def slug(name: str) -> str:
    """A file-system safe form of a grid or trial name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
