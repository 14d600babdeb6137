"""Stage `judge_reliability`: the judge's agreement with ground truth on real policy samples.

    dvc repro judge_reliability   # dvc.yaml's cmd passes every input and output path
The paper's Appendix D: distinct test answers sampled before RL (runs/base) and after RL
(runs/grpo/seed0), labelled by the toy world's ground truth, or by a labelled sample file
(--labels, JSON lines of question/answers/candidate/label) for real data. Two readings:
the configured model served bare (no fast path, no core-word gate, no cache: the model's own
rates, on at most --max-pairs seeded-sampled pairs per group), and the judge as the study
uses it (fast path and gate as configured, no cache: `<group>_as_used`).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, read_records, write_json
from recall.errors import run_stage
from recall.judge.factory import open_judge
from recall.judge.reliability import labelled_from_samples, read_labelled, reliability
from recall.tracking import log_to_parent, stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--samples", nargs="+", required=True,
                    help="path:group pairs, e.g. runs/base/samples.jsonl:pre_rl")
    ap.add_argument("--labels", type=Path, help="labelled sample file (real data)")
    ap.add_argument("--max-pairs", type=int, default=4000,
                    help="bare reading: at most this many distinct pairs per group (seeded)")
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "judge_reliability") as run:
        import mlflow

        items = {it.id: it for it in read_items(args.items)}
        groups = {}
        for spec in args.samples:
            path, _, group = spec.rpartition(":")
            records = read_records(Path(path))
            groups[group] = labelled_from_samples(records, items, split="test")
        if args.labels:
            groups["labelled"] = read_labelled(args.labels)
        capped = {g: _cap(pairs, args.max_pairs) for g, pairs in groups.items()}
        bare = dataclasses.replace(params.judge, fast_path=False, require_core_words=False,
                                   cache="")
        with open_judge(bare, compute=params.compute) as judge:
            report = reliability(judge, capped)
        used = dataclasses.replace(params.judge, cache="")
        with open_judge(used, compute=params.compute) as used_judge:
            report.update({f"{g}_as_used": r for g, r in reliability(used_judge, groups).items()})
        report = {"judge": judge.name, **report}
        write_json(args.metrics, report)
        mlflow.set_tag("judge", judge.name)
        headline = {f"judge_{name}_{group}": scores[name] for group, scores in report.items()
                    if isinstance(scores, dict)
                    for name in ("agreement", "false_positive_rate", "false_negative_rate")
                    if scores[name] is not None}
        mlflow.log_metrics(headline)
        log_to_parent(run, headline)


def _cap(pairs: list, limit: int) -> list:
    """At most `limit` pairs, a seeded sample (the bare model is asked about every one)."""
    return pairs if len(pairs) <= limit else random.Random(0).sample(pairs, limit)


if __name__ == "__main__":
    run_stage(main)
