"""Stage `split`: QA items in the data contract, split train / val / test.

    dvc repro split   # dvc.yaml's cmd passes every input and output path
data.source world: the toy world's own split (instruct / RL-train / val / test people).
data.source datasets: each configured file (or Hub split) loaded and split by the paper's
protocol (recall/splitting.py). Writes data/splits/items.jsonl and metrics/split.json.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, write_json, write_jsonl
from recall.datasets import load_source, source_origin
from recall.errors import run_stage
from recall.splitting import selected_sources, split_sources
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "split"):
        import mlflow

        if params.data.source == "world":
            items = read_items(args.world)
            summary = {"sources": {"world": dict(Counter(it.split for it in items))}}
        else:
            sources = selected_sources(params.data)
            loaded = [(src, load_source(src)) for src in sources]
            items, summary = split_sources(loaded, params.data, params.experiment.seed)
            summary["origin"] = {src.name: source_origin(src) for src in sources}
        summary["items"] = dict(Counter(it.split for it in items))
        write_jsonl(args.out, items)
        write_json(args.metrics, summary)
        mlflow.log_metrics({f"items_{split}": n for split, n in summary["items"].items()})


if __name__ == "__main__":
    run_stage(main)
