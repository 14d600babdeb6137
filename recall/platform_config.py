"""The platform's params sections: where runs are tracked, swept and scheduled.

None of them changes a stage's outputs; they say where the work runs and where its
records go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SearchDim:
    """One sweep dimension: float/int over [low, high] (log-scaled if `log`), or choices."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[int | float | str, ...] = ()


@dataclass(frozen=True)
class SweepConfig:
    """An Optuna study over dotted params keys; the objective is val greedy accuracy after GRPO."""

    study: str
    storage_env: str  # env var holding the RDB URL (it has a password: never in params or MLflow)
    n_trials: int  # COMPLETE + PRUNED trials, across all workers
    sampler_seed: int
    eval_every_steps: int  # intermediate val accuracy, reported for pruning
    pruner_warmup_steps: int
    heartbeat_interval_s: int  # a trial that stops beating for grace_period_s is failed...
    grace_period_s: int
    max_retry: int  # ...and re-queued this many times
    space: dict[str, SearchDim]


@dataclass(frozen=True)
class ClusterConfig:
    """What the recall CLI fills into the rendered k8s/ manifests."""

    overlay: str
    namespace: str
    kubernetes_version: str  # the manifests are validated against this version's schema
    judge_replicas: int  # judge Deployment replicas behind one Service (requests spread)
    judge_tensor_parallel: int
    nodes: int
    gpus_per_node: int
    job_timeout_s: int


@dataclass(frozen=True)
class TrackingConfig:
    uri: str  # MLFLOW_TRACKING_URI overrides
    log_models: bool
