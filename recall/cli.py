"""The `recall` command: sweeps (local or as cluster workers) and Kubernetes submission.

    recall sweep run --workers 2          # create the study, run local workers, print the best
    recall sweep create | worker          # the two halves, as the cluster's sweep Jobs run them
    recall render [--overlay DIR] [-o FILE]
    recall submit [--stage train@grpo] [--overlay DIR]   # default: the whole experiment
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
    from recall.contract import read_items

    params = load_params(args.params)
    url = sweep.storage_url(params.sweep)
    if args.action in ("create", "run"):
        sweep.create_study(params, url)
    if args.action == "worker":
        sweep.run_worker(params, url, Path(args.base), read_items(args.items))
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
    from recall.cluster import render

    params = load_params(args.params)
    text = yaml.safe_dump_all(render(params, args.overlay), sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _submit(args) -> int:
    from kubernetes import client, config

    from recall.cluster import render, run_job, stage_job

    params = load_params(args.params)
    manifest = stage_job(render(params, args.overlay), params, args.stage)
    if args.in_cluster:
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return run_job(client.BatchV1Api(), client.CoreV1Api(), manifest, params.cluster.namespace,
                   params.cluster.job_timeout_s)


def _serve_judge(args) -> int:
    from recall.judge.server import run_with_judge

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("recall serve-judge: name the command to run, e.g. `recall serve-judge -- dvc "
              "repro`", file=sys.stderr)
        return 2
    return run_with_judge(load_params(args.params).judge, cmd)


def _ui(args) -> int:
    from recall.tracking import TRAINING_VIEW, compare_url, runs_url, tracking_uri, variant_runs

    params = load_params(args.params)
    store = tracking_uri(params)
    remote = store.startswith(("http://", "https://"))  # a tracking server is the UI itself
    ui = store if remote else f"http://{args.host}:{args.port}"
    try:
        experiment, variants = variant_runs(store, params.experiment.name)
    except ValueError as err:
        print(f"recall ui: {err}", file=sys.stderr)
        return 1
    print(f"recall ui: training runs at {runs_url(ui, experiment)}")
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
    from recall.plan import problems, render

    params = load_params(args.params)
    found = problems(params)
    if found:
        for problem in found:
            print(f"recall plan: {args.params}: {problem}", file=sys.stderr)
        return 1
    print(render(params))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="recall", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("sweep", help="Optuna sweep (storage URL from $sweep.storage_env)")
    sw.add_argument("action", choices=["create", "worker", "run"])
    sw.add_argument("--workers", type=int, default=2, help="local worker processes (run)")
    sw.add_argument("--base", default="models/base", help="model GRPO starts from")
    sw.add_argument("--items", default="data/validated/items.jsonl")
    sw.set_defaults(func=_sweep)
    rd = sub.add_parser("render", help="render k8s/ with params filled in")
    rd.add_argument("--overlay")
    rd.add_argument("-o", "--out")
    rd.set_defaults(func=_render)
    sm = sub.add_parser("submit", help="run a stage or the experiment as a Kubernetes Job")
    sm.add_argument("--stage", help="train@grpo; default: the whole `dvc repro`")
    sm.add_argument("--overlay")
    sm.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    sm.set_defaults(func=_submit)
    pl = sub.add_parser("plan", help="check params and print the per-stage cost of the run")
    pl.add_argument("--params", default=argparse.SUPPRESS, help="(also accepted here)")
    pl.set_defaults(func=_plan)
    sj = sub.add_parser("serve-judge", help="run a command with the judge served once for it")
    sj.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    sj.set_defaults(func=_serve_judge)
    ui = sub.add_parser("ui", help="serve the MLflow UI on the tracking store, opening on runs")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)
    from recall.errors import run_stage

    # Parsed inside run_stage, which first takes --debug out of the command line.
    return run_stage(lambda: (lambda args: args.func(args))(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
