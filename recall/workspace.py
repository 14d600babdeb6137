"""What a cluster Job runs: `dvc repro` against the workspace volume and the DVC remote.

A pod's /app is the image: the code, dvc.yaml, and the dvc.lock it was built with. Stage
outputs live on the workspace volume (k8s/jobs/workspace.yaml mounts data/, models/, runs/,
cache/, metrics/, plots/, reports/, .dvc/cache and checkpoints/ there), so what one Job
writes the next one reads. The lock that describes those outputs is the workspace's, kept
in .recall/dvc.lock on the volume: restored before the run, saved after it, even a failed
one (DVC records each stage as it completes). With $RECALL_DVC_REMOTE set (the cluster
ConfigMap), outputs are pulled from and pushed to that S3 remote. With $MLFLOW_TRACKING_URI
set (the ConfigMap again), the lock and the outputs DVC does not cache (metrics, plots,
reports) are logged to the variant's MLflow parent run after every Job, so one command on a
laptop, `recall fetch RUN_ID`, brings both: those files from MLflow, the rest by `dvc pull`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

# The workspace volume's directories, by subPath (k8s/jobs/workspace.yaml mounts each one;
# tests/test_cluster.py checks the two agree).
WORKSPACE_DIRS = ("data", "models", "runs", "cache", "metrics", "plots", "reports",
                  "dvc-cache", "state")
LOCK = Path("dvc.lock")
SAVED_LOCK = Path(".recall/dvc.lock")  # the `state` subPath
REMOTE = "cluster"


def init_workspace(root: Path) -> list[Path]:
    """Create the workspace's directories as the calling user (the pod's uid): a subPath the
    kubelet creates itself belongs to root."""
    made = []
    for name in WORKSPACE_DIRS:
        path = root / name
        path.mkdir(parents=True, exist_ok=True)
        made.append(path)
    return made


def remote_commands(url: str, endpoint: str | None) -> list[list[str]]:
    """DVC commands that set the cluster's remote in .dvc/config.local (never committed).

    >>> remote_commands("s3://b/c", "http://minio:9000")[1]
    ['dvc', 'remote', 'modify', '--local', 'cluster', 'endpointurl', 'http://minio:9000']
    """
    cmds = [["dvc", "remote", "add", "--local", "--force", REMOTE, url]]
    if endpoint:
        cmds.append(["dvc", "remote", "modify", "--local", REMOTE, "endpointurl", endpoint])
    return cmds


def repro_commands(targets: Sequence[str], commit: bool, remote: bool,
                   missing: Sequence[str] | None = None) -> list[list[str]]:
    """The DVC commands of one Job, in order: pull, repro (or commit), push.

    The pull fills in what the volume lacks, `missing` (None: all the lock names), and never
    touches an output the volume has: a Job killed mid-stage leaves newer outputs there
    (finished seeds, `persist`), which the rerun keeps and a pull would refuse to overwrite.
    A commit pulls nothing: the outputs it records are on the volume.

    >>> repro_commands(["train@grpo"], commit=False, remote=True)
    [['dvc', 'pull', '-r', 'cluster', '--allow-missing'], ['dvc', 'repro', 'train@grpo'], \
['dvc', 'push', '-r', 'cluster']]
    >>> repro_commands(["train@grpo"], commit=False, remote=True, missing=["models/base"])[0]
    ['dvc', 'pull', '-r', 'cluster', '--allow-missing', 'models/base']
    >>> repro_commands(["train@grpo"], commit=False, remote=True, missing=[])[0]
    ['dvc', 'repro', 'train@grpo']
    >>> repro_commands(["train@grpo"], commit=True, remote=True)
    [['dvc', 'commit', '--force', 'train@grpo'], ['dvc', 'push', '-r', 'cluster']]
    """
    work = ["dvc", "commit", "--force", *targets] if commit else ["dvc", "repro", *targets]
    push = [["dvc", "push", "-r", REMOTE]] if remote else []
    if commit or not remote or missing == []:
        return [work, *push]
    return [["dvc", "pull", "-r", REMOTE, "--allow-missing", *(missing or [])], work, *push]


def missing_outputs(lock: Path = LOCK, root: Path = Path(".")) -> list[str] | None:
    """The cached outputs `lock` names that are not on the volume (None: no lock yet). Only
    cached ones: a pull brings nothing else (metrics, checkpoints), and names no other."""
    import yaml

    data = yaml.safe_load(lock.read_text()) if lock.exists() else None
    if not isinstance(data, dict):  # no lock yet, or not one DVC wrote: pull everything
        return None
    stages = data.get("stages", {})
    locked = {out["path"] for stage in stages.values() for out in stage.get("outs", [])}
    return sorted(p for p in locked & stage_outputs(root) if not (root / p).exists())


def stage_outputs(root: Path = Path("."), cached: bool = True) -> set[str]:
    """The stage outputs dvc.yaml has DVC cache (`cached`: what `dvc pull` can bring), or
    the others (metrics, plots, reports, checkpoints)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {str(out) for stage in repo.index.stages for out in stage.outs
                if out.use_cache == cached}


