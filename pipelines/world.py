"""Stage `world`: generate the toy fact world (people, biographies, QA items).

    dvc repro world   # dvc.yaml's cmd passes every input and output path
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from recall.config import load_params
from recall.contract import write_json, write_jsonl
from recall.errors import run_stage
from recall.tracking import stage_run
from recall.world import generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "world"):
        world = generate_world(params.world, seed=params.experiment.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        write_jsonl(args.out / "items.jsonl", world.items)
        write_jsonl(args.out / "people.jsonl", world.people)
        (args.out / "planted.json").write_text(json.dumps(world.planted, indent=1) + "\n")
        (args.out / "biographies.txt").write_text("\n".join(world.biographies) + "\n")
        exposures = [p.exposure for p in world.people]
        summary = {
            "people": len(world.people),
            "items": dict(Counter(it.split for it in world.items)),
            "biographies": len(world.biographies),
            "unknown_people": sum(1 for e in exposures if e == 0),
            "max_exposure": max(exposures),
            "planted_leaks": len(world.planted["leaks"]),
            "planted_distractors": len(world.planted["distractors"]),
        }
        write_json(args.metrics, summary)
        import mlflow

        mlflow.log_metrics({"people": summary["people"], "biographies": summary["biographies"],
                            "unknown_people": summary["unknown_people"]})


if __name__ == "__main__":
    run_stage(main)
