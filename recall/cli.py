"""The `recall` command: sweeps (local or as cluster workers) and Kubernetes submission.

    recall sweep run --workers 2          # create the study, run local workers, print the best
    recall sweep create | worker          # the two halves, as the cluster's sweep Jobs run them
    recall sweep trial ...                # one rank of a trial a worker launched (internal)
    recall sweep submit [--workers 4]     # both halves as cluster Jobs, one after the other
    recall render [--overlay DIR] [--jobs] [-o FILE]   # services for kubectl apply (--jobs: review)
    recall submit [--staging | --stage train@grpo [--commit]] [--dry-run]   # default: the experiment
    recall repro [TARGET...] [--commit]   # what a cluster Job runs: dvc repro on the workspace
    recall fetch RUN_ID [--remote URL]    # a cluster run's results into this checkout
    recall workspace DIR                  # create the workspace volume's directories
    recall serve-judge -- dvc repro   # one judge server for every stage of the run
    recall ui [--port 5000]           # the MLflow UI on the tracking store, training-runs view
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from recall.config import load_params


def _sweep(args) -> int:
    from recall import sweep

    params = load_params(args.params)
    if args.action == "submit":
        return _submit_all(args, params, [("sweep-create", None), ("sweep-worker", args.workers)])
    url = sweep.storage_url(params.sweep)
    if args.action in ("create", "run"):
        sweep.create_study(params, url)
    if args.action == "worker":
        sweep.run_worker(params, url, Path(args.base), Path(args.items))
    if args.action == "trial":  # one rank of a launched trial (the worker starts it)
        if args.trial_id is None or not args.run_id or not args.out:
            raise SystemExit("recall sweep trial: --trial-id, --run-id and --out are required "
                             "(a sweep worker launches this; run `recall sweep worker`)")
        sweep.run_trial_rank(params, url, args.trial_id, args.run_id, Path(args.base),
                             Path(args.items), Path(args.out))
    if args.action == "run":
        cmd = [sys.executable, "-m", "recall.cli", "--params", args.params, "sweep", "worker",
               "--base", args.base, "--items", args.items]
        workers = [subprocess.Popen(cmd) for _ in range(args.workers)]
        codes = [w.wait() for w in workers]
        if any(codes):
            print(f"recall sweep: worker exit codes {codes}", file=sys.stderr)
            return 1
        import optuna

        study = optuna.load_study(study_name=params.sweep.study,
                                  storage=sweep.rdb_storage(params.sweep, url))
        print(json.dumps(sweep.summary(study), indent=2))
    return 0


def _render(args) -> int:
    from recall.cluster import job_templates, render

    params = load_params(args.params)
    objs = job_templates(params, args.overlay) if args.jobs else render(params, args.overlay)
    text = yaml.safe_dump_all(objs, sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _submit(args) -> int:
    what = "staging" if args.staging else args.stage or "experiment"
    return _submit_all(args, load_params(args.params), [(what, None)], commit=args.commit)


def _submit_all(args, params, plan: list[tuple[str, int | None]], commit: bool = False) -> int:
    """Submit each (what, workers) in order, stopping at the first that fails."""
    from recall.cluster import job_templates
    from recall.submission import run_submission, submission

    templates = job_templates(params, args.overlay)
    subs = [submission(templates, params, what, workers, commit) for what, workers in plan]
    if args.dry_run:
        sys.stdout.write(yaml.safe_dump_all([o for s in subs for o in s.objects()],
                                            sort_keys=False))
        return 0
    from kubernetes import client, config

    if args.in_cluster:
        config.load_incluster_config()
    else:
        config.load_kube_config()
    for sub in subs:
        code = run_submission(client.BatchV1Api(), client.CoreV1Api(), sub,
                              params.cluster.namespace, params.cluster.job_timeout_s)
        if code:
            return code
    return 0


def _repro(args) -> int:
    from recall.workspace import LOCK, repro, uncached_outputs

    def publish() -> str:
        from recall.tracking import publish_workspace

        return publish_workspace(load_params(args.params), [LOCK, *uncached_outputs()])
    # On the cluster (its ConfigMap sets the tracking URI) the results travel through MLflow.
    return repro(args.targets, commit=args.commit,
                 publish=publish if os.environ.get("MLFLOW_TRACKING_URI") else None)


def _fetch(args) -> int:
    from recall.tracking import tracking_uri
    from recall.workspace import fetch

    files = fetch(args.run_id, tracking_uri(load_params(args.params)), remote=args.remote)
    print(f"recall fetch: {len(files)} files from MLflow run {args.run_id}: "
          f"{', '.join(map(str, files))}")
    if not args.remote:
        print("recall fetch: cached outputs not pulled; pass --remote (the cluster's DVC remote)")
    return 0


def _workspace(args) -> int:
    from recall.workspace import init_workspace

    for path in init_workspace(Path(args.root)):
        print(f"recall workspace: {path}")
    return 0


def _serve_judge(args) -> int:
    from recall.judge.server import run_with_judge

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("recall serve-judge: name the command to run, e.g. `recall serve-judge -- dvc "
              "repro`", file=sys.stderr)
        return 2
    params = load_params(args.params)
    return run_with_judge(params.judge, cmd, params.compute)


def _ui(args) -> int:
    from recall.tracking import (
        TRAINING_VIEW,
        compare_url,
        is_server,
        runs_url,
        share_headline_view,
        tracking_uri,
        variant_runs,
    )

    params = load_params(args.params)
    store = tracking_uri(params)
    remote = is_server(store)  # a tracking server is the UI itself
    ui = store if remote else f"http://{args.host}:{args.port}"
    try:
        experiment, variants = variant_runs(store, params.experiment.name)
    except ValueError as err:
        print(f"recall ui: {err}", file=sys.stderr)
        return 1
    view = share_headline_view(experiment)  # the headline metrics as the table's columns
    print(f"recall ui: training runs at {runs_url(ui, experiment, view)}")
    if len(variants) > 1:
        print(f"recall ui: the two newest variants side by side at "
              f"{compare_url(ui, experiment, variants[:2])}")
    if remote:
        print(f"recall ui: {store} serves the UI itself; links to it need ?{TRAINING_VIEW}")
        return 0
    sys.stdout.flush()
    # exec, not a child: stopping `recall ui` stops the server (no orphan holding the port)
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                              store, "--host", args.host, "--port", str(args.port)])


def _plan(args) -> int:
    from recall.footprint import Rates
    from recall.plan import problems, render

    params = load_params(args.params)
    rates = Rates(args.judge_calls_per_s, args.samples_per_s_per_gpu,
                  args.train_tokens_per_s_per_gpu)
    found = problems(params)
    if found:
        for problem in found:
            print(f"recall plan: {args.params}: {problem}", file=sys.stderr)
        return 1
    print(render(params, rates=rates))
    return 0


def _cluster_args(p) -> None:
    p.add_argument("--overlay", help="default: cluster.overlay")
    p.add_argument("--dry-run", action="store_true", help="print the objects, create nothing")
    p.add_argument("--in-cluster", action="store_true", help="use the pod's service account")


def _sweep_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="Optuna sweep (storage URL from $sweep.storage_env)")
    sw.add_argument("action", choices=["create", "worker", "run", "submit", "trial"])
    sw.add_argument("--workers", type=int, default=2,
                    help="local worker processes (run) or worker pods (submit)")
    sw.add_argument("--base", default="models/base", help="model GRPO starts from")
    sw.add_argument("--items", default="data/validated/items.jsonl")
    trial = sw.add_argument_group("trial (one rank of a launched trial; a worker starts it)")
    trial.add_argument("--trial-id", type=int, help="the Optuna trial's storage id")
    trial.add_argument("--run-id", help="the trial's MLflow run")
    trial.add_argument("--out", help="the trial's scratch directory (the model, outcome.json)")
    _cluster_args(sw)
    sw.set_defaults(func=_sweep)


def build_parser() -> argparse.ArgumentParser:
    """The `recall` command line (the tests parse every container command with it)."""
    ap = argparse.ArgumentParser(prog="recall", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="command", required=True)
    _sweep_parser(sub)
    rd = sub.add_parser("render", help="render k8s/ services with params filled in")
    rd.add_argument("--overlay")
    rd.add_argument("--jobs", action="store_true",
                    help="the Job templates instead (to read; `recall submit` creates Jobs)")
    rd.add_argument("-o", "--out")
    rd.set_defaults(func=_render)
    sm = sub.add_parser("submit", help="run the experiment, a stage or staging as a Kubernetes Job")
    what = sm.add_mutually_exclusive_group()
    what.add_argument("--stage", help="train@grpo; default: the whole `dvc repro`")
    what.add_argument("--staging", action="store_true", help="stage models and datasets")
    sm.add_argument("--commit", action="store_true",
                    help="record a multi-node stage's outputs (dvc commit) instead of running it")
    _cluster_args(sm)
    sm.set_defaults(func=_submit)
    rp = sub.add_parser("repro", help="dvc repro on the workspace volume (a cluster Job's command)")
    rp.add_argument("targets", nargs="*")
    rp.add_argument("--commit", action="store_true", help="dvc commit the targets instead")
    rp.set_defaults(func=_repro)
    ft = sub.add_parser("fetch", help="a cluster run's results into this checkout")
    ft.add_argument("run_id", help="the variant's MLflow parent run (`recall repro` logs it)")
    ft.add_argument("--remote", help="the cluster's DVC remote URL (s3://...): dvc pull it too")
    ft.set_defaults(func=_fetch)
    ws = sub.add_parser("workspace", help="create the workspace volume's directories")
    ws.add_argument("root")
    ws.set_defaults(func=_workspace)
    pl = sub.add_parser("plan", help="check params and print the per-stage cost of the run")
    pl.add_argument("--params", default=argparse.SUPPRESS, help="(also accepted here)")
    from recall.footprint import Rates

    pl.add_argument("--judge-calls-per-s", type=float, default=Rates.judge_calls_per_s,
                    help="judge verdicts per second per replica (hours)")
    pl.add_argument("--samples-per-s-per-gpu", type=float, default=Rates.samples_per_s_per_gpu,
                    help="answers sampled per second per GPU (hours)")
    pl.add_argument("--train-tokens-per-s-per-gpu", type=float,
                    default=Rates.train_tokens_per_s_per_gpu,
                    help="training tokens per second per GPU (hours)")
    pl.set_defaults(func=_plan)
    sj = sub.add_parser("serve-judge", help="run a command with the judge served once for it")
    sj.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sj.set_defaults(func=_serve_judge)
    ui = sub.add_parser("ui", help="serve the MLflow UI on the tracking store, opening on runs")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    from recall.errors import run_stage

    # Parsed inside run_stage, which first takes --debug out of the command line.
    return run_stage(lambda: (lambda args: args.func(args))(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
