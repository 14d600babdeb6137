"""Stage `validate`: Great Expectations suites over the deduplicated splits; fails on leakage.

    dvc repro validate   # dvc.yaml's cmd passes every input and output path
Runs schema, leakage and distribution suites in one Checkpoint (recall/checks.py) over
data/dedup/items.jsonl and the dedup report. Data Docs go to reports/gx and MLflow either way;
metrics/validate.json counts the results. On success the splits are copied to
data/validated/items.jsonl, the only items file later stages read; on failure the stage exits
non-zero, naming each failed expectation and its offending items, and `dvc repro` stops.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recall.checks import run_checks
from recall.config import load_params
from recall.contract import SPLITS, read_items, write_json, write_jsonl
from recall.dedup import read_report
from recall.errors import run_stage
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dedup", type=Path, required=True)
    ap.add_argument("--docs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "validate"):
        import mlflow

        items = read_items(args.dedup / "items.jsonl")
        report = read_report(args.dedup / "report.jsonl")
        # Every split the model does not train on is checked, whatever dedup was told to clean.
        targets = tuple(s for s in SPLITS if s not in params.dedup.references)
        ok, failures, counts = run_checks(items, report, targets, params.dedup.references,
                                          args.docs, params.validate.near_duplicate_similarity)
        summary = {"success": ok, "suites": counts,
                   "failures": [{"suite": f.suite, "expectation": f.expectation,
                                 "column": f.column, "offending": list(f.offending[:100]),
                                 "count": len(f.offending)} for f in failures]}
        write_json(args.metrics, summary)
        mlflow.log_artifacts(str(args.docs), artifact_path="data_docs")
        mlflow.log_metrics({"validate_success": float(ok),
                            "validate_failed_expectations": float(len(failures))})
        if not ok:
            lines = "\n".join("  " + f.describe() for f in failures)
            sys.exit(f"validate: the splits in {args.dedup / 'items.jsonl'} fail "
                     f"{len(failures)} expectation(s); later stages will not run:\n{lines}\n"
                     f"Data Docs: {args.docs / 'index.html'}")
        write_jsonl(args.out, items)


if __name__ == "__main__":
    run_stage(main)
