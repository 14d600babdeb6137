"""Stage `dedup`: remove val/test items whose fact is asked by a training item.

    dvc repro dedup   # dvc.yaml's cmd passes every input and output path
Reads data/splits/items.jsonl. Writes data/dedup/items.jsonl (the splits without leaks),
data/dedup/report.jsonl (every verified candidate pair, its verdict and reasoning),
reports/dedup.md (counts and flagged examples) and metrics/dedup.json. Where every item has a
fact (the toy world), dedup is scored against it: precision and recall of the removals, and
how many planted same-answer distractors were wrongly removed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, write_json, write_jsonl
from recall.dedup import deduplicate, open_verifier, report_markdown, score
from recall.errors import run_stage
from recall.tracking import log_to_parent, stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--planted", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True, help="the removed pairs, as markdown")
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "dedup") as run:
        import mlflow

        items = read_items(args.items)
        cfg = params.dedup
        questions = [it.question for it in items if it.split in cfg.targets + cfg.references]
        with open_verifier(cfg, params.judge, questions, params.compute) as verifier:
            kept, report, summary = deduplicate(items, cfg, verifier)
        removed = {it.id for it in items} - {it.id for it in kept}
        truth = score(items, removed, cfg)
        if truth is not None:
            summary["score"] = truth
            if params.data.source == "world" and args.planted.exists():
                planted = json.loads(args.planted.read_text())
                summary["score"]["planted_distractors_removed"] = len(
                    removed & set(planted["distractors"]))
                summary["score"]["planted_distractors"] = len(planted["distractors"])
        write_jsonl(args.out / "items.jsonl", kept)
        write_jsonl(args.out / "report.jsonl", report)
        write_json(args.metrics, summary)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report_markdown(summary, report))

        headline = {"dedup_candidate_pairs": summary["candidate_pairs"],
                    "dedup_contained_pairs": summary["contained_pairs"],
                    **{f"dedup_removed_{s}": n for s, n in summary["removed"].items()}}
        if truth is not None:
            headline.update(dedup_precision=truth["precision"], dedup_recall=truth["recall"])
        mlflow.log_metrics(headline)
        mlflow.set_tag("dedup_verifier", summary["verifier"])
        log_to_parent(run, headline)
        mlflow.log_artifact(str(args.report))
        mlflow.log_artifact(str(args.out / "report.jsonl"), artifact_path="dedup")


if __name__ == "__main__":
    run_stage(main)