def _run(cmd: list[str]) -> int:
    print(f"[recall] {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd).returncode


def repro(targets: Sequence[str], commit: bool = False,
          env: dict[str, str] | None = None, run: Callable[[list[str]], int] = _run,
          publish: Callable[[], str] | None = None) -> int:
    """Restore the workspace's lock, configure the remote, run the DVC commands, save the
    lock, then `publish` (the lock and uncached outputs to MLflow); the exit code of the
    first command that failed (0 when none did; 1 when only publishing failed: the outputs
    exist but cannot travel)."""
    env = os.environ if env is None else env
    if SAVED_LOCK.exists():
        shutil.copyfile(SAVED_LOCK, LOCK)
    url = env.get("RECALL_DVC_REMOTE", "")
    for cmd in remote_commands(url, env.get("AWS_ENDPOINT_URL")) if url else []:
        if code := run(cmd):
            return code
    code = 0
    try:
        for cmd in repro_commands(targets, commit, remote=bool(url), missing=missing_outputs()):
            if code := run(cmd):
                print(f"[recall] {' '.join(cmd)} failed with exit code {code}", file=sys.stderr)
                break
    finally:
        if LOCK.exists() and SAVED_LOCK.parent.is_dir():
            shutil.copyfile(LOCK, SAVED_LOCK)
    if publish is not None:  # a failed Job's partial results too: what its stages finished
        try:
            print(f"[recall] outputs logged to MLflow run {publish()}: `recall fetch` them",
                  flush=True)
        except Exception as e:  # any failure: say so, never pass quietly
            print(f"[recall] could not log the lock and uncached outputs to MLflow: {e}",
                  file=sys.stderr)
            return code or 1
    return code


def uncached_outputs(root: Path = Path(".")) -> list[Path]:
    """The stage outputs DVC does not cache, that exist as files (metrics, plots, reports):
    what `dvc pull` cannot bring. Checkpoint directories are not results, and stay."""
    return sorted(Path(p) for p in stage_outputs(root, cached=False) if (root / p).is_file())


def fetch(run_id: str, tracking: str, dest: Path = Path("."),
          remote: str | None = None, run: Callable[[list[str]], int] = _run) -> list[Path]:
    """A cluster run's results into the checkout at `dest`: the dvc.lock and uncached outputs
    `run_id` holds (`recall.tracking.publish_workspace`), then, with `remote` (the cluster's
    DVC remote URL), `dvc pull` of the cached outputs that lock names. Returns the files."""
    import tempfile

    import mlflow

    from recall.tracking import WORKSPACE_ARTIFACTS

    missing = RuntimeError(f"MLflow run {run_id} at {tracking} holds no "
                           f"{WORKSPACE_ARTIFACTS}/dvc.lock: not a variant run a cluster Job "
                           f"logged to (`recall repro` prints the run id)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            got = Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=WORKSPACE_ARTIFACTS, dst_path=tmp,
                tracking_uri=tracking))
        except mlflow.exceptions.MlflowException as e:
            raise missing from e
        files = sorted(p.relative_to(got) for p in got.rglob("*") if p.is_file())
        if Path("dvc.lock") not in files:
            raise missing
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(got / rel, dest / rel)
    if remote:
        for cmd in [*remote_commands(remote, os.environ.get("AWS_ENDPOINT_URL")),
                    ["dvc", "pull", "-r", REMOTE, "--allow-missing"]]:
            if code := run(cmd):
                raise RuntimeError(f"{' '.join(cmd)} failed with exit code {code}")
    return files
